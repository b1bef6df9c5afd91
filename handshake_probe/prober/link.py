"""How crafted segments reach the kernel and how its answers come back, recorded as raw frames.

Two links, one interface, each for IPv4 or IPv6 (family.py):
- `TunLink` (the `tun` guard): write an IP packet into the TUN fd and the kernel receives it on the
  device; whatever the kernel routes to the prober's address is read back from the same fd. Frames are
  raw IP (linktype 101). Sent frames are recorded when written, received ones when read. A packet to ::1
  goes through lo instead (a raw IPv6 socket): the kernel drops ::1 arriving on any other device
  (RFC 4291 §2.5.3), and its answer to our TUN address comes back through the device all the same.
- `RawLink` (the `iptables` / `nft` guards): send through a raw IP socket (IP_HDRINCL) and capture
  with an AF_PACKET socket on the interface. On `lo` every packet passes twice (ARCHITECTURE.md): the
  outgoing copy is dropped, the incoming one kept, so our own segments are recorded once, stamped by the
  kernel like its answers, in the kernel's own order. Frames are Ethernet (linktype 1), as on lo.
  A kernel BPF filter (bpf.py) keeps only the scenario's ports, so a flood on lo cannot crowd them out.

A background thread drains the device or socket all the time, so every frame is stamped when it arrives
(not when a scenario gets round to reading it) and no queue in the kernel overflows.
Frames are kept only while in scope: those to or from the current scenario's prober ports.
"""

from __future__ import annotations

import os
import queue
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, NamedTuple, Optional, Tuple

from handshake_probe import FLAGS, _engine
from handshake_probe.prober.bpf import attach_ports
from handshake_probe.prober.family import IPV4, Family, canonical
from handshake_probe.prober.guard import PROBE_MARK
from handshake_probe.prober.tun import TunDevice

__all__ = ["Got", "Seg", "Link", "TunLink", "RawLink", "LINKTYPE_RAW", "LINKTYPE_ETHERNET", "decode_segment",
           "UnsafeDestination"]

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
_PACKET_OUTGOING = 4          # <linux/if_packet.h>: a copy of a packet this host sends
_RCVBUF = 4 << 20
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_SO_RCVBUFFORCE = 33
_TIMESPEC = struct.Struct("=qq")


_SYN, _FIN = FLAGS["SYN"], FLAGS["FIN"]


@dataclass(frozen=True)
class Seg:
    """One decoded segment: the fields of the engine's `decode` dict, read as attributes."""

    ts: float
    frame: int
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    payload_len: int
    options: Dict[str, Any]        # mss, wscale, sack_permitted, sack, ts_val, ts_ecr (None: absent)
    ip_version: int
    checksum_ok: Optional[bool]
    tunnels: Optional[List[Dict[str, Any]]] = None   # the tunnel path of a tunnelled segment

    @property
    def seq_len(self) -> int:
        """Sequence space the segment occupies: SYN and FIN count one each (RFC 9293 §3.4)."""
        return self.payload_len + (1 if self.flags & _SYN else 0) + (1 if self.flags & _FIN else 0)


def decode_segment(data: bytes, linktype: int, ts: float = 0.0, frame: int = 0) -> Optional[Seg]:
    """The engine's decode of one frame: a Seg, or None for a frame that holds no TCP segment
    (skipped: not TCP, a fragment, cut short) or a malformed one."""
    try:
        seg = _engine.decode(data, linktype, ts, frame)
    except _engine.DecodeError:
        return None
    return Seg(**seg) if isinstance(seg, dict) else None


class Got(NamedTuple):
    """A segment the kernel sent to the prober, decoded by the engine, with its payload bytes."""

    seg: Seg
    payload: bytes


def _payload(data: bytes, l2: int, seg: Seg) -> bytes:
    """The TCP payload: the last `payload_len` bytes of the IP packet, whose end is its own length field
    (IPv4 total length; IPv6 40 + payload length, extension headers included), not the frame's end."""
    if data[l2] >> 4 == 6:
        end = l2 + 40 + int.from_bytes(data[l2 + 4:l2 + 6], "big")
    else:
        end = l2 + int.from_bytes(data[l2 + 2:l2 + 4], "big")
    return data[end - seg.payload_len:end]


