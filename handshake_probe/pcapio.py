"""The capture-file reader of the Python core (the engine reads files now): stream raw frames out of
pcap / pcapng files. The pcap writer is an edge and lives in `pcapwriter`.

No scapy here: the record headers are declared once as `struct.Struct`s and unpacked in one
call each (dpkt's lesson), because this loop runs once per packet of every analysed file.

Formats:
- pcap: https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcap/ (plus the "modified pcap"
  magic 0xa1b2cd34 from libpcap's sf-pcap.c, whose records carry 8 extra bytes).
- pcapng: https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/

Every fault is a `CaptureError` whose offset points at the start of the structure at fault
(the file header, the record or the block), so a user can look at it with a hex dump; a fault in
a packet record or packet block also names the frame number that record would have had.

Captured length against snaplen, as libpcap's sf-pcap.c (`pcap_next_packet`) decides it: a pcap
record whose captured length exceeds the file's snaplen but not libpcap's largest snaplen for the
link type (`max_snaplen_for_dlt`: 262144, more for D-Bus, EBHSCR, USBPcap) is kept, cut to the
snaplen, and reported through `on_warning`; beyond that largest snaplen the record header is corrupt
and reading stops with a `CaptureError`.
"""

from __future__ import annotations

import os
import stat
import struct
from typing import BinaryIO, Callable, Iterator, NamedTuple, NoReturn, Optional, Tuple, Type

# The writer and the frame record moved out (the reader is the engine's now); re-exported here
# until the Python reader goes.
from handshake_probe.pcapwriter import PcapWriter, RawFrame

__all__ = ["CaptureError", "RawFrame", "read_frames", "where", "PcapWriter", "MAXIMUM_SNAPLEN", "max_snaplen"]


class CaptureError(Exception):
    """A file-level fault: the file cannot be read, or is malformed at `offset`.

    str(err) == f"{path}: byte offset {offset}: {reason}" (one line), or, when the fault is in a
    packet record or packet block, f"{path}: frame {frame} at byte offset {offset}: {reason}", where
    `frame` is the 1-based number the frame would have had (the frames before it were yielded).
    """

    def __init__(self, path: str, offset: int, reason: str, frame: Optional[int] = None) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        self.frame = frame
        super().__init__(f"{path}: {where(offset, frame)}: {reason}")

    def __reduce__(self) -> Tuple[Type["CaptureError"], Tuple[str, int, str, Optional[int]]]:
        # Rebuild from the four fields, so the error survives pickling (worker processes).
        return (CaptureError, (self.path, self.offset, self.reason, self.frame))


def where(offset: int, frame: Optional[int] = None) -> str:
    """"frame 17 at byte offset 1234", or "byte offset 24" where no frame is involved: the one
    spelling of a place in a file, for errors and warnings alike."""
    if frame is None:
        return f"byte offset {offset}"
    return f"frame {frame} at byte offset {offset}"


# libpcap's largest snaplen (pcap-int.h MAXIMUM_SNAPLEN), and the link types it allows more
# (pcap-common.c max_snaplen_for_dlt): a pcap record longer than this for its link type has a
# corrupt header (libpcap refuses it), and reading it blindly could ask for 4 GiB.
MAXIMUM_SNAPLEN = 262144
_MAX_SNAPLEN_FOR_LINKTYPE = {
    231: 128 * 1024 * 1024,  # D-Bus: a message is at most 128 MiB
    249: 1024 * 1024,  # USBPcap
    279: 8 * 1024 * 1024,  # EBHSCR
}
_INT_MAX = 0x7FFFFFFF


def max_snaplen(linktype: int) -> int:
    """libpcap's largest captured length for a link type (pcap-common.c `max_snaplen_for_dlt`)."""
    return _MAX_SNAPLEN_FOR_LINKTYPE.get(linktype, MAXIMUM_SNAPLEN)

# Block lengths above this are checked against the file size before reading them, so that a
# corrupt 32-bit length cannot make us allocate gigabytes.
_BIG_BLOCK = 1 << 20

