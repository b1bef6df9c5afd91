"""Command line: `handshake-probe COMMAND ...`. `main(argv) -> exit status`, as httpie does."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional, Sequence

from handshake_probe import __version__
from handshake_probe.commands import COMMANDS
from handshake_probe.exitcodes import ExitStatus
from handshake_probe.messages import PROG

__all__ = ["ExitStatus", "build_parser", "main", "run"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One usage line and one error line, exit 2 (argparse's convention), with the one error prefix
        # every command uses (argparse would say "handshake-probe analyze: error:" for a subcommand).
        self.print_usage(sys.stderr)
        self.exit(ExitStatus.BAD_INPUT, f"{PROG}: error: {message}\n")


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that subcommand's arguments are built (its module is imported)."""
    parser = _Parser(prog="handshake-probe",
                     description="TCP handshake inspector: both endpoints' RFC 9293 state timelines.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args))
    except KeyboardInterrupt:
        print("handshake-probe: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        # `handshake-probe analyze big.pcap | head`: the reader left; not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitStatus.OK
    except Exception as err:
        # A panic inside the engine (a bug, never bad input) arrives as _engine.EngineError naming the
        # file and frame: one line, not a traceback.
        if type(err).__name__ == "EngineError" and type(err).__module__ == "handshake_probe._engine":
            print(f"handshake-probe: internal error: {err} (a bug in handshake-probe: please report it "
                  "with the capture)", file=sys.stderr)
            return ExitStatus.INTERNAL
        raise


def run(argv: Optional[List[str]] = None) -> None:
    """Console-script entry point."""
    sys.exit(main(argv))
