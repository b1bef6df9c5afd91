"""One TCP connection: two endpoints, each driven through the RFC 9293 table by what it sends and receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from handshake_probe.core.endpoint import Endpoint, seq_in_window
from handshake_probe.core.observe import FlowObserver
from handshake_probe.core.segment import Flags, Segment
from handshake_probe.core.states import ACTIVE_SYN_RECEIVED_RST, END_STATES, Cue, State, next_state

SYN, ACK, FIN, RST = int(Flags.SYN), int(Flags.ACK), int(Flags.FIN), int(Flags.RST)
_PLAIN_MASK = SYN | FIN | RST | ACK
# States in which a plain ACK, sent or received, can neither move the state nor acknowledge a SYN or FIN
# that would (the ACK-of-SYN and ACK-of-FIN cues belong to SYN-RECEIVED, FIN-WAIT-1, CLOSING, LAST-ACK).
_QUIET = frozenset({State.ESTABLISHED, State.FIN_WAIT_2, State.CLOSE_WAIT, State.TIME_WAIT})
MAX_VIOLATIONS = 50   # a pathological flow must not grow without bound; the count is kept in full


@dataclass(frozen=True, slots=True)
class Transition:
    ts: float
    frame: Optional[int]     # None for a timer (2MSL), which no segment causes
    endpoint: str            # "client" or "server"
    from_state: State
    to_state: State
    cause: Cue


@dataclass(frozen=True, slots=True)
class Violation:
    ts: float
    frame: int
    endpoint: str
    state: State
    cue: str
    reason: str


@dataclass(slots=True)
class SegmentRow:
    """A segment with both endpoints' states after it: kept only for flows the user asked to see."""

    seg: Segment
    from_client: bool
    client_state: State
    server_state: State
    transitions: List[Transition]
    notes: List[str]


@dataclass(slots=True)
class Handshake:
    syn_ts: Optional[float] = None       # first SYN from the client
    synack_ts: Optional[float] = None    # first SYN-ACK from the server that acks the client's SYN
    ack_ts: Optional[float] = None       # first client ACK of the server's SYN
    syn_count: int = 0
    synack_count: int = 0

    @property
    def complete(self) -> bool:
        return None not in (self.syn_ts, self.synack_ts, self.ack_ts)

    @property
    def status(self) -> str:
        if self.complete:
            return "complete"
        return "partial" if self.syn_count or self.synack_count else "none"


def _sender_cue(flags: int) -> Cue:
    if flags & RST:
        return Cue.SND_RST
    if flags & SYN:
        return Cue.SND_SYN_ACK if flags & ACK else Cue.SND_SYN
    if flags & FIN:
        return Cue.SND_FIN
    return Cue.SND_ACK