_PCAP_MAGICS = {
    # first four bytes of the file -> (byte order, ticks per second, extra bytes per record)
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000, 0),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000, 0),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000, 0),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000, 0),
    # "modified pcap" (Alexey Kuznetsov's patches): ifindex(4) protocol(2) pkt_type(1) pad(1)
    b"\x34\xcd\xb2\xa1": ("<", 1_000_000, 8),
    b"\xa1\xb2\xcd\x34": (">", 1_000_000, 8),
}
_SHB_TYPE = b"\x0a\x0d\x0d\x0a"  # a palindrome: readable before the byte order is known
_BOM = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}

# pcapng block types
_IDB, _PB, _SPB, _EPB = 1, 2, 3, 6
_SHB = 0x0A0D0D0A
_PACKET_BLOCKS = frozenset((_IDB, _PB, _SPB, _EPB))
_FRAME_BLOCKS = frozenset((_PB, _SPB, _EPB))  # the blocks that hold a frame (and count as one)

# pcapng IDB option codes
_OPT_ENDOFOPT = 0
_IF_TSRESOL = 9
_IF_TSOFFSET = 14


class _Interface(NamedTuple):
    """What a pcapng packet block needs from its Interface Description Block."""

    linktype: int
    snaplen: int  # 0 = unlimited
    divisor: int  # timestamp ticks per second
    offset_ticks: int  # if_tsoffset expressed in ticks, added before dividing (one rounding)


class _Structs(NamedTuple):
    """The pcapng layouts for one byte order, built once per section."""

    block_header: struct.Struct  # type, total length
    u32: struct.Struct
    idb: struct.Struct  # linktype, reserved, snaplen
    epb: struct.Struct  # interface, ts high, ts low, caplen, wirelen
    pb: struct.Struct  # interface (16), drops (16), ts high, ts low, caplen, wirelen
    option: struct.Struct  # code, length
    i64: struct.Struct


def _structs(endian: str) -> _Structs:
    return _Structs(
        struct.Struct(endian + "II"),
        struct.Struct(endian + "I"),
        struct.Struct(endian + "HHI"),
        struct.Struct(endian + "IIIII"),
        struct.Struct(endian + "HHIIII"),
        struct.Struct(endian + "HH"),
        struct.Struct(endian + "q"),
    )


_STRUCTS = {"<": _structs("<"), ">": _structs(">")}


Warn = Callable[[str], None]


def read_frames(path: str, on_warning: Optional[Warn] = None) -> Iterator[RawFrame]:
    """Stream frames from a pcap or pcapng file (detected by magic), one record at a time.

    Yields every frame before a fault, then raises CaptureError at the fault. This is a
    generator: even "cannot open" surfaces on the first `next()`, not at the call.
    `on_warning` gets one line (`path: frame N at byte offset X: ...`) for each frame kept
    despite a fault (a pcap record longer than the file's snaplen, kept cut to it as libpcap does).
    """
    path = os.fspath(path)  # a pathlib.Path works too; errors always carry a str
    try:
        # A large buffer: the per-record reads then rarely reach the kernel.
        f = open(path, "rb", buffering=1 << 20)
    except OSError as err:
        raise CaptureError(path, 0, err.strerror or str(err)) from None
    with f:
        magic = f.read(4)
        if not magic:
            raise CaptureError(path, 0, "empty file")
        if len(magic) < 4:
            raise CaptureError(path, 0, f"truncated magic number ({len(magic)} of 4 bytes)")
        if magic in _PCAP_MAGICS:
            yield from _pcap_frames(f, path, magic, on_warning)
        elif magic == _SHB_TYPE:
            yield from _pcapng_frames(f, path)
        else:
            raise CaptureError(path, 0, f"not a pcap or pcapng file (magic 0x{magic.hex()})")


