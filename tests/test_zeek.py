"""Zeek's conn_state/history (src/zeek.rs) and tshark's completeness (src/completeness.rs), on hand-built
segment sequences fed to the engine as frames: one test per conn_state value, per history rule and per
completeness rule, read from the flow records.

Expected values follow Zeek's source (zeek/zeek a13de64f: scripts/base/protocols/conn/main.zeek
conn_state(), TCPSessionAdapter.cc, TCP_Endpoint.cc, Session.cc) and Wireshark's packet-tcp.c; the
real-trace comparison is tests/test_conformance_verdicts.py. A few rules only show on sequences the flow
table splits into two flows (a second SYN with a new ISN, a SYN after its SYN-ACK): there the observer
itself is tested in Rust (src/zeek.rs tests, named below), and here what the engine makes of them.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import handshake_probe
from tests.talk import Talk, zeek_row_tuple

CONN_STATES = {"S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH"}

# tshark's completeness bits (packet-tcp.c TCP_COMPLETENESS_*)
SYNSENT, SYNACK, ACK, DATA, FIN, RST = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

# Zeek's likely_server_ports (base/protocols/conn, the ports of its analyzers): the few the tests use.
LIKELY = {80, 443, 1433}.__contains__


def talk(**kw: Any) -> Talk:
    """A conversation in the engine (every observer is on: Zeek, completeness, anomalies)."""
    return Talk(**kw)


def verdict(t: Talk, n: int = 0) -> Dict[str, Any]:
    """Flow n+1's record as the capture so far ends (Zeek's and tshark's fields among the rest)."""
    return t.record(n)


class Wire:
    """One 4-tuple fed segment by segment with explicit sequence numbers (client 10.0.0.1:40000, server
    10.0.0.2:5000 unless given), and the Zeek verdict of its flow(s)."""

    def __init__(self, client: Tuple[str, int] = ("10.0.0.1", 40000),
                 server: Tuple[str, int] = ("10.0.0.2", 5000), **options: Any) -> None:
        self.talk = Talk(client=client, server=server, **options)

    def send(self, side: str, flags: str, seq: int, ack: int = 0, length: int = 0, window: int = 65535,
             checksum_ok: Optional[bool] = True) -> None:
        send = self.talk.c if side == "c" else self.talk.s
        send(flags, length, seq=seq, ack=ack, window=window, dt=1.0, checksum_ok=checksum_ok)

    def flows(self) -> List[Dict[str, Any]]:
        return self.talk.records()

    @property
    def flow(self) -> Dict[str, Any]:
        flows = self.flows()
        assert len(flows) == 1, [f["history"] for f in flows]
        return flows[0]


# ------------------------------------------------------------------ conn_state: Zeek's 13 values
def _s0(t: Talk) -> None:
    t.c("S")


def _s1(t: Talk) -> None:
    t.handshake()
    t.c("PA", 10)
    t.s("A")


def _sf(t: Talk) -> None:
    t.handshake()
    t.c("FA")
    t.s("FA")
    t.c("A")


def _rej(t: Talk) -> None:
    t.c("S")
    t.s("RA")


def _s2(t: Talk) -> None:
    t.handshake()
    t.c("FA")


def _s3(t: Talk) -> None:
    t.handshake()
    t.s("FA")


def _rsto(t: Talk) -> None:
    t.handshake()
    t.c("RA")


def _rstr(t: Talk) -> None:
    t.handshake()
    t.s("RA")


def _rstos0(t: Talk) -> None:
    t.c("S")
    t.c("R")


def _rstrh(t: Talk) -> None:
    t.s("SA")        # from port 80, a likely server port: Zeek flips at once ("^")
    t.s("R")


def _sh(t: Talk) -> None:
    t.c("S")
    t.c("FA")


def _shr(t: Talk) -> None:
    t.s("SA")
    t.s("FA")


def _oth(t: Talk) -> None:
    t.c("PA", 10)    # mid-stream: no SYN seen
    t.s("A")


