"""The prober's end of a connection: Scapy crafts each segment, the engine decodes each answer, and every
answer is checked against what RFC 9293 says it must carry.

The peer keeps only the sequence variables RFC 9293 §3.3.1 names (ISS, SND.NXT, IRS, RCV.NXT); it is not
a TCP implementation. Each scenario says which segment to send next and which answer it expects.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from handshake_probe import FLAGS
from handshake_probe._engine import tcpdump_flags
from handshake_probe.prober.family import canonical
from handshake_probe.prober.link import Got, Link

__all__ = ["ProbeFailure", "RawPeer", "describe", "MOD", "FIN", "SYN", "RST", "PSH", "ACK"]

MOD = 1 << 32            # sequence numbers are modulo 2**32 (RFC 9293 §3.4)
# Flag bits, from the engine's vocabulary.
FIN, SYN, RST, PSH, ACK = (FLAGS[n] for n in ("FIN", "SYN", "RST", "PSH", "ACK"))
_WINDOW = 65535          # no window scaling is offered, so this is the window in bytes (RFC 7323 §2.2)

# Our flag spelling for `send`: tcpdump's letters, "A" for ACK.
_BITS = {"F": FIN, "S": SYN, "R": RST, "P": PSH, "A": ACK}


class ProbeFailure(Exception):
    """An answer that is not what the scenario expected (or no answer at all); the message says both."""


def describe(got: Got) -> str:
    seg = got.seg
    text = f"{tcpdump_flags(seg.flags)} seq {seg.seq}"
    if seg.flags & ACK:
        text += f" ack {seg.ack}"
    return text + f" len {seg.payload_len}"


class RawPeer:
    """One connection as the prober plays it, from (addr, port) to the kernel's (addr, port)."""

    def __init__(self, link: Link, port: int, remote: tuple[str, int], isn: int, timeout: float) -> None:
        self.link = link
        self.local = (link.prober_addr, port)
        self.remote = (canonical(remote[0]), remote[1])
        self.iss = isn % MOD              # RFC 9293 §3.4.1: our initial send sequence number
        self.snd_nxt = self.iss
        self.irs: Optional[int] = None    # the peer's ISN, learnt from its SYN
        self.rcv_nxt: Optional[int] = None
        self.timeout = timeout
        self.open = False                 # True once a segment was sent; a failed scenario then resets
        self.fin_seen = False             # the kernel's FIN has arrived
        self.last: Optional[Got] = None   # the last segment received

    # ------------------------------------------------------------------ sending
    def send(self, flags: str, payload: bytes = b"", seq: Optional[int] = None,
             ack: Optional[int] = None) -> None:
        """Craft and send one segment; SND.NXT advances by its sequence space (RFC 9293 §3.4)."""
        bits = 0
        for ch in flags:
            bits |= _BITS[ch]
        if seq is None:
            seq = self.snd_nxt
        if ack is None:
            ack = self.rcv_nxt if bits & ACK and self.rcv_nxt is not None else 0
        # Scapy is the edge that crafts (the core never imports it); imported on first use so that the
        # argument parser and the privilege check stay light and work without it.
        from scapy.layers.inet import TCP

        family = self.link.family
        options = [("MSS", family.mss)] if bits & SYN else []
        # Scapy fills in the TCP checksum over the family's pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1).
        packet = (family.ip(self.local[0], self.remote[0])
                  / TCP(sport=self.local[1], dport=self.remote[1], seq=seq, ack=ack, flags=bits,
                        window=_WINDOW, options=options))
        if payload:
            packet = packet / payload
        self.link.send(bytes(packet))
        self.open = True
        length = len(payload) + (1 if bits & SYN else 0) + (1 if bits & FIN else 0)
        if seq == self.snd_nxt or bits & SYN:
            self.snd_nxt = (seq + length) % MOD

    # ------------------------------------------------------------------ receiving
    def receive(self, what: str, timeout: Optional[float] = None) -> Got:
        """The next segment of this connection from the kernel; RCV.NXT follows in-order segments."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            got = self.link.next(deadline - time.monotonic())
            if got is None:
                raise ProbeFailure(f"expected {what}, got nothing within "
                                   f"{self.timeout if timeout is None else timeout:g} s")
            seg = got.seg
            if (seg.src, seg.sport) != self.remote or seg.dport != self.local[1]:
                continue   # another connection of this scenario (none today), not ours to judge
            self.last = got
            if seg.flags & FIN:
                self.fin_seen = True
            if seg.flags & SYN:
                self.irs = seg.seq
                self.rcv_nxt = (seg.seq + seg.seq_len) % MOD
            elif self.rcv_nxt is not None and seg.seq == self.rcv_nxt and not seg.flags & RST:
                self.rcv_nxt = (seg.seq + seg.seq_len) % MOD
            return got

    def poll(self, timeout: float) -> Optional[Got]:
        """The next segment of this connection, or None after `timeout` seconds."""
        try:
            return self.receive("a segment", timeout)
        except ProbeFailure:
            return None

    def expect(self, want: str, what: str, ack: Optional[int] = None, seq: Optional[int] = None,
               skip: Callable[[Got], bool] = lambda g: False, timeout: Optional[float] = None) -> Got:
        """The next segment must carry exactly the flags `want` (tcpdump letters) and the given
        seq/ack; segments for which `skip` is true are let through first (e.g. a separate ACK)."""
        while True:
            got = self.receive(what, timeout)
            if skip(got):
                continue
            seg = got.seg
            problems = []
            if tcpdump_flags(seg.flags) != want:
                problems.append(f"flags {tcpdump_flags(seg.flags)}")
            if ack is not None and seg.ack != ack % MOD:
                problems.append(f"ack {seg.ack} (expected {ack % MOD})")
            if seq is not None and seg.seq != seq % MOD:
                problems.append(f"seq {seg.seq} (expected {seq % MOD})")
            if problems:
                raise ProbeFailure(f"expected {what} ({want}), got {describe(got)}: {', '.join(problems)}")
            return got

    def data(self, size: int, what: str) -> bytes:
        """Collect `size` payload bytes from in-order segments; pure ACKs on the way are fine, and a
        retransmission (a sequence number already received) adds nothing (RFC 9293 §3.10.7.4)."""
        chunks = b""
        while len(chunks) < size:
            expected = self.rcv_nxt
            got = self.receive(what)
            seg = got.seg
            if seg.flags & (SYN | RST):
                raise ProbeFailure(f"expected {what}, got {describe(got)}")
            if seg.seq == expected:
                chunks += got.payload
            if seg.flags & FIN:
                break
        return chunks

    def abort(self) -> None:
        """RST carrying SND.NXT: in the receiver's window, so it is acceptable (RFC 9293 §3.10.7.4)."""
        self.send("RA")
