#!/usr/bin/env python3
"""Craft the captures the kernel will not produce on demand, with scapy, into captures/.

Simultaneous open, crossing FINs, a RST that sends a half-open server back to LISTEN, a
capture that starts mid-stream, and an out-of-window RST (RFC 5961 / RFC 9293 §3.10.7.4)
cannot be provoked on loopback without a TUN peer or firewall rules, so they are written
segment by segment here instead. Everything is fixed (timestamps, ISNs, ports, IP IDs),
so rerunning the script gives byte-identical files; each file is read back and its flag
sequence checked before the script reports it.

The segments imitate what Linux puts on lo: Ethernet with zero MACs, IPv4 with DF and
TTL 64, SYN options in Linux's order (MSS 65495, SACK-permitted, timestamps, NOP,
window scale 7), timestamps on every later segment, window 512 << 7 = 65536 bytes.

Usage:
    python scripts/craft_captures.py                  # every capture
    python scripts/craft_captures.py --only simultaneous-open [--only ...]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import rdpcap, wrpcap

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"

LINKTYPE_ETHERNET = 1
EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z; every capture starts here (fixed, not "now")
LOOPBACK_MTU_MSS = 65495  # what Linux advertises on lo (MTU 65536 - 40)
WSCALE = 7
SCALED_WINDOW = 512  # 512 << 7 = 65536 bytes of receive window after the handshake
SERVER_PORT = 8007


@dataclass
class Side:
    """One endpoint's sending state: what the next segment it sends will carry."""

    name: str
    ip: str
    port: int
    isn: int
    ts_base: int  # its TSval clock at EPOCH (RFC 7323 clocks start anywhere)
    ip_id: int
    snd_nxt: int = 0
    sent_syn: bool = False
    # (snd_nxt, tsval) after each segment sent: a "crossing" segment from the peer acks
    # and echoes the state *before* our last segment, which it had not yet received.
    history: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.snd_nxt = self.isn


class Conversation:
    """Builds the frames of one connection with the seq/ack/timestamp arithmetic done once."""

    def __init__(self, a: Side, b: Side, start: float = 0.0) -> None:
        self.sides = {a.name: a, b.name: b}
        self.now = float(EPOCH) + start  # seconds; only ever advanced by fixed amounts
        self.frames: list[Packet] = []

    def peer(self, side: Side) -> Side:
        return next(s for s in self.sides.values() if s is not side)

    def established(self, a_nxt: int, b_nxt: int, a_ts: int, b_ts: int) -> None:
        """Start mid-stream: both sides already synchronised, nothing of the handshake seen."""
        a, b = self.sides.values()
        a.snd_nxt, b.snd_nxt = a_nxt, b_nxt
        a.sent_syn = b.sent_syn = True
        a.history.append((a_nxt, a_ts))
        b.history.append((b_nxt, b_ts))

    def send(self, who: str, flags: str, payload: bytes = b"", *, after: float = 0.000020,
             seq: Optional[int] = None, crossing: bool = False, window: Optional[int] = None,
             options: bool = True) -> None:
        """Append one segment from `who`, `after` seconds after the previous frame.

        ack and TSecr default to everything the peer has sent; with crossing=True they
        reflect the peer's state before its latest segment (the two were in flight at once).
        """
        me = self.sides[who]
        other = self.peer(me)
        self.now = round(self.now + after, 6)  # whole microseconds: pcap stores usec
        tsval = me.ts_base + int(round((self.now - EPOCH) * 1000))  # a 1 kHz TS clock
        known = other.history[-2] if crossing and len(other.history) >= 2 else (
            other.history[-1] if other.history else (0, 0))
        if crossing and len(other.history) < 2:
            known = (0, 0)  # crossing the peer's very first segment: nothing received yet
        peer_nxt, peer_ts = known

        syn = "S" in flags
        if seq is None:
            seq = me.isn if syn else me.snd_nxt
        has_ack = "A" in flags
        ack = peer_nxt if has_ack else 0
        if window is None:
            window = 0 if flags == "R" else (
                (LOOPBACK_MTU_MSS if not has_ack else LOOPBACK_MTU_MSS - 12) if syn
                else SCALED_WINDOW)
        tcp_options: list[tuple[str, object]] = []
        if syn:
            tcp_options = [("MSS", LOOPBACK_MTU_MSS), ("SAckOK", b""),
                           ("Timestamp", (tsval, peer_ts if has_ack else 0)),
                           ("NOP", None), ("WScale", WSCALE)]
        elif options:
            tcp_options = [("NOP", None), ("NOP", None), ("Timestamp", (tsval, peer_ts))]

        frame = (Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00")
                 / IP(src=me.ip, dst=other.ip, ttl=64, flags="DF", id=me.ip_id)
                 / TCP(sport=me.port, dport=other.port, seq=seq % 2**32, ack=ack % 2**32,
                       flags=flags, window=window, options=tcp_options))
        if payload:
            frame = frame / Raw(payload)
        # Rebuild from bytes so lengths and checksums are fixed into the frame now.
        built = Ether(bytes(frame))
        built.time = self.now
        self.frames.append(built)

        me.ip_id = (me.ip_id + 1) % 65536
        if "R" not in flags:
            consumed = len(payload) + (1 if syn else 0) + (1 if "F" in flags else 0)
            if syn and me.sent_syn:
                consumed = 0  # the SYN-ACK of a simultaneous open re-sends our SYN
            me.sent_syn = me.sent_syn or syn
            me.snd_nxt = max(me.snd_nxt, seq + consumed)
        me.history.append((me.snd_nxt, tsval))


