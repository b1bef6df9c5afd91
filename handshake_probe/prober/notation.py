"""The ladder notation of probe verdicts (`>S <S. >.`), explained once for `--help` and the README.

The letters are tcpdump's, taken from the engine's vocabulary (FLAGS, tcpdump_flags), not spelled here again.
"""

from __future__ import annotations

from handshake_probe import FLAGS
from handshake_probe._engine import tcpdump_flags

__all__ = ["LADDER_NOTATION"]


def _letters() -> str:
    named = [f"{tcpdump_flags(bit)} {name}" for name, bit in FLAGS.items() if name != "ACK"]
    return ", ".join(named)


LADDER_NOTATION = (
    "Ladders: one token per segment, in wire order. '>' is a segment the prober sent, '<' one the kernel "
    "(or --target) sent. Letters are tcpdump's flags (" + _letters() + "); a trailing '.' is ACK, alone "
    "('.') a bare ACK: '>S <S. >.' is our SYN, its SYN-ACK, our ACK. In an expected ladder 'X?' is a "
    "segment that may or may not appear (a delayed ACK) and '|' separates accepted alternatives.")
