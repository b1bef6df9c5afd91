"""EchoServer against real kernel sockets on loopback.

No mocks: the failure modes under test (resets, backlog queueing, FIN) are the kernel's.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from typing import Iterator

import pytest

from handshake_probe.echo.server import EchoLog, EchoServer, Mode, format_peer

TIMEOUT = 5.0  # generous upper bound for every blocking client call; loopback is fast


LogSink = EchoLog   # the server's log, collected (handshake_probe.echo.server.EchoLog)


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=TIMEOUT)
    return sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise AssertionError(f"EOF after {size - remaining} of {size} bytes")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def roundtrip(address: tuple[str, int], payload: bytes = b"python") -> bytes:
    with connect(address) as sock:
        sock.sendall(payload)
        return recv_exactly(sock, len(payload))


def rst_close(sock: socket.socket) -> None:
    """close() with SO_LINGER on and a zero timeout: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.fixture
def log() -> LogSink:
    return LogSink()


@pytest.fixture
def server(log: LogSink) -> Iterator[tuple[str, int]]:
    with EchoServer(log=log) as address:
        yield address


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


# ---------------------------------------------------------------- the echo itself


def test_upper_mode(server: tuple[str, int]) -> None:
    assert roundtrip(server, b"python") == b"PYTHON"


def test_echo_mode(log: LogSink) -> None:
    with EchoServer(mode="echo", log=log) as address:
        assert roundtrip(address, b"python") == b"python"


def test_bound_address_is_real_port(server: tuple[str, int]) -> None:
    host, port = server
    assert host == "127.0.0.1" and port > 0