def client_server(client_port: int, client_isn: int, server_isn: int,
                  start: float = 0.0) -> tuple[Conversation, str, str]:
    client = Side("C", "127.0.0.1", client_port, client_isn, ts_base=2_955_525_000, ip_id=0x4d2)
    server = Side("S", "127.0.0.1", SERVER_PORT, server_isn, ts_base=2_378_152_000, ip_id=0)
    return Conversation(client, server, start), "C", "S"


def handshake(conv: Conversation, c: str, s: str) -> None:
    conv.send(c, "S", after=0.0)
    conv.send(s, "SA")
    conv.send(c, "A")


def echo_exchange(conv: Conversation, c: str, s: str, request: bytes = b"python") -> None:
    conv.send(c, "PA", request, after=0.000040)
    conv.send(s, "A")  # Linux quick-ACKs early in a connection
    conv.send(s, "PA", request.upper(), after=0.002)
    conv.send(c, "A")


# --------------------------------------------------------------------------- scenarios


def simultaneous_open() -> list[Packet]:
    """RFC 9293 §3.5 Figure 8: both ends connect() to each other at the same moment."""
    a = Side("A", "127.0.0.1", 40000, 1_000_000_000, ts_base=1_111_000_000, ip_id=0x1000)
    b = Side("B", "127.0.0.1", 40001, 3_000_000_000, ts_base=3_333_000_000, ip_id=0x2000)
    conv = Conversation(a, b)
    conv.send("A", "S", after=0.0)
    conv.send("B", "S", crossing=True)  # sent before A's SYN arrived: no ACK
    conv.send("A", "SA", crossing=False)  # A got B's SYN: SYN-RECEIVED, re-sends SYN + ACK
    conv.send("B", "SA", crossing=True)  # B got A's SYN (not yet A's SYN-ACK)
    conv.send("A", "A")  # A got B's SYN-ACK, which acks A's SYN: ESTABLISHED
    conv.send("B", "A", crossing=True)
    conv.send("A", "PA", b"python", after=0.000040)
    conv.send("B", "PA", b"PYTHON", after=0.002)  # acks A's data and carries the reply
    conv.send("A", "A")
    conv.send("A", "FA", after=0.000040)
    conv.send("B", "A")
    conv.send("B", "FA", after=0.000060)
    conv.send("A", "A")
    return conv.frames


