"""`serve` and `client` as a user runs them: real processes, real kernel sockets on loopback."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from typing import Iterator, List, Tuple

import pytest

CMD = [sys.executable, "-m", "handshake_probe"]


def start_server(*extra: str) -> Tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(CMD + ["serve", "--port", "0", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    match = re.search(r"listening on \S+:(\d+)", first)
    assert match, first + (proc.stderr.read() if proc.stderr else "")
    return proc, int(match.group(1))


@pytest.fixture
def server() -> Iterator[Tuple[subprocess.Popen, int]]:
    proc, port = start_server()
    yield proc, port
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def client(port: int, *extra: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(CMD + ["client", "--port", str(port), *extra], input=stdin, capture_output=True,
                          text=True, timeout=20)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> List[str]:
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=10)
    return out.splitlines()


def test_scripted_client_gets_uppercase_and_server_logs_both_ends(server):
    proc, port = server
    res = client(port, "--send", "python", "--count", "3")
    assert res.returncode == 0 and res.stdout.splitlines() == ["PYTHON"] * 3
    lines = stop(proc)
    assert proc.returncode == 0 and lines[-1] == "server stopped"
    assert any(l.startswith("connect 127.0.0.1:") for l in lines)
    assert any("(closed by peer)" in l for l in lines)


def test_interactive_client_skips_empty_lines(server):
    _, port = server
    res = client(port, stdin="hello\n\n\nworld\n")
    assert res.returncode == 0 and res.stdout.splitlines() == ["HELLO", "WORLD"]


def test_echo_mode_and_sigint_stop():
    proc, port = start_server("--mode", "echo")
    res = client(port, "--send", "MiXeD")
    assert res.stdout.strip() == "MiXeD"
    assert stop(proc, signal.SIGINT)[-1] == "server stopped" and proc.returncode == 0


def test_server_survives_a_client_that_resets(server):
    proc, port = server
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.sendall(b"x")
    sock.recv(1)
    sock.close()                                  # RST, not FIN
    assert client(port, "--send", "still").stdout.strip() == "STILL"
    lines = stop(proc)
    assert any("(reset by peer)" in l for l in lines)


def test_client_reports_refused_and_vanished_server_in_one_line(server):
    proc, port = server
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    closed_port = free.getsockname()[1]
    free.close()
    res = client(closed_port, "--send", "x")
    assert res.returncode == 69 and res.stderr.strip().splitlines() == [
        f"handshake-probe: error: cannot connect to 127.0.0.1:{closed_port}: Connection refused"]
    # The server goes away between two lines: the client says so in one line.
    talk = subprocess.Popen(CMD + ["client", "--port", str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert talk.stdin is not None and talk.stdout is not None
    talk.stdin.write("one\n")
    talk.stdin.flush()
    assert talk.stdout.readline().strip() == "ONE"
    stop(proc)
    talk.stdin.write("two\n")
    talk.stdin.flush()
    out, err = talk.communicate(timeout=10)
    assert talk.returncode == 69 and "went away" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 2          # "connected to ..." and the one error line


def test_idle_timeout_closes_first():
    proc, port = start_server("--idle-timeout", "0.3")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            assert sock.recv(1) == b""                 # the server's FIN
    finally:
        lines = stop(proc)
    assert any("(idle timeout)" in l for l in lines)


@pytest.mark.parametrize("value", ["1,2", "a,b,c", "0,1,1"])
def test_bad_keepalive_is_a_usage_error(value):
    res = subprocess.run(CMD + ["serve", "--keepalive", value], capture_output=True, text=True, timeout=20)
    assert res.returncode == 2 and "--keepalive" in res.stderr and "Traceback" not in res.stderr


def test_port_in_use_is_one_line(server):
    _, port = server
    res = subprocess.run(CMD + ["serve", "--port", str(port)], capture_output=True, text=True, timeout=20)
    assert res.returncode == 69 and "Address already in use" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
