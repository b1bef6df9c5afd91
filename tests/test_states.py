"""The RFC 9293 transition table (the engine's vocabulary): every row is driven through the flow model by
a real conversation, fed to the engine as frames."""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

import pytest

import handshake_probe
from handshake_probe import CUES, STATES, TRANSITIONS
from tests.talk import Talk

FLAGS = handshake_probe.FLAGS

# The arrows of RFC 9293 §3.3.2 figure 5, restated from the RFC (not from our table).
RFC_FIGURE_5 = [
    ("CLOSED", "snd SYN", "SYN-SENT"),
    ("LISTEN", "rcv SYN", "SYN-RECEIVED"),
    ("LISTEN", "snd SYN", "SYN-SENT"),
    ("SYN-SENT", "rcv SYN", "SYN-RECEIVED"),
    ("SYN-SENT", "rcv SYN-ACK", "ESTABLISHED"),
    ("SYN-RECEIVED", "rcv ACK of SYN", "ESTABLISHED"),
    ("SYN-RECEIVED", "rcv RST", "LISTEN"),
    ("SYN-RECEIVED", "snd FIN", "FIN-WAIT-1"),
    ("ESTABLISHED", "snd FIN", "FIN-WAIT-1"),
    ("ESTABLISHED", "rcv FIN", "CLOSE-WAIT"),
    ("FIN-WAIT-1", "rcv ACK of FIN", "FIN-WAIT-2"),
    ("FIN-WAIT-1", "rcv FIN", "CLOSING"),
    ("FIN-WAIT-2", "rcv FIN", "TIME-WAIT"),
    ("CLOSING", "rcv ACK of FIN", "TIME-WAIT"),
    ("CLOSE-WAIT", "snd FIN", "LAST-ACK"),
    ("LAST-ACK", "rcv ACK of FIN", "CLOSED"),
    ("TIME-WAIT", "2MSL timeout", "CLOSED"),
]


@pytest.mark.parametrize("src,cue,dst", RFC_FIGURE_5)
def test_rfc_figure_5_arrow_is_in_the_table(src: str, cue: str, dst: str) -> None:
    assert src in STATES and cue in CUES and dst in STATES
    assert TRANSITIONS[(src, cue)] == dst


def test_every_rfc_state_is_reachable_from_closed_listen_or_unknown() -> None:
    seen = {"CLOSED", "LISTEN", "UNKNOWN"}
    grew = True
    while grew:
        grew = False
        for (src, _cue), dst in TRANSITIONS.items():
            if src in seen and dst not in seen:
                seen.add(dst)
                grew = True
    assert seen == set(STATES) and len(STATES) == 12


# ------------------------------------------------------------------ conversations that drive every row
def _fin_retransmissions() -> List[Talk]:
    t = Talk().handshake()
    fin = t.c("FA")
    t.c("FA", seq=fin.seq)                 # FIN-WAIT-1 retransmits its FIN
    t.s("A")
    t.c("FA", seq=fin.seq)                 # ... and again in FIN-WAIT-2; the server is in CLOSE-WAIT
    t.s("PA", 5)                           # data in CLOSE-WAIT / FIN-WAIT-2
    t.c("A")
    sfin = t.s("FA")
    t.s("FA", seq=sfin.seq)                # LAST-ACK retransmits
    t.c("FA", seq=fin.seq, ack=sfin.seq)   # a late FIN duplicate: LAST-ACK receives a FIN
    t.c("A")
    t.c("FA", seq=fin.seq)                 # TIME-WAIT retransmits its FIN (late duplicate)
    t.s("FA", seq=sfin.seq)                # the closed server's stray FIN: TIME-WAIT receives a FIN
    t.c("A")                               # CLOSED receives an ACK; TIME-WAIT sends one
    t.s("A")                               # CLOSED sends an ACK, TIME-WAIT receives it
    return [t]


