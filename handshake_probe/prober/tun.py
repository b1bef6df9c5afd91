"""A non-persistent TUN device: the prober's own piece of network, gone when its fd closes.

The prober plays a host that is *not* local to the kernel (packetdrill's trick): the kernel sees
198.18.X.1/30 on the TUN device as its own address and routes 198.18.X.2 out of the device, where
the prober reads it. Because 198.18.X.2 is not a local address, a SYN-ACK sent to it never meets
"no such socket" in the kernel, so the kernel never answers our crafted segments with RST
(RFC 9293 §3.10.7.1 would have it reset a segment for a connection it does not know).

Why this range: 198.18.0.0/15 is reserved for benchmarking (RFC 2544, RFC 6890) and nobody routes it.
IPv6 (`family` IPV6): 2001:db8:6870:X::1/64 and ::2, from the documentation prefix (RFC 3849), which nobody
routes either. A TUN device is point-to-point and NOARP, so the kernel does no neighbour discovery and no
duplicate address detection on it (the address is usable at once); with no link-local address
(addr_gen_mode 1) and no router solicitations it sends no ICMPv6 of its own into our reads either.
The kernel drops ::1 arriving on any device but lo (RFC 4291 §2.5.3; IPv6 has no route_localnet), so a
--target of ::1 is reached through lo by link.TunLink, the answers still coming back through the device.
Why no `ip` commands: the device, its address, its connected route and its per-device sysctls all
belong to the device, and the device is not persistent (no TUNSETPERSIST), so the kernel removes
every one of them when the last fd closes, even after SIGKILL. Nothing can be left behind.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import socket
import struct
import time
from types import TracebackType
from typing import FrozenSet, Iterable, Optional, Type, TypeVar, Union

from handshake_probe.prober.family import IPV4, Family

__all__ = ["TunDevice", "TUN_NETWORK", "pick_subnet", "pick_subnet6", "own_kernel_addr"]

TUN_NETWORK = IPV4.tun_range                             # 198.18.0.0/15, RFC 2544 benchmarking range
TUN_PREFIX6 = "2001:db8:6870"                            # "hp" in the documentation prefix (RFC 3849)
NAME_TEMPLATE = "hprobe%d"                               # the kernel fills in a free number

# <linux/if_tun.h>, <linux/sockios.h>, <linux/if.h>
_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000        # raw IP packets, no 4-byte packet-information header
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_SIOCSIFADDR = 0x8916
_SIOCSIFNETMASK = 0x891C
_IFF_UP = 0x1
_IFREQ = struct.Struct("16sH14x")          # ifr_name, then a short (flags) or a sockaddr's family
_IFREQ_ADDR = struct.Struct("16sHH4s8x")   # ifr_name, sockaddr_in: family, port, address, zero
_IN6_IFREQ = struct.Struct("16sIi")        # in6_addr, prefix length, interface index
_USABLE_WITHIN = 3.0                       # seconds a new IPv6 address may stay tentative
_Net = TypeVar("_Net", ipaddress.IPv4Network, ipaddress.IPv6Network)


def _routed_networks() -> FrozenSet[ipaddress.IPv4Network]:
    """IPv4 networks in the main routing table (/proc/net/route: little-endian hex)."""
    found = set()
    try:
        with open("/proc/net/route") as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) < 8:
                    continue
                dest = socket.inet_ntoa(struct.pack("<I", int(parts[1], 16)))
                mask = socket.inet_ntoa(struct.pack("<I", int(parts[7], 16)))
                net = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
                if net.prefixlen:
                    found.add(net)
    except OSError:
        pass
    return frozenset(found)


def _first_free(candidates: Iterable[_Net], taken: FrozenSet[_Net], pattern: str) -> _Net:
    """The first candidate no route covers yet (concurrent probes start at different seeds)."""
    for net in candidates:
        if not any(net.overlaps(t) for t in taken):
            return net
    raise OSError(f"no free {pattern} subnet for the TUN device")


def pick_subnet(seed: int) -> ipaddress.IPv4Network:
    """A 198.18.X.0/30 no route covers yet, starting at X = seed % 256 (the pid: concurrent probes differ)."""
    return _first_free((ipaddress.IPv4Network(f"198.18.{(seed + i) % 256}.0/30") for i in range(256)),
                       _routed_networks(), "198.18.X.0/30")


def _routed_networks6() -> FrozenSet[ipaddress.IPv6Network]:
    """IPv6 networks in the routing tables (/proc/net/ipv6_route: 32 hex digits, then the prefix length)."""
    found = set()
    try:
        with open("/proc/net/ipv6_route") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and int(parts[1], 16):
                    found.add(ipaddress.IPv6Network((int(parts[0], 16), int(parts[1], 16)), strict=False))
    except (OSError, ValueError):
        pass
    return frozenset(found)


def pick_subnet6(seed: int) -> ipaddress.IPv6Network:
    """A 2001:db8:6870:X::/64 no route covers yet, starting at X = seed % 65536 (the pid)."""
    return _first_free((ipaddress.IPv6Network(f"{TUN_PREFIX6}:{(seed + i) % 65536:x}::/64") for i in range(65536)),
                       _routed_networks6(), "2001:db8:6870:X::/64")


def own_kernel_addr(family: Family, seed: int) -> str:
    """The kernel's end of the device a process with this seed (its pid) makes: known before it exists."""
    net = pick_subnet6(seed) if family.version == 6 else pick_subnet(seed)
    return str(net[1])


