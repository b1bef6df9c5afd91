"""Deterministic generator of large captures for the benchmarks.

    python bench/gen_capture.py /tmp/bench-1m.pcap --flows 100000

Writes Ethernet/IPv4 and IPv6 TCP flows, interleaved like a busy server's traffic: echo sessions with a
FIN close, RST closes, refused connections, SYNs that are never answered (retransmitted), data
retransmissions, and client 4-tuples that repeat (port reuse). Same arguments, same bytes: the random
generator is seeded. Headers are packed with struct (scapy would take minutes for a million packets);
checksums are left zero, as NIC offload leaves them in many real captures.
"""

from __future__ import annotations

import argparse
import heapq
import random
import struct
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handshake_probe.pcapwriter import PcapWriter  # noqa: E402

ETH4 = b"\x00" * 12 + b"\x08\x00"
ETH6 = b"\x00" * 12 + b"\x86\xdd"
IP4 = struct.Struct("!BBHHHBBH4s4s")
IP6 = struct.Struct("!IHBB16s16s")
TCP = struct.Struct("!HHIIBBHHH")
SYN_OPTS = bytes.fromhex("020405b40402080a0000000000000000010303 07".replace(" ", ""))  # MSS, SACKOK, TS, WS

F, S, R, P, A = 0x01, 0x02, 0x04, 0x08, 0x10
Packet = Tuple[float, bytes]


def frame(v6: bool, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
          payload: int = 0) -> bytes:
    opts = SYN_OPTS if flags & S else b""
    tcp = TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (5 + len(opts) // 4) << 4, flags,
                   65535, 0, 0) + opts + b"x" * payload
    if v6:
        return ETH6 + IP6.pack(0x60000000, len(tcp), 6, 64, src, dst) + tcp
    return ETH4 + IP4.pack(0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst) + tcp


class Conversation:
    """One flow's packets, built from its kind; `isn` values are seeded per flow."""

    def __init__(self, rnd: random.Random, kind: str, client: Tuple[bytes, int], server: Tuple[bytes, int],
                 v6: bool, t0: float) -> None:
        self.rnd, self.kind, self.v6, self.t = rnd, kind, v6, t0
        self.c, self.s = client, server
        self.cseq, self.sseq = rnd.getrandbits(32), rnd.getrandbits(32)

    def _pkt(self, from_client: bool, flags: int, payload: int = 0, seq: int | None = None,
             ack: int | None = None, dt: float = 0.0002) -> Packet:
        self.t += dt
        (src, sp), (dst, dp) = (self.c, self.s) if from_client else (self.s, self.c)
        own, other = (self.cseq, self.sseq) if from_client else (self.sseq, self.cseq)
        data = frame(self.v6, src, dst, sp, dp, own if seq is None else seq,
                     (other if ack is None else ack) if flags & A else 0, flags, payload)
        used = payload + (1 if flags & (S | F) else 0)
        if seq is None:
            if from_client:
                self.cseq += used
            else:
                self.sseq += used
        return self.t, data

    def packets(self) -> List[Packet]:
        k, out = self.kind, []
        if k == "no-answer":
            isn = self.cseq
            for i in range(3):
                out.append(self._pkt(True, S, seq=isn, dt=1.0 * (2 ** i) if i else 0.0002))
            return out
        out.append(self._pkt(True, S))
        if k == "refused":
            out.append(self._pkt(False, R | A, seq=0, ack=self.cseq))
            return out
        out += [self._pkt(False, S | A), self._pkt(True, A)]
        request = self.rnd.choice((6, 64, 300, 1200))
        out.append(self._pkt(True, P | A, request))
        if k == "retransmit":
            out.append(self._pkt(True, P | A, request, seq=self.cseq - request, dt=0.2))
        out.append(self._pkt(False, A))
        out.append(self._pkt(False, P | A, request))
        out.append(self._pkt(True, A))
        if k == "rst":
            out.append(self._pkt(True, R | A))
            return out
        out += [self._pkt(True, F | A), self._pkt(False, F | A), self._pkt(True, A)]
        return out


KINDS = (("fin", 70), ("rst", 10), ("retransmit", 8), ("refused", 6), ("no-answer", 1))


def conversations(flows: int, seed: int, reuse_ports: int) -> Iterator[Conversation]:
    rnd = random.Random(seed)
    kinds = [k for k, w in KINDS for _ in range(w)]
    t = 1_700_000_000.0
    server4, server6 = (bytes([10, 1, 0, 1]), 80), (bytes.fromhex("20010db8" + "00" * 11 + "01"), 443)
    busy_until: dict[int, float] = {}
    for i in range(flows):
        v6 = rnd.random() < 0.15
        t += rnd.expovariate(2_000.0)      # new connections per second: 1M packets span ~50 s
        # A small pool of client 4-tuples makes ports repeat, as on a loopback load test; never two
        # connections on one 4-tuple at once (the kernel would not allow it).
        slot = reuse_ports + i
        if rnd.random() < 0.2:
            pick = rnd.randrange(reuse_ports)
            if busy_until.get(pick, 0.0) < t:
                slot = pick
        addr = (bytes.fromhex("20010db8" + "00" * 8 + f"{slot:08x}") if v6
                else bytes([10, 0, (slot >> 8) & 255, slot & 255]))
        port = 1024 + (slot * 7919) % 60000
        conv = Conversation(rnd, rnd.choice(kinds), (addr, port), server6 if v6 else server4, v6, t)
        yield conv
        busy_until[slot] = conv.t + 0.01


def generate(path: str, flows: int, seed: int = 1, reuse_ports: int = 500) -> int:
    """Write the packets of all conversations in time order (a heap of packets not yet due), so flows
    overlap as on a busy server; memory holds only the conversations in flight. Returns the count."""
    heap: List[Tuple[float, int, bytes]] = []
    written = order = 0
    with PcapWriter(path, 1) as writer:
        for conv in conversations(flows, seed, reuse_ports):
            while heap and heap[0][0] <= conv.t:
                ts, _, data = heapq.heappop(heap)
                writer.write(ts, data)
                written += 1
            for ts, data in conv.packets():
                order += 1
                heapq.heappush(heap, (ts, order, data))
        while heap:
            ts, _, data = heapq.heappop(heap)
            writer.write(ts, data)
            written += 1
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    n = generate(args.out, args.flows, args.seed)
    print(f"wrote {args.out}: {n} packets, {args.flows} flows")


if __name__ == "__main__":
    main()
