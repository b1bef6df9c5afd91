"""Reading pcap/pcapng record by record (the engine's reader, src/pcap.rs, seen through
`handshake_probe._engine.Frames`) and writing pcap (handshake_probe's PcapWriter).

Files are built byte by byte with struct here, so every field the reader sees is one we chose.
"""

from __future__ import annotations

import io
import pickle
import re
import shutil
import struct
import subprocess
from fractions import Fraction
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import pytest

import handshake_probe
from handshake_probe._engine import CaptureError, Frames
from handshake_probe.pcapwriter import PcapWriter

# An Ethernet/IPv4/TCP SYN and its SYN-ACK (192.0.2.1:40000 <-> 192.0.2.2:80, MSS 1460).
SYN = bytes.fromhex(
    "02000000000202000000000108004500002c000100004006f6c7c0000201c00002029c4000500000"
    "03e8000000006002200053aa0000020405b4"
)
SYN_ACK = bytes.fromhex(
    "02000000000102000000000208004500002c000200004006f6c6c0000202c000020100509c4000001"
    "388000003e96012200040110000020405b4"
)

CONFORMANCE = Path(__file__).resolve().parent.parent.parent / "shared" / "conformance" / "traces"


# --- the reader's side ----------------------------------------------------------------------

class RawFrame(NamedTuple):
    """One of Frames' tuples, with its fields named."""

    frame: int
    ts: float
    linktype: int
    data: bytes
    wirelen: int
    offset: int


def read_frames(path: str, warnings: Optional[List[str]] = None) -> Iterator[RawFrame]:
    """The frames of a capture, lazily, as the engine reads them; its reader warnings (frames kept
    despite a fault) are added to `warnings` as they come."""
    frames = Frames(path)
    for item in frames:
        if warnings is not None:
            warnings.extend(frames.warnings[len(warnings):])
        yield RawFrame(*item)
    if warnings is not None:
        warnings.extend(frames.warnings[len(warnings):])


# A fault is one line: "<path>: [frame N at ]byte offset X: <reason>".
_FAULT = re.compile(r"^(?P<path>.*?): (?:frame (?P<frame>\d+) at )?byte offset (?P<offset>\d+): (?P<reason>.*)$")


@dataclass(frozen=True)
class Fault:
    """A CaptureError's line, taken apart."""

    path: str
    offset: int
    reason: str
    frame: Optional[int]


def fault(err: CaptureError) -> Fault:
    m = _FAULT.match(str(err))
    assert m is not None and "\n" not in str(err), str(err)
    return Fault(m["path"], int(m["offset"]), m["reason"], int(m["frame"]) if m["frame"] else None)


# --- builders -------------------------------------------------------------------------------

Record = Tuple[int, int, bytes, Optional[int]]  # seconds, fraction, data, wirelen (None = len)


def pcap(records: Sequence[Record], *, endian: str = "<", magic: int = 0xA1B2C3D4,
         linktype: int = 1, snaplen: int = 65535, extra: bytes = b"") -> bytes:
    """A classic pcap; `extra` is appended to each record header (modified pcap)."""
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for sec, frac, data, wirelen in records:
        wl = len(data) if wirelen is None else wirelen
        out += struct.pack(endian + "IIII", sec, frac, len(data), wl) + extra + data
    return out


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def block(btype: int, body: bytes, e: str = "<") -> bytes:
    body = pad(body)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def opt(code: int, value: bytes, e: str = "<") -> bytes:
    return struct.pack(e + "HH", code, len(value)) + pad(value)


def shb(e: str = "<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)


def idb(linktype: int, snaplen: int = 0, options: bytes = b"", e: str = "<") -> bytes:
    end = opt(0, b"", e) if options else b""
    return block(1, struct.pack(e + "HHI", linktype, 0, snaplen) + options + end, e)


def epb(iid: int, ticks: int, data: bytes, wirelen: Optional[int] = None, e: str = "<",
        options: bytes = b"") -> bytes:
    wl = len(data) if wirelen is None else wirelen
    head = struct.pack(e + "IIIII", iid, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wl)
    return block(6, head + pad(data) + options, e)


def spb(wirelen: int, data: bytes, e: str = "<") -> bytes:
    return block(3, struct.pack(e + "I", wirelen) + data, e)


def obsolete_pb(iid: int, ticks: int, data: bytes, e: str = "<") -> bytes:
    head = struct.pack(e + "HHIIII", iid, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data))
    return block(2, head + data, e)


