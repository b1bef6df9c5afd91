"""`handshake-probe analyze FILE`: flows and both endpoints' state paths from a capture file."""

from __future__ import annotations

import argparse
import codecs
import importlib
import os
import sys
import time
from contextlib import closing
from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple

import handshake_probe

from handshake_probe import DEFAULT_IDLE_TIMEOUT, DEFAULT_LINGER, DEFAULT_MAX_OPEN, DEFAULT_MSL  # the engine's
from handshake_probe.files.flowsource import flows_with_rows
from handshake_probe.exitcodes import ExitStatus
from handshake_probe.files.parallel import expand
from handshake_probe.files.textjobs import copy_spool, spool_dir, spooled
from handshake_probe.views.table import (COLUMNS, DEFAULT_COLUMNS, FORMATS, fitted, flow_detail, summary_line,
                                    table_width, write_records)
from handshake_probe.commands import p0fdb
from handshake_probe.commands.argtypes import positive_float, positive_int
from handshake_probe.commands.columnar import ARROW_FORMATS, check_arguments
from handshake_probe.commands.inputs import Input, InputError, opened, opened_all
from handshake_probe.messages import error, plural, warning
from handshake_probe.views.progress import FileBar



def column_list(text: str) -> Tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in COLUMNS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown column {', '.join(unknown) or '(none given)'}; "
                                         f"choose from {', '.join(COLUMNS)}")
    return names


def add_arguments(an: argparse.ArgumentParser) -> None:
    an.description = ("Read a capture, split it into TCP flows and run an RFC 9293 state machine for the "
                      "client and the server of each.")
    an.add_argument("file", nargs="+", help="pcap or pcapng files, or directories of them; - reads standard input")
    an.add_argument("--jobs", "-j", type=positive_int, default=os.cpu_count() or 1, metavar="N",
                    help="with several files: analyze N at once, one process each (default: the core count); "
                         "output keeps the order of the files and names the file in each record")
    an.add_argument("--flow", type=positive_int, metavar="N",
                    help="show flow N (1-based): every segment with seq/ack and both endpoints' states")
    an.add_argument("--ladder", action="store_true",
                    help="with --flow N: draw the flow as a client/server ladder diagram instead of the table")
    an.add_argument("--format", choices=FORMATS + ARROW_FORMATS, default="table",
                    help="output format (default: table); parquet (with -o FILE) and arrow (an Arrow IPC stream "
                         "on standard output) need pyarrow")
    an.add_argument("-o", "--output", metavar="FILE",
                    help="where --format parquet or arrow writes (with --dask-scheduler: a directory, one "
                         "Parquet file per capture)")
    an.add_argument("--dask-scheduler", metavar="ADDRESS",
                    help="analyze the files on an existing Dask cluster (tcp://HOST:8786) and write Parquet "
                         "to -o DIR; the workers open the files by their path or URL")
    an.add_argument("--columns", type=column_list, metavar="A,B,...",
                    help="table columns, from: " + ", ".join(COLUMNS) + f" (default: {','.join(DEFAULT_COLUMNS)}, "
                         "as many as fit the terminal)")
    an.add_argument("--wide", action="store_true",
                    help="the table and --flow N in full: every column, nothing wrapped, whatever the terminal's "
                         "width (piped output is never fitted to a width)")
    an.add_argument("--check-checksums", action="store_true",
                    help="verify TCP checksums and count bad ones (off by default: NIC offload and loopback "
                         "captures carry checksums the kernel never filled in)")
    p0fdb.add_argument(an)
    an.add_argument("--msl", type=positive_float, default=DEFAULT_MSL, metavar="SECONDS",
                    help=f"maximum segment lifetime; TIME-WAIT lasts 2*MSL (default {DEFAULT_MSL:g}, "
                         "Linux's 60 s TIME-WAIT; RFC 9293 suggests 120)")
    limits = an.add_argument_group("long captures (streamed output: jsonl and csv)")
    limits.add_argument("--linger", type=positive_float, default=DEFAULT_LINGER, metavar="SECONDS",
                        help=f"a flow that ended (FIN both ways, RST) is written after SECONDS of capture "
                             f"time without packets (default {DEFAULT_LINGER:g}, Zeek's tcp_close_delay)")
    limits.add_argument("--idle-timeout", type=positive_float, default=DEFAULT_IDLE_TIMEOUT,
                        metavar="SECONDS", help="a flow silent this long is finished and written "
                        f"(default {DEFAULT_IDLE_TIMEOUT:g}, Zeek's tcp_inactivity_timeout)")
    limits.add_argument("--max-open", type=positive_int, default=DEFAULT_MAX_OPEN, metavar="N",
                        help=f"at most N open flows; beyond, the least recently active is finished early "
                             f"with a warning (default {DEFAULT_MAX_OPEN})")


