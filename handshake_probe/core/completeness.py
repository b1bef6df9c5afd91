"""tshark's TCP conversation completeness (`tcp.completeness`) for one flow.

Wireshark does not track TCP states: it ORs one bit per kind of segment it has seen into the
conversation. The rules are in `epan/dissectors/packet-tcp.c`, `dissect_tcp()`, in the block
"initialize or move forward the conversation completeness" (wireshark/wireshark, Wireshark 3.6-4.0
era, as packaged in Debian 12's tshark 4.0.17; the bit values are the `TCP_COMPLETENESS_*` defines
near the top of that file):

- only in a **new** conversation (the packet that created it): a pure SYN (SYN without ACK) sets SYN (1),
  and DATA (8) too when it carries payload (TCP Fast Open). Nothing else counts on that packet.
- on every later packet: SYN+ACK sets SYN-ACK (2); ACK without SYN sets DATA (8) when the segment
  carries payload, else ACK (4) -- so a FIN+ACK or RST+ACK without payload also sets ACK; FIN *with*
  ACK sets FIN (16) (a FIN without ACK does not); any RST sets RST (32).

The conformance summaries were made with a two-pass read (`tshark -2`), which is what users see in
Wireshark's GUI as well. On the second pass the conversation already exists, so its first packet is
processed again with the "later packet" rules (a SYN-ACK that opened the capture now sets SYN-ACK), and
the value shown on a packet is the one *before* that packet's own contribution. A stream's summary
(its last packet's value) is therefore: every packet's contribution from the first pass, plus the
first packet's "later packet" contribution when the stream has more than one packet.

Not emulated: Wireshark's FTP dissector creates the conversation of a passive-mode data connection when
it reads the PASV/EPSV reply, so that connection's SYN does not arrive in a new conversation and SYN (1)
is not set. A Segment has no payload bytes, so we cannot know; we report SYN for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Sequence

from handshake_probe.core.segment import Segment

if TYPE_CHECKING:
    from handshake_probe.core.flow import Flow

_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10

# packet-tcp.c TCP_COMPLETENESS_*
SYNSENT, SYNACK, ACK, DATA, FIN, RST = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

# Names as the conformance summaries spell them, in bit order.
_NAMES = ((SYNSENT, "SYN"), (SYNACK, "SYN-ACK"), (ACK, "ACK"), (DATA, "DATA"), (FIN, "FIN"), (RST, "RST"))


def later_packet_bits(flags: int, payload_len: int) -> int:
    """What a packet adds to an existing conversation (packet-tcp.c, the `else` branch)."""
    bits = 0
    syn_ack = flags & (_SYN | _ACK)
    if syn_ack == _SYN | _ACK:
        bits |= SYNACK
    elif syn_ack == _ACK:
        bits |= DATA if payload_len > 0 else ACK
    if flags & (_FIN | _ACK) == _FIN | _ACK:
        bits |= FIN
    if flags & _RST:
        bits |= RST
    return bits


def first_packet_bits(flags: int, payload_len: int) -> int:
    """What the packet that creates the conversation adds: only a pure SYN counts."""
    if flags & (_SYN | _ACK) == _SYN:
        return SYNSENT | (DATA if payload_len > 0 else 0)
    return 0


def completeness_flags(value: int) -> str:
    """`SYN|SYN-ACK|ACK|DATA|FIN` as the tshark summaries spell it; `-` for nothing (as they do)."""
    return "|".join(name for bit, name in _NAMES if value & bit) or "-"


class CompletenessObserver:
    """Per-flow observer: record fields `completeness` (int bitmask) and `completeness_flags` (str)."""

    __slots__ = ("_bits", "_first_again", "_packets")

    def __init__(self) -> None:
        self._bits = 0
        self._first_again = 0     # the first packet's contribution on tshark's second pass
        self._packets = 0

    def on_segment(self, flow: "Flow", seg: Segment, from_client: bool) -> Sequence[str]:
        flags, plen = seg.flags, seg.payload_len
        if self._packets:
            self._bits |= later_packet_bits(flags, plen)
        else:
            self._bits = first_packet_bits(flags, plen)
            self._first_again = later_packet_bits(flags, plen)
        self._packets += 1
        return ()

    @property
    def value(self) -> int:
        return self._bits | (self._first_again if self._packets > 1 else 0)

    def record(self, flow: "Flow") -> Dict[str, Any]:
        value = self.value
        return {"completeness": value, "completeness_flags": completeness_flags(value)}
