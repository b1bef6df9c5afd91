"""Run a command with its stderr on a pseudo-terminal (what a person at a terminal sees) and stdout on a pipe."""

from __future__ import annotations

import os
import pty
import subprocess
import threading
from pathlib import Path
from typing import List, Tuple


def run_with_tty_stderr(argv: List[str], cwd: Path, timeout: float = 120) -> Tuple[int, bytes, str]:
    """(exit code, stdout bytes, everything written to the terminal). The terminal is read while the
    command runs (a full pty buffer would block it)."""
    master, slave = pty.openpty()
    seen: List[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:          # EIO: the last writer closed the terminal
                return
            if not data:
                return
            seen.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, cwd=cwd,
                              timeout=timeout)
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    return done.returncode, done.stdout, b"".join(seen).decode(errors="replace")
