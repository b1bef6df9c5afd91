"""The flow model on hand-built conversations, through the engine: both endpoints' paths, flow splits,
handshake and close facts, as the records, rows and transition events tell them."""

from __future__ import annotations

from typing import List, Tuple

import pytest

from tests.talk import MOD, Talk, TcpOptions, Wire, ip_tcp

EST_C = ["CLOSED", "SYN-SENT", "ESTABLISHED"]
EST_S = ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"]


def paths(t: Talk, n: int = 0) -> Tuple[List[str], List[str]]:
    """Both endpoints' paths of flow n+1 once the capture ends (the live engine finished)."""
    rec = t.finish()[n]
    return rec["client_states"], rec["server_states"]


def test_client_closes_first_four_segments():
    t = Talk().handshake()
    t.c("PA", 6)
    t.s("PA", 6)
    t.c("FA")
    t.s("A")
    t.s("FA")
    t.c("A")
    c, s = paths(t)
    assert c == EST_C + ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert s == EST_S + ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    rec = t.record()
    assert rec["close"] == "fin" and rec["direction"] == "observed" and rec["violations"] == []
    assert rec["handshake"]["complete"] is True
    assert rec["handshake"]["syn_to_synack_ms"] == pytest.approx(1.0)
    assert rec["handshake"]["synack_to_ack_ms"] == pytest.approx(1.0)
    # every transition names the frame that caused it; the client's SYN-SENT -> ESTABLISHED is the SYN-ACK
    est = [x for x in rec["transitions"] if x["endpoint"] == "client" and x["to"] == "ESTABLISHED"]
    assert est == [{"ts": t.segments[1].ts, "frame": 2, "endpoint": "client", "from": "SYN-SENT",
                    "to": "ESTABLISHED", "cause": "rcv SYN-ACK"}]


def test_fin_piggybacked_on_ack_moves_two_states_on_one_segment():
    t = Talk().handshake()
    t.c("FA")
    t.s("FA")          # acks the client's FIN and carries the server's own
    t.c("A")
    c, s = paths(t)
    assert c == EST_C + ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert s == EST_S + ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    frames = [x["frame"] for x in t.record()["transitions"] if x["endpoint"] == "client"][-2:]
    assert frames == [5, 5]   # RFC 9293 §3.10.7.4: ACK processing (FIN-WAIT-2), then FIN (TIME-WAIT)


def test_server_closes_first():
    t = Talk().handshake()
    t.s("FA")
    t.c("A")
    t.c("FA")
    t.s("A")
    c, s = paths(t)
    assert c == EST_C + ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    assert s == EST_S + ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]


def test_half_close_with_data_after_first_fin():
    t = Talk().handshake()
    t.c("PA", 6)
    t.c("FA")
    t.s("A")
    t.s("PA", 6)      # the server still sends in CLOSE-WAIT
    t.c("A")          # ... and the client still acknowledges in FIN-WAIT-2
    t.s("FA")
    t.c("A")
    c, s = paths(t)
    assert c == EST_C + ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert s == EST_S + ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    assert t.record()["violations"] == []
    rows = t.rows()
    assert [r["server_state"] for r in rows][5] == "CLOSE-WAIT"


def test_simultaneous_open():
    t = Talk()
    t.c("S")
    t.s("S")           # crosses the client's SYN
    t.c("SA")
    t.s("SA")
    t.c("PA", 3)
    t.s("A")
    c, s = paths(t)
    assert len(t.records()) == 1
    assert c == ["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"]
    assert s == ["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"]
    assert t.record()["violations"] == []


def test_simultaneous_close_goes_through_closing():
    t = Talk().handshake()
    fin_c = t.c("FA")
    t.s("FA", ack=fin_c.seq)       # the FINs cross: neither acknowledges the other's FIN
    t.c("A")
    t.s("A")
    c, s = paths(t)
    assert c == EST_C + ["FIN-WAIT-1", "CLOSING", "TIME-WAIT"]
    assert s == EST_S + ["FIN-WAIT-1", "CLOSING", "TIME-WAIT"]
    assert t.record()["close"] == "fin"


