"""IPv4 and IPv6 side by side: everything the prober does differently per address family, in one place.

A run speaks one family: the family of `--target`'s address, or IPv6 with `-6`, else IPv4. What differs:
- where the kernel is: 127.0.0.1 on lo, or ::1 (RFC 4291 §2.5.3: the loopback address is ::1/128 only);
- the TUN range: 198.18.0.0/15 (RFC 2544 benchmarking) or 2001:db8::/32 (documentation, RFC 3849);
  nobody routes either, and each run takes one subnet of it from its pid;
- the header Scapy crafts: IPv4 with TTL 64 (DF off, as the kernel's own SYN-ACK would not need it), or
  IPv6 with hop limit 64 (RFC 8200 §3: there is no DF, routers never fragment); both TCP checksums cover
  the family's pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1), which Scapy fills in;
- the MSS we announce: the TUN MTU (1500) minus the fixed headers, 40 for IPv4, 60 for IPv6
  (RFC 9293 §3.7.1, RFC 8200 §8.3);
- the EtherType a capture on lo filters (0x0800, 0x86DD) and where the TCP header starts (20 / 40 bytes:
  the prober and the kernel send no IPv4 options and no IPv6 extension headers).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Union

__all__ = ["Family", "IPV4", "IPV6", "family_of", "family_for", "canonical", "refused_always"]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


@dataclass(frozen=True)
class Family:
    version: int
    af: socket.AddressFamily
    loopback: str                  # the kernel's address on lo
    loopback_net: IPNetwork        # what counts as loopback
    tun_range: IPNetwork           # the range each run takes its TUN subnet from
    ethertype: int
    header: int                    # bytes of the IP header the prober and the kernel send
    mss: int
    firewall: str                  # the iptables tool of this family
    nft_family: str                # the nft table family

    def ip(self, src: str, dst: str) -> Any:
        """Scapy's IP layer for one of our segments (Scapy is imported on first use: see peer.py)."""
        if self.version == 6:
            from scapy.layers.inet6 import IPv6
            return IPv6(src=src, dst=dst, hlim=64)
        from scapy.layers.inet import IP
        return IP(src=src, dst=dst, ttl=64)

    def pack(self, addr: str) -> bytes:
        return socket.inet_pton(self.af, addr)

    def dst_of(self, packet: bytes) -> str:
        """The destination address of an IP packet of this family."""
        return socket.inet_ntop(self.af, packet[24:40] if self.version == 6 else packet[16:20])

    def tcp_of(self, packet: bytes) -> bytes:
        """The TCP segment of an IP packet we crafted (IPv4 header length from IHL; IPv6: 40 bytes)."""
        return packet[40:] if self.version == 6 else packet[(packet[0] & 0x0F) * 4:]


IPV4 = Family(4, socket.AF_INET, "127.0.0.1", ipaddress.IPv4Network("127.0.0.0/8"),
              ipaddress.IPv4Network("198.18.0.0/15"), 0x0800, 20, 1460, "iptables", "ip")
IPV6 = Family(6, socket.AF_INET6, "::1", ipaddress.IPv6Network("::1/128"),
              ipaddress.IPv6Network("2001:db8::/32"), 0x86DD, 40, 1440, "ip6tables", "ip6")
FAMILIES = {4: IPV4, 6: IPV6}


def family_of(addr: str) -> Family:
    """The family of an address literal (raises ValueError for anything else)."""
    return FAMILIES[ipaddress.ip_address(addr).version]


def family_for(target: Any, ipv6: bool) -> Family:
    """The run's family: the --target's, else IPv6 with -6, else IPv4."""
    if target is not None:
        return family_of(target[0])
    return IPV6 if ipv6 else IPV4


def canonical(addr: str) -> str:
    """The one spelling of an address (RFC 5952 for IPv6, as the engine prints it): `2001:db8:0:1::1`."""
    return str(ipaddress.ip_address(addr))


def refused_always(text: str) -> str:
    """Why an address can never be a target, even with --allow-remote ("" when it can be one): it names
    no single host on a wire the prober can reach, or it is an IPv4 host in IPv6 clothing."""
    if "%" in text:
        return (f"{text}: a zone index (%{text.split('%', 1)[1]}) is not taken; the prober reaches ::1 and "
                "its own TUN peer, which need none")
    addr = ipaddress.ip_address(text)
    if addr.is_unspecified:
        return f"{text} is the unspecified address, not a host"
    if addr.is_multicast or (addr.version == 4 and addr == ipaddress.IPv4Address("255.255.255.255")):
        return f"{text} is a multicast or broadcast address, not one host"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            # RFC 4291 §2.5.5.2: it stands for an IPv4 host and never appears on an IPv6 wire.
            return (f"{text} is an IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2): it names the IPv4 host "
                    f"{addr.ipv4_mapped}; give that address itself")
        if addr.is_link_local:
            return (f"{text} is link-local (fe80::/10): it needs an interface to mean anything, and the "
                    "prober reaches only ::1 and its own TUN peer")
    return ""