def _simultaneous_close_with_retransmissions() -> List[Talk]:
    t = Talk().handshake()
    cf = t.c("FA")
    sf = t.s("FA", ack=cf.seq)
    t.c("FA", seq=cf.seq, ack=sf.seq)      # CLOSING retransmits its FIN, CLOSING receives a FIN
    t.c("A", ack=sf.seq)                   # an ACK in CLOSING that acks nothing new
    t.c("A")
    t.s("A")
    return [t]


def _fin_wait_1_data() -> List[Talk]:
    t = Talk().handshake()
    fin = t.c("FA")
    t.s("PA", 10, ack=fin.seq)             # data that does not yet ack the FIN
    t.c("A", seq=fin.seq + 1)              # FIN-WAIT-1 acknowledges it
    t.s("A")
    t.s("FA")
    t.c("A")
    t.c("R", seq=fin.seq + 1)              # TIME-WAIT aborts (e.g. RFC 1337 assassination)
    return [t]


def _last_ack_data() -> List[Talk]:
    t = Talk().handshake()
    t.c("FA")
    t.s("A")
    t.s("FA")
    t.c("PA", 0, seq=t.nxt["c"], ack=t.nxt["s"] - 1)   # an ACK in LAST-ACK that does not ack the FIN
    t.s("A")                                            # LAST-ACK sends an ACK
    t.c("A")
    return [t]


def _opening_variants() -> List[Talk]:
    t = Talk()
    t.c("S")
    t.c("S", dt=1.0)                       # SYN-SENT retransmits
    t.s("SA")
    t.c("S")                               # a retransmitted SYN crossing the SYN-ACK: ESTABLISHED sends SYN
    t.s("SA")                              # retransmitted SYN-ACK: ESTABLISHED both ways
    t.c("A")
    t2 = Talk()
    t2.c("S")
    t2.s("SA")
    t2.c("S")                              # SYN-RECEIVED receives a retransmitted SYN
    t2.s("FA")                             # CLOSE in SYN-RECEIVED
    t3 = Talk()
    t3.c("S")
    t3.s("SA")
    t3.c("F")                              # a FIN without ACK in SYN-RECEIVED (RFC 9293 §3.10.7.4 eighth)
    return [t, t2, t3]


def _one_sided() -> List[Talk]:
    t = Talk()
    t.c("S")
    t.c("A", ack=5001)                     # SYN-SENT acknowledges a SYN-ACK the capture missed
    t.c("PA", 10)
    return [t]


def _aborts() -> List[Talk]:
    t = Talk()
    t.c("S")
    t.c("R", seq=1001)                     # SYN-SENT aborts (connect() given up)
    t2 = Talk()
    t2.c("S")
    t2.s("SA")
    t2.s("R", seq=5001)                    # SYN-RECEIVED aborts
    t3 = Talk().handshake()
    t3.c("FA")
    t3.c("RA")                             # FIN-WAIT-1 aborts
    return [t, t2, t3]


def _listen_after_rst() -> List[Talk]:
    t = Talk()
    t.c("S")
    t.s("SA")
    t.c("R", seq=1001)                     # RST in SYN-RECEIVED: back to LISTEN
    t.c("R", seq=1001)                     # LISTEN ignores an RST; CLOSED sends one
    t.c("A", seq=1001)                     # LISTEN answers an ACK ... (CLOSED sends an ACK)
    t.s("R", seq=5001)                     # ... with an RST; CLOSED receives it
    return [t]