def _pcap_frames(f: BinaryIO, path: str, magic: bytes, on_warning: Optional[Warn]) -> Iterator[RawFrame]:
    endian, divisor, extra = _PCAP_MAGICS[magic]
    rest = f.read(20)
    if len(rest) < 20:
        raise CaptureError(path, 0, f"truncated global header ({4 + len(rest)} of 24 bytes)")
    # version, thiszone and sigfigs do not affect reading; the upper 16 bits of the link type
    # carry FCS information.
    snaplen, linktype = struct.unpack_from(endian + "II", rest, 12)
    linktype &= 0xFFFF
    limit = max_snaplen(linktype)
    # The snaplen as libpcap takes it (pcap_adjust_snapshot): 0 or above INT_MAX means "the
    # largest for the link type"; a modified-pcap Ethernet capture may hold 14 bytes more
    # (sf-pcap.c: a faked Ethernet header added to a cooked capture).
    snap = snaplen if 0 < snaplen <= _INT_MAX else limit
    if extra and linktype == 1:
        snap = min(snap + 14, _INT_MAX)

    # The hot loop: local aliases only, one unpack and two reads per record.
    record = struct.Struct(endian + "IIII" + ("%dx" % extra if extra else ""))
    unpack = record.unpack
    hlen = record.size
    read = f.read
    new = tuple.__new__  # skips namedtuple's Python-level __new__
    cls = RawFrame
    guard = min(snap, limit)  # one comparison per record in the common case
    pos = 24
    frame = 0
    while True:
        hdr = read(hlen)
        if len(hdr) != hlen:
            if not hdr:
                return
            raise CaptureError(path, pos, f"truncated record header ({len(hdr)} of {hlen} bytes)",
                               frame + 1)
        sec, frac, caplen, wirelen = unpack(hdr)
        if caplen > guard:
            data = _oversized(f, path, pos, frame + 1, caplen, snap, limit, linktype, on_warning)
        else:
            data = read(caplen)
            if len(data) != caplen:
                raise CaptureError(path, pos, f"truncated packet data ({len(data)} of {caplen} bytes)",
                                   frame + 1)
        frame += 1
        # Integer ticks divided once: Python's int/int is correctly rounded, so the float is
        # the nearest one to the exact timestamp, for nanoseconds too.
        yield new(cls, (frame, (sec * divisor + frac) / divisor, linktype, data, wirelen, pos))
        pos += hlen + caplen


def _oversized(f: BinaryIO, path: str, pos: int, frame: int, caplen: int, snap: int, limit: int,
               linktype: int, on_warning: Optional[Warn]) -> bytes:
    """A pcap record longer than the snaplen or libpcap's limit: what sf-pcap.c does with it.

    Beyond libpcap's largest snaplen for the link type, the header is corrupt: an error. Above the
    file's snaplen only, libpcap keeps the first snaplen bytes and skips the rest (old Solaris
    BUFMOD wrote such files); so do we, with a warning, because the frame is kept but cut."""
    if caplen > limit:
        raise CaptureError(path, pos, f"impossible captured length {caplen} (more than {limit},"
                           f" libpcap's largest snaplen for link type {linktype})", frame)
    data = f.read(snap)
    if len(data) == snap:
        rest = len(f.read(caplen - snap))
    else:
        rest = 0
    if len(data) + rest != caplen:
        raise CaptureError(path, pos, f"truncated packet data ({len(data) + rest} of {caplen} bytes)",
                           frame)
    if on_warning is not None:
        on_warning(f"{path}: {where(pos, frame)}: captured length {caplen} exceeds the file's snaplen"
                   f" {snap}; frame kept, cut to {snap} bytes (as libpcap does)")
    return data


