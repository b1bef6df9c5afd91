"""Glue between the file edge and the core: frames -> decode -> flow table, with counters and faults."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, List, Optional

from handshake_probe.core.decode import DecodeError, decode
from handshake_probe.core.flow import Flow
from handshake_probe.core.flows import DEFAULT_MSL, FlowTable
from handshake_probe.core.segment import Segment
from handshake_probe.core.verdicts import default_observers
from handshake_probe.pcapio import CaptureError, RawFrame, read_frames, where

MAX_FRAME_WARNINGS = 10   # per file; the rest are counted, not printed


@dataclass
class Analysis:
    """Everything one input produced, including what went wrong (analysis never raises for bad input)."""

    path: str
    flows: List[Flow]
    frames: int = 0
    segments: int = 0
    skipped: Counter = field(default_factory=Counter)   # reason -> count (non-tcp, fragment, ...)
    warnings: List[str] = field(default_factory=list)   # one line each: malformed frames, frames cut
    error: Optional[str] = None                         # one line: the file-level fault that stopped reading
    flow_count: int = 0                                 # flows seen (also when streamed out, not kept)
    evicted: int = 0                                    # flows pushed out early by the open-flow cap

    @property
    def violations(self) -> int:
        return sum(f.violation_count for f in self.flows)

    @property
    def damaged(self) -> bool:
        return self.error is not None or self.skipped["malformed"] > 0


def analyze_frames(frames: Iterable[RawFrame], path: str, table: FlowTable,
                   verify_checksum: bool = False, warnings: Optional[List[str]] = None) -> Analysis:
    """Decode and feed every frame; a malformed frame is skipped with a warning naming it.
    `warnings`: the list to collect warning lines in (shared with the reader's, so they keep their order)."""
    result = Analysis(path, table.flows)
    if warnings is not None:
        result.warnings = warnings
    skipped = result.skipped
    add = table.add
    try:
        for frame in frames:
            result.frames += 1
            try:
                seg = decode(frame.data, frame.linktype, frame.ts, frame.frame, frame.wirelen,
                             verify_checksum)
            except DecodeError as err:
                skipped["malformed"] += 1
                if len(result.warnings) < MAX_FRAME_WARNINGS:
                    result.warnings.append(
                        f"{path}: {where(frame.offset, frame.frame)}: {err}; frame skipped")
                continue
            if isinstance(seg, Segment):
                result.segments += 1
                add(seg)
            else:
                skipped[seg] += 1
    except CaptureError as err:
        result.error = str(err)
    table.finish()
    result.flow_count, result.evicted = table.count, table.evicted
    return result


def analyze_file(path: str, msl: float = DEFAULT_MSL,
                 keep_rows: Optional[Callable[[int], bool]] = None,
                 on_finished: Optional[Callable[[Flow], None]] = None, check_checksums: bool = False,
                 progress: Optional[Callable[[int, int], None]] = None, **limits: Any) -> Analysis:
    """Analyze one capture file, streaming it: memory grows with flows, not packets. With
    `on_finished`, flows are handed out as they finish and not kept (memory grows with open flows);
    `limits` are FlowTable's linger / idle_timeout / max_open. `check_checksums` verifies every TCP
    checksum (off by default: NIC offload and loopback captures carry unfilled checksums).
    `progress(frames, byte_offset)` is called every PROGRESS_EVERY frames (for a progress line)."""
    table = FlowTable(msl, keep_rows, observers=default_observers(check_checksums),
                      on_finished=on_finished, **limits)
    warnings: List[str] = []

    def reader_warning(line: str) -> None:  # a frame kept despite a fault; same cap as decode's
        if len(warnings) < MAX_FRAME_WARNINGS:
            warnings.append(line)

    frames: Iterable[RawFrame] = read_frames(path, reader_warning)
    if progress is not None:
        frames = _reporting(frames, progress)
    return analyze_frames(frames, path, table, check_checksums, warnings)


PROGRESS_EVERY = 1 << 16


def _reporting(frames: Iterable[RawFrame], progress: Callable[[int, int], None]) -> Iterator[RawFrame]:
    for frame in frames:
        if not frame.frame % PROGRESS_EVERY:
            progress(frame.frame, frame.offset)
        yield frame

