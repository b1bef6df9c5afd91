"""The flow table: splits segments into connection incarnations and numbers them in order of first segment."""

from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from handshake_probe.core.flow import ACK, SYN, Flow, Transition, flow_key
from handshake_probe.core.observe import ObserverFactory
from handshake_probe.core.segment import Segment

# Linux keeps a socket in TIME-WAIT for 60 s (TCP_TIMEWAIT_LEN), i.e. an effective MSL of 30 s;
# RFC 9293 §3.4.2 suggests 2 minutes. We default to what a student will observe with `ss` on Linux.
DEFAULT_MSL = 30.0


class FlowTable:
    """Feeds segments to flows. A SYN on a 4-tuple whose connection has ended starts a new flow.

    `keep_rows(number)` says for which flows to keep every segment with the states after it (for
    `--flow N`); all other flows keep only their summary, so memory grows with flows, not packets.
    `on_transition(flow, transition)` is called as each transition happens (for live capture)."""

    def __init__(self, msl: float = DEFAULT_MSL,
                 keep_rows: Optional[Callable[[int], bool]] = None,
                 on_transition: Optional[Callable[[Flow, Transition], None]] = None,
                 observers: Sequence[ObserverFactory] = ()) -> None:
        self._observers = tuple(observers)   # per-flow analyses (history, anomalies), one set per flow
        self.msl = msl
        self._keep_rows = keep_rows
        self._on_transition = on_transition   # called for every transition as it happens (live views)
        self._open: Dict[Tuple[str, int, str, int], Flow] = {}
        self.flows: List[Flow] = []
        self.last_ts: Optional[float] = None

    def add(self, seg: Segment) -> Flow:
        key = flow_key(seg)
        flow = self._open.get(key)
        flags = seg.flags
        if flow is None or (flags & SYN and not flags & ACK and flow.starts_new_flow(seg)):
            reused = flow is not None
            if flow is not None:
                flow.retire(seg.ts)
            number = len(self.flows) + 1
            keep = self._keep_rows is not None and self._keep_rows(number)
            flow = Flow(number, seg, self.msl, keep, self._on_transition,
                        [make() for make in self._observers], reused)
            self.flows.append(flow)
            self._open[key] = flow
        flow.add(seg)
        self.last_ts = seg.ts
        return flow

    def finish(self) -> List[Flow]:
        """End of input: fire the 2MSL timers the capture outlived; return all flows in order."""
        if self.last_ts is not None:
            for flow in self._open.values():
                flow.finish(self.last_ts)
        return self.flows

    def __iter__(self) -> Iterator[Flow]:
        return iter(self.flows)
