"""The kernel's side: its own view of a connection's state (the oracle), and kernel sockets a scenario drives.

Two ways to ask, both covering full sockets, request sockets (a SYN answered, the ACK awaited) and
TIME-WAIT sockets:
- `diag_state`: one sock_diag netlink request for the exact 4-tuple (what `ss` uses), a hash lookup in
  the kernel, so it costs the same with 3 or 30,000 sockets on the host. The default.
- `proc_state`: a scan of /proc/net/tcp (/proc/net/tcp6 for IPv6), simple but linear in the number of sockets (10 ms with 3,500
  TIME-WAIT sockets left by other programs on lo).
A 4-tuple the kernel does not hold has no state: RFC 9293 §3.3.2 calls that CLOSED ("no connection state").
"""

from __future__ import annotations

import select
import socket
import struct
import time
from typing import Callable, Dict, List, Optional, Tuple

__all__ = ["Address", "Oracle", "diag_state", "proc_state", "wait_state", "HeldServer", "RFC_STATE", "connected",
           "kernel_socket"]

Address = Tuple[str, int]
Oracle = Callable[[Address, Address], str]   # (kernel's local end, remote end) -> RFC 9293 state name

# include/net/tcp_states.h, spelled as RFC 9293 §3.3.2 spells them. TCP_NEW_SYN_RECV (0x0C) is Linux's
# request socket: a passive open that sent its SYN-ACK, i.e. SYN-RECEIVED.
RFC_STATE: Dict[int, str] = {
    0x01: "ESTABLISHED", 0x02: "SYN-SENT", 0x03: "SYN-RECEIVED", 0x04: "FIN-WAIT-1",
    0x05: "FIN-WAIT-2", 0x06: "TIME-WAIT", 0x07: "CLOSED", 0x08: "CLOSE-WAIT", 0x09: "LAST-ACK",
    0x0A: "LISTEN", 0x0B: "CLOSING", 0x0C: "SYN-RECEIVED",
}


def _af(addr: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _hex_endpoint(addr: Address) -> str:
    """/proc/net/tcp's spelling: the address as host-order (little-endian here) 32-bit hex words, one for
    IPv4, four for IPv6 (each printed on its own, as tcp6_seq_show does), then the port in hex."""
    raw = socket.inet_pton(_af(addr[0]), addr[0])
    words = struct.unpack(f"={len(raw) // 4}I", raw)
    return "".join(f"{w:08X}" for w in words) + f":{addr[1]:04X}"


def proc_state(local: Address, remote: Address) -> str:
    """The kernel's state for the socket local<->remote, or CLOSED when it holds none."""
    want = (_hex_endpoint(local), _hex_endpoint(remote))
    with open("/proc/net/tcp6" if _af(local[0]) == socket.AF_INET6 else "/proc/net/tcp") as f:
        next(f, None)
        for line in f:
            parts = line.split()
            if len(parts) > 3 and (parts[1], parts[2]) == want:
                return RFC_STATE.get(int(parts[3], 16), f"state 0x{parts[3]}")
    return "CLOSED"


# <linux/netlink.h>, <linux/sock_diag.h>, <linux/inet_diag.h>
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NLMSG = struct.Struct("=IHHII")                     # len, type, flags, seq, pid
_REQ = struct.Struct("=BBBxI")                       # family, protocol, ext, pad, states
_SOCKID = struct.Struct("!HH16s16s")                 # sport, dport, src, dst (network order)
_SOCKID_TAIL = struct.Struct("=III")                 # interface, cookie[2]
_NOCOOKIE = 0xFFFFFFFF                               # INET_DIAG_NOCOOKIE: look up by address only
_DIAG_MSG = struct.Struct("=BBBB")                   # family, state, timer, retrans (then the sockid)


def diag_state(local: Address, remote: Address) -> str:
    """The kernel's state for local<->remote by an exact sock_diag lookup (inet_diag_find_one_icsk)."""
    af = _af(local[0])
    here, there = socket.inet_pton(af, local[0]), socket.inet_pton(af, remote[0])
    sockid = (_SOCKID.pack(local[1], remote[1], here.ljust(16, b"\0"), there.ljust(16, b"\0"))
              + _SOCKID_TAIL.pack(0, _NOCOOKIE, _NOCOOKIE))
    body = _REQ.pack(af, socket.IPPROTO_TCP, 0, 0xFFFFFFFF) + sockid
    msg = _NLMSG.pack(_NLMSG.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.send(msg)
        reply = nl.recv(65536)
    _length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(reply)
    if kind == _NLMSG_ERROR:
        return "CLOSED"                              # -ENOENT: no socket for this 4-tuple
    _family, state, _timer, _retrans = _DIAG_MSG.unpack_from(reply, _NLMSG.size)
    sport, dport, _src, dst = _SOCKID.unpack_from(reply, _NLMSG.size + _DIAG_MSG.size)
    if dport != remote[1] or dst[:len(there)] != there:
        return "CLOSED"                              # the lookup fell back to a listener on the port
    return RFC_STATE.get(state, f"state 0x{state:02X}")


def wait_state(oracle: Oracle, local: Address, remote: Address, want: str, within: float) -> str:
    """Poll until the kernel reports `want` or `within` seconds pass; return the last state seen.

    Polling, because the kernel may finish processing a segment we injected a moment after the write
    returned (softirq), not because states are guessed: what is returned is what the kernel said.
    """
    deadline = time.monotonic() + within
    while True:
        state = oracle(local, remote)
        if state == want or time.monotonic() >= deadline:
            return state
        time.sleep(0.005)


class HeldServer:
    """A listening kernel socket whose application the scenario drives one step at a time.

    The echo server answers and closes as soon as it reads EOF, so the kernel's CLOSE-WAIT lasts
    microseconds; a half-close needs an application that keeps its side open while it still sends
    (RFC 9293 §3.6: CLOSE-WAIT lasts until the local user says CLOSE).
    """

    def __init__(self, host: str) -> None:
        self._listener = socket.socket(_af(host), socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(4)
        self.address: Address = self._listener.getsockname()[:2]
        self._conn: Optional[socket.socket] = None

    def accept(self, timeout: float) -> None:
        if self._conn is None:
            self._listener.settimeout(timeout)
            self._conn, _ = self._listener.accept()
            self._conn.settimeout(timeout)

    def read_to_eof(self, timeout: float) -> bytes:
        """Everything the peer sent up to its FIN (an empty read is the FIN, RFC 9293 §3.10.7.4)."""
        self.accept(timeout)
        assert self._conn is not None
        chunks: List[bytes] = []
        while True:
            data = self._conn.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def send(self, data: bytes) -> None:
        assert self._conn is not None
        self._conn.sendall(data)

    def close_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def close(self) -> None:
        self.close_connection()
        self._listener.close()


def kernel_socket(addr: str) -> socket.socket:
    """A TCP socket of the address's family, for the kernel's side of a scenario."""
    return socket.socket(_af(addr), socket.SOCK_STREAM)


def connected(sock: socket.socket, timeout: float) -> Optional[int]:
    """Wait for a non-blocking connect() to finish; its errno (0 = connected), None while still trying."""
    _, writable, _ = select.select([], [sock], [], timeout)
    if not writable:
        return None
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
