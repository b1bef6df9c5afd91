"""A newcomer's first hour: the README's commands as someone new types them, mistakes included.

Each step runs the real program (`python -m handshake_probe`, what the console script runs) from the
checkout's root, as the README's relative paths assume, on a terminal of a given width (`COLUMNS`), and
checks the exact first line a person reads: the table's header, the one error line, the usage error.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CAPTURE = "captures/echo-client-close.pcap"


def hp(*args: str, columns: Optional[int] = 100, stdin: object = None, data: Optional[bytes] = None,
       user: Optional[List[str]] = None) -> subprocess.CompletedProcess:
    """`handshake-probe ARGS` on a terminal `columns` wide (None: piped, no width)."""
    env: Dict[str, str] = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = str(ROOT)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run([*(user or []), sys.executable, "-m", "handshake_probe", *args], cwd=ROOT, env=env,
                          stdin=stdin, input=data, capture_output=True, timeout=60)


def out(done: subprocess.CompletedProcess) -> str:
    return done.stdout.decode()


def err(done: subprocess.CompletedProcess) -> str:
    return done.stderr.decode()


# ------------------------------------------------------------------------------- the README itself
def test_the_readmes_first_screen_fits_100_columns():
    wide = [(n, len(line)) for n, line in enumerate(README.splitlines()[:40], 1) if len(line) > 100]
    assert wide == []


def _readme_block(command: str) -> str:
    """The output the README shows under `$ COMMAND` (up to the end of its code block)."""
    m = re.search(r"^\$ " + re.escape(command) + r"\n(.*?)^```", README, re.S | re.M)
    assert m, f"the README shows no output for {command!r}"
    return m.group(1)


@pytest.mark.parametrize("args", [[CAPTURE], [CAPTURE, "--flow", "1"]], ids=["table", "flow"])
def test_the_readme_shows_what_a_100_column_terminal_shows(args: List[str]):
    shown = _readme_block("handshake-probe analyze " + " ".join(args))
    assert out(hp("analyze", *args, columns=100)) == shown
    assert max(map(len, shown.splitlines())) <= 100


def test_the_readme_names_every_option_of_every_command():
    """A newcomer looks an option up in the README: each command's long options are all there."""
    from handshake_probe.cli import build_parser
    from handshake_probe.commands import COMMANDS
    missing = {}
    for name in COMMANDS:
        parser = build_parser(name)._subparsers._group_actions[0].choices[name]  # type: ignore[union-attr]
        absent = [o for a in parser._actions for o in a.option_strings
                  if o.startswith("--") and o != "--help" and o not in README]
        if absent:
            missing[name] = absent
    assert missing == {}


# ------------------------------------------------------------------------------- the first command
def test_the_first_command_on_an_80_column_terminal():
    done = hp("analyze", CAPTURE, columns=80)
    lines = out(done).splitlines()
    assert done.returncode == 0 and err(done) == ""
    assert lines[0] == "  #  client           server           client states     server states"
    assert max(map(len, lines)) <= 80
    assert lines[-1] == f"{CAPTURE}: 10 frames, 10 TCP segments, 1 flow"


def test_one_flow_on_an_80_column_terminal():
    done = hp("analyze", CAPTURE, "--flow", "1", columns=80)
    lines = out(done).splitlines()
    assert done.returncode == 0
    assert lines[0] == "flow 1: client 127.0.0.1:34556 -> server 127.0.0.1:43417 (direction observed),"
    assert max(map(len, lines)) <= 80


# ------------------------------------------------------------------------------- the usual mistakes
@pytest.mark.parametrize("args,first", [
    ([], "usage: handshake-probe [-h] [--version] COMMAND ..."),
    (["analyze"], "usage: handshake-probe analyze [-h] [--jobs N] [--flow N] [--ladder]"),
])
def test_forgetting_the_arguments(args: List[str], first: str):
    done = hp(*args)
    assert done.returncode == 2 and out(done) == ""
    assert err(done).splitlines()[0] == first
    assert err(done).splitlines()[-1].startswith("handshake-probe: error: the following arguments are required: ")


