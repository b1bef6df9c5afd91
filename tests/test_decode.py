"""The engine's decoder (src/decode.rs, `handshake_probe._engine.decode`): literal frames for every link
type, encapsulation, flag bit, option kind, reason string and DecodeError.

The hex was built once with scapy at authoring time; the tests hold only the literal bytes and the
values a reader can check against the hex by hand (ports 40000 -> 80 are 9c40 0050, seq 11223344,
ack 55667788, window faf0). Checksums are left as crafted (often zero): the decoder does not check them.
"""

from __future__ import annotations

import pickle
from types import SimpleNamespace
from typing import Any, Dict, Optional, Tuple, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import handshake_probe
from handshake_probe._engine import DecodeError, Engine, decode

Segment = Dict[str, Any]            # a decoded segment: the fields of the engine's Segment
F: Dict[str, int] = handshake_probe.FLAGS
Flags = SimpleNamespace(**F)    # Flags.SYN ...: the engine's flag bits
# The reasons a frame is skipped without being an error (the engine's vocabulary).
NOT_TCP, FRAGMENT, TRUNCATED, UNKNOWN_LINK = "non-tcp", "fragment", "truncated", "unknown-link"

TS = 1.5
FRAME = 7
V4_SRC, V4_DST = "192.0.2.1", "198.51.100.2"
V6_SRC, V6_DST = "2001:db8::1", "fe80::1"
SPORT, DPORT, SEQ, ACK, WIN = 40000, 80, 0x11223344, 0x55667788, 0xFAF0

# Ethernet II header, dst 02:00:00:00:00:02 src 02:00:00:00:00:01, without its EtherType.
ETH = "020000000002020000000001"

# Ethernet / IPv4 / TCP PSH|ACK with the 5-byte payload "hello" (IP total length 0x2d = 45).
ETH_PA = ETH + "0800" + "4500002d0001000040068e93c0000201c6336402" + \
    "9c40005011223344556677885018faf0d6e70000" + "68656c6c6f"
# Ethernet / IPv4 / TCP SYN as Linux sends it: MSS 1460, SACK-permitted, TS 1000/0, NOP, WS 7.
ETH_SYN = ETH + "0800" + "4500003c0001000040068e84c0000201c6336402" + \
    "9c4000501122334400000000a002faf07bf90000" + "020405b40402080a000003e80000000001030307"
# IPv6 2001:db8::1 -> fe80::1, Hop-by-Hop (8 bytes), Fragment (offset 0, M=1), TCP PSH|ACK, 16 bytes "p".
V6_HBH_FRAG = "600000000034004020010db8000000000000000000000001fe800000000000000000000000000001" + \
    "2c00010400000000" + "0600000100000007" + "9c40005011223344556677885018faf05727000070707070707070707070707070707070"
# Raw IPv6 / TCP PSH|ACK with the 5-byte payload "data6".
RAW_V6 = "600000000019064020010db8000000000000000000000001fe800000000000000000000000000001" + \
    "9c40005011223344556677885018faf0cbf200006461746136"
# Raw IPv4 / TCP PSH|ACK with the 4-byte payload "data".
RAW_V4 = "4500002c0001000040068e94c0000201c63364029c40005011223344556677885018faf041f8000064617461"


def opts(mss: Optional[int] = None, wscale: Optional[int] = None, sack_permitted: bool = False,
         sack: Tuple[Tuple[int, int], ...] = (), ts_val: Optional[int] = None,
         ts_ecr: Optional[int] = None) -> Dict[str, Any]:
    """A segment's options as decode() gives them (SACK blocks as [left, right] lists)."""
    return dict(mss=mss, wscale=wscale, sack_permitted=sack_permitted, sack=[list(b) for b in sack],
                ts_val=ts_val, ts_ecr=ts_ecr)


NO_OPTIONS = opts()


def seg(src: str, dst: str, flags: int, payload_len: int, version: int, *, seq: int = SEQ,
        ack: int = ACK, options: Optional[Dict[str, Any]] = None) -> Segment:
    """The segment every frame below carries, apart from what differs between them."""
    return dict(ts=TS, frame=FRAME, src=src, sport=SPORT, dst=dst, dport=DPORT, seq=seq, ack=ack,
                flags=flags, window=WIN, payload_len=payload_len, options=options or NO_OPTIONS,
                ip_version=version, checksum_ok=None, tunnels=None)


def run(hex_frame: str, linktype: int, wirelen: Optional[int] = None) -> Union[Segment, str]:
    result: Union[Segment, str] = decode(bytes.fromhex(hex_frame), linktype, TS, FRAME, wirelen)
    return result


