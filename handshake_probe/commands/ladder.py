"""`handshake-probe ladder FILE`: each flow as the client/server sequence diagram textbooks draw."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from handshake_probe import DEFAULT_MSL  # the engine's
from handshake_probe.commands.inputs import Input, InputError, opened
from handshake_probe.exitcodes import ExitStatus
from handshake_probe.flowsource import FlowView, flows_with_rows
from handshake_probe.messages import error, plural, warning
from handshake_probe.commands.argtypes import positive_float as _positive_float, positive_int as _positive_int
from handshake_probe.ladder import (DEFAULT_HEAD, DEFAULT_MAX_FLOWS, DEFAULT_TAIL, DEFAULT_WIDTH, ladder_text,
                                    ladders_text)


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, not {text}")
        return value
    parse.__name__ = "number"
    return parse



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Draw each TCP flow as a ladder (sequence) diagram: client and server columns, one arrow "
                     "per segment with flags, seq/ack and length, time in ms since the flow's first segment, "
                     "and each endpoint's RFC 9293 state where it changes.")
    p.add_argument("file", help="pcap or pcapng file; - reads standard input")
    p.add_argument("--flow", type=_positive_int, metavar="N", help="draw flow N only (1-based, as `analyze` numbers them)")
    p.add_argument("--absolute", action="store_true",
                   help="absolute seq/ack numbers (default: relative to each side's ISN, SYN seq=0)")
    p.add_argument("--svg", metavar="OUT.svg",
                   help="write the diagram as SVG to this file ('-' for stdout) instead of printing text")
    p.add_argument("--head", type=_count(0), metavar="N",
                   help=f"segments kept at the start of a long flow (text {DEFAULT_HEAD}, SVG 40)")
    p.add_argument("--tail", type=_count(0), metavar="N",
                   help=f"segments kept at the end of a long flow (text {DEFAULT_TAIL}, SVG 20)")
    p.add_argument("--all", action="store_true", help="draw every segment of long flows (no elision)")
    p.add_argument("--max-flows", type=_count(1), default=DEFAULT_MAX_FLOWS, metavar="M",
                   help=f"without --flow, draw at most M flows (default {DEFAULT_MAX_FLOWS})")
    p.add_argument("--width", type=_count(60), default=DEFAULT_WIDTH, metavar="COLS",
                   help=f"text width in columns (default {DEFAULT_WIDTH})")
    p.add_argument("--msl", type=_positive_float, default=DEFAULT_MSL, metavar="SECONDS",
                   help=f"maximum segment lifetime; TIME-WAIT lasts 2*MSL (default {DEFAULT_MSL:g})")


def _limits(args: argparse.Namespace, head: int, tail: int):
    """(max_rows, head, tail) for a renderer whose own defaults are head/tail."""
    head = head if args.head is None else args.head
    tail = tail if args.tail is None else args.tail
    return (None if args.all else head + tail), head, tail


def _write_svg(args: argparse.Namespace, flows: List[FlowView], total: Optional[int]) -> bool:
    from handshake_probe.ladder_svg import SVG_HEAD, SVG_TAIL, ladder_svg, ladders_svg
    max_rows, head, tail = _limits(args, SVG_HEAD, SVG_TAIL)
    if len(flows) == 1 and total is None:
        doc = ladder_svg(*flows[0], args.absolute, max_rows, head, tail)
    else:
        doc = ladders_svg(flows, total, args.absolute, max_rows, head, tail)
    if args.svg == "-":
        sys.stdout.write(doc)
        return True
    try:
        with open(args.svg, "w", encoding="utf-8") as f:
            f.write(doc)
    except OSError as err:
        print(f"handshake-probe: error: cannot write {args.svg}: {err.strerror or err}", file=sys.stderr)
        return False
    what = f"flow {flows[0][0]['flow']}" if len(flows) == 1 else f"{len(flows)} flows"
    print(f"wrote {args.svg}: {what}")
    return True


def run(args: argparse.Namespace) -> int:
    try:
        # Checked before anything is printed: a wrong path or a text file is one line.
        with opened(args.file) as source:
            return _draw(source, args)
    except InputError as err:
        error(str(err))
        return ExitStatus.BAD_INPUT


def _draw(source: Input, args: argparse.Namespace) -> int:
    wanted: Optional[int] = args.flow
    limit: int = args.max_flows
    numbers = (wanted,) if wanted is not None else range(1, limit + 1)
    flows, analysis = flows_with_rows(source.path, numbers, msl=args.msl)
    for line in analysis.warnings:
        warning(source.text(line))
    status = ExitStatus.BAD_INPUT if analysis.damaged else ExitStatus.OK
    total: Optional[int] = None
    if analysis.error and analysis.frames == 0:
        error(source.text(analysis.error))            # nothing was read: nothing to draw
        return status
    if wanted is not None:
        if not flows:
            reason = f"; {source.text(analysis.error)}" if analysis.error else ""
            error(f"{source.shown}: no flow {wanted} "
                  f"(the capture has {plural(analysis.flow_count, 'flow')}){reason}")
            return ExitStatus.BAD_INPUT
    else:
        total = analysis.flow_count
    if flows:
        if args.svg is not None:
            if not _write_svg(args, flows, total):
                return ExitStatus.BAD_INPUT
        else:
            max_rows, head, tail = _limits(args, DEFAULT_HEAD, DEFAULT_TAIL)
            if total is None:
                text = ladder_text(*flows[0], args.absolute, max_rows, head, tail, args.width)
            else:
                text = ladders_text(flows, total, args.absolute, max_rows, head, tail, args.width)
            sys.stdout.write(text + "\n")
    elif analysis.error is None:
        print(f"{source.shown}: no TCP flows")
    if analysis.error:
        read = analysis.flow_count
        before = f" (the {plural(read, 'flow')} before it {'is' if read == 1 else 'are'} drawn)" if read else ""
        error(source.text(analysis.error) + before)
    return status
