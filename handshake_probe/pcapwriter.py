"""The pcap writer (an edge: the engine reads captures, never writes them) and `RawFrame`, the record
of one captured frame that the capture edges (live capture, the prober) hand to the engine and to
this writer.

Classic little-endian microsecond pcap, the format every reader takes (tcpdump, tshark, ours).
"""

from __future__ import annotations

import os
import struct
from types import TracebackType
from typing import BinaryIO, NamedTuple, Optional, Type, Union

__all__ = ["PcapWriter", "RawFrame"]


class RawFrame(NamedTuple):
    """One captured frame, undecoded: what every edge hands to the engine (`Engine.feed`)."""

    frame: int  # 1-based frame number in the file (counts every packet record, TCP or not)
    ts: float  # seconds since the epoch
    linktype: int  # DLT/LINKTYPE number of this frame's interface
    data: bytes  # captured bytes
    wirelen: int  # original length on the wire
    offset: int  # byte offset in the file of this frame's record (for error messages)


_PCAP_GLOBAL = struct.Struct("<IHHiIII")  # magic, major, minor, thiszone, sigfigs, snaplen, linktype
_PCAP_RECORD = struct.Struct("<IIII")  # seconds, microseconds, caplen, wirelen


class PcapWriter:
    """Writes a classic little-endian microsecond pcap (version 2.4) that tcpdump and tshark read.

    The global header is written and flushed at construction. Records collect in the writer's
    own buffer and reach a path in whole records only: every write(2) ends on a record boundary
    (a file object's own buffer would cut a record wherever its 8 KiB filled up), so a file
    whose writer is killed at any moment, SIGKILL included, ends with a whole record and every
    reader accepts all of it. A path is opened (and closed) by the writer; a binary file object
    passed in gets the same whole-record writes, is flushed on close but left open for its owner.
    """

    FLUSH_AT = 1 << 16     # buffered bytes that trigger a write: big writes, few system calls

    def __init__(self, path_or_file: Union[str, "os.PathLike[str]", BinaryIO], linktype: int,
                 snaplen: int = 262144) -> None:
        if isinstance(path_or_file, (str, os.PathLike)):
            # Unbuffered: each write() below is one write(2) of whole records.
            self._f: BinaryIO = open(path_or_file, "wb", buffering=0)
            self._owns = True
        else:
            self._f = path_or_file
            self._owns = False
        self.linktype = linktype
        self.snaplen = snaplen
        self._closed = False
        self._pending = bytearray(_PCAP_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))
        self.flush()

    def write(self, ts: float, data: bytes, wirelen: Optional[int] = None,
              flush: bool = False) -> None:
        """Append one record; `data` beyond the snaplen is cut, as a capture would cut it."""
        if wirelen is None:
            wirelen = len(data)
        elif wirelen < len(data):
            raise ValueError(f"wirelen {wirelen} is shorter than the {len(data)} bytes given")
        if len(data) > self.snaplen:
            data = data[:self.snaplen]
        # Round to the microsecond once, in integers, so that .9999996 carries into the seconds.
        sec, usec = divmod(round(ts * 1_000_000), 1_000_000)
        if not 0 <= sec <= 0xFFFFFFFF:
            raise ValueError(f"timestamp {ts} does not fit a pcap record (0 .. 2**32 s)")
        self._pending += _PCAP_RECORD.pack(sec, usec, len(data), wirelen)
        self._pending += data
        if flush or len(self._pending) >= self.FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Hand every whole record collected so far to the file (one write when the OS takes it all)."""
        data, done = bytes(self._pending), 0
        try:
            while done < len(data):
                # A raw file may take less than asked (a full disk, a signal): write the rest.
                written = self._f.write(data[done:] if done else data)
                done += len(data) - done if written is None else written
        finally:
            del self._pending[:done]     # what did not reach the file is still pending
        self._f.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            if self._owns:
                self._f.close()

    def __enter__(self) -> "PcapWriter":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()
