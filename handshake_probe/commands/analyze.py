"""`handshake-probe analyze FILE`: flows and both endpoints' state paths from a capture file."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from handshake_probe.analysis import analyze_file
from handshake_probe.core.flows import DEFAULT_MSL
from handshake_probe.core.record import flow_record
from handshake_probe.exitcodes import ExitStatus
from handshake_probe.render import FORMATS, flow_detail, summary_line, write_records


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def add_arguments(an: argparse.ArgumentParser) -> None:
    an.description = ("Read a capture, split it into TCP flows and run an RFC 9293 state machine for the "
                      "client and the server of each.")
    an.add_argument("file", help="pcap or pcapng file")
    an.add_argument("--flow", type=int, metavar="N",
                    help="show flow N (1-based): every segment with seq/ack and both endpoints' states")
    an.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    an.add_argument("--msl", type=positive_float, default=DEFAULT_MSL, metavar="SECONDS",
                    help=f"maximum segment lifetime; TIME-WAIT lasts 2*MSL (default {DEFAULT_MSL:g}, "
                         "Linux's 60 s TIME-WAIT; RFC 9293 suggests 120)")


def run(args: argparse.Namespace) -> int:
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