def _pcapng_frames(f: BinaryIO, path: str) -> Iterator[RawFrame]:
    read = f.read
    new = tuple.__new__
    cls = RawFrame
    pos = 0
    frame = 0
    head = _SHB_TYPE + read(4)  # the first four bytes were read as the magic
    s = _STRUCTS["<"]  # replaced by the first section header's byte order
    unpack_head = s.block_header.unpack
    unpack_epb = s.epb.unpack_from
    packet_blocks, big, epb = _PACKET_BLOCKS, _BIG_BLOCK, _EPB  # locals: read once per block
    ifaces: list[_Interface] = []
    while True:
        if len(head) != 8:
            if not head:
                return
            raise CaptureError(path, pos, f"truncated block header ({len(head)} of 8 bytes)")
        # The SHB type is a palindrome, so any section's byte order unpacks it right.
        btype, blen = unpack_head(head)

        if btype == _SHB:
            # A new section: its own byte order, its own interfaces (pcapng §4.1).
            s, blen = _read_shb(f, path, pos, head)
            unpack_head = s.block_header.unpack
            unpack_epb = s.epb.unpack_from
            ifaces = []
            pos += blen
            head = read(8)
            continue

        if blen < 12 or blen & 3:
            raise CaptureError(path, pos, f"invalid block total length {blen}"
                               " (must be a multiple of 4 and at least 12)", _frame_no(btype, frame))
        if blen > big:
            _check_fits(f, path, pos, blen, _frame_no(btype, frame))

        if btype not in packet_blocks:
            # Name resolution, interface statistics, decryption secrets, custom, unknown:
            # nothing for a handshake inspector; skip by length but still check the trailer.
            _skip(f, path, pos, blen)
            trailer = read(4)
            if trailer != head[4:]:
                _bad_trailer(trailer, s, path, pos, blen)
            pos += blen
            head = read(8)
            continue

        body = read(blen - 8) if blen <= big else _read_big(f, blen - 8)  # body and trailing length
        if len(body) != blen - 8:
            raise CaptureError(path, pos, f"truncated block ({8 + len(body)} of {blen} bytes)",
                               _frame_no(btype, frame))
        if body[-4:] != head[4:]:  # same byte order, so equal bytes <=> equal lengths
            _bad_trailer(body[-4:], s, path, pos, blen, _frame_no(btype, frame))

        if btype == epb or btype == _PB:
            if blen < 32:
                raise CaptureError(path, pos, f"packet block too short ({blen} bytes)", frame + 1)
            if btype == epb:
                iid, hi, lo, caplen, wirelen = unpack_epb(body)
            else:  # obsolete Packet Block: 16-bit interface id and drops count
                iid, _drops, hi, lo, caplen, wirelen = s.pb.unpack_from(body)
            if iid >= len(ifaces):
                raise CaptureError(path, pos, f"packet names interface {iid},"
                                   f" but the section declares {len(ifaces)}", frame + 1)
            if caplen > blen - 32:
                raise CaptureError(path, pos, f"captured length {caplen} runs past the block"
                                   f" ({blen - 32} bytes of packet data)", frame + 1)
            linktype, _snaplen, divisor, offset_ticks = ifaces[iid]
            frame += 1
            ts = (((hi << 32) | lo) + offset_ticks) / divisor
            yield new(cls, (frame, ts, linktype, body[20:20 + caplen], wirelen, pos))
        elif btype == _SPB:
            if blen < 16:
                raise CaptureError(path, pos, f"simple packet block too short ({blen} bytes)", frame + 1)
            if not ifaces:
                raise CaptureError(path, pos, "simple packet block before any interface", frame + 1)
            iface = ifaces[0]  # pcapng §4.4: SPBs belong to the first interface
            (wirelen,) = s.u32.unpack_from(body)
            # The SPB has no captured length: it is the wire length cut to the snaplen.
            caplen = min(wirelen, iface.snaplen) if iface.snaplen else wirelen
            if caplen > blen - 16:
                raise CaptureError(path, pos, f"captured length {caplen} runs past the block"
                                   f" ({blen - 16} bytes of packet data)", frame + 1)
            frame += 1
            # No timestamp in an SPB: 0.0 says "unknown" rather than inventing one.
            yield new(cls, (frame, 0.0, iface.linktype, body[4:4 + caplen], wirelen, pos))
        else:  # _IDB
            ifaces.append(_read_idb(body[:-4], s, path, pos))
        pos += blen
        head = read(8)


def _frame_no(btype: int, frame: int) -> Optional[int]:
    """The frame number a faulty block would have had: only packet blocks are frames."""
    return frame + 1 if btype in _FRAME_BLOCKS else None


