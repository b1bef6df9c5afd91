"""The engine's boundary as a Python program meets it: threads, pipes, early stops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import handshake_probe

ROOT = Path(__file__).resolve().parents[1]
CAPTURE = ROOT / "captures" / "echo-port-reuse-3000.pcap"


def test_a_python_thread_can_feed_the_pipe_the_engine_reads() -> None:
    """The engine waits for its reading thread without the GIL: a Python thread writing the capture
    into the pipe it reads goes on (holding the GIL there deadlocked). In a subprocess, so that a
    regression is a timeout here, not a hung suite."""
    script = f"""
import os, threading, handshake_probe
data = open({str(CAPTURE)!r}, "rb").read()
r, w = os.pipe()
def feed():
    view = memoryview(data)
    while view:
        view = view[os.write(w, view[:65536]):]
    os.close(w)
t = threading.Thread(target=feed)
t.start()
analysis = handshake_probe.analyze(f"/dev/fd/{{r}}")
print(sum(1 for _ in analysis), analysis.frames)
t.join()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    expected = handshake_probe.analyze(str(CAPTURE))
    flows = sum(1 for _ in expected)
    assert done.stdout.split() == [str(flows), str(expected.frames)]


def test_stopping_early_leaves_no_thread_behind() -> None:
    """Dropping an analysis half-way stops its threads (the engine's worker and its read-ahead):
    the process's OS threads, counted by the kernel, are as many as before."""
    def threads() -> int:
        return len(list(Path("/proc/self/task").iterdir()))
    before = threads()
    analysis = handshake_probe.analyze(str(CAPTURE))
    next(iter(analysis))
    assert threads() > before                    # the engine is reading on its own thread(s)
    del analysis
    for _ in range(20):
        a = handshake_probe.analyze(str(CAPTURE))
        next(iter(a))
        del a
    assert threads() == before
    assert sum(1 for _ in handshake_probe.analyze(str(CAPTURE))) == 3000


def test_an_engine_panic_is_one_line_and_exit_70(monkeypatch, capsys) -> None:
    """What the boundary raises for a Rust panic (EngineError, naming file and frame) reaches the user
    as one line and exit 70, never a traceback."""
    from handshake_probe import _engine
    from handshake_probe.cli import main
    from handshake_probe.commands import analyze

    def boom(args):
        raise _engine.EngineError("internal error at x.pcap: frame 7: index out of bounds")
    monkeypatch.setattr(analyze, "run", boom)
    assert main(["analyze", str(CAPTURE)]) == 70
    err = capsys.readouterr().err
    assert err.splitlines() == ["handshake-probe: internal error: internal error at x.pcap: frame 7: index out "
                                "of bounds (a bug in handshake-probe: please report it with the capture)"]
