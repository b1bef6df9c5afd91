"""TEMPORARY: the Python core's conversation builder (the old tests/talk.py), for the test files not
yet moved to the engine's (tests/talk.py). Goes with the core."""

from __future__ import annotations

from typing import List, Optional

from handshake_probe.core.flows import FlowTable
from handshake_probe.core.segment import NO_OPTIONS, Flags, Segment, TcpOptions

_LETTERS = {"F": Flags.FIN, "S": Flags.SYN, "R": Flags.RST, "P": Flags.PSH, "A": Flags.ACK,
            "U": Flags.URG, "E": Flags.ECE, "C": Flags.CWR, "N": Flags.NS}


def flags_of(text: str) -> int:
    value = 0
    for ch in text:
        value |= _LETTERS[ch]
    return value


class Talk:
    """Client 10.0.0.1:40000 talks to server 10.0.0.2:80 (or the addresses given)."""

    def __init__(self, cisn: int = 1000, sisn: int = 5000, client=("10.0.0.1", 40000),
                 server=("10.0.0.2", 80), msl: float = 30.0, t0: float = 100.0) -> None:
        self.client, self.server = client, server
        self.nxt = {"c": cisn, "s": sisn}
        self.isn = {"c": cisn, "s": sisn}
        self.ts = t0
        self.frame = 0
        self.table = FlowTable(msl=msl, keep_rows=lambda n: True)
        self.segments: List[Segment] = []

    def _send(self, side: str, flags: str, length: int, seq: Optional[int], ack: Optional[int],
              window: int, dt: float, options: TcpOptions) -> Segment:
        other = "s" if side == "c" else "c"
        f = flags_of(flags)
        if seq is None:
            seq = self.nxt[side]
            if f & Flags.SYN:
                seq = self.isn[side]
        if ack is None:
            ack = self.nxt[other] if f & Flags.ACK else 0
        src, dst = (self.client, self.server) if side == "c" else (self.server, self.client)
        self.ts += dt
        self.frame += 1
        seg = Segment(self.ts, self.frame, src[0], src[1], dst[0], dst[1], seq % (1 << 32),
                      ack % (1 << 32), f, window, length, options, 6 if ":" in src[0] else 4)
        end = (seq + length + (1 if f & Flags.SYN else 0) + (1 if f & Flags.FIN else 0))
        if (end - self.nxt[side]) % (1 << 32) < (1 << 31):
            self.nxt[side] = end
        self.segments.append(seg)
        self.table.add(seg)
        return seg

    def c(self, flags: str, length: int = 0, seq: Optional[int] = None, ack: Optional[int] = None,
          window: int = 65535, dt: float = 0.001, options: TcpOptions = NO_OPTIONS) -> Segment:
        return self._send("c", flags, length, seq, ack, window, dt, options)

    def s(self, flags: str, length: int = 0, seq: Optional[int] = None, ack: Optional[int] = None,
          window: int = 65535, dt: float = 0.001, options: TcpOptions = NO_OPTIONS) -> Segment:
        return self._send("s", flags, length, seq, ack, window, dt, options)

    def handshake(self) -> "Talk":
        self.c("S")
        self.s("SA")
        self.c("A")
        return self

    def new_client_isn(self, isn: int) -> None:
        self.isn["c"] = self.nxt["c"] = isn

    def new_server_isn(self, isn: int) -> None:
        self.isn["s"] = self.nxt["s"] = isn

    @property
    def flows(self):
        return self.table.flows

    def finish(self):
        return self.table.finish()
