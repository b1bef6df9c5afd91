"""Privilege: which capability each guard needs, checked before anything is touched.

Creating a TUN device and adding firewall rules need CAP_NET_ADMIN; raw and packet sockets need
CAP_NET_RAW (capabilities(7)). Asking /proc/self/status first gives one clear line instead of a
half-built setup that must be torn down.
"""

from __future__ import annotations

from typing import Dict, Tuple

__all__ = ["MissingCapability", "require", "effective"]

CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
_NAMES = {CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_NET_RAW: "CAP_NET_RAW"}

# guard -> the capabilities it needs, and what for
_NEEDS: Dict[str, Tuple[Tuple[int, str], ...]] = {
    "tun": ((CAP_NET_ADMIN, "to create its TUN device"),),
    "iptables": ((CAP_NET_RAW, "for its raw sockets"), (CAP_NET_ADMIN, "for its iptables rule")),
    "nft": ((CAP_NET_RAW, "for its raw sockets"), (CAP_NET_ADMIN, "for its nft table")),
}


class MissingCapability(Exception):
    """str() is the one line to print: what is missing, what for, how to get it."""


def effective() -> int:
    """The effective capability set of this process (CapEff in /proc/self/status)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def _docker_flags(guard: str) -> str:
    return " ".join(f"--cap-add {_NAMES[cap][4:]}" for cap, _ in _NEEDS[guard])


def require(guard: str) -> None:
    have = effective()
    for cap, why in _NEEDS[guard]:
        if not have >> cap & 1:
            raise MissingCapability(
                f"probe needs {_NAMES[cap]} {why} (--rst-guard {guard}): run it as root "
                f"(sudo handshake-probe probe ...) or, in a container, grant it (docker run {_docker_flags(guard)} ...)")


def explain(err: PermissionError, guard: str) -> MissingCapability:
    """A PermissionError from a privileged call, as the same one line (a LSM or a user namespace may
    refuse what the capability bits allow)."""
    names = " and ".join(_NAMES[cap] for cap, _ in _NEEDS[guard])
    return MissingCapability(f"probe needs {names} (--rst-guard {guard}): {err.strerror or err}: run it as root "
                             f"(sudo handshake-probe probe ...) or grant it (docker run {_docker_flags(guard)} ...)")