def _refused() -> List[Talk]:
    t = Talk()
    t.c("S")
    t.s("RA", seq=0)
    t.c("A", seq=1001, ack=0)              # CLOSED sends a stray ACK to a closed port ...
    t.c("FA", seq=1001, ack=0)             # ... and a FIN: both "rcv" by a CLOSED server
    t2 = Talk()
    t2.c("S")
    t2.s("R", seq=0)                       # an RST without ACK: SYN-SENT cannot accept it (RFC 9293 §3.10.7.3)
    # so the client sends its SYN again, in the same flow, and the closed port receives a SYN again. (The
    # first SYN's receipt in CLOSED is applied only when the RST settles the silent server, in the SYN's
    # row, where the rows cannot show it: src/flow.rs `settle_server`. After an RST/ACK the client took,
    # the same SYN is a new attempt, a new flow: src/flows.rs `split` rule 2.)
    t2.c("S", seq=1000, dt=1.0)
    return [t, t2]


def _simultaneous_open() -> List[Talk]:
    t = Talk()
    t.c("S")
    t.s("S")
    t.c("A")                               # SYN-RECEIVED acknowledges the peer's SYN on its own
    t.c("SA")
    t.s("SA")
    t.c("A")
    t.s("A")
    return [t]


def _mid_stream() -> List[Talk]:
    t = Talk()
    t.s("PA", 10)
    t.c("A")
    t.c("FA")
    t.s("FA")
    t2 = Talk()
    t2.s("SA")
    t2.c("A")
    t3 = Talk()
    t3.c("PA", 3)
    t3.s("RA")                             # UNKNOWN sends and receives an RST
    return [t, t2, t3]


def _timers() -> List[Talk]:
    t = Talk(msl=0.5).handshake()
    t.c("FA")
    t.s("FA")
    t.c("A")
    t.c("A", dt=2.0)
    t.finish()                             # 2MSL expired
    t2 = Talk().handshake()
    t2.c("FA")
    t2.s("FA")
    t2.c("A")
    t2.new_client_isn(99_999)
    t2.c("S")                              # REUSED
    return [t, t2]


def _rst_everywhere() -> List[Talk]:
    return [make() for make in RST_TARGETS.values()]


def _reach(steps: Callable[[Talk], None]) -> Talk:
    t = Talk()
    steps(t)
    return t


def _rst_into(steps: Callable[[Talk], None], by_server: bool, ack: bool = True) -> Talk:
    t = _reach(steps)
    (t.s if by_server else t.c)("RA" if ack else "R")
    return t


# Put the *client* into each state, then the server sends an acceptable RST (and for SYN-RECEIVED the
# client sends one to the passive server).
RST_TARGETS: Dict[str, Callable[[], Talk]] = {
    "SYN-SENT": lambda: _rst_into(lambda t: (t.c("S"), t.s("RA", seq=0)) and None, by_server=False, ack=False),
    "ESTABLISHED": lambda: _rst_into(lambda t: t.handshake(), by_server=True),
    "FIN-WAIT-1": lambda: _rst_into(lambda t: (t.handshake(), t.c("FA")) and None, by_server=True),
    "FIN-WAIT-2": lambda: _rst_into(lambda t: (t.handshake(), t.c("FA"), t.s("A")) and None, by_server=True),
    "CLOSE-WAIT": lambda: _rst_into(lambda t: (t.handshake(), t.s("FA"), t.c("A")) and None, by_server=True),
    "CLOSING": lambda: _rst_into(
        lambda t: (t.handshake(), t.c("FA"), t.s("FA", ack=t.nxt["c"] - 1)) and None, by_server=True),
    "LAST-ACK": lambda: _rst_into(
        lambda t: (t.handshake(), t.s("FA"), t.c("A"), t.c("FA")) and None, by_server=True),
    "TIME-WAIT": lambda: _rst_into(
        lambda t: (t.handshake(), t.c("FA"), t.s("FA")) and None, by_server=True),
    "SYN-RECEIVED": lambda: _rst_into(lambda t: (t.c("S"), t.s("SA")) and None, by_server=False),
}