def test_rst_abort_by_client():
    t = Talk().handshake()
    t.c("PA", 6)
    t.s("PA", 6)
    t.c("RA")
    c, s = paths(t)
    assert c == EST_C + ["CLOSED"] and s == EST_S + ["CLOSED"]
    assert t.record()["close"] == "client-rst"


def test_connection_refused_server_never_listened():
    t = Talk()
    t.c("S")
    t.s("RA", seq=0)
    c, s = paths(t)
    assert c == ["CLOSED", "SYN-SENT", "CLOSED"]
    assert s == ["CLOSED"]
    rec = t.record()
    assert rec["close"] == "rejected" and rec["handshake"]["status"] == "partial"
    assert rec["violations"] == []


def test_syn_retransmissions_are_one_flow_and_server_unknown():
    t = Talk()
    for dt in (0.0, 1.0, 2.0):
        t.c("S", dt=dt)
    c, s = paths(t)
    assert len(t.records()) == 1
    assert c == ["CLOSED", "SYN-SENT"] and s == ["UNKNOWN"]
    rec = t.record()
    assert rec["handshake"]["syn_count"] == 3 and rec["close"] == "none"


def test_syn_retransmitted_then_answered_measures_from_first_syn():
    t = Talk()
    t.c("S", dt=0)
    t.c("S", dt=1.0)
    t.s("SA", dt=0.002)
    t.c("A")
    rec = t.finish()[0]
    assert rec["handshake"]["complete"] and rec["handshake"]["syn_to_synack_ms"] == pytest.approx(1002.0)
    assert rec["server_states"] == EST_S


def test_rst_in_syn_received_returns_server_to_listen():
    t = Talk()
    t.c("S")
    t.s("SA")
    t.c("R", seq=1001)
    c, s = paths(t)
    assert s == ["LISTEN", "SYN-RECEIVED", "LISTEN"]
    assert c == EST_C + ["CLOSED"]
    assert t.record()["close"] == "client-rst"


def test_out_of_window_rst_is_not_a_close():
    t = Talk().handshake()
    t.c("PA", 100)
    t.s("A", window=1000)
    bad = t.c("R", seq=1001 + 100 + 50_000)   # far beyond the server's 1000-byte window
    flow = t.record()
    assert flow["client_states"][-1] == "ESTABLISHED" and flow["server_states"][-1] == "ESTABLISHED"
    assert flow["violation_count"] == 1 and "RST outside the receive window" in flow["violations"][0]["reason"]
    assert t.rows()[-1]["notes"] and bad.events == []
    t.c("R", seq=1101 + 10)             # in window: RFC 9293 §3.10.7.4 resets
    flow = t.record()
    assert flow["server_states"][-1] == "CLOSED" and flow["close"] == "client-rst"


def test_rst_without_ack_in_syn_sent_is_ignored():
    t = Talk()
    t.c("S")
    t.s("S")                # simultaneous open begins
    t.s("R", seq=5001)      # RST without ACK while the client is in SYN-RECEIVED/SYN-SENT area
    assert t.record()["client_states"][-1] in ("CLOSED", "SYN-RECEIVED")


