"""`--p0f-db FILE` for the commands that write records (`analyze`, `capture`): one option, one check.

The file is read and checked by the engine's own p0f.fp parser before any work starts, so a bad
database is one line (exit 2) and never a half-done analysis.
"""

from __future__ import annotations

import argparse
from typing import Optional

import handshake_probe

__all__ = ["add_argument", "load_p0f_db", "p0f_text"]


def add_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--p0f-db", metavar="FILE",
                   help="label each SYN's and SYN-ACK's p0f fingerprint with p0f's database (p0f.fp; Debian's "
                        "p0f package installs /etc/p0f/p0f.fp): the OS (or tool) p0f would print, in the "
                        "records' negotiation")


def load_p0f_db(path: str) -> str:
    """p0f.fp's text, checked by the engine's parser: OSError or ValueError with a one-line message."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError as err:
        raise OSError(f"cannot open {path}: {err.strerror or err}") from None
    try:
        handshake_probe._load_engine().p0f_db_signatures(text)
    except ValueError as err:
        raise ValueError(f"{path}: not a p0f database: {err}") from None
    return text


def p0f_text(args: argparse.Namespace) -> Optional[str]:
    """The `--p0f-db` file's text (None without the option); OSError or ValueError as load_p0f_db."""
    return None if args.p0f_db is None else load_p0f_db(args.p0f_db)