def test_rst_in_every_state_closes_the_receiver() -> None:
    for state, make in RST_TARGETS.items():
        t = make()
        flow = t.finish()[0]
        if state == "SYN-RECEIVED":
            assert flow["server_states"][-2:] == ["SYN-RECEIVED", "LISTEN"], state
            continue
        if state == "SYN-SENT":
            continue   # the refusal itself closed SYN-SENT; the extra RST without ACK goes to a CLOSED client
        path = flow["client_states"]
        assert path[-2:] == [state, "CLOSED"], (state, path)
        assert flow["close"] == "server-rst", state


SCENARIOS: List[Callable[[], List[Talk]]] = [
    lambda: [Talk().handshake()], _fin_retransmissions, _simultaneous_close_with_retransmissions,
    _fin_wait_1_data, _last_ack_data, _opening_variants, _listen_after_rst, _refused,
    _simultaneous_open, _mid_stream, _timers, _rst_everywhere, _aborts, _one_sided,
]

# Rows the flow model never reaches by design, each with the reason.
UNREACHABLE: Dict[Tuple[str, str], str] = {
    ("LISTEN", "snd SYN"): "a SYN from a LISTEN endpoint on an ended flow starts a new flow "
                           "(port reuse), where that endpoint starts from CLOSED",
}

# The one documented pre-step beside the table (src/states.rs `next_for`): an RST in SYN-RECEIVED
# returns a passive OPEN to LISTEN (the table's row) but closes an active one (simultaneous open).
PRE_STEP = {("SYN-RECEIVED", "rcv RST"): "CLOSED"}


# ------------------------------------------------------------------ which rows a conversation drove
# The engine says which rows moved an endpoint: every transition names its state, cue and next state.
# A self-loop row (retransmissions, data, ACKs, a stray segment to a closed port) moves nothing, so it is
# read from the kept rows: a segment after which an endpoint is in the state it was in before, with no
# transition and no violation for that endpoint, went through a row (a missing row is a violation)
# that leads back to that state. Which cue the segment was for that endpoint follows from its flags
# alone, as the engine derives it (src/flow.rs `sender_cue`, `receiver_cues`): for a segment that moved
# nothing, an ACK of our SYN or FIN is ruled out (those rows move), which leaves the cases below.
def sender_cue(flags: int) -> str:
    if flags & FLAGS["RST"]:
        return "snd RST"
    if flags & FLAGS["SYN"]:
        return "snd SYN-ACK" if flags & FLAGS["ACK"] else "snd SYN"
    if flags & FLAGS["FIN"]:
        return "snd FIN"
    return "snd ACK"


def receiver_cue(flags: int) -> Optional[str]:
    if flags & FLAGS["RST"]:
        return "rcv RST"
    if flags & FLAGS["SYN"]:
        return "rcv SYN-ACK" if flags & FLAGS["ACK"] else "rcv SYN"
    if flags & FLAGS["FIN"]:
        return "rcv FIN"
    if flags & FLAGS["ACK"]:
        return "rcv ACK"
    return None          # no ACK, no FIN: a violation (RFC 9293 §3.10.7.4 fifth check), never a row


def driven_rows(talks: Iterable[Talk]) -> Set[Tuple[str, str]]:
    """The (state, cue) rows the engine went through in these conversations (each capture ended)."""
    used: Set[Tuple[str, str]] = set()
    for t in talks:
        engine, records = t.wire.replay()
        for rec in records:
            assert rec["violation_count"] == len(rec["violations"])     # none left out of the list
            for tr in rec["transitions"]:
                key = (tr["from"], tr["cause"])
                # every move is the table's, or the one pre-step beside it
                assert tr["to"] in (TRANSITIONS.get(key), PRE_STEP.get(key)), tr
                used.add(key)
            used |= self_loops(rec, engine.rows(rec["flow"]))
    return used