@pytest.mark.parametrize("mode", ["upper", "echo"])
def test_one_megabyte_comes_back_whole(mode: Mode, log: LogSink) -> None:
    payload = bytes(range(97, 123)) * (1_000_000 // 26 + 1)  # lower-case letters
    payload = payload[:1_000_000]
    expected = payload.upper() if mode == "upper" else payload
    with EchoServer(mode=mode, log=log) as address, connect(address) as sock:
        # Send from another thread while reading here: a client that sends 1 MB before
        # reading anything can deadlock against any echo server once both buffers fill.
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        received = recv_exactly(sock, len(payload))
        sender.join(TIMEOUT)
    assert received == expected


def test_many_messages_on_one_connection(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        for i in range(50):
            message = f"message {i}".encode()
            sock.sendall(message)
            assert recv_exactly(sock, len(message)) == message.upper()


# ---------------------------------------------------------------- robustness


def test_idle_client_does_not_block_others(server: tuple[str, int]) -> None:
    with connect(server) as idle:  # connects and never sends
        started = time.monotonic()
        assert roundtrip(server) == b"PYTHON"
        assert time.monotonic() - started < 1.0
        idle.settimeout(0.1)
        with pytest.raises(socket.timeout):
            idle.recv(1)  # and the idle one was not closed behind its back


def test_client_close_is_logged_and_server_closes_its_side(server: tuple[str, int],
                                                           log: LogSink) -> None:
    with connect(server) as sock:
        sock.sendall(b"x")
        assert sock.recv(1) == b"X"
        peer = format_peer(sock.getsockname())
        sock.shutdown(socket.SHUT_WR)  # our FIN; the server must answer with its own
        assert sock.recv(1) == b""
    assert log.wait_for(lambda line: line == f"connect {peer}")
    assert log.wait_for(lambda line: line == f"disconnect {peer} (closed by peer)")


def test_reset_client_does_not_kill_server(server: tuple[str, int], log: LogSink) -> None:
    sock = connect(server)
    sock.sendall(b"python")
    assert recv_exactly(sock, 6) == b"PYTHON"
    peer = format_peer(sock.getsockname())
    rst_close(sock)
    log.wait_for(lambda line: line == f"disconnect {peer} (reset by peer)")
    assert roundtrip(server, b"still here") == b"STILL HERE"


def test_reset_while_server_is_writing(server: tuple[str, int], log: LogSink) -> None:
    """A client that sends a lot and resets without reading: the server's sendall fails."""
    sock = connect(server)
    peer = format_peer(sock.getsockname())
    sock.settimeout(0.5)
    try:
        # Fills both directions' buffers (we never read), leaving the server blocked in
        # sendall; the timeout keeps this client from blocking for good on its own send.
        sock.sendall(b"a" * 8_000_000)
    except socket.timeout:
        pass
    rst_close(sock)
    log.wait_for(lambda line: line == f"disconnect {peer} (reset by peer)")
    assert roundtrip(server) == b"PYTHON"


def test_reset_before_accept_does_not_kill_server(log: LogSink) -> None:
    """A client resets while still queued in the backlog (max_clients=1 keeps it there)."""
    with EchoServer(max_clients=1, log=log) as address, connect(address) as first:
        queued = connect(address)  # handshake completed by the kernel, not accepted yet
        rst_close(queued)
        first.sendall(b"a")
        assert first.recv(1) == b"A"
        first.close()
        assert roundtrip(address) == b"PYTHON"


def test_idle_timeout_server_closes_first(log: LogSink) -> None:
    with EchoServer(idle_timeout=0.3, log=log) as address, connect(address) as sock:
        sock.sendall(b"python")
        assert recv_exactly(sock, 6) == b"PYTHON"
        started = time.monotonic()
        assert sock.recv(1) == b""  # the server's FIN
        waited = time.monotonic() - started
        peer = format_peer(sock.getsockname())
    assert 0.2 < waited < 2.0
    log.wait_for(lambda line: line == f"disconnect {peer} (idle timeout)")


def test_idle_timeout_spares_active_clients(log: LogSink) -> None:
    with EchoServer(idle_timeout=0.3, log=log) as address, connect(address) as sock:
        for _ in range(5):  # 1 s in total, but never 0.3 s of silence
            time.sleep(0.2)
            sock.sendall(b"k")
            assert sock.recv(1) == b"K"


def test_several_clients_at_once(server: tuple[str, int]) -> None:
    count = 32
    barrier = threading.Barrier(count)
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            with connect(server) as sock:
                barrier.wait(TIMEOUT)  # all connected before anyone sends
                message = f"client {i}".encode()
                sock.sendall(message)
                results[i] = recv_exactly(sock, len(message))
        except BaseException as err:  # reported in the main thread
            errors.append(err)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)
    assert not errors
    assert results == {i: f"CLIENT {i}".encode() for i in range(count)}


def test_clients_queue_in_backlog_with_max_clients(log: LogSink) -> None:
    with EchoServer(max_clients=1, log=log) as address:
        first = connect(address)
        first.sendall(b"a")
        assert first.recv(1) == b"A"
        # The kernel completes this handshake and parks it in the accept queue.
        second = connect(address)
        second.sendall(b"b")
        second.settimeout(0.3)
        with pytest.raises(socket.timeout):
            second.recv(1)  # not served while the only slot is taken
        first.close()
        second.settimeout(TIMEOUT)
        assert second.recv(1) == b"B"
        second.close()


def test_ipv6_loopback(log: LogSink) -> None:
    if not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback (::1) on this host")
    with EchoServer(host="::1", log=log) as address:
        assert address[0] == "::1"
        with socket.create_connection(address, timeout=TIMEOUT) as sock:
            assert sock.family == socket.AF_INET6
            sock.sendall(b"python")
            assert recv_exactly(sock, 6) == b"PYTHON"
            peer = format_peer(sock.getsockname())
        # Still inside the server's context: leaving it would race shutdown with our FIN.
        log.wait_for(lambda line: line == f"disconnect {peer} (closed by peer)")
    assert peer.startswith("[::1]:")


# ---------------------------------------------------------------- lifecycle


def test_shutdown_ends_open_connections(log: LogSink) -> None:
    server = EchoServer(log=log)
    with server as address:
        sock = connect(address)
        sock.sendall(b"a")
        assert sock.recv(1) == b"A"
        peer = format_peer(sock.getsockname())
        server.shutdown()
        assert sock.recv(1) == b""  # the server's FIN
        sock.close()
    log.wait_for(lambda line: line == f"disconnect {peer} (server shutdown)")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=TIMEOUT)


def test_shutdown_unblocks_writer_to_non_reading_client(log: LogSink) -> None:
    server = EchoServer(mode="echo", log=log)
    with server as address:
        sock = connect(address)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sender = threading.Thread(target=lambda: _send_quietly(sock, b"z" * 20_000_000))
        sender.start()
        time.sleep(0.3)  # the server is now stuck in sendall: we never read
        started = time.monotonic()
        server.shutdown()
        assert time.monotonic() - started < 5.0
        sock.close()
        sender.join(TIMEOUT)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass  # the server went away mid-send; expected here


