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