def write(tmp_path: Path, content: bytes, name: str = "t.pcap") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def read_until_error(path: str) -> Tuple[List[RawFrame], Fault]:
    """The frames yielded before the fault, and the fault (a file that cannot be opened raises at once)."""
    frames: List[RawFrame] = []
    with pytest.raises(CaptureError) as info:
        for frame in read_frames(path):
            frames.append(frame)
    return frames, fault(info.value)


def exact(ticks: int, per_second: int) -> float:
    """The float nearest to ticks/per_second (Fraction -> float rounds correctly)."""
    return float(Fraction(ticks, per_second))


# --- pcap -----------------------------------------------------------------------------------

@pytest.mark.parametrize("endian, magic", [("<", 0xA1B2C3D4), (">", 0xA1B2C3D4)])
def test_pcap_microseconds_both_byte_orders(tmp_path: Path, endian: str, magic: int) -> None:
    path = write(tmp_path, pcap([(1700000000, 123456, SYN, None), (1700000000, 999999, SYN_ACK, 1514)],
                                endian=endian, magic=magic))
    frames = list(read_frames(path))
    assert frames == [
        RawFrame(1, 1700000000.123456, 1, SYN, len(SYN), 24),
        RawFrame(2, 1700000000.999999, 1, SYN_ACK, 1514, 24 + 16 + len(SYN)),
    ]
    assert frames[0].ts == exact(1700000000_123456, 10**6)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_pcap_nanoseconds_exact(tmp_path: Path, endian: str) -> None:
    # 1700000000.123456789 is not a float; we want the nearest one, not sec + ns/1e9's double rounding.
    recs: List[Record] = [(1700000000, 123456789, SYN, None), (4294967295, 999999999, b"", 0)]
    frames = list(read_frames(write(tmp_path, pcap(recs, endian=endian, magic=0xA1B23C4D))))
    assert [f.ts for f in frames] == [exact(1700000000_123456789, 10**9),
                                      exact(4294967295_999999999, 10**9)]
    assert frames[1].data == b"" and frames[1].wirelen == 0


def test_pcap_linktype_masks_fcs_bits(tmp_path: Path) -> None:
    # pcap spec: bits 28-31 FCS length, bit 26 "F"; the link type is the low 16 bits.
    path = write(tmp_path, pcap([(1, 0, SYN, None)], linktype=0x44000001 | 113))
    assert next(read_frames(path)).linktype == 113 | 1


def test_pcap_modified_magic_skips_extra_bytes(tmp_path: Path) -> None:
    extra = struct.pack("<IHBx", 2, 0x0800, 0)  # ifindex, protocol, pkt_type, pad
    recs: List[Record] = [(5, 6, SYN, None), (7, 8, SYN_ACK, None)]
    frames = list(read_frames(write(tmp_path, pcap(recs, magic=0xA1B2CD34, extra=extra))))
    assert [(f.ts, f.data, f.offset) for f in frames] == [
        (5.000006, SYN, 24), (7.000008, SYN_ACK, 24 + 24 + len(SYN))]


def test_pcap_tolerates_caplen_over_wirelen(tmp_path: Path) -> None:
    path = write(tmp_path, pcap([(1, 0, SYN, 20)]))
    frame = next(read_frames(path))
    assert (frame.data, frame.wirelen) == (SYN, 20)


def test_pcap_caplen_over_snaplen_is_cut_to_it_with_a_warning(tmp_path: Path) -> None:
    # libpcap (sf-pcap.c pcap_next_packet): above the file's snaplen but within the largest snaplen
    # for the link type, the record is kept, cut to the snaplen, and the rest of it skipped.
    path = write(tmp_path, pcap([(1, 0, SYN, 20), (2, 0, SYN_ACK, None)], snaplen=16))
    warnings: List[str] = []
    frames = list(read_frames(path, warnings))
    assert [(f.frame, f.data, f.wirelen, f.offset) for f in frames] == [
        (1, SYN[:16], 20, 24), (2, SYN_ACK[:16], len(SYN_ACK), 24 + 16 + len(SYN))]
    assert warnings == [
        f"{path}: frame 1 at byte offset 24: captured length {len(SYN)} exceeds the file's snaplen 16;"
        " frame kept, cut to 16 bytes (as libpcap does)",
        f"{path}: frame 2 at byte offset {24 + 16 + len(SYN)}: captured length {len(SYN_ACK)} exceeds"
        " the file's snaplen 16; frame kept, cut to 16 bytes (as libpcap does)"]
    # The analysis passes them on, as warnings (the frames are kept: the file is not damaged).
    analysis = handshake_probe.analyze(path)
    list(analysis)
    assert analysis.warnings == warnings and not analysis.damaged


