"""The analyses every flow carries by default besides its two state machines."""

from __future__ import annotations

from typing import List

from handshake_probe.core.anomalies import AnomalyObserver, checking_checksums
from handshake_probe.core.completeness import CompletenessObserver
from handshake_probe.core.observe import ObserverFactory
from handshake_probe.core.zeek import ZeekObserver


def default_observers(check_checksums: bool = False) -> List[ObserverFactory]:
    """Zeek's conn_state and history, tshark's completeness, Wireshark's TCP analysis (anomalies).
    With `check_checksums`, bad TCP checksums are counted too (the decoder must verify them)."""
    return [ZeekObserver, CompletenessObserver,
            checking_checksums if check_checksums else AnomalyObserver]
