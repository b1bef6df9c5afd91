"""`handshake-probe report FILE... -o report.html`: one self-contained HTML page for whole captures."""

from __future__ import annotations

import argparse
from typing import Iterator, List

from handshake_probe import DEFAULT_MSL  # the engine's
from handshake_probe.commands.argtypes import positive_float
from handshake_probe.commands.inputs import opened_all
from handshake_probe.exitcodes import ExitStatus
from handshake_probe.files.parallel import expand
from handshake_probe.messages import error, plural, warning


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Write one self-contained HTML file (no network access needed to open it) showing the "
                     "captures: summary charts, the flow table (sort, filter, keyboard), and for each flow its "
                     "ladder, its segments with both endpoints' states and its transitions with their causes.")
    p.add_argument("file", nargs="+", help="pcap or pcapng files, or directories of them; - reads standard input")
    p.add_argument("-o", "--output", required=True, metavar="REPORT.html", help="the HTML file to write")
    p.add_argument("--title", help="the page's title (default: handshake-probe: the file names)")
    p.add_argument("--msl", type=positive_float, default=DEFAULT_MSL, metavar="SECONDS",
                   help=f"maximum segment lifetime; TIME-WAIT lasts 2*MSL (default {DEFAULT_MSL:g})")
    p.add_argument("--check-checksums", action="store_true", help="verify TCP checksums (as analyze does)")


def run(args: argparse.Namespace) -> int:
    from handshake_probe.report import Source, source_from_file, write_report
    bad: List[str] = []
    with opened_all(expand(args.file), bad) as inputs:
        for line in bad:
            error(line)
        if not inputs:
            return ExitStatus.BAD_INPUT
        sources: List[Source] = []

        def each() -> Iterator[Source]:
            for item in inputs:
                source = source_from_file(item.path, item.shown, msl=args.msl, check_checksums=args.check_checksums)
                sources.append(source)
                yield source
        names = [i.shown for i in inputs]
        title = args.title or "handshake-probe: " + (", ".join(names) if len(names) <= 3 else f"{len(names)} captures")
        try:
            count = write_report(args.output, each(), title)
        except OSError as err:
            error(f"cannot write {args.output}: {err.strerror or err}")
            return ExitStatus.BAD_INPUT
        damaged = False
        for item, source in zip(inputs, sources):
            c = source.counters
            for line in c.get("warnings", []):
                warning(item.text(line))
            if c.get("error"):
                error(item.text(c["error"]) + (f" (the {plural(c['flow_count'], 'flow')} before it are in the report)"
                                               if c.get("flow_count") else ""))
                damaged = True
            elif c.get("warnings"):
                damaged = True
    print(f"wrote {args.output}: {plural(count, 'flow')} from {plural(len(sources), 'capture')}")
    return ExitStatus.BAD_INPUT if damaged or bad else ExitStatus.OK
