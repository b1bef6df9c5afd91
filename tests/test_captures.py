"""Recorded and crafted captures in captures/: the endpoint paths RFC 9293 predicts, and the golden results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import handshake_probe
from scripts.update_goldens import golden

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
PCAPS = sorted(CAPTURES.glob("*.pcap"))

C_ACTIVE_CLOSE = ["CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
S_PASSIVE_CLOSE = ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
C_PASSIVE_CLOSE = ["CLOSED", "SYN-SENT", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
S_ACTIVE_CLOSE = ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]

# What RFC 9293 predicts for each capture (restated from captures/README.md, not from the golden files):
# (client path, server path, close) of flow 1.
PREDICTED: Dict[str, Tuple[List[str], List[str], str]] = {
    "echo-client-close": (C_ACTIVE_CLOSE, S_PASSIVE_CLOSE, "fin"),
    "echo-ipv6": (C_ACTIVE_CLOSE, S_PASSIVE_CLOSE, "fin"),
    "echo-half-close": (C_ACTIVE_CLOSE, S_PASSIVE_CLOSE, "fin"),
    "echo-server-close": (C_PASSIVE_CLOSE, S_ACTIVE_CLOSE, "fin"),
    "echo-rst-abort": (["CLOSED", "SYN-SENT", "ESTABLISHED", "CLOSED"],
                       ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSED"], "client-rst"),
    "closed-port": (["CLOSED", "SYN-SENT", "CLOSED"], ["CLOSED"], "rejected"),
    "syn-no-answer": (["CLOSED", "SYN-SENT"], ["UNKNOWN"], "none"),
    "echo-port-reuse-3000": (C_ACTIVE_CLOSE + ["CLOSED"], S_PASSIVE_CLOSE, "fin"),
    "simultaneous-open": (["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2",
                           "TIME-WAIT"],
                          ["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK",
                           "CLOSED"], "fin"),
    "simultaneous-close": (["CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "CLOSING", "TIME-WAIT"],
                           ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "CLOSING", "TIME-WAIT"],
                           "fin"),
    "rst-in-syn-received": (["CLOSED", "SYN-SENT", "ESTABLISHED", "CLOSED"],
                            ["LISTEN", "SYN-RECEIVED", "LISTEN"], "client-rst"),
    "mid-stream": (["UNKNOWN", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"],
                   ["UNKNOWN", "CLOSE-WAIT", "LAST-ACK", "CLOSED"], "fin"),
    "rst-out-of-window": (["CLOSED", "SYN-SENT", "ESTABLISHED", "CLOSED"],
                          ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSED"], "client-rst"),
    # Recorded by `handshake-probe probe --scenario NAME -w` (the prober is the client, except in
    # no-answer and simultaneous-open, where a kernel socket connect()s first).
    "probe-handshake": (["CLOSED", "SYN-SENT", "ESTABLISHED", "CLOSED"],
                        ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSED"], "client-rst"),
    "probe-echo": (C_ACTIVE_CLOSE, S_PASSIVE_CLOSE, "fin"),
    "probe-client-close": (C_ACTIVE_CLOSE, S_PASSIVE_CLOSE, "fin"),
    "probe-half-close": (C_ACTIVE_CLOSE, S_PASSIVE_CLOSE, "fin"),
    "probe-server-close": (C_PASSIVE_CLOSE, S_ACTIVE_CLOSE, "fin"),
    "probe-rst-abort": (["CLOSED", "SYN-SENT", "ESTABLISHED", "CLOSED"],
                        ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSED"], "client-rst"),
    "probe-closed-port": (["CLOSED", "SYN-SENT", "CLOSED"], ["CLOSED"], "rejected"),
    "probe-no-answer": (["CLOSED", "SYN-SENT"], ["UNKNOWN"], "none"),
    "probe-simultaneous-close": (["CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "CLOSING", "TIME-WAIT"],
                                 ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "CLOSING",
                                  "TIME-WAIT"], "fin"),
    "probe-simultaneous-open": (["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "CLOSED"],
                                ["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "CLOSED"], "server-rst"),
    # Recorded by scripts/record_negotiation.py (kernel sockets in namespaces of their own): the same
    # echo session, negotiated differently.
    "negotiation-no-wscale": (C_ACTIVE_CLOSE, S_PASSIVE_CLOSE, "fin"),
    "negotiation-tfo": (C_ACTIVE_CLOSE, S_PASSIVE_CLOSE, "fin"),
    "negotiation-ecn": (C_ACTIVE_CLOSE, S_PASSIVE_CLOSE, "fin"),
    "negotiation-mss-clamp": (C_ACTIVE_CLOSE, S_PASSIVE_CLOSE, "fin"),
}


def analyze(pcap: Path, rows: bool = False) -> Tuple[Any, List[Dict[str, Any]]]:
    """The engine's analysis of a capture, run to its end, and its records in flow order; with `rows`,
    every flow's segments are kept (`analysis.rows(n)`)."""
    analysis = handshake_probe.analyze(str(pcap), streaming=False, keep_rows=True if rows else None)
    records = list(analysis)
    return analysis, records


