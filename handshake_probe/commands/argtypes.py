"""argparse value types shared by the commands: one wording for every "must be > 0".

Every number a command takes goes through one of these, so that `nan`, `inf`, a negative count or a port
above 65535 is a usage error (one line, exit 2) instead of a value that misbehaves later (a `--msl nan`
that never expires TIME-WAIT, a `--max-open -1` that ends in a traceback, a port the kernel wraps)."""

from __future__ import annotations

import argparse
import math


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    # nan compares false with everything, so `value <= 0` alone would let it through.
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def port(text: str) -> int:
    """A TCP port, 0..65535 (0: let the kernel pick one, where a command allows it)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, not {text}")
    return value


def server_port(text: str) -> int:
    """A port to connect to: 1..65535 (port 0 cannot be connected to)."""
    value = port(text)
    if value == 0:
        raise argparse.ArgumentTypeError("a server port is 1..65535, not 0")
    return value