def _read_shb(f: BinaryIO, path: str, pos: int, head: bytes) -> Tuple[_Structs, int]:
    """Read a Section Header Block whose first 8 bytes are `head`; return its layouts and length."""
    bom = f.read(4)
    if len(bom) != 4:
        raise CaptureError(path, pos, f"truncated section header ({8 + len(bom)} of 28 bytes)")
    endian = _BOM.get(bom)
    if endian is None:
        raise CaptureError(path, pos, f"bad byte-order magic 0x{bom.hex()} in section header")
    s = _STRUCTS[endian]
    (blen,) = s.u32.unpack_from(head, 4)
    if blen < 28 or blen % 4:
        raise CaptureError(path, pos, f"invalid section header length {blen}"
                           " (must be a multiple of 4 and at least 28)")
    if blen > _BIG_BLOCK:
        _check_fits(f, path, pos, blen)
    body = f.read(blen - 12) if blen <= _BIG_BLOCK else _read_big(f, blen - 12)
    if len(body) != blen - 12:
        raise CaptureError(path, pos, f"truncated block ({12 + len(body)} of {blen} bytes)")
    if body[-4:] != head[4:]:
        _bad_trailer(body[-4:], s, path, pos, blen)
    major, minor = struct.unpack_from(endian + "HH", body)
    if major != 1:
        # A different major version means a layout we cannot know (pcapng §4.1).
        raise CaptureError(path, pos, f"unsupported pcapng version {major}.{minor}")
    return s, blen


def _read_idb(body: bytes, s: _Structs, path: str, pos: int) -> _Interface:
    """Parse an Interface Description Block body (without header and trailer)."""
    if len(body) < 8:
        raise CaptureError(path, pos, f"interface description block too short ({len(body) + 12} bytes)")
    linktype, _reserved, snaplen = s.idb.unpack_from(body)
    divisor = 1_000_000  # default if_tsresol: microseconds
    offset_seconds = 0
    i = 8
    end = len(body)
    while i + 4 <= end:
        code, olen = s.option.unpack_from(body, i)
        if code == _OPT_ENDOFOPT:
            break
        value = body[i + 4:i + 4 + olen]
        if len(value) != olen:
            raise CaptureError(path, pos, f"interface option {code} runs past the block")
        if code == _IF_TSRESOL:
            if olen != 1:
                raise CaptureError(path, pos, f"if_tsresol option of {olen} bytes (expected 1)")
            # High bit set: a negative power of 2; otherwise a negative power of 10.
            exp = value[0] & 0x7F
            divisor = (1 << exp) if value[0] & 0x80 else 10**exp
        elif code == _IF_TSOFFSET:
            if olen != 8:
                raise CaptureError(path, pos, f"if_tsoffset option of {olen} bytes (expected 8)")
            (offset_seconds,) = s.i64.unpack(value)
        i += 4 + olen + (-olen % 4)  # values are padded to 32 bits
    return _Interface(linktype, snaplen, divisor, offset_seconds * divisor)


def _bad_trailer(trailer: bytes, s: _Structs, path: str, pos: int, blen: int,
                 frame: Optional[int] = None) -> NoReturn:
    """Raise for a trailing block length that is missing or differs from the leading one."""
    if len(trailer) != 4:
        raise CaptureError(path, pos, f"truncated block ({blen - 4 + len(trailer)} of {blen} bytes)", frame)
    (copy,) = s.u32.unpack(trailer)
    raise CaptureError(path, pos, f"trailing block length {copy} does not match {blen}", frame)


def _check_fits(f: BinaryIO, path: str, pos: int, blen: int, frame: Optional[int] = None) -> None:
    """Refuse a block longer than what is left of a regular file, before allocating for it."""
    st = os.fstat(f.fileno())  # fresh: a file still being written may have grown
    if stat.S_ISREG(st.st_mode) and pos + blen > st.st_size:
        raise CaptureError(path, pos, f"truncated block ({max(st.st_size - pos, 0)} of {blen} bytes)",
                           frame)


def _read_big(f: BinaryIO, n: int) -> bytes:
    """Up to `n` bytes, read in bounded chunks and stopping at the end of the stream: memory follows
    the bytes that exist, not a length field. On a regular file `_check_fits` has vouched for `n`
    already; on a pipe nothing can, and `f.read(n)` would allocate n bytes (4 GiB) at once."""
    parts = []
    while n:
        chunk = f.read(min(n, _BIG_BLOCK))
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _skip(f: BinaryIO, path: str, pos: int, blen: int) -> None:
    """Read past a block body in bounded chunks (works on pipes; memory stays flat)."""
    left = blen - 12
    while left:
        chunk = f.read(min(left, _BIG_BLOCK))
        if not chunk:
            raise CaptureError(path, pos, f"truncated block ({blen - 4 - left} of {blen} bytes)")
        left -= len(chunk)