# --- every link type and encapsulation ------------------------------------------------------

ENCAPSULATIONS = [
    pytest.param(1, ETH_PA, seg(V4_SRC, V4_DST, Flags.PSH | Flags.ACK, 5, 4), id="ethernet-ipv4"),
    pytest.param(1, ETH_SYN, seg(V4_SRC, V4_DST, Flags.SYN, 0, 4, ack=0, options=opts(
        mss=1460, wscale=7, sack_permitted=True, ts_val=1000, ts_ecr=0)), id="ethernet-ipv4-syn-options"),
    # Minimum-size Ethernet frame: 6 bytes of padding after the TCP header are not payload.
    pytest.param(1, ETH + "0800" + "450000280001000040068e98c0000201c63364029c40005011223344556677885010faf01ac70000"
                 + "000000000000", seg(V4_SRC, V4_DST, Flags.ACK, 0, 4), id="ethernet-padding"),
    pytest.param(1, ETH + "8100" + "0064" + "0800" + "4500002b0001000040068e95c0000201c63364029c400050112233445566"
                 "77885010faf056610000616263", seg(V4_SRC, V4_DST, Flags.ACK, 3, 4), id="vlan-8100"),
    pytest.param(1, ETH + "88a8" + "000a" + "8100" + "0014" + "0800" + "4500002c0001000040068e94c0000201c6336402"
                 "9c40005011223344556677885010faf055fc000061626364", seg(V4_SRC, V4_DST, Flags.ACK, 4, 4),
                 id="qinq-88a8"),
    pytest.param(1, ETH + "9100" + "000a" + "8100" + "0014" + "0800" + "450000280001000040068e98c0000201c6336402"
                 "9c40005011223344556677885001faf01ad60000", seg(V4_SRC, V4_DST, Flags.FIN, 0, 4),
                 id="qinq-9100"),
    pytest.param(1, ETH + "8847" + "00010040" + "00011140" + "4500002a0001000040068e96c0000201c6336402"
                 "9c40005011223344556677885010faf0b96200006162", seg(V4_SRC, V4_DST, Flags.ACK, 2, 4),
                 id="mpls-two-labels-ipv4"),
    pytest.param(1, ETH + "8848" + "00012140" + "600000000014064020010db8000000000000000000000001fe80000000000000"
                 "0000000000000001" + "9c40005011223344556677885004faf0dace0000",
                 seg(V6_SRC, V6_DST, Flags.RST, 0, 6), id="mpls-multicast-ipv6"),
    pytest.param(1, ETH + "8864" + "110012340030" + "0021" + "4500002e0001000040068e92c0000201c6336402"
                 "9c40005011223344556677885010faf0f0930000616263646566", seg(V4_SRC, V4_DST, Flags.ACK, 6, 4),
                 id="pppoe-ipv4"),
    pytest.param(1, ETH + "8864" + "11001234003e" + "0057" + "600000000014064020010db8000000000000000000000001"
                 "fe800000000000000000000000000001" + "9c40005011223344556677885010faf0dac20000",
                 seg(V6_SRC, V6_DST, Flags.ACK, 0, 6), id="pppoe-ipv6"),
    # IPv4 with a 4-byte Router Alert option (IHL 6): the TCP header starts at byte 38.
    pytest.param(1, ETH + "0800" + "4600002f000100004006f98cc0000201c6336402" + "94040000" +
                 "9c40005011223344556677885010faf037530000" + "6f7074", seg(V4_SRC, V4_DST, Flags.ACK, 3, 4),
                 id="ipv4-options"),
    # First fragment (MF set, offset 0): decoded, payload length from this fragment's IP length (48).
    pytest.param(1, ETH + "0800" + "450000300009200040066e88c0000201c6336402" +
                 "9c40005011223344556677885018faf0811d0000" + "6666666666666666",
                 seg(V4_SRC, V4_DST, Flags.PSH | Flags.ACK, 8, 4), id="ipv4-first-fragment"),
    # BSD loopback (NULL): AF in the capturing host's byte order, both orders accepted.
    pytest.param(0, "02000000" + "450000280001000040068e98c0000201c63364029c40005011223344556677885002faf01ad50000",
                 seg(V4_SRC, V4_DST, Flags.SYN, 0, 4), id="null-le-af-inet"),
    pytest.param(0, "00000002" + "450000280001000040068e98c0000201c63364029c40005011223344556677885002faf01ad50000",
                 seg(V4_SRC, V4_DST, Flags.SYN, 0, 4), id="null-be-af-inet"),
    pytest.param(0, "1e000000" + "6000000000140640" + "00000000000000000000000000000001" * 2 +
                 "9c40005011223344556677885012faf006fb0000", seg("::1", "::1", Flags.SYN | Flags.ACK, 0, 6),
                 id="null-le-af-inet6-30-macos"),
    pytest.param(0, "1c000000" + "6000000000140640" + "00000000000000000000000000000001" * 2 +
                 "9c40005011223344556677885012faf006fb0000", seg("::1", "::1", Flags.SYN | Flags.ACK, 0, 6),
                 id="null-le-af-inet6-28-freebsd"),
    pytest.param(0, "00000018" + "6000000000140640" + "00000000000000000000000000000001" * 2 +
                 "9c40005011223344556677885012faf006fb0000", seg("::1", "::1", Flags.SYN | Flags.ACK, 0, 6),
                 id="null-be-af-inet6-24-netbsd"),
    pytest.param(108, "00000002" + "450000280001000040068e98c0000201c63364029c40005011223344556677885002faf01ad50000",
                 seg(V4_SRC, V4_DST, Flags.SYN, 0, 4), id="loop-ipv4"),
    pytest.param(108, "00000018" + "6000000000140640" + "00000000000000000000000000000001" * 2 +
                 "9c40005011223344556677885002faf0070b0000", seg("::1", "::1", Flags.SYN, 0, 6), id="loop-ipv6"),
    pytest.param(113, "0000000100060200000000010000" + "0800" + "4500002a0001000040068e96c0000201c6336402"
                 "9c40005011223344556677885010faf0a04a00007a7a", seg(V4_SRC, V4_DST, Flags.ACK, 2, 4),
                 id="linux-sll-ipv4"),
    pytest.param(276, "86dd" + "0000" + "00000002" + "0001" + "04" + "06" + "0200000000010000" +
                 "600000000017064020010db8000000000000000000000001fe800000000000000000000000000001"
                 "9c40005011223344556677885010faf0e64400007a7a7a", seg(V6_SRC, V6_DST, Flags.ACK, 3, 6),
                 id="linux-sll2-ipv6"),
    pytest.param(101, RAW_V4, seg(V4_SRC, V4_DST, Flags.PSH | Flags.ACK, 4, 4), id="raw-101-ipv4"),
    pytest.param(101, RAW_V6, seg(V6_SRC, V6_DST, Flags.PSH | Flags.ACK, 5, 6), id="raw-101-ipv6"),
    pytest.param(12, RAW_V4, seg(V4_SRC, V4_DST, Flags.PSH | Flags.ACK, 4, 4), id="raw-12-ipv4"),
    pytest.param(14, RAW_V6, seg(V6_SRC, V6_DST, Flags.PSH | Flags.ACK, 5, 6), id="raw-14-ipv6"),
    pytest.param(228, RAW_V4, seg(V4_SRC, V4_DST, Flags.PSH | Flags.ACK, 4, 4), id="ipv4-228"),
    pytest.param(229, RAW_V6, seg(V6_SRC, V6_DST, Flags.PSH | Flags.ACK, 5, 6), id="ipv6-229"),
    # Hop-by-Hop + first fragment: payload length 52 - 8 - 8 - 20 = 16.
    pytest.param(229, V6_HBH_FRAG, seg(V6_SRC, V6_DST, Flags.PSH | Flags.ACK, 16, 6), id="ipv6-hbh-fragment"),
    # Routing (24 bytes) + Destination Options (8) + AH (len 4: (4+2)*4 = 24 bytes): 78 - 56 - 20 = 2.
    pytest.param(229, "60000000004e2b4020010db8000000000000000000000001fe800000000000000000000000000001"
                 "3c02000100000000" + "20010db8000000000000000000000009" + "3300010400000000" +
                 "060400000000000100000001000000000000000000000000" +
                 "9c40005011223344556677885010faf000000000" + "6168",
                 seg(V6_SRC, V6_DST, Flags.ACK, 2, 6), id="ipv6-routing-dstopts-ah"),
]