class TunDevice:
    """Open, address and bring up a TUN device; `read`/`write` move raw IP packets of its family.

    `kernel_addr` (198.18.X.1, 2001:db8:6870:X::1) is the kernel's side, `peer_addr` (.2, ::2) the prober's.
    Opening needs CAP_NET_ADMIN; a PermissionError says so to the caller.
    """

    def __init__(self, seed: Optional[int] = None, family: Family = IPV4) -> None:
        self.family = family
        seed = os.getpid() if seed is None else seed
        self.network: Union[ipaddress.IPv4Network, ipaddress.IPv6Network] = (
            pick_subnet6(seed) if family.version == 6 else pick_subnet(seed))
        self.kernel_addr, self.peer_addr = str(self.network[1]), str(self.network[2])
        self.fd = -1
        self.name = ""
        self._open()

    def _open(self) -> None:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            ifr = fcntl.ioctl(fd, _TUNSETIFF, _IFREQ.pack(NAME_TEMPLATE.encode(), _IFF_TUN | _IFF_NO_PI))
            self.name = ifr[:16].rstrip(b"\0").decode()
            self.fd = fd
            self._configure()
        except BaseException:
            os.close(fd)   # closing the only fd destroys the device with everything on it
            self.fd = -1
            raise

    def _configure(self) -> None:
        if self.family.version == 6:
            self._configure6()
            return
        name = self.name.encode()
        # No IPv6 on the device: it would only chatter (router and MLD solicitations) into our reads.
        self._sysctl(f"/proc/sys/net/ipv6/conf/{self.name}/disable_ipv6", "1")
        # A --target on 127.0.0.0/8 is reachable through the device only if the kernel accepts
        # loopback addresses on it (martian otherwise); the setting dies with the device.
        self._sysctl(f"/proc/sys/net/ipv4/conf/{self.name}/route_localnet", "1")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            addr = socket.inet_aton(self.kernel_addr)
            mask = self.network.netmask.packed
            fcntl.ioctl(s, _SIOCSIFADDR, _IFREQ_ADDR.pack(name, socket.AF_INET, 0, addr))
            fcntl.ioctl(s, _SIOCSIFNETMASK, _IFREQ_ADDR.pack(name, socket.AF_INET, 0, mask))
        self._up()

    def _up(self) -> None:
        name = self.name.encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            flags = _IFREQ.unpack(fcntl.ioctl(s, _SIOCGIFFLAGS, _IFREQ.pack(name, 0)))[1]
            fcntl.ioctl(s, _SIOCSIFFLAGS, _IFREQ.pack(name, flags | _IFF_UP))

    def _configure6(self) -> None:
        conf = f"/proc/sys/net/ipv6/conf/{self.name}"
        if not os.path.exists(conf):
            raise OSError(f"IPv6 is not available on this host (no {conf}): probe over IPv4")
        # Before the device is up: no link-local address (so no MLD reports), no router solicitations,
        # no router advertisements taken; all of it goes with the device.
        for knob, value in (("addr_gen_mode", "1"), ("router_solicitations", "0"), ("accept_ra", "0"),
                            ("accept_dad", "0"), ("disable_ipv6", "0")):
            self._sysctl(f"{conf}/{knob}", value)
        with open(f"{conf}/disable_ipv6") as f:
            if f.read().strip() != "0":
                raise OSError(f"IPv6 is disabled on {self.name} ({conf}/disable_ipv6): probe over IPv4")
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            # struct in6_ifreq (<linux/ipv6.h>): the address, its prefix length, the device's index.
            req = _IN6_IFREQ.pack(socket.inet_pton(socket.AF_INET6, self.kernel_addr),
                                  self.network.prefixlen, socket.if_nametoindex(self.name))
            fcntl.ioctl(s, _SIOCSIFADDR, req)
        self._up()
        self._wait_usable()

    def _wait_usable(self) -> None:
        """Return once the kernel's address can be bound. A new IPv6 address is tentative until the
        kernel's address worker has run, even with no DAD to do (RFC 4862 §5.4; a NOARP device skips the
        probes, not the worker): binding it before then fails with EADDRNOTAVAIL (measured: 18 of 100
        fresh devices). Bounded: a worker that never runs is an error, not a hang."""
        deadline = time.monotonic() + _USABLE_WITHIN
        while True:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                try:
                    s.bind((self.kernel_addr, 0))
                    return
                except OSError as err:
                    if err.errno != errno.EADDRNOTAVAIL or time.monotonic() > deadline:
                        raise OSError(f"{self.kernel_addr} on {self.name} still not usable after "
                                      f"{_USABLE_WITHIN:g} s: {err.strerror}") from None
            time.sleep(0.002)

    @staticmethod
    def _sysctl(path: str, value: str) -> None:
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError:
            pass   # IPv6 disabled on the host, or an older kernel: only a nicety

    def write(self, packet: bytes) -> None:
        os.write(self.fd, packet)

    def read(self) -> bytes:
        return os.read(self.fd, 65535)

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __enter__(self) -> "TunDevice":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()