class Flow:
    """Both endpoints of one connection incarnation, fed segments in capture order."""

    __slots__ = ("number", "key", "client", "server", "direction", "first_ts", "last_ts", "packets",
                 "transitions", "violations", "violation_count", "handshake", "rst_by", "fins",
                 "rejected", "rows", "msl", "_pending_syn", "on_transition", "observers", "reused_port")

    def __init__(self, number: int, seg: Segment, msl: float, keep_rows: bool,
                 on_transition: Optional[Callable[["Flow", Transition], None]] = None,
                 observers: Sequence[FlowObserver] = (), reused_port: bool = False) -> None:
        self.number = number
        self.observers = tuple(observers)
        self.reused_port = reused_port       # the 4-tuple carried an earlier flow in this capture
        self.on_transition = on_transition   # live views print transitions as they happen
        self.key = flow_key(seg)
        flags = seg.flags
        if flags & SYN and not flags & ACK:
            client_is_src, self.direction = True, "observed"
        elif flags & SYN:
            client_is_src, self.direction = False, "inferred"   # the SYN-ACK's sender is the server
        else:
            # No handshake seen: the lower (well-known) port is the server's; on a tie, the first receiver.
            client_is_src, self.direction = seg.sport >= seg.dport, "inferred"
        a, b = (seg.src, seg.sport), (seg.dst, seg.dport)
        (caddr, cport), (saddr, sport) = (a, b) if client_is_src else (b, a)
        opening = self.direction == "observed"
        # A flow that starts with the SYN starts from CLOSED; otherwise the state before the capture is unknown.
        self.client = Endpoint("client", caddr, cport, State.CLOSED if opening else State.UNKNOWN)
        # The server's state is settled by its first answer: SYN-ACK -> it was LISTENing, RST -> CLOSED.
        self.server = Endpoint("server", saddr, sport, State.UNKNOWN)
        self.first_ts = self.last_ts = seg.ts
        self.packets = 0
        self.transitions: List[Transition] = []
        self.violations: List[Violation] = []
        self.violation_count = 0
        self.handshake = Handshake()
        self.rst_by: Optional[str] = None
        self.fins = {"client": False, "server": False}
        self.rejected = False
        self.rows: Optional[List[SegmentRow]] = [] if keep_rows else None
        self.msl = msl
        self._pending_syn: Optional[Segment] = None   # client SYN the silent server has not reacted to yet

    # ----------------------------------------------------------------- queries
    @property
    def ended(self) -> bool:
        """True when this incarnation is over: a new SYN on the 4-tuple starts a new flow."""
        return (self.rst_by is not None or self.rejected
                or (self.client.state in END_STATES and self.server.state in END_STATES
                    and self.client.state is not State.LISTEN))

    @property
    def close_kind(self) -> str:
        if self.rejected:
            return "rejected"
        if self.rst_by is not None:
            return f"{self.rst_by}-rst"
        if self.fins["client"] and self.fins["server"]:
            return "fin"
        return "none"

    def starts_new_flow(self, seg: Segment) -> bool:
        """Is this SYN (without ACK) the start of a new connection on the same 4-tuple?"""
        sender = self.client if (seg.src, seg.sport) == (self.client.addr, self.client.port) else self.server
        if sender.isn == seg.seq:
            return False               # a retransmitted SYN (same ISN): same flow (RFC 9293 §3.8.1)
        if self.ended:
            return True                # port reuse after RST, rejection, or FIN close / TIME-WAIT
        # Simultaneous open (RFC 9293 §3.5 figure 7): the other side's SYN crosses the client's SYN.
        simultaneous = (sender is self.server and self.server.isn is None
                        and self.client.state is State.SYN_SENT and self.server.packets == 0)
        return not simultaneous

    # ----------------------------------------------------------------- feeding
    def add(self, seg: Segment) -> None:
        self.packets += 1
        self.last_ts = seg.ts
        client = self.client
        from_client = seg.sport == client.port and seg.src == client.addr
        sender, receiver = (client, self.server) if from_client else (self.server, client)
        flags = seg.flags
        if (flags & _PLAIN_MASK == ACK and sender.state in _QUIET and receiver.state in _QUIET
                and self.rows is None and (self.handshake.ack_ts is not None or not from_client)):
            # The bulk of any capture: data or a pure ACK between synchronized endpoints, which
            # moves no state (RFC 9293 §3.10.7.4, seventh check). Same bookkeeping, no table walk.
            sender.note_sent(seg.seq, seg.payload_len, False, False, seg.payload_len)
            sender.window = seg.window
            for observer in self.observers:
                observer.on_segment(self, seg, from_client)
            return
        n_before = len(self.transitions)
        notes: List[str] = []

        if sender is self.server and self.server.packets == 0 and self._pending_syn is not None:
            self._settle_server(flags)
        elif (sender is self.client and self._pending_syn is not None and flags & ACK
              and not flags & (SYN | RST)):
            # The client acknowledges a SYN-ACK the capture does not hold (one-sided capture):
            # the server answered, so it was listening (RFC 9293 §3.10.7.2).
            self._settle_server(SYN | ACK)
        self._note_handshake(seg, from_client, sender, receiver)

        rst_ok = True
        if flags & RST:
            rst_ok = self._rst_acceptable(seg, receiver, sender)
            if not rst_ok:
                notes.append("RST not acceptable: ignored (RFC 9293 §3.10.7.4)")
                self._violate(seg, receiver, "rcv RST", "RST outside the receive window: not a close "
                              "(RFC 9293 §3.10.7.4)")
        sender_state_before = sender.state
        if rst_ok:
            sender.note_sent(seg.seq, seg.seq_len, bool(flags & SYN), bool(flags & FIN), seg.payload_len)
        else:
            sender.packets += 1   # a forged or stale RST says nothing about the sender's sequence space
        if sender.base is not None and receiver.base is None and flags & ACK:
            receiver.base = (seg.ack - 1) % (1 << 32)
        if flags & SYN and seg.options.wscale is not None:
            sender.wscale = seg.options.wscale
        sender.window = seg.window

        crossed = (flags & FIN and flags & ACK and sender.state is State.CLOSE_WAIT
                   and receiver.fin_seq is not None and not receiver.acks_fin(seg.ack))
        if crossed and self._uncross_fins(sender):
            n_before -= 1                 # an earlier transition was taken back: the slice shifts
        if rst_ok:
            self._apply(seg, sender, _sender_cue(flags))
            if crossed:
                self._apply(seg, sender, Cue.RCV_FIN)   # the peer's FIN arrives after ours left: CLOSING
            if sender is self.server and self._pending_syn is not None and sender.state is State.SYN_SENT:
                # Simultaneous open: the client's SYN reaches the server after its own SYN left.
                self._pending_syn = None
                self._apply(seg, sender, Cue.RCV_SYN)
            for cue in self._receiver_cues(seg, receiver):
                if cue is None:
                    continue
                self._apply(seg, receiver, cue)
            if flags & RST and self.rst_by is None and sender_state_before is not State.LISTEN:
                if self.server.state is State.CLOSED and self.handshake.synack_count == 0 and sender is self.server:
                    self.rejected = True
                else:
                    self.rst_by = sender.role
        if flags & FIN and not flags & RST:
            self.fins[sender.role] = True
        for observer in self.observers:
            said = observer.on_segment(self, seg, from_client)
            if said:
                notes.extend(said)
        if self.rows is not None:
            mine = [t for t in self.transitions[n_before:] if t.frame == seg.frame]   # not re-dated ones
            self.rows.append(SegmentRow(seg, from_client, self.client.state, self.server.state, mine, notes))

    def _uncross_fins(self, ep: Endpoint) -> bool:
        """Simultaneous close seen from the wire (RFC 9293 §3.6 figure 13): `ep` sends a FIN that does not
        acknowledge the peer's FIN, so that FIN had not reached it yet. Take back the CLOSE-WAIT we
        assumed on capture order; the FIN is applied again right after `ep`'s own FIN."""
        for i in range(len(self.transitions) - 1, -1, -1):
            t = self.transitions[i]
            if t.endpoint == ep.role:
                if t.cause is Cue.RCV_FIN and t.to_state is State.CLOSE_WAIT:
                    del self.transitions[i]
                    ep.path.pop()
                    ep.state = t.from_state
                    self._restate_rows(ep, t.frame or 0, t.from_state, drop=t)
                    return True
                return False
        return False

    def _restate_rows(self, ep: Endpoint, from_frame: int, state: State,
                      drop: Optional[Transition] = None, add: Optional[Transition] = None) -> None:
        """Later evidence changed what `ep` was from `from_frame` on: rewrite the kept rows to match."""
        for row in self.rows or ():
            if row.seg.frame < from_frame:
                continue
            if drop is not None and drop in row.transitions:
                row.transitions.remove(drop)
            if add is not None and row.seg.frame == add.frame:
                row.transitions.append(add)
            if ep is self.client:
                row.client_state = state
            else:
                row.server_state = state

    def _settle_server(self, flags: int) -> None:
        """The server's first segment tells what it was when the client's SYN reached it."""
        syn = self._pending_syn
        assert syn is not None
        self._pending_syn = None
        if flags & SYN and flags & ACK:
            self._settle_initial(State.LISTEN)               # passive OPEN (RFC 9293 §3.10.7.2)
            self._apply(syn, self.server, Cue.RCV_SYN)
            self._restate_rows(self.server, syn.frame, self.server.state, add=self.transitions[-1])
        elif flags & RST:
            self._settle_initial(State.CLOSED)               # nobody listening (RFC 9293 §3.10.7.1)
            self._apply(syn, self.server, Cue.RCV_SYN)
        elif flags & SYN:
            # Simultaneous open: its own SYN left before ours arrived; the receipt is applied after its send.
            self._settle_initial(State.CLOSED)
            self._pending_syn = syn
        # anything else: the server stays UNKNOWN (it answered without a handshake we can explain)

    def _settle_initial(self, state: State) -> None:
        self.server.set_initial(state)
        self._restate_rows(self.server, 0, state)

    def _note_handshake(self, seg: Segment, from_client: bool, sender: Endpoint, receiver: Endpoint) -> None:
        flags, hs = seg.flags, self.handshake
        if flags & SYN and not flags & ACK and from_client:
            hs.syn_count += 1
            if hs.syn_ts is None:
                hs.syn_ts = seg.ts
            if self.server.packets == 0 and self.server.state is State.UNKNOWN:
                self._pending_syn = seg   # the latest SYN is the one the server will answer
        elif flags & SYN and flags & ACK and not from_client:
            hs.synack_count += 1
            if hs.synack_ts is None and (receiver.isn is None or receiver.acks_syn(seg.ack)):
                hs.synack_ts = seg.ts
        elif (from_client and flags & ACK and hs.synack_ts is not None and hs.ack_ts is None
              and receiver.acks_syn(seg.ack)):
            hs.ack_ts = seg.ts

    def _receiver_cues(self, seg: Segment, rcv: Endpoint) -> Tuple[Optional[Cue], ...]:
        """Cues for the receiving endpoint, in RFC 9293 §3.10.7.4's order: RST, SYN, ACK, FIN."""
        flags = seg.flags
        if rcv is self.server and self._pending_syn is not None:
            return ()   # a silent server's reaction is unknown: its first answer settles it (_settle_server)
        if flags & RST:
            return (Cue.RCV_RST,)
        if flags & SYN:
            if not flags & ACK:
                return (Cue.RCV_SYN,)
            if rcv.isn is not None and not rcv.acks_syn(seg.ack):
                self._violate(seg, rcv, "rcv SYN-ACK", "SYN-ACK does not acknowledge our SYN "
                              "(RFC 9293 §3.10.7.3: answered by RST)")
                return ()
            return (Cue.RCV_SYN_ACK,)
        ack_cue: Optional[Cue] = None
        if flags & ACK:
            if rcv.state is State.SYN_RECEIVED and (rcv.isn is None or rcv.acks_syn(seg.ack)):
                ack_cue = Cue.RCV_ACK_OF_SYN
            elif rcv.state in (State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK) and rcv.acks_fin(seg.ack):
                ack_cue = Cue.RCV_ACK_OF_FIN
            elif not flags & FIN:
                ack_cue = Cue.RCV_ACK
        elif not flags & FIN:
            self._violate(seg, rcv, "rcv segment", "segment without ACK in a connection "
                          "(RFC 9293 §3.10.7.4 fifth check: dropped)")
        return (ack_cue, Cue.RCV_FIN if flags & FIN else None)

    def _rst_acceptable(self, seg: Segment, rcv: Endpoint, snd: Endpoint) -> bool:
        """RFC 9293 §3.10.7.3 (SYN-SENT: the ACK must acknowledge our SYN) and §3.10.7.4 (in window)."""
        if rcv.state is State.SYN_SENT:
            return bool(seg.flags & ACK) and rcv.acks_syn(seg.ack)
        if snd.snd_nxt is None or rcv.state in (State.UNKNOWN, State.CLOSED, State.LISTEN):
            return True   # nothing seen from the sender yet: no window to test against
        if seq_in_window(seg.seq, snd.snd_nxt, rcv.scaled_window(snd.wscale)):
            return True
        # Linux (tcp_reset_check) also takes RCV.NXT-1 once the peer's FIN is in: an RST sent with the
        # sequence number of that FIN, as stacks do when they abort right after closing.
        return (rcv.state in (State.CLOSE_WAIT, State.LAST_ACK, State.CLOSING)
                and seg.seq == (snd.snd_nxt - 1) % (1 << 32))

    def _apply(self, seg: Segment, ep: Endpoint, cue: Cue) -> None:
        state = ep.state
        new = next_state(state, cue)
        if new is None:
            reason = f"no RFC 9293 transition for {cue} in {state}"
            if state is State.CLOSED and self.rst_by is not None and cue.name.startswith("SND"):
                reason += " (sent after an RST closed it: the two crossed on the wire)"
            self._violate(seg, ep, str(cue), reason)
            return
        if cue is Cue.RCV_RST and state is State.SYN_RECEIVED and not ep.passive:
            new = ACTIVE_SYN_RECEIVED_RST  # active (simultaneous) open returns to CLOSED (§3.10.7.4)
        if cue is Cue.RCV_SYN and state is State.LISTEN:
            ep.passive = True
        if new is State.TIME_WAIT and (state is not State.TIME_WAIT or cue is Cue.RCV_FIN):
            ep.time_wait_since = seg.ts    # (re)start the 2MSL timer, also on a retransmitted FIN
        if new is not state:
            self._move(ep, new, cue, seg.ts, seg.frame)

    def _move(self, ep: Endpoint, new: State, cue: Cue, ts: float, frame: Optional[int]) -> None:
        transition = Transition(ts, frame, ep.role, ep.state, new, cue)
        self.transitions.append(transition)
        ep.state = new
        ep.path.append(new)
        if self.on_transition is not None:
            self.on_transition(self, transition)

    def _violate(self, seg: Segment, ep: Endpoint, cue: str, reason: str) -> None:
        self.violation_count += 1
        if len(self.violations) < MAX_VIOLATIONS:
            self.violations.append(Violation(seg.ts, seg.frame, ep.role, ep.state, cue, reason))

    # ----------------------------------------------------------------- ending
    def finish(self, now: float) -> None:
        """End of the capture at time `now`: fire the TIME-WAIT timers that expired by then.

        TIME-WAIT lasts 2*MSL (RFC 9293 §3.10.8); only a capture that goes on that long shows CLOSED."""
        for ep in (self.client, self.server):
            since = ep.time_wait_since
            if ep.state is State.TIME_WAIT and since is not None and now >= since + 2 * self.msl:
                self._event(ep, Cue.TIMEOUT_2MSL, since + 2 * self.msl)

    def retire(self, now: float) -> None:
        """A new incarnation takes the 4-tuple over at `now`: whatever is still in TIME-WAIT leaves it."""
        self.finish(now)
        for ep in (self.client, self.server):
            self._event(ep, Cue.REUSED, now)

    def _event(self, ep: Endpoint, cue: Cue, ts: float) -> None:
        """A cue that no segment carries (a timer, a takeover): through the same table, quietly ignored
        where the table has no entry."""
        new = next_state(ep.state, cue)
        if new is not None and new is not ep.state:
            self._move(ep, new, cue, ts, None)


def flow_key(seg: Segment) -> Tuple[str, int, str, int]:
    """The 4-tuple with the two ends in a fixed order, the same for both directions."""
    a, b = (seg.src, seg.sport), (seg.dst, seg.dport)
    return (*a, *b) if a <= b else (*b, *a)  # type: ignore[return-value]
