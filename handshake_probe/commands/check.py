"""`handshake-probe check FILE --expect EXPECT.toml`: a CI verdict on a capture's flows.

The expectation schema and all the logic are in handshake_probe/check.py (shared with the pytest plugin);
this module reads the files, runs the analysis and prints. Exit status: 0 every expectation met, 1 one was
not (a selector that picks no flow included), 2 the capture or the expectation file could not be read or
is invalid (one line on stderr naming the file and, for TOML, the line).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, Sequence, TextIO

from handshake_probe.check import (Spec, SpecError, evaluate, flow_ladder, format_report, load_spec,
                                   spec_from_short_forms)
from handshake_probe import DEFAULT_MSL  # the engine's
from handshake_probe.commands.argtypes import non_negative_int as _non_negative_int
from handshake_probe.commands.argtypes import positive_float as _positive_float
from handshake_probe.commands.inputs import Input, InputError, opened
from handshake_probe.exitcodes import ExitStatus
from handshake_probe.flowsource import flows_with_rows, records_and_summary
from handshake_probe.messages import error, plural, warning

DEFAULT_MAX_FLOWS = 10


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Raw formatting keeps the example lines apart; the text is wrapped by hand to stay under 100 columns.
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = ("Check a capture's flows against expectations: conn_state, close, handshake, state paths,\n"
                     "timings, anomaly counts. Exit 0 when all are met, 1 when one is not, 2 when the capture\n"
                     "or the expectation file cannot be read. The schema: pydoc handshake_probe.check")
    p.epilog = ("examples:\n"
                "  handshake-probe check cap.pcap --expect cap.expect.toml\n"
                "  handshake-probe check cap.pcap --flows 3 --all-flows conn_state=SF \\\n"
                "      --all-flows 'duration_ms<=500' --flow 1 client_final=TIME-WAIT\n")
    p.add_argument("file", help="pcap or pcapng file; - reads standard input")
    p.add_argument("--expect", metavar="EXPECT.toml",
                   help="expectation file, TOML (or JSON when the name ends in .json)")
    p.add_argument("--flows", type=_non_negative_int, metavar="N", help="the capture has exactly N flows")
    p.add_argument("--all-flows", action="append", default=[], metavar="KEY=VALUE",
                   help="every flow meets KEY=VALUE (also KEY<=N, KEY>=N); repeatable")
    p.add_argument("--flow", nargs=2, action="append", default=[], metavar=("N", "KEY=VALUE"),
                   help="flow N (1-based) meets KEY=VALUE; repeatable")
    p.add_argument("--server-port", nargs=2, action="append", default=[], metavar=("PORT", "KEY=VALUE"),
                   help="every flow to server port PORT meets KEY=VALUE (and there is one); repeatable")
    p.add_argument("--max-flows", type=_non_negative_int, default=DEFAULT_MAX_FLOWS, metavar="N",
                   help=f"show at most N failing flows in full, with their ladders (default {DEFAULT_MAX_FLOWS})")
    p.add_argument("--msl", type=_positive_float, default=DEFAULT_MSL, metavar="SECONDS",
                   help=f"maximum segment lifetime, as for analyze (default {DEFAULT_MSL:g})")


def _error(message: str) -> int:
    error(message)
    return ExitStatus.BAD_INPUT


def _read_expect_file(path: str) -> Spec:
    fmt = "json" if path.lower().endswith(".json") else "toml"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise InputError(f"cannot open {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise SpecError((), f"cannot read: {err}") from None
    return load_spec(text, fmt)


def _use_color(out: TextIO) -> bool:
    # https://no-color.org: NO_COLOR set (to anything) turns colour off; CI logs are not TTYs anyway.
    return out.isatty() and "NO_COLOR" not in os.environ


def _ladders(path: str, msl: float, numbers: Sequence[int]) -> Dict[int, str]:
    """Ladders of the failing flows. The first pass kept no per-segment rows (memory grows with flows,
    not packets), so the capture is read again keeping rows for just these flows."""
    if not numbers:
        return {}
    views, _summary = flows_with_rows(path, numbers, msl=msl)
    return {rec["flow"]: flow_ladder(rec, rows) for rec, rows in views}


def run(args: argparse.Namespace) -> int:
    # The expectation file's rules come first, then the short forms' (both may be given).
    spec = Spec()
    if args.expect:
        try:
            spec.extend(_read_expect_file(args.expect))
        except SpecError as err:
            return _error(f"{args.expect}: {err}")
        except InputError as err:
            return _error(str(err))
    try:
        short = spec_from_short_forms(args.flows, args.all_flows, args.flow, args.server_port)
    except SpecError as err:
        return _error(f"command line: {err}")
    spec.extend(short)
    if not spec.rules:
        return _error("nothing to check: give --expect FILE, or --flows N / --all-flows KEY=VALUE / "
                      "--flow N KEY=VALUE")

    try:
        # Checked before anything is printed: a wrong path or a text file is one line.
        with opened(args.file) as source:
            return _check(source, args, spec, short)
    except InputError as err:
        return _error(str(err))


def _check(source: Input, args: argparse.Namespace, spec: Spec, short: Spec) -> int:
    records, analysis = records_and_summary(source.path, msl=args.msl)
    if analysis.error and analysis.frames == 0:
        # Nothing was read: judging zero flows would bury the real problem under failures.
        return _error(source.text(analysis.error))
    for line in analysis.warnings:
        warning(source.text(line))

    report = evaluate(spec, records)
    sources = ([args.expect] if args.expect else []) + (["the command line"] if short.rules else [])
    title = f"check {source.shown}: {plural(len(records), 'flow')}; expectations from {' and '.join(sources)}"
    out = sys.stdout
    shown = report.failed_flows[:args.max_flows]
    out.write(format_report(report, title=title, ladders=_ladders(source.path, args.msl, shown),
                            max_flows=args.max_flows, color=_use_color(out)) + "\n")

    if analysis.damaged:
        # The verdict above covers only what could be read; a damaged capture is never a pass.
        if analysis.error:
            error(f"{source.text(analysis.error)} (checked the {plural(len(records), 'flow')} before it)")
        return ExitStatus.BAD_INPUT
    return ExitStatus.OK if report.ok else ExitStatus.CHECK_FAILED
