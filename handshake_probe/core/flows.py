"""The flow table: splits segments into connection incarnations and numbers them in order of first segment."""

from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from handshake_probe.core.flow import ACK, SYN, Flow, Transition, flow_key
from handshake_probe.core.observe import ObserverFactory
from handshake_probe.core.segment import Segment

# Linux keeps a socket in TIME-WAIT for 60 s (TCP_TIMEWAIT_LEN), i.e. an effective MSL of 30 s;
# RFC 9293 §3.4.2 suggests 2 minutes. We default to what a student will observe with `ss` on Linux.
DEFAULT_MSL = 30.0


# Zeek's defaults for letting a finished connection go (tcp_close_delay / tcp_reset_delay: 5 s) and for
# giving up on a silent one (tcp_inactivity_timeout: 5 min). Capture time, not wall time.
DEFAULT_LINGER = 5.0
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_MAX_OPEN = 200_000
_SWEEP_EVERY = 1024          # packets between two sweeps for finished flows
_SEEN_KEYS_CAP = 1_000_000   # how many departed 4-tuples are remembered for `reused_port`

Key = Tuple[str, int, str, int]


class FlowTable:
    """Feeds segments to flows. A SYN on a 4-tuple whose connection has ended starts a new flow.

    `keep_rows(number)` says for which flows to keep every segment with the states after it (for
    `--flow N`); all other flows keep only their summary, so memory grows with flows, not packets.
    `on_transition(flow, transition)` is called as each transition happens (for live capture).

    Two modes. By default every flow is kept in `flows` (what tests and small files want). With
    `on_finished`, the table streams: a flow that ended (FIN both ways or RST) and stayed quiet for
    `linger` seconds, or that stayed silent for `idle_timeout`, is finished and handed to
    `on_finished`, then forgotten; so is the least recently active flow when more than `max_open` are
    open (counted in `evicted`). Memory then grows with open flows, not with flows or packets."""

    def __init__(self, msl: float = DEFAULT_MSL,
                 keep_rows: Optional[Callable[[int], bool]] = None,
                 on_transition: Optional[Callable[[Flow, Transition], None]] = None,
                 observers: Optional[Sequence[ObserverFactory]] = None,
                 on_finished: Optional[Callable[[Flow], None]] = None,
                 linger: float = DEFAULT_LINGER, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 max_open: int = DEFAULT_MAX_OPEN) -> None:
        if observers is None:                 # None: the default analyses; () for the state machines only
            from handshake_probe.core.verdicts import default_observers
            observers = default_observers()
        self._observers = tuple(observers)   # per-flow analyses (history, anomalies), one set per flow
        self.msl = msl
        self._keep_rows = keep_rows
        self._on_transition = on_transition   # called for every transition as it happens (live views)
        self._on_finished = on_finished
        self.linger, self.idle_timeout, self.max_open = linger, idle_timeout, max_open
        self._open: Dict[Key, Flow] = {}      # ordered by last activity when streaming (oldest first)
        self._ended: Dict[Key, Flow] = {}     # the ended ones among them, same order
        self._seen_keys: Dict[Key, None] = {}  # 4-tuples of flows already handed out (streaming mode)
        self.flows: List[Flow] = []
        self.count = 0                         # flows created (= the last flow number)
        self.evicted = 0                       # flows pushed out by max_open
        self.last_ts: Optional[float] = None
        self._until_sweep = _SWEEP_EVERY

    def add(self, seg: Segment) -> Flow:
        key = flow_key(seg)
        opened = self._open
        flow = opened.get(key)
        flags = seg.flags
        if flow is None or (flags & SYN and not flags & ACK and flow.starts_new_flow(seg)):
            reused = flow is not None or key in self._seen_keys
            if flow is not None:
                flow.retire(seg.ts)
                self._let_go(key, flow)
            self.count += 1
            keep = self._keep_rows is not None and self._keep_rows(self.count)
            flow = Flow(self.count, seg, self.msl, keep, self._on_transition,
                        [make() for make in self._observers], reused)
            if self._on_finished is None:
                self.flows.append(flow)
            opened[key] = flow
        flow.add(seg)
        self.last_ts = seg.ts
        if self._on_finished is not None:
            # Keep both dicts in order of last activity: re-insert at the end.
            del opened[key]
            opened[key] = flow
            self._ended.pop(key, None)
            if flow.ended:
                self._ended[key] = flow
            self._until_sweep -= 1
            if self._until_sweep <= 0:
                self._until_sweep = _SWEEP_EVERY
                self.sweep(seg.ts)
        return flow

    def sweep(self, now: float) -> None:
        """Hand out the flows that are over at capture time `now` (streaming mode only)."""
        if self._on_finished is None:
            return
        for table, quiet in ((self._ended, self.linger), (self._open, self.idle_timeout)):
            while table:
                key, flow = next(iter(table.items()))
                if flow.last_ts + quiet > now:
                    break
                flow.finish(now)
                self._let_go(key, flow)
        while len(self._open) > self.max_open:
            key, flow = next(iter(self._open.items()))
            flow.finish(now)
            self._let_go(key, flow)
            self.evicted += 1

    def _let_go(self, key: Key, flow: Flow) -> None:
        if self._on_finished is None:
            return
        del self._open[key]
        self._ended.pop(key, None)
        self._seen_keys[key] = None
        if len(self._seen_keys) > _SEEN_KEYS_CAP:
            del self._seen_keys[next(iter(self._seen_keys))]
        self._on_finished(flow)

    def finish(self) -> List[Flow]:
        """End of input: fire the 2MSL timers the capture outlived; return all flows in order
        (streaming mode: hand every open flow to `on_finished`, return [])."""
        if self.last_ts is not None:
            for flow in self._open.values():
                flow.finish(self.last_ts)
        if self._on_finished is not None:
            for key, flow in list(self._open.items()):
                self._let_go(key, flow)
        return self.flows

    def __iter__(self) -> Iterator[Flow]:
        return iter(self.flows)