def simultaneous_close() -> list[Packet]:
    """Both sides close at once; each FIN is sent before the other's arrives (Figure 13)."""
    conv, c, s = client_server(45678, 821_070_518, 2_490_155_690)
    handshake(conv, c, s)
    echo_exchange(conv, c, s)
    conv.send(c, "FA", after=0.000040)  # client: ESTABLISHED -> FIN-WAIT-1
    conv.send(s, "FA", crossing=True)  # server: ESTABLISHED -> FIN-WAIT-1; does not ack C's FIN
    conv.send(c, "A")  # client got S's FIN in FIN-WAIT-1: -> CLOSING, acks it
    conv.send(s, "A", crossing=True)  # server likewise: -> CLOSING, acks C's FIN
    # Each side's ACK of the other's FIN moves it CLOSING -> TIME-WAIT.
    return conv.frames


def rst_in_syn_received() -> list[Packet]:
    """SYN, SYN-ACK, then a RST from the opener: the server returns to LISTEN.

    The RST is what a host without a matching socket sends (e.g. after a SYN that was
    crafted, or a SYN scanner): no ACK bit, seq taken from the SYN-ACK's ack field
    (RFC 9293 §3.10.7.1), window 0, no options.
    """
    conv, c, s = client_server(45679, 123_456_789, 987_654_321)
    conv.send(c, "S", after=0.0)
    conv.send(s, "SA")
    conv.send(c, "R", options=False)
    return conv.frames


def mid_stream() -> list[Packet]:
    """Recording starts in the middle of an established echo session: no handshake."""
    conv, c, s = client_server(51234, 0, 0)
    conv.established(a_nxt=3_000_000_100, b_nxt=1_500_000_200, a_ts=2_955_525_000,
                     b_ts=2_378_152_000)
    conv.send(c, "PA", b"python", after=0.0)
    conv.send(s, "A")
    conv.send(s, "PA", b"PYTHON", after=0.002)
    conv.send(c, "A")
    conv.send(c, "PA", b"again", after=0.010)
    conv.send(s, "PA", b"AGAIN", after=0.002)
    conv.send(c, "A")
    conv.send(c, "FA", after=0.010)  # client closes first
    conv.send(s, "A")  # a separate ACK of the FIN: server CLOSE-WAIT, client FIN-WAIT-2
    conv.send(s, "FA", after=0.001)  # server closes: LAST-ACK
    conv.send(c, "A")  # client TIME-WAIT, server CLOSED
    return conv.frames


OUT_OF_WINDOW = 0x4000_0000  # 1 GiB beyond RCV.NXT: far outside a 64 KiB window


def rst_out_of_window() -> list[Packet]:
    """A blind RST far outside the window is dropped; a later exact one closes.

    RFC 9293 §3.10.7.4 (from RFC 5961 §3.2): a RST outside the receive window is silently
    discarded; one whose seq is exactly RCV.NXT resets the connection.
    """
    conv, c, s = client_server(45680, 700_000_000, 1_900_000_000)
    handshake(conv, c, s)
    echo_exchange(conv, c, s)
    client = conv.sides[c]
    # Spoofed as from the client: seq = client's SND.NXT + 1 GiB, no ACK, no options.
    conv.send(c, "R", seq=client.snd_nxt + OUT_OF_WINDOW, after=0.5, options=False)
    # The server ignores it and sends nothing; the session carries on.
    conv.send(c, "PA", b"still here", after=0.5)
    conv.send(s, "A")
    conv.send(s, "PA", b"STILL HERE", after=0.002)
    conv.send(c, "A")
    # The client aborts (SO_LINGER 0): RST|ACK with seq exactly the server's RCV.NXT.
    conv.send(c, "RA", after=0.2)
    return conv.frames


# --------------------------------------------------------------------------- checking


