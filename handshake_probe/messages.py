"""The one form of every diagnostic line the commands print on stderr.

`handshake-probe: error: WHAT` (and `handshake-probe: warning: WHAT`), whichever command prints it, the
usage errors argparse reports included (cli.py routes them here): a script or a person can grep one
prefix, and the README's "Exit codes" section documents just this form. A line names the file first
when a file is at fault (`handshake-probe: error: FILE: not a pcap or pcapng file`).
"""

from __future__ import annotations

import sys

__all__ = ["PROG", "error", "warning", "plural"]

PROG = "handshake-probe"


def error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def warning(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


def plural(count: int, word: str, many: str = "") -> str:
    """`1 flow`, `2 flows`, `0 flows` (and `1 TCP segment`): counts in text read as English."""
    return f"{count} {word}" if count == 1 else f"{count} {many or word + 's'}"
