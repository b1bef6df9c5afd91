"""A classic BPF program, attached to the capture socket, that keeps one scenario's TCP segments only.

Why in the kernel: other programs may flood lo (ARCHITECTURE.md measured 67k packets/s); a socket
that queues all of it overflows its buffer and silently loses our own segments. With this filter the
kernel queues nothing but TCP of the run's family (IPv4 or IPv6) to or from the scenario's ports. Hand-assembled (linux/filter.h),
so no libpcap is needed; the frames carry a 14-byte Ethernet header (lo and Ethernet devices).
"""

from __future__ import annotations

import ctypes
import socket
import struct
from typing import Iterable, List, Tuple

from handshake_probe.prober.family import IPV4, Family

__all__ = ["attach_ports"]

# _SNAP: the bytes to keep of an accepted frame (all of it: 256 KiB is libpcap's largest snaplen).

SO_ATTACH_FILTER = 26
_LDH_ABS, _LDB_ABS, _LDH_IND, _LDX_MSH = 0x28, 0x30, 0x48, 0xB1
_JEQ, _JSET, _RET = 0x15, 0x45, 0x06
_SNAP = 0x40000
_Insn = Tuple[int, int, int, int]        # code, jump if true, jump if false, k
_Sym = Tuple[int, str, str, int]         # the same with targets named: "next", "accept", "drop"


def _program(ports: Iterable[int], family: Family = IPV4) -> List[_Insn]:
    wanted = sorted(set(ports))
    sym: List[_Sym] = _ipv6(wanted) if family.version == 6 else _ipv4(wanted)
    accept, drop = len(sym) + 1, len(sym) + 2            # after one "drop" fall-through return
    where = {"accept": accept, "drop": drop}

    def offset(i: int, target: str) -> int:
        return 0 if target == "next" else where[target] - i - 1

    prog = [(code, offset(i, jt), offset(i, jf), k) for i, (code, jt, jf, k) in enumerate(sym)]
    return prog + [(_RET, 0, 0, 0), (_RET, 0, 0, _SNAP), (_RET, 0, 0, 0)]


def _ipv6(wanted: List[int]) -> List[_Sym]:
    """IPv6 whose next header is TCP: the TCP header right after the fixed 40 bytes. The prober and the
    kernel send no extension headers; a fragment's next header is 44 (RFC 8200 §4.5), so it drops."""
    return [
        (_LDH_ABS, "next", "next", 12),                   # EtherType
        (_JEQ, "next", "drop", 0x86DD),                   # IPv6 only
        (_LDB_ABS, "next", "next", 20),                   # next header
        (_JEQ, "next", "drop", socket.IPPROTO_TCP),
        (_LDH_ABS, "next", "next", 54),                   # TCP source port
        *[(_JEQ, "accept", "next", port) for port in wanted],
        (_LDH_ABS, "next", "next", 56),                   # TCP destination port
        *[(_JEQ, "accept", "next", port) for port in wanted],
    ]


def _ipv4(wanted: List[int]) -> List[_Sym]:
    return [
        (_LDH_ABS, "next", "next", 12),                   # EtherType
        (_JEQ, "next", "drop", 0x0800),                   # IPv4 only
        (_LDB_ABS, "next", "next", 23),                   # IP protocol
        (_JEQ, "next", "drop", socket.IPPROTO_TCP),
        (_LDH_ABS, "next", "next", 20),                   # flags and fragment offset
        (_JSET, "drop", "next", 0x1FFF),                  # a later fragment carries no TCP header
        (_LDX_MSH, "next", "next", 14),                   # X = IP header length (4 * IHL)
        (_LDH_IND, "next", "next", 14),                   # TCP source port
        *[(_JEQ, "accept", "next", port) for port in wanted],
        (_LDH_IND, "next", "next", 16),                   # TCP destination port
        *[(_JEQ, "accept", "next", port) for port in wanted],
    ]


def attach_ports(sock: socket.socket, ports: Iterable[int], family: Family = IPV4) -> None:
    """Replace the socket's filter: keep TCP segments of `family` whose source or destination port is in
    `ports` (no port: keep nothing)."""
    prog = _program(ports, family)
    raw = b"".join(struct.pack("=HBBI", *insn) for insn in prog)
    buf = ctypes.create_string_buffer(raw)
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