class UnsafeDestination(ValueError):
    """A packet to an address this run was not cleared to reach: refused before it leaves (the target
    rule is checked from the arguments, then once more here, at the last moment)."""


class Link:
    """What both links share: the scope, the recording and the queue of segments addressed to us."""

    linktype = LINKTYPE_RAW
    l2 = 0                          # link-layer header bytes before IP in a recorded frame

    def __init__(self, prober_addr: str, kernel_addr: str, family: Family = IPV4) -> None:
        self.family = family
        self.prober_addr = canonical(prober_addr)
        self.kernel_addr = canonical(kernel_addr)
        self.allowed: FrozenSet[str] = frozenset({self.kernel_addr})
        self._lock = threading.Condition()
        self._ports: FrozenSet[int] = frozenset()
        self._frames: List[Tuple[float, bytes]] = []
        self._inbox: "queue.Queue[Got]" = queue.Queue()
        self._stop_r, self._stop_w = os.pipe()
        self._thread: Optional[threading.Thread] = None

    # ---------------------------------------------------------------- scope and recording
    def scope(self, ports: FrozenSet[int]) -> None:
        """Start a fresh recording of frames to or from these prober ports."""
        self._filter(ports)
        with self._lock:
            self._ports = ports
            self._frames = []
            self._inbox = queue.Queue()

    def take(self) -> List[Tuple[float, bytes]]:
        """The frames recorded since `scope`, in time order, as (timestamp, frame bytes)."""
        with self._lock:
            frames = sorted(self._frames, key=lambda f: f[0])
            self._ports = frozenset()
            self._frames = []
        return frames

    def _filter(self, ports: FrozenSet[int]) -> None:
        """Narrow what the kernel hands us to these ports (a no-op where nothing else arrives)."""

    def allow(self, addr: str) -> None:
        """Clear one more destination (a --target the rule allows) besides the kernel's own address."""
        self.allowed = self.allowed | {canonical(addr)}

    def _cleared(self, packet: bytes) -> str:
        """The packet's destination, if this run may send to it; UnsafeDestination otherwise."""
        dst = canonical(self.family.dst_of(packet))
        if packet[0] >> 4 != self.family.version or dst not in self.allowed:
            raise UnsafeDestination(f"refused to send a packet to {dst}: not this run's target "
                                    f"({', '.join(sorted(self.allowed))}); nothing was sent")
        return dst

    def count(self) -> int:
        with self._lock:
            return len(self._frames)

    def next(self, timeout: float) -> Optional[Got]:
        """The next segment addressed to the prober, or None after `timeout` seconds."""
        try:
            return self._inbox.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def _classify(self, ts: float, data: bytes) -> Optional[Seg]:
        """Record an in-scope frame; return its segment if it is addressed to the prober."""
        seg = decode_segment(data, self.linktype, ts)
        if seg is None or seg.ip_version != self.family.version:
            # not a frame of ours (we craft well-formed ones, and so does the kernel)
            return None
        with self._lock:
            ours_out = seg.src == self.prober_addr and seg.sport in self._ports
            ours_in = seg.dst == self.prober_addr and seg.dport in self._ports
            if not (ours_out or ours_in):
                return None
            self._frames.append((ts, data))
            self._lock.notify_all()
            if ours_in:
                self._inbox.put(Got(seg, _payload(data, self.l2, seg)))
        return seg

    # ---------------------------------------------------------------- the receiver thread
    def start(self) -> None:
        self._thread = threading.Thread(target=self._receive, name="probe-receiver", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        raise NotImplementedError

    def send(self, packet: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._stop_w >= 0:
            os.write(self._stop_w, b"x")
            if self._thread is not None:
                self._thread.join(2.0)
            os.close(self._stop_w)
            os.close(self._stop_r)
            self._stop_w = self._stop_r = -1


class TunLink(Link):
    """The prober is 198.18.X.2 (2001:db8:6870:X::2) behind its own TUN device; the kernel is .1 (::1)."""

    linktype = LINKTYPE_RAW
    l2 = 0

    def __init__(self, tun: TunDevice) -> None:
        super().__init__(tun.peer_addr, tun.kernel_addr, tun.family)
        self.tun = tun
        self._lo: Optional[socket.socket] = None     # for ::1 (see the module's docstring)
        self.start()

    def send(self, packet: bytes) -> None:
        dst = self._cleared(packet)
        via_lo = self.family.version == 6 and dst == self.family.loopback
        if via_lo and self._lo is None:
            self._lo = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)  # IPV6_HDRINCL
        # Stamped before the write: the kernel may answer inside the write() call, and its answer
        # must not be stamped earlier than the segment it answers.
        ts = time.time()
        with self._lock:
            if self._ports:
                self._frames.append((ts, packet))
        if via_lo:
            assert self._lo is not None
            self._lo.sendto(packet, (dst, 0))
        else:
            self.tun.write(packet)

    def close(self) -> None:
        super().close()
        if self._lo is not None:
            self._lo.close()
            self._lo = None

    def _receive(self) -> None:
        fd = self.tun.fd
        while True:
            ready, _, _ = select.select([fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = os.read(fd, 65535)
            except OSError:
                return
            self._classify(time.time(), data)


class RawLink(Link):
    """The prober shares the kernel's address (127.0.0.1 or ::1 on lo): raw socket out, AF_PACKET in."""

    linktype = LINKTYPE_ETHERNET
    l2 = 14

    def __init__(self, prober_addr: str, kernel_addr: str, iface: str = "lo", family: Family = IPV4) -> None:
        super().__init__(prober_addr, kernel_addr, family)
        self.iface = iface
        # Off lo our segments do not come back in, so their outgoing copies are the record of them.
        self._keep_outgoing = iface != "lo"
        # IPPROTO_RAW implies IP_HDRINCL (IPv4) and IPV6_HDRINCL (IPv6, Linux >= 4.5): we write the header.
        self._tx = socket.socket(family.af, socket.SOCK_RAW, socket.IPPROTO_RAW)
        try:
            # The RST guard drops RSTs from our ports unless they carry this mark: the kernel's, not ours.
            self._tx.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, PROBE_MARK)
            self._rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(family.ethertype))
            attach_ports(self._rx, (), family)      # nothing until a scenario says which port is its own
            try:
                self._rx.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)   # past rmem_max
            except OSError:
                self._rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            self._rx.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            self._rx.bind((iface, family.ethertype))
        except BaseException:
            self._tx.close()
            raise
        self._sent: List[bytes] = []
        self.start()

    def _filter(self, ports: FrozenSet[int]) -> None:
        attach_ports(self._rx, ports, self.family)

    def send(self, packet: bytes) -> None:
        """Send, then wait (briefly) until the capture has recorded it, so a checkpoint taken
        after a send counts that segment among the frames before it."""
        dst = self._cleared(packet)
        tcp = self.family.tcp_of(packet)
        with self._lock:
            seen = len(self._frames)
        self._tx.sendto(packet, (dst, 0))
        deadline = time.monotonic() + 0.5
        with self._lock:
            while time.monotonic() < deadline:
                if any(f[1].endswith(tcp) for f in self._frames[seen:]):
                    return
                self._lock.wait(0.05)

    def _receive(self) -> None:
        rx = self._rx
        while True:
            ready, _, _ = select.select([rx.fileno(), self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data, anc, _flags, addr = rx.recvmsg(65535, socket.CMSG_SPACE(_TIMESTAMPNS_SIZE))
            except OSError:
                return
            if addr[2] == _PACKET_OUTGOING and not self._keep_outgoing:
                continue
            ts = time.time()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack_from(value)
                    ts = sec + nsec / 1e9
            self._classify(ts, data)

    def close(self) -> None:
        super().close()
        self._tx.close()
        self._rx.close()


_TIMESPEC_SIZE = _TIMESPEC.size
_TIMESTAMPNS_SIZE = _TIMESPEC_SIZE