def test_every_capture_is_predicted_and_documented():
    names = {p.stem for p in PCAPS}
    assert names == set(PREDICTED)
    readme = (CAPTURES / "README.md").read_text()
    for name in names:
        assert f"{name}.pcap" in readme
        assert (CAPTURES / f"{name}.expected.json").is_file()


@pytest.mark.parametrize("pcap", PCAPS, ids=[p.stem for p in PCAPS])
def test_capture_follows_rfc_prediction(pcap: Path):
    analysis, records = analyze(pcap)
    assert analysis.error is None and not analysis.damaged
    first = records[0]
    client, server, close = PREDICTED[pcap.stem]
    assert first["client_states"] == client
    assert first["server_states"] == server
    assert first["close"] == close


@pytest.mark.parametrize("pcap", PCAPS, ids=[p.stem for p in PCAPS])
def test_capture_matches_golden(pcap: Path):
    expected = json.loads(pcap.with_suffix(".expected.json").read_text())
    assert golden(pcap) == expected


def test_echo_session_seq_ack_arithmetic():
    analysis, _records = analyze(CAPTURES / "echo-client-close.pcap", rows=True)
    rows = analysis.rows(1)
    syn, synack, ack = rows[:3]
    assert synack["ack"] == (syn["seq"] + 1) % 2**32          # ack = x + 1
    assert ack["seq"] == (syn["seq"] + 1) % 2**32 and ack["ack"] == (synack["seq"] + 1) % 2**32   # seq x+1, ack y+1
    data_in, data_out = rows[3], rows[5]
    assert data_in["len"] == data_out["len"] == 6   # "python" -> "PYTHON"


def test_half_close_server_sends_data_in_close_wait():
    analysis, records = analyze(CAPTURES / "echo-half-close.pcap", rows=True)
    rows = analysis.rows(1)
    fin = next(i for i, r in enumerate(rows) if r["flags"] & 1 and r["from_client"])
    data_after = [r for r in rows[fin + 1:] if not r["from_client"] and r["len"]]
    assert data_after and all(r["server_state"] == "CLOSE-WAIT" for r in data_after)
    assert all(r["client_state"] == "FIN-WAIT-2" for r in data_after)
    assert records[0]["violations"] == []


def test_syn_retransmissions_are_one_flow():
    _analysis, records = analyze(CAPTURES / "syn-no-answer.pcap")
    assert len(records) == 1
    rec = records[0]
    assert rec["handshake"]["syn_count"] == rec["packets"] >= 2 and rec["handshake"]["status"] == "partial"


def test_out_of_window_rst_changed_nothing():
    analysis, records = analyze(CAPTURES / "rst-out-of-window.pcap", rows=True)
    flow, rows = records[0], analysis.rows(1)
    assert flow["violation_count"] == 1 and "outside the receive window" in flow["violations"][0]["reason"]
    bad = next(r for r in rows if r["notes"])
    assert (bad["client_state"], bad["server_state"]) == ("ESTABLISHED", "ESTABLISHED")
    assert bad["frame"] < rows[-1]["frame"]    # the connection went on after it


def test_port_reuse_3000_connections_are_3000_flows():
    _analysis, records = analyze(CAPTURES / "echo-port-reuse-3000.pcap")
    assert len(records) == 3000
    assert len({(r["client"], r["server"]) for r in records}) < 3000      # 4-tuples repeat
    assert all(r["handshake"]["complete"] and r["close"] == "fin" and r["packets"] == 10 for r in records)
    reused = [r for r in records if r["transitions"][-1]["cause"] == "new SYN on the 4-tuple"]
    assert len(reused) == 3000 - len({(r["client"], r["server"]) for r in records})


def test_rows_show_the_server_state_settled_by_its_answer():
    # The server's LISTEN -> SYN-RECEIVED is known only from its SYN-ACK (frame 2), but happened at frame 1.
    analysis, _records = analyze(CAPTURES / "echo-client-close.pcap", rows=True)
    r1, r2 = analysis.rows(1)[:2]
    assert r1["server_state"] == "SYN-RECEIVED"
    assert [(t["endpoint"], t["to"]) for t in r1["transitions"]] == [("client", "SYN-SENT"),
                                                                    ("server", "SYN-RECEIVED")]
    assert [(t["endpoint"], t["to"]) for t in r2["transitions"]] == [("client", "ESTABLISHED")]


def test_simultaneous_close_row_keeps_both_transitions_of_the_crossing_fin():
    analysis, _records = analyze(CAPTURES / "simultaneous-close.pcap", rows=True)
    row = next(r for r in analysis.rows(1) if r["frame"] == 9)
    assert [(t["endpoint"], t["to"]) for t in row["transitions"]] == [
        ("server", "FIN-WAIT-1"), ("server", "CLOSING"), ("client", "CLOSING")]