def test_mid_stream_start_is_unknown_and_inferred():
    t = Talk(client=("10.0.0.1", 51000), server=("10.0.0.2", 443))
    t.s("PA", 100)          # the first segment seen comes from the server
    t.c("A")
    t.c("FA")
    t.s("FA")
    t.c("A")
    c, s = paths(t)
    rec = t.record()
    assert rec["direction"] == "inferred" and rec["server"] == "10.0.0.2:443"
    assert c == ["UNKNOWN", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert s == ["UNKNOWN", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    assert rec["handshake"]["status"] == "none"


def test_capture_starting_at_syn_ack():
    t = Talk(client=("10.0.0.1", 1024), server=("10.0.0.2", 50000))
    t.s("SA")
    t.c("A")
    rec = t.finish()[0]
    assert rec["direction"] == "inferred" and rec["server"] == "10.0.0.2:50000"
    assert rec["client_states"] == ["UNKNOWN", "ESTABLISHED"]
    assert rec["server_states"] == ["UNKNOWN", "SYN-RECEIVED", "ESTABLISHED"]


def test_port_reuse_after_time_wait_starts_new_flow():
    t = Talk()
    for i in range(3):
        t.handshake()
        t.c("FA")
        t.s("FA")
        t.c("A")
        t.new_client_isn(10_000 * (i + 2))
        t.new_server_isn(90_000 * (i + 2))
    flows = t.finish()
    assert len(flows) == 3
    first = flows[0]
    assert first["client_states"][-2:] == ["TIME-WAIT", "CLOSED"]
    assert first["transitions"][-1]["cause"] == "new SYN on the 4-tuple"
    assert flows[2]["client_states"][-1] == "TIME-WAIT"
    assert [f["flow"] for f in flows] == [1, 2, 3]


def test_new_syn_with_new_isn_on_open_flow_starts_new_flow():
    t = Talk().handshake()
    t.new_client_isn(777_777)
    t.c("S")
    assert len(t.records()) == 2
    assert t.record(1)["client_states"] == ["CLOSED", "SYN-SENT"]


def test_time_wait_ends_after_2msl_when_the_capture_lasts_that_long():
    t = Talk(msl=1.0).handshake()
    t.c("FA")
    t.s("FA")
    t.c("A")
    other = Talk(client=("10.0.0.9", 1), wire=t.wire, t0=t.ts + 5.0)
    other.c("S")              # any later segment: the capture went on 5 s > 2*MSL
    rec = t.finish()[0]
    assert rec["client_states"][-2:] == ["TIME-WAIT", "CLOSED"]
    timer = rec["transitions"][-1]
    assert timer["cause"] == "2MSL timeout" and timer["frame"] is None
    assert timer["ts"] == pytest.approx(t.segments[-2].ts + 2.0)   # from the FIN that entered TIME-WAIT


def test_time_wait_stays_when_capture_ends_early():
    t = Talk(msl=30.0).handshake()
    t.c("FA")
    t.s("FA")
    t.c("A")
    assert t.finish()[0]["client_states"][-1] == "TIME-WAIT"


def test_segment_fitting_no_transition_is_a_violation_not_an_exception():
    t = Talk()
    t.c("S")
    t.s("SA")
    t.s("FA")               # fine: server closes in SYN-RECEIVED? no: it is ESTABLISHED? see below
    t.c("A")
    t.c("S", seq=1000)      # retransmitted SYN (same ISN) after the handshake: same flow
    assert len(t.records()) == 1
    t2 = Talk()
    t2.c("S")
    t2.c("PA", 5)           # data before any SYN-ACK: the server cannot have accepted it
    t2.s("SA", ack=999)     # a SYN-ACK acknowledging nothing we sent
    flow = t2.record()
    reasons = " | ".join(v["reason"] for v in flow["violations"])
    assert "does not acknowledge our SYN" in reasons
    assert flow["violation_count"] >= 1


def test_ipv6_addresses_in_brackets():
    t = Talk(client=("::1", 40000), server=("::1", 8000)).handshake()
    rec = t.record()
    assert rec["client"] == "[::1]:40000" and rec["server"] == "[::1]:8000"


def test_relative_sequence_bases():
    t = Talk(cisn=4_294_967_000).handshake()   # wraps around 2**32 during the flow
    data = t.c("PA", 1000)
    t.s("A")
    fin = t.c("FA")
    rows = t.rows()
    # The client's base is its ISN: the SYN is relative 0, the data relative 1 ...
    assert (rows[0]["seq"], rows[0]["rel_seq"]) == (4_294_967_000, 0)
    assert (rows[3]["seq"], rows[3]["rel_seq"]) == ((4_294_967_000 + 1) % MOD, 1) == (data.seq, 1)
    # ... and its next sequence number after the data, past the wrap, is ISN + 1 + 1000: what the
    # server acknowledges and where the FIN starts, both taken without a violation or an anomaly.
    assert (rows[4]["ack"], rows[4]["rel_ack"]) == ((4_294_967_000 + 1 + 1000) % MOD, 1001)
    assert (rows[5]["seq"], rows[5]["rel_seq"], rows[5]["client_state"]) == (fin.seq, 1001, "FIN-WAIT-1")
    assert fin.seq == (4_294_967_000 + 1 + 1000) % MOD
    assert t.record()["violations"] == [] and not any(t.record()["anomalies"].values())


def test_one_sided_capture_infers_the_missing_syn_ack():
    t = Talk()
    t.c("S")
    t.c("A", ack=5001)      # the client acknowledges a SYN-ACK that is not in the capture
    t.c("PA", 10)
    t.c("FA")
    c, s = paths(t)
    assert c == EST_C + ["FIN-WAIT-1"]
    assert s == EST_S + ["CLOSE-WAIT"]
    assert t.record()["violations"] == []


def test_rst_with_the_fin_sequence_number_after_close_is_accepted():
    t = Talk().handshake()
    fin = t.s("FA")
    t.c("A")
    t.s("R", seq=fin.seq)   # the seq of the FIN, i.e. the client's RCV.NXT - 1 (Linux tcp_reset_check)
    flow = t.record()
    assert flow["client_states"][-1] == "CLOSED" and flow["close"] == "server-rst"


def test_segment_sent_after_rst_names_the_crossing():
    t = Talk().handshake()
    t.c("RA")
    t.s("FA")               # the server's FIN crossed the client's RST
    assert "crossed on the wire" in t.record()["violations"][0]["reason"]


# ---------------------------------------------------------------- any segment sequence: never raises
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_segment = st.tuples(st.booleans(), st.integers(0, 511), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                     st.sampled_from([0, 1, 5, 1460]), st.sampled_from([0, 1, 65535]),
                     st.sampled_from([None, 0, 7, 14, 255]), st.sampled_from([0.0, 0.001, 1.0, 120.0]))


@settings(max_examples=300, deadline=None)
@given(st.lists(_segment, min_size=1, max_size=30), st.sampled_from([0.001, 30.0]))
def test_any_segment_sequence_is_recorded_never_raised(specs, msl):
    wire = Wire(msl=msl)
    a, b, ts = ("10.0.0.1", 1000), ("10.0.0.2", 80), 0.0
    for fwd, flags, seq, ack, length, win, ws, dt in specs:
        (src, dst), ts = ((a, b) if fwd else (b, a)), ts + dt
        wire.feed(ip_tcp(src, dst, seq, ack, flags, win, bytes(length), TcpOptions(wscale=ws)), ts)
    assert wire.engine.segments == len(specs) and not wire.engine.skipped   # every frame a segment
    flows = wire.finish()
    assert sum(f["packets"] for f in flows) == len(specs)
    for rec in flows:
        for role in ("client", "server"):
            # the path is exactly the initial state followed by this endpoint's transitions, chained
            moves = [t for t in rec["transitions"] if t["endpoint"] == role]
            assert rec[f"{role}_states"][1:] == [t["to"] for t in moves]
            assert all(m["from"] == p for m, p in zip(moves, rec[f"{role}_states"]))


def test_on_transition_reports_each_transition_as_it_happens():
    """The live engine's events: each transition with the frame it became final at (the server's
    SYN-RECEIVED is known only from its SYN-ACK, and dated by the SYN)."""
    t = Talk()
    t.handshake()
    seen = [(e["flow"], e["endpoint"], e["to"]) for e in t.events]
    assert seen == [(1, "client", "SYN-SENT"), (1, "server", "SYN-RECEIVED"), (1, "client", "ESTABLISHED"),
                    (1, "server", "ESTABLISHED")]
    assert [[(e["endpoint"], e["to"]) for e in sent.events] for sent in t.segments] == [
        [("client", "SYN-SENT")], [("server", "SYN-RECEIVED"), ("client", "ESTABLISHED")],
        [("server", "ESTABLISHED")]]
    assert [e["frame"] for e in t.events] == [1, 1, 2, 3]
    rec = t.finish()[0]
    # each event is the record's transition, with its flow's number and ends
    assert [{k: e[k] for k in ("flow", "client", "server", *x)} for e, x in zip(t.events, rec["transitions"])] == \
        [{"flow": 1, "client": rec["client"], "server": rec["server"], **x} for x in rec["transitions"]]
    assert len(t.events) == len(rec["transitions"])
