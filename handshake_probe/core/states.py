"""RFC 9293 connection states and the transition table: everything that moves an endpoint lives here.

Modelled on h11's `_state.py`: the machine *is* a table, `TRANSITIONS[(state, cue)] -> state`.
A cue is what one endpoint did or saw: it *sent* (`SND_*`) or *received* (`RCV_*`) a kind of segment.
A `(state, cue)` pair missing from the table is a protocol violation for the caller to record, never an error.
Self-loops (retransmissions, plain data and ACKs) are in the table too, so "missing" really means "illegal".
"""

from __future__ import annotations

from enum import Enum
from typing import Dict, FrozenSet, Tuple


class State(str, Enum):
    """The eleven states of RFC 9293 §3.3.2, spelled as the RFC spells them, plus UNKNOWN.

    UNKNOWN is not an RFC state: it is what the capture cannot tell (the endpoint's state before the
    capture began, or a silent peer whose reaction was never seen)."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value


class Cue(str, Enum):
    """What an endpoint sent or received, as far as the state machine cares."""

    SND_SYN = "snd SYN"
    SND_SYN_ACK = "snd SYN-ACK"
    SND_ACK = "snd ACK"            # any segment without SYN/FIN/RST: pure ACK, data, keep-alive
    SND_FIN = "snd FIN"
    SND_RST = "snd RST"
    RCV_SYN = "rcv SYN"
    RCV_SYN_ACK = "rcv SYN-ACK"    # a SYN-ACK whose ACK acknowledges our SYN
    RCV_ACK = "rcv ACK"            # acknowledges nothing that changes state (data, dup ACK)
    RCV_ACK_OF_SYN = "rcv ACK of SYN"
    RCV_ACK_OF_FIN = "rcv ACK of FIN"
    RCV_FIN = "rcv FIN"
    RCV_RST = "rcv RST"            # only acceptable RSTs become this cue (RFC 9293 §3.10.7.4, §3.5.3)
    TIMEOUT_2MSL = "2MSL timeout"  # the TIME-WAIT timer, RFC 9293 §3.10.8
    REUSED = "new SYN on the 4-tuple"  # a new incarnation took the 4-tuple over (RFC 1122 §4.2.2.13)

    def __str__(self) -> str:
        return self.value


S = State
C = Cue

# States in which both sides' sequence numbers are known (RFC 9293 §3.5.3 "synchronized").
SYNCHRONIZED: FrozenSet[State] = frozenset({
    S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK, S.TIME_WAIT})

# States after which the connection is over for this endpoint (used to split flows on port reuse).
END_STATES: FrozenSet[State] = frozenset({S.CLOSED, S.TIME_WAIT, S.LISTEN})


def _build() -> Dict[Tuple[State, Cue], State]:
    t: Dict[Tuple[State, Cue], State] = {
        # --- opening (RFC 9293 §3.3.2 figure 5; §3.5 figures 6-8) ---
        (S.CLOSED, C.SND_SYN): S.SYN_SENT,               # active OPEN
        (S.LISTEN, C.SND_SYN): S.SYN_SENT,               # SEND on a listening socket (§3.10.2)
        (S.CLOSED, C.RCV_SYN): S.CLOSED,                 # nobody listening: answered by RST (§3.10.7.1)
        (S.CLOSED, C.SND_RST): S.CLOSED,                 # ... that RST
        (S.CLOSED, C.RCV_ACK): S.CLOSED,                 # stray segment to a closed port, also answered by RST
        (S.CLOSED, C.RCV_FIN): S.CLOSED,
        (S.CLOSED, C.RCV_RST): S.CLOSED,                 # "an incoming segment containing a RST is discarded"
        (S.LISTEN, C.RCV_SYN): S.SYN_RECEIVED,           # passive open (§3.10.7.2)
        (S.LISTEN, C.RCV_RST): S.LISTEN,                 # "an incoming RST should be ignored" (§3.10.7.2)
        (S.LISTEN, C.RCV_ACK): S.LISTEN,                 # answered by RST, listener unchanged (§3.10.7.2)
        (S.LISTEN, C.SND_RST): S.LISTEN,
        (S.SYN_SENT, C.SND_SYN): S.SYN_SENT,             # SYN retransmission (§3.8.1)
        (S.SYN_SENT, C.RCV_SYN_ACK): S.ESTABLISHED,      # our SYN acked, theirs received (§3.10.7.3)
        (S.SYN_SENT, C.RCV_SYN): S.SYN_RECEIVED,         # simultaneous open (§3.5 figure 7)
        (S.SYN_RECEIVED, C.SND_SYN_ACK): S.SYN_RECEIVED,  # the SYN-ACK itself, and its retransmissions
        (S.SYN_RECEIVED, C.RCV_SYN): S.SYN_RECEIVED,      # retransmitted SYN (ours was not seen yet)
        (S.SYN_RECEIVED, C.RCV_ACK_OF_SYN): S.ESTABLISHED,  # §3.10.7.4 fifth check, SYN-RECEIVED
        (S.SYN_RECEIVED, C.RCV_SYN_ACK): S.ESTABLISHED,     # simultaneous open: their SYN-ACK acks our SYN
        (S.SYN_RECEIVED, C.SND_FIN): S.FIN_WAIT_1,         # CLOSE in SYN-RECEIVED (§3.10.4)
        (S.SYN_RECEIVED, C.RCV_FIN): S.CLOSE_WAIT,         # §3.10.7.4 eighth check
        (S.ESTABLISHED, C.RCV_SYN_ACK): S.ESTABLISHED,     # retransmitted SYN-ACK: our ACK was lost
        (S.ESTABLISHED, C.SND_SYN_ACK): S.ESTABLISHED,     # retransmitting our SYN-ACK
        (S.ESTABLISHED, C.SND_SYN): S.ESTABLISHED,         # a SYN retransmission that crossed the SYN-ACK
        # --- closing (§3.6 figures 12-13) ---
        (S.ESTABLISHED, C.SND_FIN): S.FIN_WAIT_1,
        (S.ESTABLISHED, C.RCV_FIN): S.CLOSE_WAIT,
        (S.FIN_WAIT_1, C.RCV_ACK_OF_FIN): S.FIN_WAIT_2,
        (S.FIN_WAIT_1, C.RCV_FIN): S.CLOSING,              # simultaneous close
        (S.FIN_WAIT_1, C.SND_FIN): S.FIN_WAIT_1,           # FIN retransmission
        (S.FIN_WAIT_2, C.RCV_FIN): S.TIME_WAIT,
        (S.FIN_WAIT_2, C.SND_FIN): S.FIN_WAIT_2,           # late retransmission of an acked FIN
        (S.CLOSE_WAIT, C.SND_FIN): S.LAST_ACK,
        (S.CLOSE_WAIT, C.RCV_FIN): S.CLOSE_WAIT,           # retransmitted FIN (our ACK was lost)
        (S.CLOSING, C.RCV_ACK_OF_FIN): S.TIME_WAIT,
        (S.CLOSING, C.RCV_FIN): S.CLOSING,
        (S.CLOSING, C.SND_FIN): S.CLOSING,
        (S.LAST_ACK, C.RCV_ACK_OF_FIN): S.CLOSED,
        (S.LAST_ACK, C.RCV_FIN): S.LAST_ACK,
        (S.LAST_ACK, C.SND_FIN): S.LAST_ACK,
        (S.TIME_WAIT, C.RCV_FIN): S.TIME_WAIT,             # retransmitted FIN: ACK it, restart 2MSL (§3.10.7.4)
        (S.TIME_WAIT, C.SND_FIN): S.TIME_WAIT,
        (S.TIME_WAIT, C.TIMEOUT_2MSL): S.CLOSED,           # §3.10.8 time-wait timeout
        # A SYN with a higher ISN may reopen from TIME-WAIT (RFC 1122 §4.2.2.13, RFC 6191; Linux
        # tcp_tw_reuse does it on loopback): the old incarnation's TIME-WAIT ends there.
        (S.TIME_WAIT, C.REUSED): S.CLOSED,
        # --- mid-stream start: the state before the capture is UNKNOWN until a segment defines it ---
        (S.UNKNOWN, C.SND_ACK): S.UNKNOWN,
        (S.UNKNOWN, C.RCV_ACK): S.UNKNOWN,
        (S.UNKNOWN, C.SND_SYN_ACK): S.SYN_RECEIVED,       # a SYN-ACK proves a SYN arrived before the capture
        (S.UNKNOWN, C.RCV_SYN_ACK): S.ESTABLISHED,        # ... and that this side was in SYN-SENT
        (S.UNKNOWN, C.SND_FIN): S.FIN_WAIT_1,             # assumes ESTABLISHED; the peer's FIN would be seen
        (S.UNKNOWN, C.RCV_FIN): S.CLOSE_WAIT,
        (S.UNKNOWN, C.SND_RST): S.CLOSED,
        (S.UNKNOWN, C.RCV_RST): S.CLOSED,
    }
    # Plain data and ACKs never move a state by themselves in these states (§3.10.7.4 seventh check).
    for state in (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK,
                  S.TIME_WAIT):
        t[(state, C.SND_ACK)] = state
        t[(state, C.RCV_ACK)] = state
    t[(S.SYN_RECEIVED, C.SND_ACK)] = S.SYN_RECEIVED   # simultaneous open: the ACK of the peer's SYN
    # An ACK from SYN-SENT proves the SYN-ACK arrived even when the capture missed it (one-sided capture).
    t[(S.SYN_SENT, C.SND_ACK)] = S.ESTABLISHED
    t[(S.CLOSED, C.SND_ACK)] = S.CLOSED               # a closed socket's stray ACK (rare, harmless)
    # A sent RST aborts the connection from any state that has one (§3.10.7.4 and §3.10.5 ABORT).
    for state in (S.SYN_SENT, S.SYN_RECEIVED, *SYNCHRONIZED):
        t[(state, C.SND_RST)] = S.CLOSED
    # An acceptable received RST (§3.10.7.3, §3.10.7.4 second check) closes the connection ...
    for state in (S.SYN_SENT, *SYNCHRONIZED):
        t[(state, C.RCV_RST)] = S.CLOSED
    # ... except in SYN-RECEIVED after a passive OPEN, which goes back to LISTEN (§3.10.7.4).
    # The flow model decides "passive"; the table holds the passive case, the active one is below.
    t[(S.SYN_RECEIVED, C.RCV_RST)] = S.LISTEN
    return t


TRANSITIONS: Dict[Tuple[State, Cue], State] = _build()

# SYN-RECEIVED reached by simultaneous open (an active OPEN) returns to CLOSED on RST (§3.10.7.4).
ACTIVE_SYN_RECEIVED_RST = S.CLOSED


def next_state(state: State, cue: Cue) -> State | None:
    """The state after `cue`, or None when the RFC has no such transition (a violation)."""
    return TRANSITIONS.get((state, cue))
