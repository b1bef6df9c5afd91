"""The probe's verdict as a person reads it: the cause first on its own line, the rest wrapped to the width.

No privilege needed: the outcome is judged from frames Scapy builds here (a SYN answered by RST/ACK where
the handshake scenario expects a SYN-ACK), by the same analyzer and judge as a live run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6

from handshake_probe.files.pcapwriter import RawFrame
from handshake_probe.prober.context import Checkpoint
from handshake_probe.prober.report import render, verdict_lines, wrap_item
from handshake_probe.prober.scenarios import SCENARIOS
from handshake_probe.prober.verdict import Outcome, analyze, judge, ladder_of

ROOT = Path(__file__).resolve().parent.parent
CAUSE = "expected the SYN-ACK (S.), got R. seq 0 ack 1001 len 0: flags R."


def _failed_handshake(v6: bool = False) -> Outcome:
    ip = (lambda s, d: IPv6(src=s, dst=d)) if v6 else (lambda s, d: IP(src=s, dst=d))
    me, kernel = ("2001:db8:1::2", "2001:db8:1::1") if v6 else ("198.18.1.2", "198.18.1.1")
    packets = [ip(me, kernel) / TCP(sport=40000, dport=80, seq=1000, flags="S"),
               ip(kernel, me) / TCP(sport=80, dport=40000, seq=0, ack=1001, flags="RA")]
    frames = [RawFrame(i + 1, 1.0 + i / 1000, 101, bytes(p), len(bytes(p)), 0) for i, p in enumerate(packets)]
    sc = SCENARIOS["handshake"]
    out = Outcome(sc, frames, analyze(frames, "t"), ladder_of(frames, (me, 40000)),
                  [Checkpoint("after its SYN-ACK", 2, "server", "SYN-RECEIVED", "CLOSED")], [], 0.25)
    judge(out, sc.ladder)
    out.problems.insert(0, CAUSE)             # the script's own failure leads, as engine._run_one puts it
    return out


@pytest.mark.parametrize("width", [40, 60, 80, 120])
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_failing_verdict_cause_first_and_width_respected(width: int, v6: bool) -> None:
    out = _failed_handshake(v6)
    assert out.ladder == ">S <R." and not out.ok
    lines = verdict_lines(out, width)
    assert lines[0] == "verdict: FAIL handshake (0.25 s)"
    assert lines[1].startswith("  cause:") and lines[1].split(":", 1)[1].strip().startswith("expected the SYN-ACK")
    assert all(len(line) <= width for line in lines), [line for line in lines if len(line) > width]
    text = " ".join(line.strip() for line in lines)
    # nothing lost in the wrapping: every problem is there whole (the wrap only adds breaks and indents)
    bare = "".join("".join(line[12:] for line in lines[1:]).split())
    for problem in out.problems:
        assert "".join(problem.split()) in bare, problem
    assert "expected: >S <S. >. >R." in text and "happened: >S <R." in text
    assert "kernel SYN-RECEIVED" in text and "kernel CLOSED" in text


def test_the_old_single_line_is_gone() -> None:
    """Before: one 300-600 character line with the cause in the middle. Now no line is longer than the
    default width even when the output goes to a file (width None)."""
    lines = verdict_lines(_failed_handshake(), None)
    assert max(map(len, lines)) <= 100 and len(lines) >= 8
    assert lines[1].startswith("  cause:")


def test_paths_break_after_an_arrow_never_inside_a_state() -> None:
    path = "CLOSED>SYN-SENT>SYN-RECEIVED>ESTABLISHED>FIN-WAIT-1>CLOSING>TIME-WAIT"
    lines = wrap_item("also", f"client {path}, expected {path}", 40)
    assert all(len(line) <= 40 for line in lines)
    pieces = [line[12:] for line in lines]
    assert "".join(p if p.endswith(">") else p + " " for p in pieces).split() == \
        ["client", f"{path},", "expected", path]


def test_pass_verdict_is_short_and_first() -> None:
    out = _failed_handshake()
    out.problems = []
    lines = verdict_lines(out, 80)
    assert lines[0] == "verdict: PASS handshake: all as expected (0.25 s)"
    assert lines[1] == "  happened: >S <R."


def test_render_wraps_to_the_given_width() -> None:
    out = _failed_handshake()
    out.notes.append("a note long enough to need wrapping at fifty columns, said in plain words")
    text = render(out, width=50)
    tail = text[text.index("kernel (server)"):].splitlines()      # checkpoints, notes, the verdict
    verdict = tail[tail.index(next(l for l in tail if l.startswith("verdict:"))):]
    assert verdict[1].startswith("  cause:") and all(len(line) <= 50 for line in tail), tail


def test_help_explains_the_ladder_notation() -> None:
    done = subprocess.run([sys.executable, "-m", "handshake_probe", "probe", "--help"], cwd=ROOT,
                          capture_output=True, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0
    flat = " ".join(done.stdout.split())
    assert "'>' is a segment the prober sent, '<' one the kernel" in flat
    assert "S SYN, F FIN, R RST, P PSH" in flat and "trailing '.' is ACK" in flat
    assert "'X?' is a segment that may or may not appear" in flat


def test_readme_explains_the_ladder_notation() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "`>` is a segment the prober sent, `<` one the kernel" in readme
