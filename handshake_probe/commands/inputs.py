"""The capture a command reads, checked before anything is printed; `-` for standard input.

A wrong path or a text file is the first thing a newcomer tries. Left to the reader, it produced an empty
table with all its headers, a "0 frames" summary and then the error; here it is one line and nothing on
stdout:

    handshake-probe: error: cannot open FILE: No such file or directory
    handshake-probe: error: FILE: not a pcap or pcapng file

The check opens the file and looks at its first four bytes only, so it works in front of any reader (the
Python one today, the engine's tomorrow). A pipe cannot be peeked at without taking the bytes from the
reader: a FIFO or device path goes to the reader unchecked (its own one-line error covers it), and `-`
is copied to a temporary file first (removed on every way out), which is then checked and read like
any file, under the name `<stdin>`.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Iterator, List, Sequence

__all__ = ["InputError", "Input", "STDIN", "check_capture", "opened", "opened_all"]

STDIN = "<stdin>"

# The first four bytes of every capture the reader takes: classic pcap in either byte order with
# micro- or nanosecond timestamps, Kuznetsov's modified pcap, and pcapng's section header block type.
CAPTURE_MAGICS = frozenset(bytes.fromhex(m) for m in (
    "d4c3b2a1", "a1b2c3d4", "4d3cb2a1", "a1b23c4d", "34cdb2a1", "a1b2cd34", "0a0d0d0a"))


class InputError(Exception):
    """str() is the one line to print after `handshake-probe: error: ` (exit 2)."""


@dataclass(frozen=True)
class Input:
    path: str     # what the reader opens
    shown: str    # what every message calls it

    def text(self, line: str) -> str:
        """A reader's line about `path`, in the name the user gave (the temporary file of `-` is ours)."""
        return line.replace(self.path, self.shown) if self.path != self.shown else line


def check_capture(path: str, shown: str) -> None:
    """Raise InputError unless `path` opens and starts like a pcap or pcapng file."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        raise InputError(f"cannot open {shown}: {err.strerror or err}") from None
    if not head:
        raise InputError(f"{shown}: empty file, not a pcap or pcapng file")
    if head not in CAPTURE_MAGICS:
        raise InputError(f"{shown}: not a pcap or pcapng file")


def _peekable(path: str) -> bool:
    """A regular file (or one that is not there, or a directory: the check then says why it cannot be
    opened). A FIFO or a device gives its bytes once: peeking would take them from the reader."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return True
    return not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode))


@contextmanager
def _spooled_stdin() -> Iterator[str]:
    if sys.stdin is None or sys.stdin.isatty():
        raise InputError("`-` reads a capture from standard input, which is a terminal here: "
                         "pipe one in (tcpdump -w - ... | handshake-probe analyze -)")
    fd, path = tempfile.mkstemp(prefix="handshake-probe-stdin-", suffix=".pcap")
    try:
        with os.fdopen(fd, "wb") as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool, 1 << 20)
        yield path
    finally:
        os.unlink(path)


@contextmanager
def opened(name: str) -> Iterator[Input]:
    """The command-line input `name`, checked (InputError if it is no capture); `-` is standard input."""
    if name == "-":
        with _spooled_stdin() as path:
            check_capture(path, STDIN)
            yield Input(path, STDIN)
        return
    if _peekable(name):
        check_capture(name, name)
    yield Input(name, name)


@contextmanager
def opened_all(names: Sequence[str], bad: List[str]) -> Iterator[List[Input]]:
    """Every input that passes the check; the one-line reason of each that does not goes to `bad`
    (several files: one bad file must not cost the others)."""
    with ExitStack() as stack:
        good: List[Input] = []
        for name in names:
            try:
                good.append(stack.enter_context(opened(name)))
            except InputError as err:
                bad.append(str(err))
        yield good