@pytest.mark.parametrize("linktype, hex_frame, expected", ENCAPSULATIONS)
def test_encapsulation(linktype: int, hex_frame: str, expected: Segment) -> None:
    assert run(hex_frame, linktype) == expected
    assert run(hex_frame, linktype, wirelen=len(hex_frame) // 2) == expected


@pytest.mark.parametrize("linktype, hex_frame, expected", ENCAPSULATIONS)
def test_every_snaplen_cut_is_truncated_or_the_same_segment(linktype: int, hex_frame: str,
                                                            expected: Segment) -> None:
    """Cut a valid frame anywhere: never an error, and the payload length still comes from IP."""
    data = bytes.fromhex(hex_frame)
    for caplen in range(len(data)):
        result = decode(data[:caplen], linktype, TS, FRAME, len(data))
        if isinstance(result, dict):
            keys = ("seq", "flags", "payload_len", "src")
            assert [result[k] for k in keys] == [expected[k] for k in keys], caplen
        else:
            assert result == TRUNCATED, caplen


# --- reason strings ----------------------------------------------------------------------------

def test_reason_values() -> None:
    # The skip reasons decode() returns are the engine's vocabulary, which the summaries count under.
    assert [NOT_TCP, FRAGMENT, TRUNCATED, UNKNOWN_LINK] == ["non-tcp", "fragment", "truncated", "unknown-link"]
    assert set(handshake_probe._engine.SKIP_REASONS) == {NOT_TCP, FRAGMENT, TRUNCATED, UNKNOWN_LINK, "malformed",
                                                         "tunnel-depth-exceeded"}


@pytest.mark.parametrize("linktype, hex_frame, reason", [
    pytest.param(1, "ffffffffffff0200000000010806" + "000108000604000102fc00000001c0000201000000000000c0000202",
                 NOT_TCP, id="arp"),
    pytest.param(1, "0180c2000000020000000001" + "0026" + "424203" + "0000000000000000000000000000000000000000"
                 "0000000000000000000000000001001400020000", NOT_TCP, id="802.3-llc"),
    pytest.param(1, ETH + "0800" + "4500001d0001000040118e98c0000201c6336402" + "0035003500099b3a78", NOT_TCP,
                 id="udp"),
    pytest.param(1, ETH + "0800" + "4500001c0001000040018ea9c0000201c6336402" + "0800f7ff00000000", NOT_TCP,
                 id="icmp"),
    pytest.param(1, ETH + "8864" + "11001234000a" + "c021" + "0901000800000000", NOT_TCP, id="pppoe-lcp"),
    pytest.param(1, ETH + "8863" + "1109000000000000", NOT_TCP, id="pppoe-discovery"),
    # MPLS carrying an Ethernet pseudowire (control word, first nibble 0): not IP.
    pytest.param(1, ETH + "8847" + "00012140" + "00000000" + ETH_PA, NOT_TCP, id="mpls-pseudowire"),
    pytest.param(0, "07000000" + "450000280001000040068e98c0000201c63364029c40005011223344556677885002faf01ad50000",
                 NOT_TCP, id="null-unknown-af"),
    pytest.param(113, "0000000100060200000000010000" + "0806" + "0001080006040001", NOT_TCP, id="sll-arp"),
    pytest.param(101, "5000000000000000", NOT_TCP, id="raw-version-5"),
    pytest.param(229, "6000000000003b4020010db8000000000000000000000001fe800000000000000000000000000001",
                 NOT_TCP, id="ipv6-no-next-header"),
    pytest.param(229, "600000000008114020010db8000000000000000000000001fe800000000000000000000000000001"
                 "003500350008d338", NOT_TCP, id="ipv6-udp"),
    pytest.param(1, ETH + "0800" + "45000030000900024006" + "8e9a" + "c0000201c6336402" + "6767676767676767",
                 FRAGMENT, id="ipv4-non-first-fragment"),
    # First fragment with only 8 bytes of TCP header: the rest is in the next fragment.
    pytest.param(1, ETH + "0800" + "4500001c0009200040066e9cc0000201c6336402" + "9c40005011223344", FRAGMENT,
                 id="ipv4-tiny-first-fragment"),
    pytest.param(229, "600000000020004020010db8000000000000000000000001fe800000000000000000000000000001"
                 "2c00010400000000" + "0600001800000007" + "71717171717171717171717171717171", FRAGMENT,
                 id="ipv6-non-first-fragment"),
    pytest.param(147, ETH_PA, UNKNOWN_LINK, id="unknown-link"),
])
def test_reason(linktype: int, hex_frame: str, reason: str) -> None:
    assert run(hex_frame, linktype) == reason


# --- every flag bit -------------------------------------------------------------------------

@pytest.mark.parametrize("flag, hex_frame", [
    (Flags.FIN, "450000280001000040060000c0000201c63364029c40005011223344556677885001faf000000000"),
    (Flags.SYN, "450000280001000040060000c0000201c63364029c40005011223344556677885002faf000000000"),
    (Flags.RST, "450000280001000040060000c0000201c63364029c40005011223344556677885004faf000000000"),
    (Flags.PSH, "450000280001000040060000c0000201c63364029c40005011223344556677885008faf000000000"),
    (Flags.ACK, "450000280001000040060000c0000201c63364029c40005011223344556677885010faf000000000"),
    (Flags.URG, "450000280001000040060000c0000201c63364029c40005011223344556677885020faf000000000"),
    (Flags.ECE, "450000280001000040060000c0000201c63364029c40005011223344556677885040faf000000000"),
    (Flags.CWR, "450000280001000040060000c0000201c63364029c40005011223344556677885080faf000000000"),
    # NS is the low bit of byte 12, next to the data offset (RFC 3540).
    (Flags.NS, "450000280001000040060000c0000201c63364029c40005011223344556677885100faf000000000"),
], ids=["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"])
def test_flag_bit(flag: int, hex_frame: str) -> None:
    result = run(hex_frame, 228)
    assert isinstance(result, dict)
    assert result["flags"] == flag
    assert type(result["flags"]) is int   # a plain int, as FLAGS' values are


def test_all_nine_flags_on_fast_and_general_path() -> None:
    ip_tcp = "450000280001000040060000c0000201c63364029c400050112233445566778851fffaf000000000"
    every = Flags.FIN | Flags.SYN | Flags.RST | Flags.PSH | Flags.ACK | Flags.URG | Flags.ECE | Flags.CWR | Flags.NS
    fast = run(ETH + "0800" + ip_tcp, 1)
    general = run(ip_tcp, 228)
    assert isinstance(fast, dict) and isinstance(general, dict)
    assert fast["flags"] == general["flags"] == every == 0x1FF == sum(F.values())
    assert fast["payload_len"] == general["payload_len"] == 0


# --- every option kind ----------------------------------------------------------------------

# Raw IPv4 / TCP ACK frames whose options differ; the options are the hex after "faf000000000".
@pytest.mark.parametrize("hex_frame, expected", [
    pytest.param("4500003c0001000040060000c0000201c63364029c4000501122334455667788a010faf000000000"
                 "020405b40402080a000003e80000000001030307",
                 opts(mss=1460, wscale=7, sack_permitted=True, ts_val=1000, ts_ecr=0), id="linux-syn"),
    # EOL ends the list: the WS option after it is not read.
    pytest.param("450000300001000040060000c0000201c63364029c40005011223344556677887010faf000000000"
                 "020405b400030307", opts(mss=1460), id="eol"),
    pytest.param("4500002c0001000040060000c0000201c63364029c40005011223344556677886010faf000000000"
                 "01010101", NO_OPTIONS, id="nop-only"),
    pytest.param("450000340001000040060000c0000201c63364029c40005011223344556677888010faf000000000"
                 "0101050a00000064000000c8", opts(sack=((100, 200),)), id="sack-one-block"),
    pytest.param("4500004c0001000040060000c0000201c63364029c4000501122334455667788e010faf000000000"
                 "01010522000000640000006e000000c8000000d20000012c00000136000001900000019a",
                 opts(sack=((100, 110), (200, 210), (300, 310), (400, 410))), id="sack-four-blocks"),
    pytest.param("450000340001000040060000c0000201c63364029c40005011223344556677888010faf000000000"
                 "0101080a0000000a00000014", opts(ts_val=10, ts_ecr=20), id="timestamps"),
    # Kind 30 (MPTCP, length 4) and kind 254 (experimental, length 6) are skipped by their length.
    pytest.param("450000380001000040060000c0000201c63364029c40005011223344556677889010faf000000000"
                 "1e04abcd" + "fe0600000000" + "0101" + "020405b4", opts(mss=1460), id="unknown-kinds-skipped"),
    # An option of length 1 stops the parse: the WS after it is not read.
    pytest.param("450000340001000040060000c0000201c63364029c40005011223344556677888010faf000000000"
                 "020405b41e01030307000000", opts(mss=1460), id="length-below-2-stops"),
    # A Timestamps option claiming 10 bytes with 4 left in the header stops the parse.
    pytest.param("450000300001000040060000c0000201c63364029c40005011223344556677887010faf000000000"
                 "020405b4080a0000", opts(mss=1460), id="option-past-header-stops"),
    # A kind byte with no room for its length byte stops the parse.
    pytest.param("450000300001000040060000c0000201c63364029c40005011223344556677887010faf000000000"
                 "020405b401010103", opts(mss=1460), id="kind-without-length"),
    # MSS with length 3 is skipped (as Linux does), the WS after it is still read.
    pytest.param("450000300001000040060000c0000201c63364029c40005011223344556677887010faf000000000"
                 "0203050103030700", opts(wscale=7), id="wrong-length-skipped"),
    # SACK of length 6 is not a whole number of blocks: skipped.
    pytest.param("450000300001000040060000c0000201c63364029c40005011223344556677887010faf000000000"
                 "0506000000010101", NO_OPTIONS, id="sack-partial-block-skipped"),
    # A repeated option overrides the earlier one (as Linux's tcp_parse_options does).
    pytest.param("450000300001000040060000c0000201c63364029c40005011223344556677887010faf000000000"
                 "020405b402040218", opts(mss=536), id="repeated-last-wins"),
])
def test_option(hex_frame: str, expected: Dict[str, Any]) -> None:
    result = run(hex_frame, 228)
    assert isinstance(result, dict)
    assert result["options"] == expected
    assert result["payload_len"] == 0


# --- snaplen, TSO, jumbo ------------------------------------------------------------------

def test_payload_length_from_ip_when_snaplen_cut() -> None:
    # IP total length 1500 (0x05dc), 54 bytes captured of a 1514-byte frame.
    frame = ETH + "0800" + "450005dc0001000040060000c0000201c6336402" + "9c40005011223344556677885010faf000000000"
    assert run(frame, 1, wirelen=1514) == seg(V4_SRC, V4_DST, Flags.ACK, 1460, 4)


def test_payload_length_from_ip_not_from_captured_bytes_general_path() -> None:
    # The same over VLAN (general path): 1500 - 20 - 20.
    frame = ETH + "8100" + "0064" + "0800" + "450005dc0001000040060000c0000201c6336402" + \
        "9c40005011223344556677885010faf000000000"
    assert run(frame, 1, wirelen=1518) == seg(V4_SRC, V4_DST, Flags.ACK, 1460, 4)


def test_options_cut_by_snaplen_are_read_as_far_as_captured() -> None:
    # ETH_SYN cut after 60 of 74 bytes: MSS and SACK-permitted are there, Timestamps and WS are not.
    result = run(ETH_SYN[:120], 1, wirelen=74)
    assert result == seg(V4_SRC, V4_DST, Flags.SYN, 0, 4, ack=0,
                         options=opts(mss=1460, sack_permitted=True))


def test_tso_total_length_zero_uses_frame_length() -> None:
    tso = ETH + "0800" + "450000000001000040060000c0000201c6336402" + "9c40005011223344556677885018faf000000000"
    # Uncut: the captured length is the datagram's.
    assert run(tso + "68656c6c6f", 1) == seg(V4_SRC, V4_DST, Flags.PSH | Flags.ACK, 5, 4)
    # Cut by snaplen: the wire length is.
    assert run(tso, 1, wirelen=1514) == seg(V4_SRC, V4_DST, Flags.PSH | Flags.ACK, 1460, 4)


def test_ipv6_payload_length_zero_uses_frame_length() -> None:
    jumbo = RAW_V6[:8] + "0000" + RAW_V6[12:]
    assert run(jumbo, 229) == seg(V6_SRC, V6_DST, Flags.PSH | Flags.ACK, 5, 6)
    assert run(jumbo[:120], 229, wirelen=70000) == seg(V6_SRC, V6_DST, Flags.PSH | Flags.ACK, 70000 - 60, 6)


# --- every DecodeError ------------------------------------------------------------------

@pytest.mark.parametrize("linktype, hex_frame, offset, reason", [
    pytest.param(1, ETH + "0800" + "4300002d0001000040068e93c0000201c6336402" + ETH_PA[68:], 14,
                 "IPv4 header length 12 < 20", id="ihl-below-5"),
    pytest.param(1, ETH + "0800" + "6500002d0001000040068e93c0000201c6336402" + ETH_PA[68:], 14,
                 "IP version 6 where IPv4 was expected", id="ipv4-wrong-version"),
    pytest.param(229, RAW_V4, 0, "IP version 4 where IPv6 was expected", id="ipv6-wrong-version"),
    pytest.param(1, ETH + "0800" + "450000100001000040068e93c0000201c6336402" + ETH_PA[68:], 16,
                 "IPv4 total length 16 < header length 20", id="total-length-below-ihl"),
    pytest.param(1, ETH + "0800" + "450000200001000040068e93c0000201c6336402" + ETH_PA[68:], 34,
                 "IP payload of 12 bytes cannot hold the 20-byte TCP header", id="total-length-below-tcp"),
    pytest.param(1, ETH + "0800" + "4500002d0001000040068e93c0000201c6336402" +
                 "9c4000501122334455667788" + "4018" + "faf0d6e70000" + "68656c6c6f", 46,
                 "TCP data offset 16 < 20", id="data-offset-below-5"),
    pytest.param(1, ETH + "0800" + "4500002d0001000040068e93c0000201c6336402" +
                 "9c4000501122334455667788" + "8018" + "faf0d6e70000" + "68656c6c6f", 46,
                 "TCP data offset 32 runs past the IP payload of 25 bytes", id="data-offset-past-ip-payload"),
    pytest.param(1, ETH_SYN[:120], 46, "TCP header of 40 bytes runs past the end of the frame (60 bytes)",
                 id="options-past-uncut-frame"),
    pytest.param(229, V6_HBH_FRAG[:8] + "0008" + V6_HBH_FRAG[12:], 4,
                 "IPv6 extension headers (16 bytes) run past the payload length 8", id="ipv6-ext-past-payload"),
])
def test_decode_error(linktype: int, hex_frame: str, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        run(hex_frame, linktype)
    assert info.value.args == (offset, reason)
    # How the analysis words it: the frame counted as malformed, skipped with one warning line.
    engine = Engine(linktype)
    assert engine.feed(bytes.fromhex(hex_frame), TS) == []
    assert engine.warnings == [f"frame 1: byte {offset} of the frame: {reason}; frame skipped"]
    assert (engine.frames, engine.segments, engine.skipped) == (1, 0, {"malformed": 1})


# Headers that run off the captured bytes: TRUNCATED when snaplen cut the frame, DecodeError when not.
@pytest.mark.parametrize("linktype, hex_frame, offset, reason", [
    pytest.param(1, ETH[:20], 0, "Ethernet header needs 14 bytes, the frame has 10", id="ethernet"),
    pytest.param(113, "000000010006020000000001", 0, "Linux cooked (SLL) header needs 16 bytes, the frame has 12",
                 id="sll"),
    pytest.param(276, "86dd00000000000200010406", 0,
                 "Linux cooked v2 (SLL2) header needs 20 bytes, the frame has 12", id="sll2"),
    pytest.param(0, "0200", 0, "loopback header needs 4 bytes, the frame has 2", id="null"),
    pytest.param(108, "000000", 0, "loopback header needs 4 bytes, the frame has 3", id="loop"),
    pytest.param(1, ETH + "8100" + "0064", 14, "VLAN tag needs 4 bytes, the frame has 2", id="vlan"),
    pytest.param(1, ETH + "8847" + "000100", 14, "MPLS label stack entry needs 4 bytes, the frame has 3",
                 id="mpls-first-label"),
    pytest.param(1, ETH + "8847" + "00010040" + "0001", 18, "MPLS label stack entry needs 4 bytes, the frame has 2",
                 id="mpls-second-label"),
    pytest.param(1, ETH + "8864" + "11001234", 14, "PPPoE session header needs 8 bytes, the frame has 4",
                 id="pppoe"),
    pytest.param(101, "", 0, "IP header needs 20 bytes, the frame has 0", id="raw-empty"),
    pytest.param(1, ETH + "0800" + "4500002d0001", 14, "IPv4 header needs 20 bytes, the frame has 6", id="ipv4"),
    pytest.param(1, ETH + "0800" + "4600002f000100004006f98cc0000201c6336402" + "9404", 14,
                 "IPv4 header with options needs 24 bytes, the frame has 22", id="ipv4-options"),
    pytest.param(229, RAW_V6[:60], 0, "IPv6 header needs 40 bytes, the frame has 30", id="ipv6"),
    pytest.param(229, V6_HBH_FRAG[:88], 40, "IPv6 extension header 0 needs 8 bytes, the frame has 4",
                 id="ipv6-extension-chain"),
    pytest.param(229, V6_HBH_FRAG[:104], 48, "IPv6 extension header 44 needs 8 bytes, the frame has 4",
                 id="ipv6-fragment-header"),
    pytest.param(1, ETH_PA[:88], 34, "TCP header needs 20 bytes, the frame has 10", id="tcp"),
])
def test_short_header(linktype: int, hex_frame: str, offset: int, reason: str) -> None:
    data = bytes.fromhex(hex_frame)
    assert decode(data, linktype, TS, FRAME, len(data) + 100) == TRUNCATED
    for wirelen in (None, len(data)):
        with pytest.raises(DecodeError) as info:
            decode(data, linktype, TS, FRAME, wirelen)
        assert info.value.args == (offset, reason)


def test_decode_error_pickles() -> None:
    # A DecodeError crosses process boundaries (a worker's result): its class is found again by name.
    with pytest.raises(DecodeError) as info:
        run(ETH + "0800" + "4300002d0001000040068e93c0000201c6336402" + ETH_PA[68:], 1)
    error = pickle.loads(pickle.dumps(info.value))
    assert type(error) is DecodeError and isinstance(error, ValueError)
    assert error.args == (14, "IPv4 header length 12 < 20")


# --- addresses -------------------------------------------------------------------------

def test_every_source_address_is_its_own() -> None:
    # Thousands of distinct addresses (the Python core cached their text, 4096 at most): each one
    # decoded as itself, including the ones past any such bound.
    base = bytearray(bytes.fromhex(RAW_V4))
    for i in range(4096 + 10):
        base[12:16] = i.to_bytes(4, "big")
        result = decode(bytes(base), 228, TS, FRAME)
        assert isinstance(result, dict)
        assert result["src"] == f"{i >> 24}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


# --- properties: the fast path agrees with the general path; nothing but DecodeError escapes ------

def _outcome(data: bytes, linktype: int, wirelen: int) -> object:
    """The result, or the DecodeError as a comparable tuple."""
    try:
        result: object = decode(data, linktype, TS, FRAME, wirelen)
        return result
    except DecodeError as error:
        return ("error", *error.args)


@settings(max_examples=400, deadline=None)
@given(vihl=st.sampled_from([0x45, 0x45, 0x46, 0x44, 0x65]), total=st.integers(0, 120),
       frag=st.sampled_from([0, 0x4000, 0x2000, 0x0001]), proto=st.sampled_from([6, 6, 17]),
       offb=st.integers(0, 255), flagb=st.integers(0, 255), tail=st.binary(max_size=60),
       extra_wire=st.integers(0, 3))
def test_fast_path_matches_general_path(vihl: int, total: int, frag: int, proto: int, offb: int,
                                        flagb: int, tail: bytes, extra_wire: int) -> None:
    data = (bytes.fromhex(ETH + "0800") + bytes([vihl, 0]) + total.to_bytes(2, "big") + b"\0\1" +
            frag.to_bytes(2, "big") + bytes([64, proto, 0, 0]) + bytes.fromhex("c0000201c6336402") +
            bytes.fromhex("9c4000501122334455667788") + bytes([offb, flagb]) +
            bytes.fromhex("faf000000000") + tail)
    # The fast path takes exactly plain Ethernet + IPv4 (IHL 5) + TCP; the same packet behind a VLAN
    # tag takes the general path (src/decode.rs `decode_general`). Apart from the tag's 4 bytes in
    # offsets and in the frame's length, the two must agree on everything.
    wirelen = len(data) + extra_wire
    tagged = data[:12] + bytes.fromhex("8100" + "0064") + data[12:]
    fast = _outcome(data, 1, wirelen)
    general = _outcome(tagged, 1, wirelen + 4)
    if isinstance(general, tuple):
        _error, offset, reason = general
        general = ("error", offset - 4, reason.replace(f"frame ({len(tagged)} bytes)", f"frame ({len(data)} bytes)"))
    assert fast == general


@settings(max_examples=300, deadline=None)
@given(linktype=st.sampled_from([0, 1, 12, 14, 101, 108, 113, 228, 229, 276]),
       prefix=st.sampled_from(["", ETH + "0800", ETH + "86dd", ETH + "8100", ETH + "8847", ETH + "8864",
                               "02000000", "1e000000", "0000000100060200000000010000" + "0800"]),
       body=st.binary(max_size=120), cut=st.booleans())
def test_random_bytes_give_a_result_or_decode_error(linktype: int, prefix: str, body: bytes, cut: bool) -> None:
    data = bytes.fromhex(prefix) + body
    try:
        result = decode(data, linktype, TS, FRAME, len(data) + 1 if cut else None)
    except DecodeError as error:
        offset, reason = error.args
        assert 0 <= offset <= len(data) and isinstance(reason, str) and reason
        return
    assert isinstance(result, dict) or result in (NOT_TCP, FRAGMENT, TRUNCATED, UNKNOWN_LINK)
