"""The kernel's side: its own view of a connection's state (the oracle), and kernel sockets a scenario drives.

The oracle reads /proc/net/tcp, the kernel's socket table; it lists full sockets, request sockets
(a SYN answered, the ACK awaited) and TIME-WAIT sockets, each with its state. A 4-tuple that is not
listed has no state in the kernel: RFC 9293 §3.3.2 calls that CLOSED ("represents no connection state").
"""

from __future__ import annotations

import select
import socket
import struct
import time
from typing import Callable, Dict, Optional, Tuple

__all__ = ["Address", "Oracle", "proc_state", "wait_state", "HeldServer", "RFC_STATE"]

Address = Tuple[str, int]
Oracle = Callable[[Address, Address], str]   # (kernel's local end, remote end) -> RFC 9293 state name

# include/net/tcp_states.h, spelled as RFC 9293 §3.3.2 spells them. TCP_NEW_SYN_RECV (0x0C) is Linux's
# request socket: a passive open that sent its SYN-ACK, i.e. SYN-RECEIVED.
RFC_STATE: Dict[int, str] = {
    0x01: "ESTABLISHED", 0x02: "SYN-SENT", 0x03: "SYN-RECEIVED", 0x04: "FIN-WAIT-1",
    0x05: "FIN-WAIT-2", 0x06: "TIME-WAIT", 0x07: "CLOSED", 0x08: "CLOSE-WAIT", 0x09: "LAST-ACK",
    0x0A: "LISTEN", 0x0B: "CLOSING", 0x0C: "SYN-RECEIVED",
}


def _hex_endpoint(addr: Address) -> str:
    """/proc/net/tcp's spelling: the IPv4 address as a host-order (little-endian here) hex word, the port in hex."""
    (word,) = struct.unpack("=I", socket.inet_aton(addr[0]))
    return f"{word:08X}:{addr[1]:04X}"


def proc_state(local: Address, remote: Address) -> str:
    """The kernel's state for the socket local<->remote, or CLOSED when it holds none."""
    want = (_hex_endpoint(local), _hex_endpoint(remote))
    with open("/proc/net/tcp") as f:
        next(f, None)
        for line in f:
            parts = line.split()
            if len(parts) > 3 and (parts[1], parts[2]) == want:
                return RFC_STATE.get(int(parts[3], 16), f"state 0x{parts[3]}")
    return "CLOSED"


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
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
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
        chunks = []
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


def connected(sock: socket.socket, timeout: float) -> Optional[int]:
    """Wait for a non-blocking connect() to finish; its errno (0 = connected), None while still trying."""
    _, writable, _ = select.select([], [sock], [], timeout)
    if not writable:
        return None
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
