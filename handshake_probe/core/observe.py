"""Per-flow observers: analyses that ride along the state machines (Zeek history and conn_state, tshark
completeness, Wireshark-style anomalies). Each flow gets its own observer instances from factories."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Protocol, Sequence

from handshake_probe.core.segment import Segment

if TYPE_CHECKING:
    from handshake_probe.core.flow import Flow


class FlowObserver(Protocol):
    def on_segment(self, flow: "Flow", seg: Segment, from_client: bool) -> Sequence[str]:
        """Called after the state machines took `seg`; returns notes for this segment (e.g. anomalies),
        shown next to it by `analyze --flow N`. Return () when there is nothing to say: it is the hot path."""
        ...

    def record(self, flow: "Flow") -> Dict[str, Any]:
        """Fields added to the flow's JSON record (part of the output contract once documented)."""
        ...


ObserverFactory = Callable[[], FlowObserver]
