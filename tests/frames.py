"""Frames seen through the engine, for the live tests: decoded segments with attribute access and the
flag bits by name (the engine's vocabulary), a capture file's frames, a run of frames analyzed."""

from __future__ import annotations

import enum
from typing import List, Optional, Sequence

from handshake_probe import _engine
from handshake_probe.files.pcapwriter import RawFrame
from handshake_probe.prober.link import Seg

# The nine flag bits, named as the engine names them.
Flags = enum.IntFlag("Flags", dict(_engine.FLAGS))
MOD = 1 << 32
tcpdump_flags = _engine.tcpdump_flags


def decoded(f: RawFrame) -> Optional[Seg]:
    """The engine's decoding of a frame (the prober's own helper); None for a frame it skips."""
    seg = _engine.decode(f.data, f.linktype, f.ts, f.frame, f.wirelen)
    return Seg(**seg) if isinstance(seg, dict) else None


def segments_of(frames: Sequence[RawFrame]) -> List[Seg]:
    """Every frame decoded; each must be a TCP segment."""
    segs = [decoded(f) for f in frames]
    assert all(s is not None for s in segs)
    return segs  # type: ignore[return-value]


def read_frames(path: str) -> List[RawFrame]:
    """Every frame of a capture file, as the engine reads it (raises _engine.CaptureError)."""
    return [RawFrame(*f) for f in _engine.Frames(path)]