@pytest.mark.parametrize("snaplen", [0, 0x80000000, 0xFFFFFFFF])
def test_pcap_bogus_snaplen_means_the_largest(tmp_path: Path, snaplen: int) -> None:
    # pcap_adjust_snapshot: 0 or above INT_MAX is replaced by the largest snaplen for the link type.
    path = write(tmp_path, pcap([(1, 0, SYN, None)], snaplen=snaplen))
    warnings: List[str] = []
    assert next(read_frames(path, warnings)).data == SYN and warnings == []


def test_pcap_modified_ethernet_snaplen_allows_14_more(tmp_path: Path) -> None:
    extra = struct.pack("<IHBx", 2, 0x0800, 0)
    path = write(tmp_path, pcap([(5, 6, SYN, None)], magic=0xA1B2CD34, extra=extra, snaplen=len(SYN) - 14))
    warnings: List[str] = []
    assert next(read_frames(path, warnings)).data == SYN and warnings == []


def test_pcap_cut_frames_keep_wire_length(tmp_path: Path) -> None:
    path = write(tmp_path, pcap([(1, 0, SYN[:54], 1514)], snaplen=54))
    assert next(read_frames(path))[3:5] == (SYN[:54], 1514)


def test_pcap_without_records_yields_nothing(tmp_path: Path) -> None:
    assert list(read_frames(write(tmp_path, pcap([])))) == []


def test_accepts_pathlib_path(tmp_path: Path) -> None:
    path = Path(write(tmp_path, pcap([(1, 0, SYN, None)])))
    analysis = handshake_probe.analyze(path)
    assert len(list(analysis)) == 1 and analysis.frames == 1 and analysis.path == str(path)


# --- pcapng ---------------------------------------------------------------------------------

def test_pcapng_two_interfaces_with_tsresol(tmp_path: Path) -> None:
    ns = 1700000000_123456789
    b20 = (1700000000 << 20) + 12345
    content = (shb() + idb(1, 262144, opt(9, bytes([9])))  # Ethernet, 10^-9 s
               + idb(113, 0, opt(2, b"any") + opt(9, bytes([0x80 | 20])))  # SLL, 2^-20 s
               + epb(0, ns, SYN) + epb(1, b20, SYN_ACK[:40], 60))
    frames = list(read_frames(write(tmp_path, content, "t.pcapng")))
    epb0 = 28 + 32 + 40  # SHB, IDB with one option, IDB with two
    assert frames == [
        RawFrame(1, exact(ns, 10**9), 1, SYN, len(SYN), epb0),
        RawFrame(2, b20 / 2**20, 113, SYN_ACK[:40], 60, epb0 + 32 + len(pad(SYN))),
    ]


def test_pcapng_default_resolution_and_tsoffset(tmp_path: Path) -> None:
    # if_tsoffset (code 14) is a signed 64-bit count of seconds added to every timestamp.
    content = (shb() + idb(1) + idb(1, options=opt(14, struct.pack("<q", 1700000000)))
               + epb(0, 1700000000_000001, SYN) + epb(1, 250000, SYN))
    frames = list(read_frames(write(tmp_path, content, "t.pcapng")))
    assert [f.ts for f in frames] == [1700000000.000001, 1700000000.25]


def test_pcapng_epb_options_after_data_are_ignored(tmp_path: Path) -> None:
    options = opt(2, struct.pack("<I", 1)) + opt(1, b"a comment") + opt(0, b"")
    content = shb() + idb(1) + epb(0, 5, SYN[:-1], options=options)
    assert next(read_frames(write(tmp_path, content, "t.pcapng"))).data == SYN[:-1]


def test_pcapng_simple_packet_block(tmp_path: Path) -> None:
    # SPB: interface 0, no timestamp; captured length = wire length cut to the snaplen.
    content = shb() + idb(101, 40) + idb(1) + spb(len(SYN), SYN[:40]) + spb(10, SYN[:10])
    frames = list(read_frames(write(tmp_path, content, "t.pcapng")))
    assert [(f.ts, f.linktype, f.data, f.wirelen) for f in frames] == [
        (0.0, 101, SYN[:40], len(SYN)), (0.0, 101, SYN[:10], 10)]