def run(args: argparse.Namespace) -> int:
    if args.ladder and args.flow is None:
        error("--ladder needs --flow N")
        return ExitStatus.BAD_INPUT
    if args.columns is not None and (args.format != "table" or args.flow is not None):
        # Silently ignored before: csv has its own fixed columns (the README lists them), jsonl/json
        # every field, --flow N its segment listing.
        error("--columns chooses the flow table's columns; it does not apply to "
              + ("--flow N" if args.flow is not None else f"--format {args.format}"))
        return ExitStatus.BAD_INPUT
    try:
        args.p0f_text = p0fdb.p0f_text(args)
    except (OSError, ValueError) as err:
        error(str(err))
        return ExitStatus.BAD_INPUT
    usage = check_arguments(args)
    if usage:
        error(usage)
        return ExitStatus.BAD_INPUT
    if args.dask_scheduler:
        from handshake_probe.commands import cluster
        return cluster.run(args)
    # --wide without --columns: every column there is; with them, those, unwrapped.
    args.columns = args.columns or (tuple(COLUMNS) if args.wide else None)
    args.width = None if args.wide else table_width(sys.stdout)
    paths = expand(args.file)
    if args.format in ARROW_FORMATS:
        from handshake_probe.commands import columnar
        return columnar.run(paths, args)
    if len(paths) != 1:
        return run_many(paths, args)
    try:
        # Checked before anything is printed: a wrong path or a text file is one line, no table.
        with opened(paths[0]) as source:
            return run_one(source, args)
    except InputError as err:
        error(str(err))
        return ExitStatus.BAD_INPUT


def run_one(source: Input, args: argparse.Namespace) -> int:
    name = source.shown
    wanted: Optional[int] = args.flow
    out = sys.stdout
    if wanted is None:
        return run_engine(source, args, out)
    views, analysis = flows_with_rows(source.path, (wanted,), progress=progress_line(source.path, name),
                                      **engine_options(args))
    if sys.stderr.isatty() and analysis.frames >= 1 << 16:
        sys.stderr.write("\r\033[K")          # clear the progress line
    for line in analysis.warnings:
        warning(source.text(line))
    status = ExitStatus.BAD_INPUT if analysis.damaged else ExitStatus.OK
    if analysis.error and analysis.frames == 0:
        error(source.text(analysis.error))
        return status
    if not views:
        error(f"{name}: no flow {wanted} (the capture has {plural(analysis.flow_count, 'flow')})")
        return ExitStatus.BAD_INPUT
    rec, rows = views[0]
    if args.ladder:
        from handshake_probe.views.ladder import ladder_text
        out.write(ladder_text(rec, rows) + "\n")
    elif args.format == "table":
        out.write(flow_detail(rec, rows, args.width) + "\n")
    else:
        write_records([rec], args.format, out)
    if analysis.error:
        error(source.text(analysis.error) + _before_it(analysis.flow_count))
    return status


def engine_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The analyze options the engine takes, from the command line."""
    return dict(msl=args.msl, check_checksums=args.check_checksums, linger=args.linger,
                idle_timeout=args.idle_timeout, max_open=args.max_open,
                p0f_db=getattr(args, "p0f_text", None))


def run_engine(source: Input, args: argparse.Namespace, out: TextIO) -> int:
    """The whole file in the engine. jsonl and csv stream: each flow is written when it finishes, in
    that order (its "flow" number still says where it began), as text the engine writes itself;
    table and json need every flow and print them in flow order."""
    name = source.shown
    streaming = args.format in ("jsonl", "csv")
    analysis = handshake_probe.analyze(source.path, streaming=streaming, **engine_options(args))
    show = progress_line(source.path, name)
    if streaming:
        header = args.format == "csv"
        # The engine's text goes to the byte stream under `out` when there is one (the text layer
        # would decode and encode again every byte of it); test captures give a text-only stream.
        raw = getattr(out, "buffer", None)
        while (chunk := analysis.chunk(args.format)) is not None:
            if header:          # not before the first read: a file with nothing in it prints nothing
                out.write(_engine().csv_header() + "\n")
                header = False
            if raw is not None:
                out.flush()
                raw.write(chunk)
            else:
                out.write(chunk.decode())
            if show is not None:
                show(analysis.frames, analysis.offset)
    else:
        while not analysis.advance():
            if show is not None:
                show(analysis.frames, analysis.offset)
    if show is not None:
        sys.stderr.write("\r\033[K")          # clear the progress line
    warn_after(analysis, source, args)
    status = ExitStatus.BAD_INPUT if analysis.damaged else ExitStatus.OK
    if analysis.error and analysis.frames == 0:
        # Nothing was read: an empty table and a "0 frames" line would only bury the one line that
        # matters.
        error(source.text(analysis.error))
        return status
    if not streaming:
        write_records(analysis, args.format, out, columns=args.columns, width=args.width)
        if args.format == "table":
            out.write("\n" + fitted(summary_line(analysis, name), args.width) + "\n")
    if analysis.error:
        error(source.text(analysis.error) + _before_it(analysis.flow_count))
    return status


def warn_after(analysis: Any, source: Input, args: argparse.Namespace) -> None:
    """A file's warnings once it is read: malformed frames skipped, flows finished early."""
    for line in analysis.warnings:
        warning(source.text(line))
    if analysis.evicted:
        warning(f"{source.shown}: {plural(analysis.evicted, 'flow')} finished early: more than "
                f"--max-open {args.max_open} were open at once")


