#!/usr/bin/env python3
"""Craft one capture per TCP anomaly kind into captures/anomalies/, with scapy.

Each capture holds each anomaly exactly as many times as captures/anomalies/README.md says, and
tests/test_anomalies.py checks those counts. A kernel will not retransmit, reorder, lose or probe on
demand on loopback, so the segments are written one by one here. Everything is fixed (timestamps in
whole microseconds, ISNs, ports, IP IDs, payload bytes), so a rerun gives byte-identical files; each
file is read back and its flag sequence checked before the script reports it.

The segments imitate Linux on lo, as scripts/craft_captures.py does: Ethernet with zero MACs, IPv4 with
DF and TTL 64 (IPv6: hop limit 64), SYN options in Linux's order (MSS, SACK-permitted, timestamps, NOP,
window scale 7), timestamps on every later segment, window 512 << 7 = 65536 bytes after the handshake.

Usage:
    python scripts/craft_anomalies.py                       # every capture
    python scripts/craft_anomalies.py --only keep-alive [--only ...]
    python scripts/craft_anomalies.py --check-tshark        # also compare tshark's analysis flags
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapWriter, rdpcap

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "captures" / "anomalies"

LINKTYPE_ETHERNET = 1
EPOCH_US = 1_700_000_000 * 1_000_000  # 2023-11-14T22:13:20Z, in microseconds: time is kept as integers
MSS_V4, MSS_V6 = 65495, 65476        # lo's MTU 65536 minus the IP and TCP headers
WSCALE = 7
WINDOW = 512                         # 512 << 7 = 65536 bytes after the handshake
SERVER_PORT = 8007


@dataclass
class Side:
    """One endpoint: what the next segment it sends will carry."""

    ip: str
    port: int
    isn: int
    ts_base: int                     # its RFC 7323 TSval clock at EPOCH (clocks start anywhere)
    ip_id: int
    snd_nxt: int = 0                 # next sequence number, including segments the capture missed
    last_tsval: int = 0

    def __post_init__(self) -> None:
        self.snd_nxt = self.isn


@dataclass
class Frame:
    data: bytes
    us: int                          # capture time, microseconds since the Unix epoch
    wirelen: int                     # > len(data) for a frame cut by snaplen


class Conversation:
    """Builds the frames of one connection; seq, ack and timestamps are computed once, here."""

    def __init__(self, client: Side, server: Side, frames: List[Frame], start_us: int = 0,
                 ipv6: bool = False) -> None:
        self.sides = {"C": client, "S": server}
        self.frames = frames         # shared when several connections go into one file
        self.now = EPOCH_US + start_us
        self.ipv6 = ipv6

    def send(self, who: str, flags: str, payload: bytes = b"", *, after: float = 0.000020,
             seq: Optional[int] = None, ack: Optional[int] = None, window: Optional[int] = None,
             sack: Sequence[Tuple[int, int]] = (), captured: bool = True, bad_checksum: bool = False,
             snaplen: Optional[int] = None) -> None:
        """One segment from `who` ("C" or "S"), `after` seconds after the previous one.

        seq defaults to the sender's next sequence number (its ISN for a SYN), ack to everything the
        peer has sent (also what the capture missed). `captured=False` sends it without writing it
        (a segment the capture point did not see); `bad_checksum` writes a wrong TCP checksum;
        `snaplen` cuts the stored frame to that many bytes (its wire length stays whole)."""
        me = self.sides[who]
        other = self.sides["S" if who == "C" else "C"]
        self.now += round(after * 1_000_000)
        tsval = me.ts_base + (self.now - EPOCH_US) // 1000      # a 1 kHz TS clock
        syn = "S" in flags
        if seq is None:
            seq = me.isn if syn else me.snd_nxt
        if ack is None:
            ack = other.snd_nxt if "A" in flags else 0
        if window is None:
            mss = MSS_V6 if self.ipv6 else MSS_V4
            window = 0 if flags == "R" else (mss if flags == "S" else mss - 12) if syn else WINDOW
        options: List[Tuple[str, object]]
        if syn:
            options = [("MSS", MSS_V6 if self.ipv6 else MSS_V4), ("SAckOK", b""),
                       ("Timestamp", (tsval, other.last_tsval if "A" in flags else 0)),
                       ("NOP", None), ("WScale", WSCALE)]
        else:
            options = [("NOP", None), ("NOP", None), ("Timestamp", (tsval, other.last_tsval))]
            if sack:
                options += [("NOP", None), ("NOP", None),
                            ("SAck", tuple(edge % 2**32 for block in sack for edge in block))]
        if self.ipv6:
            net: Packet = IPv6(src=me.ip, dst=other.ip, hlim=64)
        else:
            net = IP(src=me.ip, dst=other.ip, ttl=64, flags="DF", id=me.ip_id)
        tcp = TCP(sport=me.port, dport=other.port, seq=seq % 2**32, ack=ack % 2**32, flags=flags,
                  window=window, options=options)
        frame = Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00") / net / tcp
        if payload:
            frame = frame / Raw(payload)
        data = bytes(frame)                      # lengths and the right checksum are fixed here
        if bad_checksum:
            good = Ether(data)[TCP].chksum
            frame[TCP].chksum = good ^ 0x5A5A    # wrong, and not the ones'-complement twin of the right one
            data = bytes(frame)
        if captured:
            cut = data[:snaplen] if snaplen is not None else data
            self.frames.append(Frame(cut, self.now, len(data)))

        me.ip_id = (me.ip_id + 1) % 65536
        me.last_tsval = tsval
        if "R" not in flags:
            me.snd_nxt = max(me.snd_nxt, seq + len(payload) + syn + ("F" in flags))

    def handshake(self, rtt: float = 0.000040) -> None:
        """SYN, SYN-ACK, ACK; `rtt` from the SYN to the ACK (Wireshark's initial RTT)."""
        self.send("C", "S", after=0.0)
        self.send("S", "SA", after=rtt / 2)
        self.send("C", "A", after=rtt / 2)

    def echo(self) -> None:
        """`python` and `PYTHON`, the project's echo exchange, with the client's ACK."""
        self.send("C", "PA", b"python", after=0.000050)
        self.send("S", "PA", b"PYTHON", after=0.000030)
        self.send("C", "A", after=0.000010)

    def close(self) -> None:
        """Client closes first; Linux's 3-segment close (the server's FIN carries the ACK of ours)."""
        self.send("C", "FA", after=0.000100)
        self.send("S", "FA", after=0.000060)
        self.send("C", "A", after=0.000010)


def client_server(client_port: int, client_isn: int, server_isn: int, frames: List[Frame],
                  start_us: int = 0, ipv6: bool = False) -> Conversation:
    host = "::1" if ipv6 else "127.0.0.1"
    client = Side(host, client_port, client_isn, ts_base=3_141_592_000, ip_id=0x1F40)
    server = Side(host, SERVER_PORT, server_isn, ts_base=2_718_281_000, ip_id=0)
    return Conversation(client, server, frames, start_us, ipv6)


def data(n: int, seed: int = 0) -> bytes:
    """n deterministic payload bytes."""
    return bytes((seed + i * 7) % 251 for i in range(n))


# --- the captures ----------------------------------------------------------------------------------
# Each builder returns its frames; the expected flag sequence is checked after writing.

def retransmission_data() -> List[Frame]:
    """The client's data is lost on the way; after an RTO (200 ms) the client sends it again."""
    frames: List[Frame] = []
    c = client_server(40100, 1_000_000_000, 2_000_000_000, frames)
    c.handshake()
    c.send("C", "PA", b"python", after=0.000050)
    c.send("C", "PA", b"python", after=0.200, seq=c.sides["C"].isn + 1)   # the retransmission
    c.send("S", "A", after=0.000020)
    c.send("S", "PA", b"PYTHON", after=0.000030)
    c.send("C", "A", after=0.000010)
    c.close()
    return frames


def retransmission_syn() -> List[Frame]:
    """The first SYN is lost (resent after 1 s, same ISN); then the client's ACK of the SYN-ACK is lost,
    so the server resends its SYN-ACK after 1 s and the client acknowledges it again."""
    frames: List[Frame] = []
    c = client_server(40101, 1_000_000_100, 2_000_000_100, frames)
    c.send("C", "S", after=0.0)
    c.send("C", "S", after=1.0)                      # SYN retransmission (same ISN)
    c.send("S", "SA", after=0.000020)
    c.send("C", "A", after=0.000020, captured=False)  # lost before the capture point (at the server)
    c.send("S", "SA", after=1.0)                     # SYN-ACK retransmission
    c.send("C", "A", after=0.000020)
    c.echo()
    c.close()
    return frames


def retransmission_fin() -> List[Frame]:
    """The client's FIN is lost; it is sent again after 200 ms; then a 4-segment close."""
    frames: List[Frame] = []
    c = client_server(40102, 1_000_000_200, 2_000_000_200, frames)
    c.handshake()
    c.echo()
    fin_seq = c.sides["C"].snd_nxt
    c.send("C", "FA", after=0.000100)
    c.send("C", "FA", after=0.200, seq=fin_seq)     # FIN retransmission
    c.send("S", "A", after=0.000020)
    c.send("S", "FA", after=0.000050)
    c.send("C", "A", after=0.000010)
    return frames


def fast_retransmission() -> List[Frame]:
    """Captured at the sender: the first of four 1000-byte segments is lost; each later one makes the
    receiver send a duplicate ACK with a SACK block; after the third the sender resends the segment."""
    frames: List[Frame] = []
    c = client_server(40103, 1_000_000_300, 2_000_000_300, frames)
    c.handshake()
    c.echo()
    first = c.sides["C"].snd_nxt
    for i in range(4):
        c.send("C", "PA" if i == 3 else "A", data(1000, i), after=0.000010)
    for i in range(1, 4):
        c.send("S", "A", after=0.000030, ack=first, sack=[(first + 1000, first + 1000 * (i + 1))])
    c.send("C", "A", data(1000, 0), after=0.000015, seq=first)   # the fast retransmission
    c.send("S", "A", after=0.000030)
    c.close()
    return frames


def spurious_retransmission() -> List[Frame]:
    """The server's ACK of `python` is delayed past the client's RTO: the client resends data that was
    already acknowledged, and the server answers the duplicate at once with a D-SACK duplicate ACK."""
    frames: List[Frame] = []
    c = client_server(40104, 1_000_000_400, 2_000_000_400, frames)
    c.handshake()
    start = c.sides["C"].snd_nxt
    c.send("C", "PA", b"python", after=0.000050)
    c.send("S", "A", after=0.210)                    # the ACK, late
    c.send("C", "PA", b"python", after=0.000005, seq=start)      # spurious retransmission
    c.send("S", "A", after=0.000020, sack=[(start, start + 6)])  # D-SACK (RFC 2883): a duplicate ACK
    c.send("S", "PA", b"PYTHON", after=0.000030)
    c.send("C", "A", after=0.000010)
    c.close()
    return frames


def out_of_order() -> List[Frame]:
    """Captured at the receiver, handshake RTT 10 ms: two 1000-byte segments swap places on the way.
    The later one arrives first ("previous segment not captured"), the receiver sends a duplicate ACK
    with a SACK block at once (RFC 5681 §4.2), and the earlier one arrives 1 ms later: out-of-order."""
    frames: List[Frame] = []
    c = client_server(40105, 1_000_000_500, 2_000_000_500, frames)
    c.handshake(rtt=0.010)
    c.echo()
    first = c.sides["C"].snd_nxt
    c.send("C", "A", data(1000, 1), after=0.000500, seq=first + 1000)
    c.send("S", "A", after=0.000020, ack=first, sack=[(first + 1000, first + 2000)])
    c.send("C", "PA", data(1000, 0), after=0.001000, seq=first)  # out-of-order
    c.send("S", "A", after=0.000020, ack=first + 2000)
    c.close()
    return frames


def lost_segment() -> List[Frame]:
    """The capture misses one 1000-byte client segment (dropped by the capture, not the network): the
    next one shows a gap ("previous segment not captured") and the server's ACK covers data the capture
    never held ("ACKed unseen segment")."""
    frames: List[Frame] = []
    c = client_server(40106, 1_000_000_600, 2_000_000_600, frames)
    c.handshake()
    c.echo()
    c.send("C", "A", data(1000, 0), after=0.000050, captured=False)
    c.send("C", "PA", data(1000, 1), after=0.000010)
    c.send("S", "A", after=0.000030)
    c.close()
    return frames


def zero_window() -> List[Frame]:
    """The server's application stops reading: it advertises window 0. The client probes with one byte
    of new data (RFC 9293 §3.8.6.1) twice, and each probe is answered with window 0 and the same ACK;
    then the application reads and the server reopens the window (a window update)."""
    frames: List[Frame] = []
    c = client_server(40107, 1_000_000_700, 2_000_000_700, frames)
    c.handshake()
    c.echo()
    c.send("C", "PA", data(1000, 0), after=0.000050)
    c.send("S", "A", after=0.000030, window=0)
    edge = c.sides["C"].snd_nxt
    c.send("C", "A", data(1, 1), after=0.200, seq=edge)        # zero-window probe
    c.send("S", "A", after=0.000020, window=0, ack=edge)       # still zero: the byte is not taken
    c.send("C", "A", data(1, 1), after=0.400, seq=edge)        # probe again (backed off)
    c.send("S", "A", after=0.000020, window=0, ack=edge)
    c.send("S", "A", after=0.300, ack=edge)                   # the application read: window update
    c.sides["C"].snd_nxt = edge
    c.send("C", "PA", data(1000, 1), after=0.000030)
    c.send("S", "A", after=0.000030)
    c.close()
    return frames


def window_full() -> List[Frame]:
    """The server advertises 8 << 7 = 1024 bytes of window; the client sends exactly 1024 bytes."""
    frames: List[Frame] = []
    c = client_server(40108, 1_000_000_800, 2_000_000_800, frames)
    c.handshake()
    c.send("C", "PA", b"python", after=0.000050)
    c.send("S", "A", after=0.000030, window=8)
    c.send("C", "PA", data(1024, 3), after=0.000020)         # reaches the window's right edge
    c.send("S", "A", after=0.000030)
    c.close()
    return frames


def keep_alive() -> List[Frame]:
    """An idle connection with SO_KEEPALIVE: twice, 75 s apart, the client sends a keep-alive (no data,
    seq = SND.NXT - 1, as Linux does) and the server answers with its last ACK again."""
    frames: List[Frame] = []
    c = client_server(40109, 1_000_000_900, 2_000_000_900, frames)
    c.handshake()
    c.echo()
    for _ in range(2):
        c.send("C", "A", after=75.0, seq=c.sides["C"].snd_nxt - 1)
        c.send("S", "A", after=0.000020)
    c.close()
    return frames


def reused_ports() -> List[Frame]:
    """Two connections on the same 4-tuple, one second apart: the second SYN, with a new ISN, takes over
    the first one's TIME-WAIT (Linux with a bound client port)."""
    frames: List[Frame] = []
    first = client_server(40110, 1_000_001_000, 2_000_001_000, frames)
    first.handshake()
    first.echo()
    first.close()
    second = client_server(40110, 1_000_065_000, 2_000_065_000, frames,
                           start_us=first.now - EPOCH_US + 1_000_000)
    second.handshake()
    second.echo()
    second.close()
    return frames


def bad_checksum() -> List[Frame]:
    """Two connections, IPv4 and IPv6, each with one segment whose TCP checksum is wrong (corrupted on
    the way: the receiver drops it; each is a pure ACK whose loss nothing else shows). A third wrong
    checksum sits in a frame cut by snaplen, where no checksum can be checked: it must not count."""
    frames: List[Frame] = []
    v4 = client_server(40111, 1_000_001_100, 2_000_001_100, frames)
    v4.send("C", "S", after=0.0)
    v4.send("S", "SA")
    v4.send("C", "A", bad_checksum=True)            # the handshake's ACK; the next segment acks again
    v4.send("C", "PA", b"python", after=0.000050)
    v4.send("S", "PA", b"PYTHON", after=0.000030, bad_checksum=True, snaplen=64)  # cut: unverifiable
    v4.send("C", "A", after=0.000010)
    v4.close()
    v6 = client_server(40112, 1_000_001_200, 2_000_001_200, frames, start_us=v4.now - EPOCH_US + 1000,
                       ipv6=True)
    v6.handshake()
    v6.send("C", "PA", b"python", after=0.000050)
    v6.send("S", "PA", b"PYTHON", after=0.000030)
    v6.send("C", "A", after=0.000010, bad_checksum=True)   # its ACK is repeated by the client's FIN
    v6.close()
    return frames


@dataclass
class Capture:
    name: str
    build: Callable[[], List[Frame]]
    flags: str                      # expected flag sequence, tcpdump letters ("." = ACK), space-separated


CAPTURES: Dict[str, Capture] = {c.name: c for c in [
    Capture("retransmission-data", retransmission_data, "S S. . P. P. . P. . F. F. ."),
    Capture("retransmission-syn", retransmission_syn, "S S S. S. . P. P. . F. F. ."),
    Capture("retransmission-fin", retransmission_fin, "S S. . P. P. . F. F. . F. ."),
    Capture("fast-retransmission", fast_retransmission, "S S. . P. P. . . . . P. . . . . . F. F. ."),
    Capture("spurious-retransmission", spurious_retransmission, "S S. . P. . P. . P. . F. F. ."),
    Capture("out-of-order", out_of_order, "S S. . P. P. . . . P. . F. F. ."),
    Capture("lost-segment", lost_segment, "S S. . P. P. . P. . F. F. ."),
    Capture("zero-window", zero_window, "S S. . P. P. . P. . . . . . . P. . F. F. ."),
    Capture("window-full", window_full, "S S. . P. . P. . F. F. ."),
    Capture("keep-alive", keep_alive, "S S. . P. P. . . . . . F. F. ."),
    Capture("reused-ports", reused_ports, "S S. . P. P. . F. F. . S S. . P. P. . F. F. ."),
    Capture("bad-checksum", bad_checksum, "S S. . P. P. . F. F. . S S. . P. P. . F. F. ."),
]}


def _letters(pkt: Packet) -> str:
    tcp = pkt[TCP]
    flags = str(tcp.flags)
    text = "".join(ch for ch in "SFPRU" if ch in flags)
    return text + ("." if "A" in flags else "")


def write(capture: Capture) -> Path:
    frames = capture.build()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{capture.name}.pcap"
    writer = PcapWriter(str(path), linktype=LINKTYPE_ETHERNET, sync=True)
    try:
        writer.write_header(None)            # write_packet() on bytes does not write the file header
        for frame in frames:
            sec, usec = divmod(frame.us, 1_000_000)
            writer.write_packet(frame.data, sec=sec, usec=usec, wirelen=frame.wirelen)
    finally:
        writer.close()
    # Read it back: the flag sequence is what this script promises the README.
    got = " ".join(_letters(p) for p in rdpcap(str(path)))
    if got != capture.flags:
        raise SystemExit(f"{path}: flag sequence {got!r}, expected {capture.flags!r}")
    return path


_LABEL = re.compile(r"\[(TCP [^\]]+)\]")


def tshark_labels(path: Path) -> Dict[int, List[str]]:
    """tshark's analysis labels per frame (its Info column), with checksum validation on."""
    out = subprocess.run(["tshark", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-T", "fields",
                          "-e", "frame.number", "-e", "_ws.col.Info"],
                         capture_output=True, text=True, check=True).stdout
    labels: Dict[int, List[str]] = {}
    for line in out.splitlines():
        number, _, info = line.partition("\t")
        found = [m for m in _LABEL.findall(info) if m != "TCP segment of a reassembled PDU"]
        if found:
            labels[int(number)] = found
    return labels


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(CAPTURES), help="craft only this one")
    parser.add_argument("--check-tshark", action="store_true",
                        help="print tshark's analysis labels per frame (needs tshark)")
    args = parser.parse_args(argv)
    for name in args.only or CAPTURES:
        path = write(CAPTURES[name])
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        print(f"{path.relative_to(ROOT)}: {len(CAPTURES[name].flags.split())} frames, sha256 {digest}")
        if args.check_tshark:
            if shutil.which("tshark") is None:
                print("  tshark is not installed", file=sys.stderr)
                return 2
            for number, labels in sorted(tshark_labels(path).items()):
                print(f"  frame {number}: {', '.join(labels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
