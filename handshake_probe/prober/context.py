"""What a scenario script works with: the link, the targets, and the kernel oracle's checkpoints."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import List, Optional

from handshake_probe.prober.kernel import Address, HeldServer, Oracle, wait_state
from handshake_probe.prober.link import Link
from handshake_probe.prober.peer import ProbeFailure, RawPeer

__all__ = ["Checkpoint", "Ctx", "Targets", "check"]


@dataclass(frozen=True)
class Checkpoint:
    """The kernel's own state for the connection at one moment of a scenario.

    `frames` is how many frames had been recorded at that moment, so the analyzer's state after the
    same frames can be set beside it. `visible` is False where no segment can tell the analyzer
    (a connect() that gives up in silence).
    """

    label: str
    frames: int
    role: str            # which analyzer endpoint the kernel plays: "server" or "client"
    expected: str
    kernel: str
    visible: bool = True


@dataclass
class Targets:
    """Where each scenario sends its SYN (the kernel's listening sockets) and where kernel sockets bind."""

    echo: Address                      # uppercasing echo server
    idle: Address                      # echo server that closes first after `idle_timeout`
    idle_timeout: float
    held: Optional[HeldServer]         # a server whose application the scenario drives (half-close)
    closed: Address                    # a port nothing listens on (kept bound so nobody takes it)
    kernel_addr: str                   # the kernel's address for kernel-socket scenarios


@dataclass
class Ctx:
    link: Link
    port: int                          # the prober's port for this scenario
    targets: Targets
    message: bytes
    isn: Optional[int]
    timeout: float
    oracle: Optional[Oracle]
    checkpoints: List[Checkpoint] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    peers: List[RawPeer] = field(default_factory=list)

    def peer(self, remote: Address) -> RawPeer:
        """Our end for one connection; the ISN is --isn or a fresh random one (RFC 9293 §3.4.1)."""
        isn = self.isn if self.isn is not None else secrets.randbits(32)
        p = RawPeer(self.link, self.port, remote, isn, self.timeout)
        self.peers.append(p)
        return p

    def checkpoint(self, label: str, want: str, p: RawPeer, role: str = "server",
                   visible: bool = True) -> None:
        """Ask the kernel for its state of this connection now (its end is `p.remote`)."""
        if self.oracle is None:
            return
        seen = wait_state(self.oracle, p.remote, p.local, want, within=0.3)
        self.checkpoints.append(Checkpoint(label, self.link.count(), role, want, seen, visible))


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ProbeFailure(message)
