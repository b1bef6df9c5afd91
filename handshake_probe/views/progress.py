"""A progress bar over files (`analyze` with several files), on stderr, only when stderr is a terminal.

The bar is one line rewritten in place; whoever prints anything else first calls `clear()` (the bar is
drawn again at the next `step()`), so output and messages never share a line with it. Logs and pipes get
nothing: the bar is silent when stderr is not a terminal.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Optional, TextIO

__all__ = ["FileBar"]


class FileBar:
    WIDTH = 30

    def __init__(self, total: int, stream: Optional[TextIO] = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.done = 0
        self.active = total > 1 and _isatty(self.stream)
        self._start = time.monotonic()
        self._shown = False
        if self.active:
            self._draw("")

    def step(self, name: str = "") -> None:
        """One more file done (`name`: the last one)."""
        self.done += 1
        if self.active:
            self._draw(os.path.basename(name))

    def clear(self) -> None:
        if self.active and self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False

    def close(self) -> None:
        self.clear()
        self.active = False

    def _draw(self, name: str) -> None:
        filled = self.WIDTH * self.done // max(self.total, 1)
        elapsed = time.monotonic() - self._start
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} files, "
                          f"{elapsed:.0f} s {name[:40]}\033[K")
        self.stream.flush()
        self._shown = True


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
