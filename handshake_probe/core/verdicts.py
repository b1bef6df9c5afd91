"""The analyses every flow carries by default besides its two state machines."""

from __future__ import annotations

from typing import List

from handshake_probe.core.completeness import CompletenessObserver
from handshake_probe.core.observe import ObserverFactory
from handshake_probe.core.zeek import ZeekObserver


def default_observers() -> List[ObserverFactory]:
    """Zeek's conn_state and history, tshark's completeness."""
    return [ZeekObserver, CompletenessObserver]