def test_pcapng_obsolete_packet_block(tmp_path: Path) -> None:
    content = shb() + idb(1) + idb(0) + obsolete_pb(1, 3_500000, SYN)
    frame = next(read_frames(write(tmp_path, content, "t.pcapng")))
    assert (frame.ts, frame.linktype, frame.data) == (3.5, 0, SYN)


def test_pcapng_sections_reset_interfaces_and_byte_order(tmp_path: Path) -> None:
    first = shb("<") + idb(1, e="<") + idb(113, e="<") + epb(1, 1_000000, SYN, e="<")
    second = shb(">") + idb(101, e=">") + epb(0, 2_000000, SYN_ACK, e=">")
    frames = list(read_frames(write(tmp_path, first + second, "t.pcapng")))
    assert [(f.frame, f.ts, f.linktype, f.data) for f in frames] == [
        (1, 1.0, 113, SYN), (2, 2.0, 101, SYN_ACK)]
    assert frames[1].offset == len(first) + 28 + 20


def test_pcapng_big_endian(tmp_path: Path) -> None:
    content = shb(">") + idb(1, options=opt(9, bytes([3]), ">"), e=">") + epb(0, 1_500, SYN, e=">")
    frame = next(read_frames(write(tmp_path, content, "t.pcapng")))
    assert (frame.ts, frame.data) == (1.5, SYN)


def test_pcapng_other_blocks_skipped(tmp_path: Path) -> None:
    nrb = block(4, struct.pack("<HH4s", 1, 8, bytes([192, 0, 2, 1])) + b"host\0\0\0\0" + b"\0" * 4)
    isb = block(5, struct.pack("<III", 0, 0, 0))
    dsb = block(10, struct.pack("<II", 0x544C534B, 4) + b"keys")
    custom = block(0x40000BAD, struct.pack("<I", 32473) + b"whatever")
    unknown = block(0x12345678, b"\xff" * 50)
    content = shb() + nrb + idb(1) + isb + epb(0, 1, SYN) + dsb + custom + unknown + epb(0, 2, SYN_ACK)
    frames = list(read_frames(write(tmp_path, content, "t.pcapng")))
    assert [(f.frame, f.data) for f in frames] == [(1, SYN), (2, SYN_ACK)]


# --- errors ---------------------------------------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.pcap")
    with pytest.raises(CaptureError) as info:
        Frames(path)
    assert str(info.value) == f"{path}: byte offset 0: No such file or directory"
    frames, err = read_until_error(path)
    assert frames == [] and err == Fault(path, 0, "No such file or directory", None)


def test_error_survives_pickling(tmp_path: Path) -> None:
    reason = "truncated record header (8 of 16 bytes)"
    path = write(tmp_path, pcap([]) + struct.pack("<II", 3, 0))
    with pytest.raises(CaptureError) as info:
        list(Frames(path))
    err = pickle.loads(pickle.dumps(info.value))
    assert type(err) is CaptureError and str(err) == f"{path}: frame 1 at byte offset 24: {reason}"
    assert fault(err) == Fault(path, 24, reason, 1)
    with pytest.raises(CaptureError) as info:
        Frames(path + ".absent")
    err = pickle.loads(pickle.dumps(info.value))
    assert fault(err) == Fault(path + ".absent", 0, "No such file or directory", None)
    assert str(err) == f"{path}.absent: byte offset 0: No such file or directory"


def test_directory(tmp_path: Path) -> None:
    _, err = read_until_error(str(tmp_path))
    assert err == Fault(str(tmp_path), 0, "Is a directory", None)


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"\xd4\xc3", "truncated magic number (2 of 4 bytes)"),
    (b"GET / HTTP/1.1\r\n", "not a pcap or pcapng file (magic 0x47455420)"),
    (pcap([])[:10], "truncated global header (10 of 24 bytes)"),
    (pcap([], endian=">")[:23], "truncated global header (23 of 24 bytes)"),
])
def test_file_header_faults(tmp_path: Path, content: bytes, reason: str) -> None:
    path = write(tmp_path, content)
    frames, err = read_until_error(path)
    assert frames == []
    assert err == Fault(path, 0, reason, None)