@pytest.mark.parametrize("script, conn_state, history", [
    (_s0, "S0", "S"),
    (_s1, "S1", "ShADa"),
    (_sf, "SF", "ShAFf"),
    (_rej, "REJ", "Sr"),
    (_s2, "S2", "ShAF"),
    (_s3, "S3", "ShAf"),
    (_rsto, "RSTO", "ShAR"),
    (_rstr, "RSTR", "ShAr"),
    (_rstos0, "RSTOS0", "SR"),
    (_rstrh, "RSTRH", "^hr"),
    (_sh, "SH", "SF"),
    (_shr, "SHR", "^hf"),
    (_oth, "OTH", "Da"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_each_conn_state(script, conn_state: str, history: str):
    t = talk()
    script(t)
    v = verdict(t)
    assert (v["conn_state"], v["history"]) == (conn_state, history)


def test_the_thirteen_values_are_all_covered():
    assert {"S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR",
            "OTH"} == CONN_STATES


def test_rstos0_needs_a_history_of_syn_then_rst():
    # main.zeek 209: /\^?S[^HAFGIQ]*R.*/ -- an originator FIN between them makes it OTH (Zeek's own
    # conn_state-RST-behavior baseline: "SaFR, OTH"), a responder ACK does not ("SaR, RSTOS0").
    t = talk()
    t.c("S")
    t.s("A")
    t.c("R")
    assert (verdict(t)["history"], verdict(t)["conn_state"]) == ("SaR", "RSTOS0")
    t = talk()
    t.c("S")
    t.s("A")
    t.c("F")
    t.c("R")
    assert (verdict(t)["history"], verdict(t)["conn_state"]) == ("SaFR", "OTH")


def test_fin_then_rst_then_peer_fin_is_still_sf():
    # UpdateEstablishedState: the peer's FIN turns an RST that followed our FIN back into CLOSED
    t = talk()
    t.handshake()
    t.c("FA")
    t.c("R")
    t.s("FA")
    v = verdict(t)
    assert (v["conn_state"], v["history"]) == ("SF", "ShAFRf")


# ------------------------------------------------------------------ history: letters and their rules
def test_upper_case_is_the_originator_lower_case_the_responder():
    t = talk()
    t.handshake()
    t.s("PA", 5)
    t.c("PA", 7)
    assert verdict(t)["history"] == "ShAdD"
    assert verdict(t)["zeek_orig"] == "client"


def test_a_d_once_per_direction():
    t = talk()
    t.handshake()
    for _ in range(5):
        t.c("PA", 10)
        t.s("A")
    assert verdict(t)["history"] == "ShADa"


def test_i_once_per_direction_for_fin_rst():
    t = talk()
    t.handshake()
    t.c("FR")
    t.c("FR", seq=t.nxt["c"] + 50)
    assert verdict(t)["history"] == "ShAI"


def test_q_once_per_direction_for_syn_fin_or_syn_rst():
    t = talk()
    t.c("SF")
    t.c("SR")
    assert verdict(t)["history"] == "Q"


def test_f_again_only_when_its_sequence_number_changes():
    t = talk()
    t.handshake()
    t.c("FA", seq=t.nxt["c"])
    t.c("FA", seq=t.nxt["c"] - 1)           # retransmitted FIN: same sequence number, no letter
    t.c("FA", seq=t.nxt["c"] + 100)         # a FIN elsewhere in the sequence space: a second F
    assert verdict(t)["history"] == "ShAFF"


def test_r_again_only_when_its_sequence_number_changes():
    t = talk()
    t.handshake()
    seq = t.nxt["c"]
    t.c("R", seq=seq)
    t.c("R", seq=seq)
    t.c("R", seq=seq + 500)
    assert verdict(t)["history"] == "ShARR"


def test_s_and_h_again_only_when_their_sequence_numbers_change():
    # A retransmission (same relative sequence number) adds nothing. A SYN with a new ISN re-bases
    # an INACTIVE/SYN_SENT/ESTABLISHED endpoint (init_endpoint), so it is relative 0 again: nothing
    # either. Only a RESET or CLOSED endpoint is not re-based, and there the new SYN shows: one
    # observer fed all six SYN-side segments says "SRS" (src/zeek.rs
    # s_and_h_again_only_when_their_sequence_numbers_change). The engine starts a new flow at each new
    # ISN (RFC 9293 §3.8.1: a new incarnation), so each flow's history shows its own part.
    w = Wire()
    w.send("c", "S", 1000)
    w.send("c", "S", 1000)                  # retransmitted SYN: no second S
    w.send("c", "S", 3000)                  # a new ISN on a SYN-SENT flow: a new flow
    w.send("c", "R", 3001)
    w.send("c", "S", 7000)                  # after the RST: a new flow again
    w.send("c", "S", 7000)
    assert [(f["history"], f["conn_state"]) for f in w.flows()] == [("S", "S0"), ("SR", "RSTOS0"), ("S", "S0")]
    w = Wire()
    w.send("s", "SA", 5000, 1001)           # from port 5000: not a likely server port, no flip
    w.send("s", "SA", 5000, 1001)
    w.send("s", "R", 5001)
    w.send("s", "SA", 9000, 1001)
    assert w.flow["history"] == "HRH"


def _retransmit(t: Talk, times: int) -> None:
    seq = t.nxt["c"]
    t.c("PA", 10, seq=seq)
    for _ in range(times):
        t.c("PA", 10, seq=seq)


@pytest.mark.parametrize("times, history", [(1, "ShADT"), (9, "ShADT"), (10, "ShADTT"),
                                            (99, "ShADTT"), (100, "ShADTTT")])
def test_t_on_a_log_scale(times: int, history: str):
    t = talk()
    t.handshake()
    _retransmit(t, times)
    assert verdict(t)["history"] == history


@pytest.mark.parametrize("times, history", [(1, "ShAaw"), (9, "ShAaw"), (10, "ShAaww"), (100, "ShAawww")])
def test_w_on_a_log_scale(times: int, history: str):
    t = talk()
    t.handshake()
    for _ in range(times):
        t.s("A", window=0)
    assert verdict(t)["history"] == history


@pytest.mark.parametrize("gaps, history", [(1, "ShADaG"), (9, "ShADaG"), (10, "ShADaGG"), (100, "ShADaGGG")])
def test_g_on_a_log_scale(gaps: int, history: str):
    # Content gaps: the responder acknowledges bytes the capture never showed (TCP_Reassembler
    # Undelivered); the letter goes to the sender of the missing data.
    t = talk()
    t.handshake()
    for _ in range(gaps):
        t.c("PA", 10)
        t.nxt["c"] += 100                   # 100 bytes the capture missed
        t.s("A")
    assert verdict(t)["history"] == history


def test_no_gap_when_the_missing_bytes_arrive_before_the_ack():
    t = talk()
    t.handshake()
    first = t.nxt["c"]
    t.c("PA", 10, seq=first + 10)           # out of order: a hole at [first, first+10)
    t.c("PA", 10, seq=first)                # the hole is filled; Zeek counts it a retransmission
    t.s("A", ack=first + 20)                # (update_last_seq: not beyond the last sequence number)
    assert verdict(t)["history"] == "ShADTa"


@pytest.mark.parametrize("bad, history", [(1, "C"), (9, "C"), (10, "CC"), (100, "CCC")])
def test_c_on_a_log_scale_and_bad_checksum_packets_are_ignored(bad: int, history: str):
    # Checksums are verified only when asked (check_checksums); each bad SYN (the same ISN: one flow)
    # counts towards C, and is otherwise ignored: no S.
    w = Wire(check_checksums=True)
    for _ in range(bad):
        w.send("c", "S", 1000, checksum_ok=False)
    assert w.flow["history"] == history
    assert w.flow["conn_state"] == "OTH"     # nothing was processed: both INACTIVE


@pytest.mark.parametrize("check", [False, True], ids=["unchecked", "checked-good"])
def test_checksum_ok_none_or_true_is_zeek_with_checksums_ignored(check: bool):
    # Unchecked (checksum_ok None) and checked good (True) are the same to Zeek.
    w = Wire(check_checksums=check)
    w.send("c", "S", 1000)
    w.send("s", "SA", 5000, 1001)
    assert (w.flow["history"], w.flow["conn_state"]) == ("Sh", "S1")   # a SYN-ACK establishes both


# ------------------------------------------------------------------ who is the originator, and '^'
def test_syn_ack_first_from_a_likely_server_port_flips_at_once():
    assert LIKELY(80)
    t = talk()
    t.s("SA")
    t.c("A")
    t.c("PA", 5)
    t.s("PA", 9)
    v = verdict(t)
    assert (v["history"], v["conn_state"], v["zeek_orig"]) == ("^hADd", "S1", "client")


def test_syn_ack_first_elsewhere_flips_on_the_first_ack_or_data():
    # TE CheckHistory: history "H" then productive traffic: flip and rewrite it as "^h"
    t = talk(client=("10.0.0.1", 2745), server=("10.0.0.2", 1433))
    t.s("SA")
    assert verdict(t)["history"] == "H" and verdict(t)["zeek_orig"] == "server"
    t.s("A")
    t.s("FA")
    v = verdict(t)
    assert (v["history"], v["conn_state"], v["zeek_orig"]) == ("^haf", "SHR", "client")


def test_lone_syn_ack_elsewhere_is_not_flipped():
    t = talk(client=("10.0.0.1", 40000), server=("10.0.0.2", 5000))
    t.s("SA")
    v = verdict(t)
    assert (v["history"], v["conn_state"], v["zeek_orig"]) == ("H", "OTH", "server")


def test_syn_after_its_syn_ack_flips():
    # UpdateInactiveState: a SYN from the responder while the originator is SYN_ACK_SENT is a
    # SYN/SYN-ACK reversal (two interfaces, interrupt coalescence): flip and establish, "Hs^A", S1, the
    # client the originator, says one observer fed all three (src/zeek.rs syn_after_its_syn_ack_flips).
    # The engine's flow table takes a client SYN after the server's SYN-ACK for a new connection
    # attempt (the SYN-ACK acknowledged no SYN it saw): two flows, each with its own verdict.
    w = Wire()
    w.send("s", "SA", 5000, 1001)
    w.send("c", "S", 1000)
    w.send("c", "A", 1001, 5001)
    assert [(f["history"], f["conn_state"], f["zeek_orig"]) for f in w.flows()] == [
        ("H", "OTH", "server"), ("SA", "S0", "client")]


@pytest.mark.parametrize("sport, dport, flags, orig_is_sender", [
    (80, 40000, "A", False),       # from a likely server port to an unlikely one: flip
    (40000, 80, "A", True),        # towards the likely server port: keep
    (80, 443, "A", False),         # both likely: flip a non-SYN towards the higher port
    (443, 80, "A", True),          # both likely, towards the lower port: keep
    (80, 443, "SA", True),         # both likely but a SYN-ACK (stealth scans): keep
    (5000, 40000, "A", True),      # neither likely: the first sender is the originator
])
def test_likely_server_port_heuristic(sport: int, dport: int, flags: str, orig_is_sender: bool):
    w = Wire(client=("10.0.0.1", sport), server=("10.0.0.2", dport))
    w.send("c", flags, 1000, 5000, length=0 if "S" in flags else 5)
    orig_h, orig_p, _resp_h, _resp_p = zeek_row_tuple(w.flow)
    assert ((orig_h, orig_p) == ("10.0.0.1", sport)) is orig_is_sender
    assert w.flow["history"].startswith("^") is (not orig_is_sender)


def test_zeek_row_tuple_follows_the_originator():
    t = talk()
    t.s("SA")
    t.c("A")
    flow = t.finish()[0]
    assert flow["zeek_orig"] == "client" and flow["history"].startswith("^")   # Zeek flipped ...
    assert zeek_row_tuple(flow) == ("10.0.0.1", 40000, "10.0.0.2", 80)       # ... to the client


# ------------------------------------------------------------------ completeness (tshark)
@pytest.mark.parametrize("script, value, text", [
    (lambda t: t.c("S"), SYNSENT, "SYN"),
    (lambda t: t.s("SA"), 0, "-"),                          # a lone first packet counts only if a SYN
    (lambda t: t.c("R"), 0, "-"),
    (lambda t: (t.s("SA"), t.c("A")), SYNACK | ACK, "SYN-ACK|ACK"),      # second pass counts the SYN-ACK
    (lambda t: (t.c("S"), t.c("F")), SYNSENT, "SYN"),                    # FIN without ACK does not count
    (lambda t: (t.c("S"), t.s("RA")), SYNSENT | ACK | RST, "SYN|ACK|RST"),
    (lambda t: (t.c("S"), t.c("R")), SYNSENT | RST, "SYN|RST"),
    (lambda t: t.c("S", 20), SYNSENT | DATA, "SYN|DATA"),                # TCP Fast Open
    (lambda t: (t.c("PA", 5), t.s("A")), ACK | DATA, "ACK|DATA"),        # first packet counted on pass 2
    (lambda t: (t.handshake(), t.c("PA", 5), t.c("FA"), t.s("FA"), t.c("A")), 31,
     "SYN|SYN-ACK|ACK|DATA|FIN"),
    (lambda t: (t.handshake(), t.c("FPA", 5), t.s("RA")), 63, "SYN|SYN-ACK|ACK|DATA|FIN|RST"),
])
def test_completeness(script, value: int, text: str):
    t = talk()
    script(t)
    v = verdict(t)
    assert (v["completeness"], v["completeness_flags"]) == (value, text)


@pytest.mark.parametrize("script, value, text", [
    (lambda t: t.c("R"), 0, "-"),
    (lambda t: (t.handshake(), t.c("FPA", 5), t.s("RA")), SYNSENT | SYNACK | ACK | DATA | FIN | RST,
     "SYN|SYN-ACK|ACK|DATA|FIN|RST"),
    (lambda t: (t.s("SA"), t.c("A"), t.c("FA")), SYNACK | ACK | FIN, "SYN-ACK|ACK|FIN"),
])
def test_completeness_flags_spelling(script, value: int, text: str):
    t = talk()
    script(t)
    v = verdict(t)
    assert (v["completeness"], v["completeness_flags"]) == (value, text)


def test_observers_are_quiet_on_the_hot_path():
    # No observer attaches a note to a clean handshake's segments (notes are for anomalies).
    t = talk()
    t.handshake()
    assert [row["notes"] for row in t.rows()] == [[], [], []]


# ------------------------------------------------------------------ any sequence: no crash, valid output
_LETTERS = re.compile(r"[shadfrcgtwiqSHADFRCGTWIQ^]*")
_FLAGS = ["S", "SA", "A", "PA", "FA", "F", "R", "RA", "FR", "SF"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(_FLAGS), st.integers(0, 3), st.integers(-3, 3),
                          st.sampled_from([0, 65535])),
                max_size=25))
def test_any_sequence_gives_a_zeek_value_and_a_tshark_bitmask(steps: List[Tuple[bool, str, int, int, int]]):
    w = Wire()
    seqs = {"c": 1000, "s": 5000}
    for from_client, flags, length, jump, window in steps:
        side = "c" if from_client else "s"
        other = "s" if from_client else "c"
        seqs[side] = (seqs[side] + jump) % (1 << 32)
        w.send(side, flags, seqs[side], seqs[other], length if "P" in flags else 0, window)
    flows = w.flows()
    assert sum(f["packets"] for f in flows) == len(steps)
    for flow in flows:                      # however the flow table split the sequence
        assert flow["conn_state"] in CONN_STATES and flow["conn_state"] in handshake_probe.CONN_STATES
        assert _LETTERS.fullmatch(flow["history"])
        assert 0 <= flow["completeness"] <= 63