def test_serve_forever_in_foreground(log: LogSink) -> None:
    server = EchoServer(log=log)
    address = server.bind()
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        assert roundtrip(address) == b"PYTHON"
    finally:
        server.shutdown()
        thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_shutdown_without_serving_releases_port() -> None:
    server = EchoServer()
    host, port = server.bind()
    server.shutdown()
    server.shutdown()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=TIMEOUT)


def test_keepalive_server_still_echoes(log: LogSink) -> None:
    with EchoServer(keepalive=(1, 1, 3), log=log) as address:
        assert roundtrip(address) == b"PYTHON"


@pytest.mark.parametrize("kwargs", [
    {"mode": "shout"},
    {"idle_timeout": 0},
    {"max_clients": 0},
    {"keepalive": (1, 1)},
    {"keepalive": (0, 1, 1)},
])
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EchoServer(**kwargs)  # type: ignore[arg-type]


def test_server_can_be_restarted(log: LogSink) -> None:
    server = EchoServer(log=log)
    with server as first:
        assert roundtrip(first) == b"PYTHON"
        with pytest.raises(RuntimeError):
            server.__enter__()  # one accept loop per server
    with server as second:
        assert roundtrip(second) == b"PYTHON"


# ---------------------------------------------------------------- resources and logging


def test_default_backlog_is_somaxconn() -> None:
    # A backlog of 16 lost a quarter of 1,000 simultaneous clients; the kernel caps any larger value.
    with open("/proc/sys/net/core/somaxconn") as f:
        assert EchoServer().backlog == int(f.read())
    assert EchoServer(backlog=5).backlog == 5
    with pytest.raises(ValueError):
        EchoServer(backlog=0)


def test_a_client_whose_setup_fails_still_frees_its_slot(log: LogSink, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything failing while a client is set up (here: its poll set, as EMFILE did to epoll) ends only
    that client: its socket is closed, the disconnect logged, and the max_clients slot is free again."""
    import selectors
    from handshake_probe.echo import server as echo

    with EchoServer(max_clients=1, log=log) as address:
        real = {name: getattr(selectors, name) for name in ("PollSelector", "DefaultSelector")}
        failures = []

        def fail_once(name: str):
            def make() -> selectors.BaseSelector:
                if not failures:
                    failures.append(name)
                    raise OSError(24, "Too many open files")
                return real[name]()
            return make
        for name in real:                      # whichever selector the client thread makes
            monkeypatch.setattr(echo.selectors, name, fail_once(name))
        with connect(address) as first:
            assert first.recv(1) == b""        # closed by the server, not left hanging
        log.wait_for("disconnect")
        assert "Too many open files" in log.wait_for("disconnect")
        assert roundtrip(address) == b"PYTHON"   # the only slot was given back


def test_log_lines_never_interleave(log: LogSink) -> None:
    """The log callback is called by one client thread at a time: a callback that writes a line in two
    pieces (as print writes the text, then the newline) still writes whole lines."""
    written: list[str] = []

    def slow_print(line: str) -> None:
        written.append(line)
        time.sleep(0.002)                      # another thread would get in here
        written.append("\n")

    count = 16
    with EchoServer(log=slow_print) as address:
        threads = [threading.Thread(target=roundtrip, args=(address,)) for _ in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while "".join(written).count("disconnect") < count and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = "".join(written).splitlines()
    assert len(lines) == 2 * count
    assert all(re.fullmatch(r"(connect|disconnect) 127\.0\.0\.1:\d+( \(closed by peer\))?", l) for l in lines), lines


def test_a_full_max_clients_is_logged_once(log: LogSink) -> None:
    with EchoServer(max_clients=1, log=log) as address:
        for _ in range(3):                     # full three times over
            with connect(address) as first, connect(address) as second:
                first.sendall(b"a")
                assert first.recv(1) == b"A"
                log.wait_for("max-clients")
                first.close()
                second.sendall(b"b")
                assert second.recv(1) == b"B"
    assert [l for l in log.lines if "max-clients" in l] == [
        "max-clients 1 reached: further clients wait in the listen backlog (said once)"]


def test_shutdown_before_serving_cancels_serve_forever() -> None:
    """A stop request that lands between bind() and serve_forever() (a signal right after start-up) is
    not lost: serve_forever returns at once instead of binding again and serving on."""
    server = EchoServer()
    server.bind()
    server.shutdown()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (server.serve_forever(), done.set()), daemon=True)
    thread.start()
    assert done.wait(TIMEOUT)
    server.bind()                              # a new run after an explicit bind() serves again
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert roundtrip(server.address) == b"PYTHON"
    finally:
        server.shutdown()
        thread.join(TIMEOUT)