def test_truncated_record_header(tmp_path: Path) -> None:
    content = pcap([(1, 0, SYN, None), (2, 0, SYN_ACK, None)])
    path = write(tmp_path, content + struct.pack("<II", 3, 0))
    frames, err = read_until_error(path)
    assert [f.frame for f in frames] == [1, 2]
    assert err == Fault(path, len(content), "truncated record header (8 of 16 bytes)", 3)


def test_truncated_packet_data(tmp_path: Path) -> None:
    content = pcap([(1, 0, SYN, None), (2, 0, SYN_ACK, None)])
    path = write(tmp_path, content[:-10])
    frames, err = read_until_error(path)
    assert [f.data for f in frames] == [SYN]
    n = len(SYN_ACK)
    assert (err.offset, err.frame) == (24 + 16 + len(SYN), 2)
    assert err.reason == f"truncated packet data ({n - 10} of {n} bytes)"


@pytest.mark.parametrize("linktype, caplen, limit", [
    (1, 262145, 262144), (1, 0x10000001, 262144), (113, 0xFFFFFFFF, 262144),
    (231, 128 * 2**20 + 1, 128 * 2**20), (249, 2**20 + 1, 2**20), (279, 8 * 2**20 + 1, 8 * 2**20)])
def test_impossible_captured_length(tmp_path: Path, linktype: int, caplen: int, limit: int) -> None:
    # libpcap's max_snaplen_for_dlt: beyond it the record header is corrupt, whatever the snaplen says.
    good = pcap([(1, 0, SYN, None)], linktype=linktype, snaplen=0)
    path = write(tmp_path, good + struct.pack("<IIII", 2, 0, caplen, 60) + SYN)
    frames, err = read_until_error(path)
    assert len(frames) == 1
    reason = f"impossible captured length {caplen} (more than {limit}, libpcap's largest snaplen" \
             f" for link type {linktype})"
    assert err == Fault(path, len(good), reason, 2)


@pytest.mark.parametrize("snaplen", [262144, 65535])
def test_captured_length_at_the_limit_is_only_truncated(tmp_path: Path, snaplen: int) -> None:
    path = write(tmp_path, pcap([], snaplen=snaplen) + struct.pack("<IIII", 2, 0, 262144, 60) + b"x" * 100)
    _, err = read_until_error(path)
    assert (err.offset, err.frame, err.reason) == (24, 1, "truncated packet data (100 of 262144 bytes)")


NG_HEAD = shb() + idb(1) + idb(113)  # 28 + 20 + 20 bytes
NG_FIRST = NG_HEAD + epb(0, 1, SYN)


EPB2 = epb(1, 2, SYN_ACK)  # the block after NG_FIRST in most fault cases
EPB2_LEN = 32 + len(pad(SYN_ACK))


def bad_epb_length(blen: int) -> bytes:
    return struct.pack("<II", 6, blen) + b"\0" * 24


@pytest.mark.parametrize("tail, reason, frame", [
    (b"\x06\0\0\0\x20", "truncated block header (5 of 8 bytes)", None),
    (bad_epb_length(8), "invalid block total length 8 (must be a multiple of 4 and at least 12)", 2),
    (bad_epb_length(30), "invalid block total length 30 (must be a multiple of 4 and at least 12)", 2),
    (EPB2[:-9], f"truncated block ({EPB2_LEN - 9} of {EPB2_LEN} bytes)", 2),
    (block(0x999, b"x" * 40)[:30], "truncated block (30 of 52 bytes)", None),  # a skipped block, too
    (bad_epb_length(0xFFFFFFFC), "truncated block (32 of 4294967292 bytes)", 2),  # refused before reading
    (EPB2[:-4] + struct.pack("<I", 96), f"trailing block length 96 does not match {EPB2_LEN}", 2),
    (block(5, b"\0" * 12)[:-4] + b"\0\0\0\0", "trailing block length 0 does not match 24", None),
    (epb(2, 2, SYN_ACK), "packet names interface 2, but the section declares 2", 2),
    (obsolete_pb(7, 2, SYN_ACK), "packet names interface 7, but the section declares 2", 2),
    (block(6, struct.pack("<IIIII", 0, 0, 0, 100, 100) + b"\0" * 64),
     "captured length 100 runs past the block (64 bytes of packet data)", 2),
    (spb(2000, SYN), f"captured length 2000 runs past the block ({len(pad(SYN))} bytes of packet data)", 2),
    (block(1, b"\x01\0"), "interface description block too short (16 bytes)", None),
    (idb(1, options=opt(9, b"\x06\x00")), "if_tsresol option of 2 bytes (expected 1)", None),
    (block(1, struct.pack("<HHIHH", 1, 0, 0, 9, 200)), "interface option 9 runs past the block", None),
    (shb()[:10], "truncated section header (10 of 28 bytes)", None),
    (shb()[:8] + b"\x11\x22\x33\x44", "bad byte-order magic 0x11223344 in section header", None),
    (block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 2, 0, -1)), "unsupported pcapng version 2.0", None),
    (struct.pack("<II", 0x0A0D0D0A, 24) + struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1),
     "invalid section header length 24 (must be a multiple of 4 and at least 28)", None),
])
def test_pcapng_faults(tmp_path: Path, tail: bytes, reason: str, frame: Optional[int]) -> None:
    # A fault in a packet block names the frame it would have been; other blocks are no frame.
    path = write(tmp_path, NG_FIRST + tail, "t.pcapng")
    frames, err = read_until_error(path)
    assert [(f.frame, f.data) for f in frames] == [(1, SYN)]
    assert err == Fault(path, len(NG_FIRST), reason, frame)