def _engine() -> Any:
    return importlib.import_module("handshake_probe._engine")


def _before_it(flows: int) -> str:
    """What the error line says about the output above it (nothing when there is none)."""
    return f" (the {plural(flows, 'flow')} before it {'is' if flows == 1 else 'are'} reported)" if flows else ""


def progress_line(path: str, shown: str = "") -> Optional[Callable[[int, int], None]]:
    """Packets, MB/s and ETA on stderr, rewritten in place, only when stderr is a terminal and the
    file is big enough to wait for; silent otherwise (logs and pipes stay clean)."""
    shown = shown or path
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    if not sys.stderr.isatty() or size < 32 << 20:
        return None
    start = time.monotonic()

    def show(frames: int, offset: int) -> None:
        elapsed = max(time.monotonic() - start, 1e-6)
        rate = offset / elapsed
        eta = (size - offset) / rate if rate else 0.0
        sys.stderr.write(f"\r{shown}: {frames:,} packets, {offset / size:5.1%}, {rate / 1e6:.1f} MB/s, "
                         f"ETA {eta:4.0f} s ")
        sys.stderr.flush()
    return show


def run_many(paths: list[str], args: argparse.Namespace) -> int:
    """Several files: each in its own process; records carry a "file" key; output in file order."""
    if not paths:
        error("no capture files found")
        return ExitStatus.BAD_INPUT
    if args.flow is not None:
        error("--flow N needs exactly one file")
        return ExitStatus.BAD_INPUT
    bad: List[str] = []
    with opened_all(paths, bad) as sources:
        for line in bad:                  # a wrong path among several: its line, and the others go on
            error(line)
        status = _run_many(sources, args)
    return ExitStatus.BAD_INPUT if bad else status


def _run_many(sources: List[Input], args: argparse.Namespace) -> int:
    """The files' output in their order, each file's flows in flow order. The workers write the
    records' text (files/textjobs.py); this process only copies it: no record is a Python object here."""
    if not sources:
        return ExitStatus.OK
    status = ExitStatus.OK
    out = sys.stdout
    raw = _byte_stream(out)
    fmt = args.format
    table = (args.columns, args.width) if fmt == "table" else None
    if fmt == "json":
        out.write("[")
    elif fmt == "csv":
        out.write(_engine().csv_header() + "\n")
    first: Optional[bool] = True if fmt == "json" else None
    bar = FileBar(len(sources))     # on a terminal only: a bar over files on stderr
    items = [(s.path, s.shown) for s in sources]
    # The workers are stopped before their spools' directory is removed, on every way out.
    with spool_dir() as directory, closing(spooled(items, fmt, args.jobs, engine_options(args), directory,
                                                   table)) as results:
        for source, result in zip(sources, results):
            bar.clear()
            for line in result.warnings:
                warning(source.text(line))
            if fmt == "table":
                out.write(f"== {source.shown}\n")
            out.flush()
            first = copy_spool(result.spool, raw, first)
            raw.flush()
            if fmt == "table":
                out.write(fitted(source.text(result.summary), args.width) + "\n\n")
            out.flush()
            if result.error:
                error(source.text(result.error) + _before_it(result.flows))
            if result.damaged:
                status = ExitStatus.BAD_INPUT
            bar.step(source.shown)
    bar.close()
    if fmt == "json":
        out.write("\n]\n")
    return status


class _TextBytes:
    """A text stream as a byte sink, for streams with no byte buffer under them (test captures)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.decode = codecs.getincrementaldecoder("utf-8")().decode    # a block may end mid-character

    def write(self, data: bytes) -> int:
        self.out.write(self.decode(data))
        return len(data)

    def flush(self) -> None:
        self.out.flush()


def _byte_stream(out: TextIO) -> Any:
    """The byte stream under `out` when there is one (no decode and encode again of every byte)."""
    raw = getattr(out, "buffer", None)
    return raw if raw is not None else _TextBytes(out)
