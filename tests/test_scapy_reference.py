"""The engine's decode() against scapy's dissection of the same bytes, for every capture file we have.

Frames are read raw with scapy's RawPcapReader / RawPcapNgReader (not with the engine's reader, so that
this test checks the decoder alone against an independent reader and dissector). For every frame:
- scapy finds a TCP layer -> our segment must exist and agree on ports, seq, ack, flags, window,
  payload length (from the IP/IPv6 length fields, as snaplen-cut traces need) and options;
- scapy finds no TCP -> we must give a reason string, not a Segment (and not a DecodeError).
scapy dissects ~10k frames/s, so each file is compared on its first MAX_FRAMES frames.

Test-side adjustments to scapy, each because scapy's defaults differ from libpcap's:
- MPLS (EtherType 0x8847) is dissected by scapy.contrib.mpls only, which is not loaded by default.
- BSD loopback: on Linux scapy binds only AF_INET6 = 10; captures from BSD/macOS hosts use
  24, 28 or 30 (libpcap gencode.c), e.g. zeek-http-connect-with-header.pcap (AF 30, macOS).
- Link type 14 (raw IP on OpenBSD) has no scapy layer: IPv46, as scapy uses for 12 and 101.
- EtherTypes 0x9100 (old QinQ) and 0x8848 (MPLS multicast) are not bound in scapy.
- decode does not enter tunnels (IP-in-IP, 6in4, GRE, VXLAN, ...): where scapy finds TCP under a
  second IP header, decode must give a reason string, as for any other non-TCP frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Type, Union

import pytest

pytest.importorskip("scapy")

import scapy.all  # noqa: E402,F401  (registers the default layers and their bindings: PPPoE, SLL, ...)
from scapy.config import conf  # noqa: E402
from scapy.layers.inet import IP, TCP  # noqa: E402
from scapy.layers.inet6 import IPv6, IPv46  # noqa: E402
from scapy.contrib.mpls import MPLS  # noqa: E402
from scapy.layers.l2 import Dot1Q, Ether, Loopback, LoopbackOpenBSD  # noqa: E402
from scapy.packet import Packet, bind_bottom_up  # noqa: E402
from scapy.error import Scapy_Exception  # noqa: E402
from scapy.utils import RawPcapReader  # noqa: E402

from handshake_probe._engine import DecodeError, decode  # noqa: E402

Segment = Dict[str, Any]    # a decoded segment (decode() gives a dict, or a reason string)

REPO = Path(__file__).resolve().parents[1]
CAPTURE_DIRS = (REPO / "captures", REPO.parent / "shared" / "conformance" / "traces")
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz")
MAX_FRAMES = 20_000

for _af in (24, 28, 30):
    bind_bottom_up(Loopback, IPv6, type=_af)
    bind_bottom_up(LoopbackOpenBSD, IPv6, type=_af)
bind_bottom_up(Ether, Dot1Q, type=0x9100)
bind_bottom_up(Ether, MPLS, type=0x8848)

_EXTRA_DISSECTORS: Dict[int, Type[Packet]] = {14: IPv46}


def _capture_params() -> List[object]:
    params: List[object] = []
    for folder in CAPTURE_DIRS:
        files = sorted(p for p in folder.rglob("*") if p.name.endswith(CAPTURE_SUFFIXES)) \
            if folder.is_dir() else []
        if not files:
            params.append(pytest.param(folder, None, id=f"{folder.name}:none"))
        params.extend(pytest.param(folder, p, id=str(p.relative_to(folder))) for p in files)
    return params


def _raw_frames(path: Path) -> Iterator[Tuple[int, int, bytes, int]]:
    """(frame number from 1, linktype, captured bytes, wire length) for every record."""
    try:
        reader = RawPcapReader(str(path))  # a RawPcapNgReader for pcapng files
    except Scapy_Exception as error:
        # e.g. a deliberately corrupt file kept for the pcapio tests: nothing to compare here
        pytest.skip(f"scapy cannot read {path.name}: {error}")
    with reader:
        for number, (data, meta) in enumerate(reader, 1):
            if number > MAX_FRAMES:
                return
            # pcapng: each frame's interface gives its link type; pcap: one per file.
            linktype = getattr(meta, "linktype", None)
            yield number, reader.linktype if linktype is None else linktype, data, meta.wirelen


def _dissect(linktype: int, data: bytes) -> Optional[Packet]:
    layer = conf.l2types.num2layer.get(linktype) or _EXTRA_DISSECTORS.get(linktype)
    return layer(data) if layer is not None else None


def _offset(layer: Packet, frame_len: int) -> int:
    """Byte offset of `layer` in the frame (a dissected layer keeps its original bytes, padding included)."""
    return frame_len - len(bytes(layer))


def _ip_under(layer: Packet) -> Optional[Packet]:
    """The nearest IP or IPv6 header below `layer` (through IPv6 extension headers), if any."""
    below = layer.underlayer
    while below is not None and not isinstance(below, (IP, IPv6)):
        below = below.underlayer
    return below


def _expected_payload_len(ip: Packet, tcp: TCP, data: bytes, wirelen: int) -> int:
    """Payload length as scapy's fields give it: IP length minus IP, extension and TCP header lengths."""
    ip_off = _offset(ip, len(data))
    tcp_off = _offset(tcp, len(data))
    if isinstance(ip, IP):
        # Total length 0 is a TSO capture: the wire length stands in for it (our documented policy).
        total = ip.len if ip.len else wirelen - ip_off
        return total - (tcp_off - ip_off) - tcp.dataofs * 4
    # IPv6 payload length 0 (jumbogram / GSO): the wire length stands in, as in decode.
    payload = ip.plen if ip.plen else wirelen - ip_off - 40
    return payload - (tcp_off - ip_off - 40) - tcp.dataofs * 4