def read_through_pipe(content: bytes, tmp_path: Path) -> Tuple[List[RawFrame], Optional[Fault]]:
    """read_frames on a pipe (no file size to check lengths against), written by another process. Not
    by a thread of this one: the engine reads a pipe in the calling thread without releasing the GIL,
    so a Python thread could never write what it waits for."""
    source = tmp_path / "piped"
    source.write_bytes(content)
    cat = subprocess.Popen(["cat", str(source)], stdout=subprocess.PIPE)
    assert cat.stdout is not None
    frames: List[RawFrame] = []
    error: Optional[Fault] = None
    try:
        for frame in read_frames(f"/dev/fd/{cat.stdout.fileno()}"):
            frames.append(frame)
    except CaptureError as err:
        error = fault(err)
    cat.stdout.close()          # a reader that stopped at a fault: cat gets EPIPE and ends
    cat.wait()
    return frames, error


@pytest.mark.parametrize("tail", [bad_epb_length(0xFFFFFFF0), block(0x999, b"x" * 40)[:4] + b"\xf0\xff\xff\xff"
                                  + b"x" * 40, shb()[:4] + b"\xf0\xff\xff\xff" + shb()[8:]])
def test_pcapng_huge_length_on_a_pipe_reads_only_what_is_there(tmp_path: Path, tail: bytes) -> None:
    # On a pipe the 4 GiB length cannot be checked first: the block is read in bounded chunks
    # (a single read would allocate it all) and the fault is the same as on a file.
    _, on_file = read_until_error(write(tmp_path, NG_FIRST + tail, "t.pcapng"))
    frames, on_pipe = read_through_pipe(NG_FIRST + tail, tmp_path)
    assert [f.data for f in frames] == [SYN] and on_pipe is not None
    assert (on_pipe.offset, on_pipe.frame, on_pipe.reason) == (on_file.offset, on_file.frame, on_file.reason)
    assert on_pipe.reason.startswith("truncated block (")


def test_pcapng_big_blocks_on_a_pipe(tmp_path: Path) -> None:
    # Blocks above 1 MiB are legal (D-Bus messages, link type 231, reach 128 MiB): read whole, in chunks.
    big = bytes(range(256)) * 6000  # 1.5 MB
    content = shb() + idb(231) + epb(0, 7, big) + epb(0, 8, SYN)
    frames, err = read_through_pipe(content, tmp_path)
    assert err is None and [f.data for f in frames] == [big, SYN]
    assert frames == list(read_frames(write(tmp_path, content, "t.pcapng")))


def test_pcapng_new_section_forgets_interfaces(tmp_path: Path) -> None:
    first = shb() + idb(1) + idb(1) + epb(1, 1, SYN)
    path = write(tmp_path, first + shb(">") + idb(1, e=">") + epb(1, 1, SYN, e=">"), "t.pcapng")
    frames, err = read_until_error(path)
    assert len(frames) == 1
    assert err.offset == len(first) + 28 + 20
    assert err.reason == "packet names interface 1, but the section declares 1"


