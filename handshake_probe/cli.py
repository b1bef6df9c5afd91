"""Command line: `handshake-probe analyze FILE ...`. `main(argv) -> ExitStatus`, as httpie does."""

from __future__ import annotations

import argparse
import os
import sys
from enum import IntEnum
from typing import List, Optional, Sequence

from handshake_probe import __version__
from handshake_probe.analysis import analyze_file
from handshake_probe.core.flows import DEFAULT_MSL
from handshake_probe.core.record import flow_record
from handshake_probe.render import FORMATS, flow_detail, summary_line, write_records


class ExitStatus(IntEnum):
    """Documented in the README ("Exit codes")."""

    OK = 0
    CHECK_FAILED = 1     # reserved for `check`: an expectation was not met
    BAD_INPUT = 2        # unreadable or damaged input, unknown flow, bad arguments
    INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own exit code for usage errors is 2 as well; keep its one-line form.
        self.print_usage(sys.stderr)
        self.exit(ExitStatus.BAD_INPUT, f"{self.prog}: error: {message}\n")


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="handshake-probe",
                     description="TCP handshake inspector: both endpoints' RFC 9293 state timelines.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    an = sub.add_parser("analyze", help="analyze a pcap or pcapng file",
                        description="Read a capture, split it into TCP flows and run an RFC 9293 state "
                                    "machine for the client and the server of each.")
    an.add_argument("file", help="pcap or pcapng file")
    an.add_argument("--flow", type=int, metavar="N",
                    help="show flow N (1-based): every segment with seq/ack and both endpoints' states")
    an.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    an.add_argument("--msl", type=_positive_float, default=DEFAULT_MSL, metavar="SECONDS",
                    help=f"maximum segment lifetime; TIME-WAIT lasts 2*MSL (default {DEFAULT_MSL:g}, "
                         "Linux's 60 s TIME-WAIT; RFC 9293 suggests 120)")
    return parser


def _analyze(args: argparse.Namespace) -> ExitStatus:
    wanted: Optional[int] = args.flow
    analysis = analyze_file(args.file, msl=args.msl,
                            keep_rows=(lambda n: n == wanted) if wanted is not None else None)
    for warning in analysis.warnings:
        print(f"handshake-probe: warning: {warning}", file=sys.stderr)
    status = ExitStatus.BAD_INPUT if analysis.damaged else ExitStatus.OK
    out = sys.stdout
    if wanted is not None:
        if not 1 <= wanted <= len(analysis.flows):
            print(f"handshake-probe: error: {args.file}: no flow {wanted} "
                  f"(the capture has {len(analysis.flows)} flows)", file=sys.stderr)
            return ExitStatus.BAD_INPUT
        flow = analysis.flows[wanted - 1]
        if args.format == "table":
            out.write(flow_detail(flow) + "\n")
        else:
            write_records([flow_record(flow)], args.format, out)
    else:
        write_records((flow_record(f) for f in analysis.flows), args.format, out)
        if args.format == "table":
            out.write("\n" + summary_line(analysis) + "\n")
    if analysis.error:
        print(f"handshake-probe: error: {analysis.error} "
              f"(the {len(analysis.flows)} flows before it are reported)", file=sys.stderr)
    return status


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "analyze":
            return _analyze(args)
    except KeyboardInterrupt:
        print("handshake-probe: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        # `handshake-probe analyze big.pcap | head`: the reader left; not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitStatus.OK
    return ExitStatus.BAD_INPUT


def run(argv: Optional[List[str]] = None) -> None:
    """Console-script entry point."""
    sys.exit(main(argv))