@pytest.mark.parametrize("path,line", [
    ("captures/echo-client-close.pacp",
     "handshake-probe: error: cannot open captures/echo-client-close.pacp: No such file or directory"),
    ("README.md", "handshake-probe: error: README.md: not a pcap or pcapng file"),
    ("captures/README.md", "handshake-probe: error: captures/README.md: not a pcap or pcapng file"),
    ("/", "handshake-probe: error: no capture files found"),
])
@pytest.mark.parametrize("command", ["analyze", "check", "ladder"])
def test_a_wrong_path_or_a_text_file_is_one_line(command: str, path: str, line: str):
    extra = ["--flows", "1"] if command == "check" else []
    if path == "/":
        if command != "analyze":
            line = "handshake-probe: error: cannot open /: Is a directory"   # one file, not a folder
    done = hp(command, path, *extra)
    assert (done.returncode, out(done)) == (2, "")
    assert err(done) == line + "\n"


def test_a_typo_in_an_option_value():
    done = hp("analyze", CAPTURE, "--msl", "nan")
    assert done.returncode == 2 and out(done) == ""
    assert err(done).splitlines()[-1] == "handshake-probe: error: argument --msl: must be a finite number, not nan"


# ------------------------------------------------------------------------------- standard input
def test_a_capture_on_standard_input():
    done = hp("analyze", "-", columns=80, data=(ROOT / CAPTURE).read_bytes())
    lines = out(done).splitlines()
    assert done.returncode == 0 and err(done) == ""
    assert lines[0] == "  #  client           server           client states     server states"
    assert lines[-1] == "<stdin>: 10 frames, 10 TCP segments, 1 flow"


def test_text_on_standard_input():
    done = hp("analyze", "-", data=b"hello\n")
    assert (done.returncode, out(done)) == (2, "")
    assert err(done) == "handshake-probe: error: <stdin>: not a pcap or pcapng file\n"


def test_standard_input_left_on_the_terminal():
    """`analyze -` typed with nothing piped in would wait for ever: it says what it wants instead."""
    master, slave = os.openpty()
    try:
        done = hp("analyze", "-", stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert (done.returncode, out(done)) == (2, "")
    assert err(done).startswith("handshake-probe: error: `-` reads a capture from standard input, which is a "
                                "terminal here: pipe one in")


# ------------------------------------------------------------------------------- the other commands
def test_check_with_the_bundled_expectations():
    done = hp("check", CAPTURE, "--expect", "captures/echo-client-close.expect.toml")
    assert done.returncode == 0
    assert out(done).splitlines()[0] == (f"check {CAPTURE}: 1 flow; expectations from "
                                         "captures/echo-client-close.expect.toml")


def test_ladder():
    done = hp("ladder", CAPTURE)
    assert done.returncode == 0
    assert out(done).splitlines()[0] == ("flow 1: client 127.0.0.1:34556 -> server 127.0.0.1:43417, "
                                         "10 segments, close: FIN both ways")


def test_serve_and_client():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "handshake_probe", "serve", "--port", "0"], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+) \(mode upper, backlog (\d+)\); Ctrl-C stops\n", first)
        assert m, first
        done = hp("client", "--port", m.group(1), "--send", "python", "--count", "3")
        assert done.returncode == 0 and out(done).splitlines() == ["PYTHON"] * 3
        assert re.fullmatch(rf"connected to 127\.0\.0\.1:{m.group(1)} from 127\.0\.0\.1:\d+\n", err(done))
    finally:
        server.send_signal(signal.SIGINT)
        rest, _ = server.communicate(timeout=10)
    assert server.returncode == 0 and rest.splitlines()[-1] == "server stopped"


def test_client_with_no_server():
    done = hp("client", "--port", "1", "--send", "x")
    assert (done.returncode, out(done)) == (69, "")
    assert err(done) == "handshake-probe: error: cannot connect to 127.0.0.1:1: Connection refused\n"


def test_probe_without_sudo():
    """The README says `sudo handshake-probe probe`; without it: one line saying what is missing, 77."""
    user: List[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root, and no setpriv to run the command as an ordinary user")
        user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
    done = hp("probe", "--scenario", "echo", user=user)
    assert (done.returncode, out(done)) == (77, "")
    assert err(done).startswith("handshake-probe: error: probe needs CAP_NET_ADMIN to create its TUN device "
                                "(--rst-guard tun): run it as root (sudo handshake-probe probe ...)")