def self_loops(rec: Dict, rows: List[Dict]) -> Set[Tuple[str, str]]:
    found: Set[Tuple[str, str]] = set()
    before = {"client": rec["client_states"][0], "server": rec["server_states"][0]}
    server_spoke = False
    # Endpoints whose kept rows were restated: a FIN received in ESTABLISHED is held as CLOSE-WAIT
    # until the receiver's next move, and when that move is its own FIN crossing the first one, the
    # receipt is re-applied after it (FIN-WAIT-1 -> CLOSING) and the rows since the first FIN show
    # the state before it (src/flow.rs `uncross_fins`). Those rows tell nothing about self-loops.
    restated: Dict[str, int] = {}
    for row in rows:
        violated = {v["endpoint"] for v in rec["violations"] if v["frame"] == row["frame"]}
        moved = {tr["endpoint"] for tr in row["transitions"]}
        unacceptable_rst = any(v["frame"] == row["frame"] and v["cue"] == "rcv RST" for v in rec["violations"])
        sender, receiver = ("client", "server") if row["from_client"] else ("server", "client")
        candidates = [(sender, sender_cue(row["flags"]))]
        # A server that has not answered yet has no known reaction: the engine defers its receipt of the
        # client's segments until its first segment settles it (src/flow.rs `pending_syn`).
        if receiver == "client" or server_spoke:
            candidates.append((receiver, receiver_cue(row["flags"])))
        for endpoint, cue in candidates:
            state = row[f"{endpoint}_state"]
            if (cue is None or unacceptable_rst or endpoint in violated or endpoint in moved
                    or endpoint in restated or before[endpoint] != state):
                continue
            if endpoint == receiver and cue == "rcv FIN" and TRANSITIONS.get((state, cue)) != state:
                restated[endpoint] = row["frame"]     # a FIN whose receipt was re-applied later
                continue
            assert TRANSITIONS.get((state, cue)) == state, (rec["flow"], row["frame"], endpoint, state, cue)
            found.add((state, cue))
        for endpoint in moved & set(restated):
            # ... and the move that ended it is the crossing: its FIN, then the first FIN, CLOSING
            assert [tr["to"] for tr in row["transitions"] if tr["endpoint"] == endpoint][-1] == "CLOSING", row
            del restated[endpoint]
        before = {"client": row["client_state"], "server": row["server_state"]}
        server_spoke = server_spoke or not row["from_client"]
    assert not restated, (rec["flow"], restated)
    return found


def test_every_row_of_the_table_is_driven_by_a_conversation() -> None:
    used = driven_rows(t for scenario in SCENARIOS for t in scenario())
    assert set(UNREACHABLE) <= set(TRANSITIONS)
    missing = set(TRANSITIONS) - used - set(UNREACHABLE)
    assert not missing, sorted(missing)
    assert not set(UNREACHABLE) & used


def test_a_self_loop_is_read_from_the_rows_only_where_it_happened() -> None:
    """The reading of self-loops above, on one conversation whose rows are known by heart: a
    handshake, data both ways, a retransmitted FIN, and the close."""
    t = Talk().handshake()
    t.c("PA", 5)
    t.s("PA", 5)
    fin = t.c("FA")
    t.c("FA", seq=fin.seq)                 # FIN-WAIT-1 retransmits; the server's FIN is held (CLOSE-WAIT)
    t.s("A")
    t.s("FA")
    t.c("A")
    engine, records = t.wire.replay()
    assert self_loops(records[0], engine.rows(1)) == {
        ("SYN-RECEIVED", "snd SYN-ACK"), ("ESTABLISHED", "snd ACK"), ("ESTABLISHED", "rcv ACK"),
        ("FIN-WAIT-1", "snd FIN"), ("CLOSE-WAIT", "rcv FIN"), ("CLOSE-WAIT", "snd ACK"), ("TIME-WAIT", "snd ACK")}


def test_missing_row_is_none() -> None:
    assert ("CLOSED", "rcv ACK of FIN") not in TRANSITIONS
    assert ("LISTEN", "snd FIN") not in TRANSITIONS
    assert TRANSITIONS.get(("CLOSED", "rcv ACK of FIN")) is None