def letters(flags: int) -> str:
    """tcpdump's notation: S, S., ., P., F., R, R."""
    text = "".join(letter for bit, letter in ((0x02, "S"), (0x01, "F"), (0x08, "P"),
                                              (0x04, "R")) if flags & bit)
    return text + "." if flags & 0x10 else text


def ladder(frames: Sequence[Packet], first_port: int) -> list[str]:
    return [("A" if f[TCP].sport == first_port else "B") + ":" + letters(int(f[TCP].flags))
            for f in frames]


@dataclass(frozen=True)
class Crafted:
    name: str
    build: Callable[[], list[Packet]]
    first_port: int  # the port of the side drawn as "A" (the client, or A in simultaneous open)
    expected: tuple[str, ...]  # the flag ladder the file must show


CRAFTED: tuple[Crafted, ...] = (
    Crafted("simultaneous-open", simultaneous_open, 40000,
            ("A:S", "B:S", "A:S.", "B:S.", "A:.", "B:.", "A:P.", "B:P.", "A:.",
             "A:F.", "B:.", "B:F.", "A:.")),
    Crafted("simultaneous-close", simultaneous_close, 45678,
            ("A:S", "B:S.", "A:.", "A:P.", "B:.", "B:P.", "A:.", "A:F.", "B:F.", "A:.", "B:.")),
    Crafted("rst-in-syn-received", rst_in_syn_received, 45679, ("A:S", "B:S.", "A:R")),
    Crafted("mid-stream", mid_stream, 51234,
            ("A:P.", "B:.", "B:P.", "A:.", "A:P.", "B:P.", "A:.", "A:F.", "B:.", "B:F.", "A:.")),
    Crafted("rst-out-of-window", rst_out_of_window, 45680,
            ("A:S", "B:S.", "A:.", "A:P.", "B:.", "B:P.", "A:.", "A:R", "A:P.", "B:.", "B:P.",
             "A:.", "A:R.")),
)
BY_NAME = {c.name: c for c in CRAFTED}


def check_arithmetic(name: str, frames: Sequence[Packet]) -> None:
    """Timestamps strictly increase; every ACK acknowledges at most what the peer sent."""
    sent: dict[int, int] = {}  # source port -> highest seq + len sent so far
    times = [float(f.time) for f in frames]
    if any(b <= a for a, b in zip(times, times[1:])):
        raise SystemExit(f"{name}: timestamps do not increase")
    for i, f in enumerate(frames, 1):
        tcp = f[TCP]
        flags = int(tcp.flags)
        length = len(tcp.payload) + (1 if flags & 0x02 else 0) + (1 if flags & 0x01 else 0)
        if flags & 0x10 and tcp.dport in sent and tcp.ack > sent[tcp.dport]:
            raise SystemExit(f"{name}: frame {i} acks data its peer never sent")
        if not flags & 0x04:
            sent[tcp.sport] = max(sent.get(tcp.sport, 0), tcp.seq + length)


def write(crafted: Crafted, out_dir: Path) -> None:
    frames = crafted.build()
    path = out_dir / f"{crafted.name}.pcap"
    wrpcap(str(path), frames, linktype=LINKTYPE_ETHERNET)
    back = rdpcap(str(path))
    got = tuple(ladder(back, crafted.first_port))
    if got != crafted.expected:
        raise SystemExit(f"{crafted.name}: wrote {got}, expected {crafted.expected}")
    check_arithmetic(crafted.name, back)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"wrote {shown}: {len(back)} packets, sha256 {digest}")
    print(f"  {' '.join(got)}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=list(BY_NAME), metavar="NAME",
                        help="write only this capture (repeatable); one of: "
                        + ", ".join(BY_NAME))
    parser.add_argument("--out-dir", type=Path, default=CAPTURES)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for crafted in ([BY_NAME[n] for n in args.only] if args.only else CRAFTED):
        write(crafted, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
