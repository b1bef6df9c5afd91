"""One side of a connection: its RFC 9293 state path and the sequence-space facts the machine needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from handshake_probe.core.states import State

MOD = 1 << 32
HALF = 1 << 31


def seq_ge(a: int, b: int) -> bool:
    """a >= b in 32-bit sequence-number arithmetic (RFC 9293 §3.4: comparisons are modulo 2**32)."""
    return (a - b) % MOD < HALF


def seq_in_window(seq: int, start: int, size: int) -> bool:
    """start <= seq < start + size, modulo 2**32 (RFC 9293 §3.10.7.4 acceptability test)."""
    return (seq - start) % MOD < max(size, 1)


@dataclass(slots=True)
class Endpoint:
    """What the capture tells about one endpoint. `state` is the current RFC 9293 state."""

    role: str                       # "client" or "server"
    addr: str
    port: int
    state: State
    path: List[State] = field(default_factory=list)
    isn: Optional[int] = None       # sequence number of this side's SYN
    base: Optional[int] = None      # origin of relative sequence numbers (ISN, or first seq - 1)
    snd_nxt: Optional[int] = None   # highest sequence number sent + its length, i.e. the peer's RCV.NXT
    fin_seq: Optional[int] = None   # sequence number occupied by this side's FIN
    window: int = 0                 # last advertised window, unscaled
    wscale: Optional[int] = None    # window-scale shift offered in the SYN (RFC 7323 §2)
    passive: bool = False           # reached SYN-RECEIVED from LISTEN (RFC 9293 §3.10.7.4 RST rule)
    packets: int = 0
    payload_bytes: int = 0
    time_wait_since: Optional[float] = None

    def __post_init__(self) -> None:
        if not self.path:
            self.path.append(self.state)

    def label(self) -> str:
        """`ip:port`, with IPv6 addresses in brackets as URLs write them."""
        return f"[{self.addr}]:{self.port}" if ":" in self.addr else f"{self.addr}:{self.port}"

    def set_initial(self, state: State) -> None:
        """Fix the state the endpoint had before the first segment that involves it."""
        self.state = state
        self.path[0] = state

    def note_sent(self, seq: int, seq_len: int, syn: bool, fin: bool, payload_len: int) -> None:
        """Track this side's send sequence space from a segment it sent."""
        if syn and self.isn is None:
            self.isn = seq
            self.base = seq
        elif self.base is None:
            self.base = (seq - 1) % MOD   # like Wireshark: the first unseen-SYN segment is relative 1
        end = (seq + seq_len) % MOD
        if self.snd_nxt is None or seq_ge(end, self.snd_nxt):
            self.snd_nxt = end
        if fin:
            self.fin_seq = (seq + payload_len + (1 if syn else 0)) % MOD
        self.packets += 1
        self.payload_bytes += payload_len

    def scaled_window(self, peer_wscale: Optional[int]) -> int:
        """Receive window in bytes; the scale applies only when both sides offered it (RFC 7323 §2.2)."""
        if self.wscale is not None and peer_wscale is not None:
            return self.window << min(self.wscale, 14)
        return self.window

    def acks_syn(self, ack: int) -> bool:
        """Does `ack` (sent by the peer) acknowledge this side's SYN?"""
        return self.isn is not None and seq_ge(ack, (self.isn + 1) % MOD)

    def acks_fin(self, ack: int) -> bool:
        """Does `ack` (sent by the peer) acknowledge this side's FIN?"""
        return self.fin_seq is not None and seq_ge(ack, (self.fin_seq + 1) % MOD)