def test_pcapng_simple_packet_before_interface(tmp_path: Path) -> None:
    path = write(tmp_path, shb() + spb(4, b"abcd"), "t.pcapng")
    _, err = read_until_error(path)
    assert (err.offset, err.reason) == (28, "simple packet block before any interface")


def test_pcapng_truncated_first_section(tmp_path: Path) -> None:
    path = write(tmp_path, shb()[:20], "t.pcapng")
    _, err = read_until_error(path)
    assert (err.offset, err.reason) == (0, "truncated block (20 of 28 bytes)")


@pytest.mark.parametrize("pieces", [
    [pcap([])] + [pcap([r])[24:] for r in [(1, 0, SYN, None), (2, 0, SYN_ACK, 100), (3, 0, b"", None)]],
    [shb(), idb(1), epb(0, 1, SYN), block(5, b"\0" * 12), spb(58, SYN), shb(">"), idb(1, e=">"),
     epb(0, 2, SYN_ACK, e=">")],
], ids=["pcap", "pcapng"])
def test_cut_anywhere_gives_a_prefix_then_an_error(tmp_path: Path, pieces: List[bytes]) -> None:
    # A capture cut at any byte (a full disk, a killed tcpdump) yields the whole records
    # before the cut, then one CaptureError; only a cut between records ends cleanly.
    content = b"".join(pieces)
    boundaries = {len(b"".join(pieces[:i])) for i in range(1, len(pieces))}
    full = list(read_frames(write(tmp_path, content)))
    for cut in range(1, len(content)):
        path = write(tmp_path, content[:cut])
        frames: List[RawFrame] = []
        try:
            for frame in read_frames(path):
                frames.append(frame)
        except CaptureError as err:
            assert fault(err).offset < cut and cut not in boundaries
        else:
            assert cut in boundaries
        assert frames == full[:len(frames)]


def test_error_is_one_line_and_frames_stream_before_it(tmp_path: Path) -> None:
    # The reader is lazy: the first frame comes out before the fault further on is read.
    path = write(tmp_path, pcap([(1, 0, SYN, None)]) + b"\0" * 3)
    it = iter(Frames(path))
    assert next(it)[0] == 1
    with pytest.raises(CaptureError) as info:
        next(it)
    assert "\n" not in str(info.value) and fault(info.value).offset == 40 + len(SYN)


# --- PcapWriter -----------------------------------------------------------------------------

def test_writer_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "w.pcap"
    with PcapWriter(str(path), linktype=1) as w:
        w.write(1700000000.123456, SYN)
        w.write(1700000000.5, SYN_ACK[:40], wirelen=len(SYN_ACK))
        w.write(1.9999996, b"", flush=True)  # rounds up into the next second
    assert path.read_bytes()[:24] == struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    frames = list(read_frames(str(path)))
    assert [(f.frame, f.ts, f.linktype, f.data, f.wirelen) for f in frames] == [
        (1, 1700000000.123456, 1, SYN, len(SYN)),
        (2, 1700000000.5, 1, SYN_ACK[:40], len(SYN_ACK)),
        (3, 2.0, 1, b"", 0),
    ]


def test_writer_cuts_to_snaplen(tmp_path: Path) -> None:
    path = str(tmp_path / "w.pcap")
    with PcapWriter(path, linktype=113, snaplen=20) as w:
        w.write(3.0, SYN)
    frame = next(read_frames(path))
    assert (frame.linktype, frame.data, frame.wirelen) == (113, SYN[:20], len(SYN))


def test_writer_to_file_object_leaves_it_open() -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf, linktype=1)
    w.write(1.0, SYN)
    w.close()
    w.close()  # idempotent
    assert not buf.closed
    assert buf.getvalue() == pcap([(1, 0, SYN, None)], snaplen=262144)


def test_writer_file_is_valid_at_every_point(tmp_path: Path) -> None:
    path = str(tmp_path / "w.pcap")
    w = PcapWriter(path, linktype=1)
    assert list(read_frames(path)) == []  # the header is on disk before any record
    w.write(1.0, SYN, flush=True)
    w.write(2.0, SYN_ACK, flush=True)
    assert [f.data for f in read_frames(path)] == [SYN, SYN_ACK]
    w.close()
    # A writer killed mid-record leaves every earlier record readable.
    Path(path).write_bytes(Path(path).read_bytes()[:-5])
    frames, err = read_until_error(path)
    assert [f.data for f in frames] == [SYN]
    assert err.reason.startswith("truncated packet data")