def _expected_options(tcp: TCP) -> Dict[str, Any]:
    """scapy's option list, keeping only well-formed values (decode skips the malformed ones)."""
    mss = wscale = ts_val = ts_ecr = None
    sack_permitted = False
    sack: Tuple[Tuple[int, int], ...] = ()
    for name, value in tcp.options:
        if name == "EOL":
            break
        if name == "MSS" and isinstance(value, int):
            mss = value
        elif name == "WScale" and isinstance(value, int):
            wscale = value
        elif name == "SAckOK" and value == b"":
            sack_permitted = True
        elif name == "Timestamp" and isinstance(value, tuple) and len(value) == 2:
            ts_val, ts_ecr = value
        elif name == "SAck" and isinstance(value, tuple) and value and len(value) % 2 == 0:
            sack = tuple(zip(value[0::2], value[1::2]))
    return dict(mss=mss, wscale=wscale, sack_permitted=sack_permitted, sack=[list(b) for b in sack],
                ts_val=ts_val, ts_ecr=ts_ecr)


def _compare(number: int, linktype: int, data: bytes, wirelen: int) -> Optional[str]:
    """None when decode() and scapy agree on this frame, else what differs."""
    try:
        ours: Union[Segment, str] = decode(data, linktype, 0.0, number, wirelen)
    except DecodeError as error:
        ours = f"DecodeError{error.args}"
    pkt = _dissect(linktype, data)
    tcp = pkt.getlayer(TCP) if pkt is not None else None
    ip = _ip_under(tcp) if tcp is not None else None
    if tcp is not None and (ip is None or _ip_under(ip) is not None):
        tcp = None  # TCP inside a tunnel: decode reads the outer header only
    if tcp is None:
        if isinstance(ours, dict) or ours.startswith("DecodeError"):
            summary = pkt.summary() if pkt is not None else f"no scapy layer for linktype {linktype}"
            return f"frame {number}: scapy sees no TCP ({summary}) but decode gave {ours!r}"
        return None
    if not isinstance(ours, dict):
        return f"frame {number}: scapy sees TCP ({pkt.summary()}) but decode gave {ours!r}"
    expected = (tcp.sport, tcp.dport, tcp.seq, tcp.ack, int(tcp.flags), tcp.window,
                _expected_payload_len(ip, tcp, data, wirelen), _expected_options(tcp))
    got = (ours["sport"], ours["dport"], ours["seq"], ours["ack"], ours["flags"], ours["window"],
           ours["payload_len"], ours["options"])
    if got != expected:
        return f"frame {number}: (sport, dport, seq, ack, flags, window, payload_len, options) " \
               f"decode {got} != scapy {expected}"
    if (ours["src"], ours["dst"], ours["ip_version"], ours["frame"]) != (ip.src, ip.dst, ip.version, number):
        return f"frame {number}: addresses decode {ours['src']} > {ours['dst']} (v{ours['ip_version']}) " \
               f"!= scapy {ip.src} > {ip.dst} (v{ip.version})"
    return None


@pytest.mark.parametrize("folder, path", _capture_params())
def test_decode_agrees_with_scapy(folder: Path, path: Optional[Path]) -> None:
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    if path is None:
        pytest.skip(f"{folder} holds no capture files")
    mismatches: List[str] = []
    frames = 0
    for number, linktype, data, wirelen in _raw_frames(path):
        frames += 1
        problem = _compare(number, linktype, data, wirelen)
        if problem is not None:
            mismatches.append(problem)
    if not frames:
        pytest.skip(f"{path.name} holds no frames")
    assert not mismatches, f"{path.name}: {len(mismatches)} of {frames} frames differ from scapy:\n" + \
        "\n".join(mismatches[:20])

