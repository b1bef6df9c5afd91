"""Docs drawn from the engine stay what the engine does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import handshake_probe

ROOT = Path(__file__).resolve().parents[1]


def test_state_diagram_is_generated_from_the_table() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "state_diagram.py"), "--check"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    text = (ROOT / "docs" / "states.md").read_text()
    # every move of the table is an arrow of the diagram
    for (state, cue), nxt in handshake_probe.TRANSITIONS.items():
        if state != nxt:
            assert f"{state.replace('-', '_')} --> {nxt.replace('-', '_')}: {cue}" in text


def test_vocabulary_is_exported_once() -> None:
    assert handshake_probe.STATES[0] == "CLOSED" and "TIME-WAIT" in handshake_probe.STATES
    assert ("SYN-SENT", "rcv SYN-ACK") in handshake_probe.TRANSITIONS
    assert handshake_probe.TRANSITIONS[("LISTEN", "rcv SYN")] == "SYN-RECEIVED"
    assert "zero_window_probe_ack" in handshake_probe.ANOMALY_KINDS
    assert set(handshake_probe.CLOSE_KINDS) == {"fin", "client-rst", "server-rst", "rejected", "none"}
    assert "RSTOS0" in handshake_probe.CONN_STATES


def test_readme_python_api_example_runs(monkeypatch) -> None:
    """The README's API example, run as written (from the repository root, as a reader would)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    code = section[section.index("```python") + len("```python"):section.index("```", section.index("```python") + 9)]
    monkeypatch.chdir(ROOT)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["analysis"].frames == 10
    assert len(scope["rows"]) == 10 and scope["rows"][0]["tcpdump_flags"] == "S"