@pytest.mark.parametrize("ts, data, wirelen", [(-1.0, SYN, None), (2.0**32, SYN, None), (1.0, SYN, 10)])
def test_writer_refuses_what_pcap_cannot_hold(tmp_path: Path, ts: float, data: bytes,
                                              wirelen: Optional[int]) -> None:
    with PcapWriter(str(tmp_path / "w.pcap"), linktype=1) as w:
        with pytest.raises(ValueError):
            w.write(ts, data, wirelen)


def test_writer_output_read_by_scapy(tmp_path: Path) -> None:
    from scapy.layers.inet import TCP  # registers Ethernet and IP for rdpcap's dissection
    from scapy.utils import rdpcap

    path = str(tmp_path / "w.pcap")
    with PcapWriter(path, linktype=1) as w:
        w.write(1700000000.000001, SYN)
        w.write(1700000000.25, SYN_ACK, wirelen=1000)
    packets = rdpcap(path)
    assert [bytes(p) for p in packets] == [SYN, SYN_ACK]
    assert [float(p.time) for p in packets] == [1700000000.000001, 1700000000.25]
    assert [p.wirelen for p in packets] == [len(SYN), 1000]
    assert packets[0][TCP].flags == "S" and packets[1][TCP].flags == "SA"


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
def test_writer_output_read_by_tcpdump(tmp_path: Path) -> None:
    path = str(tmp_path / "w.pcap")
    with PcapWriter(path, linktype=1) as w:
        w.write(1700000000.000001, SYN)
        w.write(1700000000.25, SYN_ACK)
    out = subprocess.run(["tcpdump", "-nn", "-tt", "-r", path],
                         capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["1700000000.000001", "1700000000.250000"]
    assert "Flags [S]" in lines[0] and "Flags [S.]" in lines[1]
    assert "truncated" not in out.stderr


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_writer_output_read_by_tshark(tmp_path: Path) -> None:
    path = str(tmp_path / "w.pcap")
    with PcapWriter(path, linktype=1) as w:
        w.write(1700000000.000001, SYN)
        w.write(1700000000.25, SYN_ACK[:54], wirelen=len(SYN_ACK))
    out = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "frame.time_epoch",
                          "-e", "frame.len", "-e", "frame.cap_len", "-e", "tcp.flags.syn"],
                         capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert [[Fraction(r[0]), int(r[1]), int(r[2])] for r in rows] == [
        [Fraction("1700000000.000001"), len(SYN), len(SYN)],
        [Fraction("1700000000.25"), len(SYN_ACK), 54],
    ]


# --- conformance traces, against scapy's raw readers -----------------------------------------

TRACES: List[Optional[Path]] = [*sorted(CONFORMANCE.iterdir())] if CONFORMANCE.is_dir() else []


@pytest.mark.parametrize("trace", TRACES or [None], ids=[t.name for t in TRACES if t] or ["absent"])
def test_conformance_trace_matches_scapy(trace: Optional[Path]) -> None:
    if trace is None:
        pytest.skip(f"conformance traces not found at {CONFORMANCE}")
    from scapy.utils import RawPcapNgReader, RawPcapReader

    ours = list(read_frames(str(trace)))
    theirs: List[Tuple[Fraction, int, bytes, int]] = []  # exact timestamps
    is_ng = trace.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    with (RawPcapNgReader if is_ng else RawPcapReader)(str(trace)) as reader:
        meta: Any  # scapy types both readers' metadata as the pcap one (its own TODO)
        for data, meta in reader:
            if is_ng:
                ts = Fraction((meta.tshigh << 32) | meta.tslow, meta.tsresol)
                theirs.append((ts, meta.linktype, data, meta.wirelen))
            else:
                ts = Fraction(meta.sec) + Fraction(meta.usec, 10**9 if reader.nano else 10**6)
                theirs.append((ts, reader.linktype & 0xFFFF, data, meta.wirelen))
    assert len(ours) == len(theirs) > 0
    for frame, (ts, linktype, data, wirelen) in zip(ours, theirs):
        assert abs(Fraction(frame.ts) - ts) < Fraction(1, 10**6), frame.frame
        assert (frame.linktype, frame.data, frame.wirelen) == (linktype, data, wirelen), frame.frame
    assert [f.frame for f in ours] == list(range(1, len(ours) + 1))
    assert all(a.offset < b.offset for a, b in zip(ours, ours[1:]))
