"""`analyze --format parquet -o FILE` and `--format arrow`: flow records as Arrow (views/arrow.py).

One file streams: the engine's JSON Lines, chunk by chunk as flows finish, become Arrow record batches and
Parquet row groups (memory holds at most a row group). Several files go through the multi-file path
(files/parallel.py, one process per file) with each file's flows as one table. The messages, their
order and the exit codes are those of the text formats: a file that does not open is one line and the
others go on; a file that breaks mid-way keeps the flows read before the fault.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional

from handshake_probe.exitcodes import ExitStatus
from handshake_probe.messages import error

__all__ = ["ARROW_FORMATS", "check_arguments", "run"]

ARROW_FORMATS = ("parquet", "arrow")


def pyarrow_missing(what: str) -> Optional[str]:
    """The one line to print when pyarrow is not installed, else None."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return f"{what} needs pyarrow: pip install 'handshake-probe[parquet]'"
    return None


def check_arguments(args: argparse.Namespace) -> Optional[str]:
    """The usage error of these options, if any (exit 2)."""
    if args.output is not None and args.format not in ARROW_FORMATS and not args.dask_scheduler:
        return "-o FILE is where --format parquet or arrow writes; the other formats write to standard output"
    if args.format not in ARROW_FORMATS:
        return None
    if args.flow is not None:
        return f"--flow N shows one flow's segments; it does not apply to --format {args.format}"
    if args.format == "parquet" and args.output is None:
        return "--format parquet needs -o FILE (--format arrow writes to standard output)"
    if args.format == "arrow" and args.output is None and sys.stdout.isatty():
        return ("--format arrow writes a binary Arrow IPC stream: pipe it to a reader "
                "(duckdb, polars, pyarrow) or give -o FILE")
    return None


def run(paths: List[str], args: argparse.Namespace) -> int:
    from handshake_probe.commands.analyze import engine_options
    from handshake_probe.commands.inputs import InputError, opened
    missing = pyarrow_missing(f"--format {args.format}")
    if missing:
        error(missing)
        return ExitStatus.UNAVAILABLE
    if not paths:
        error("no capture files found")
        return ExitStatus.BAD_INPUT
    if len(paths) == 1:
        try:
            with opened(paths[0]) as source:
                return _run_one(source, args, engine_options(args))
        except InputError as err:
            error(str(err))
            return ExitStatus.BAD_INPUT
    return _run_many(paths, args, engine_options(args))


def _sink(args: argparse.Namespace) -> Any:
    from handshake_probe.views.arrow import ArrowStreamSink, ParquetSink
    if args.format == "parquet":
        return ParquetSink(args.output)
    if args.output is not None:
        return ArrowStreamSink(path=args.output)
    return ArrowStreamSink(sys.stdout.buffer)


def _open_sink(args: argparse.Namespace) -> Any:
    """The sink, or None after the one line saying why -o FILE cannot be written."""
    try:
        return _sink(args)
    except OSError as err:
        error(f"cannot write {args.output}: {err.strerror or err}")
        return None


def _run_one(source: Any, args: argparse.Namespace, options: dict) -> int:
    import handshake_probe
    from handshake_probe.commands.analyze import _before_it, progress_line, warn_after
    from handshake_probe.views.arrow import table_from_jsonl
    sink = _open_sink(args)          # before any work: an unwritable -o FILE fails at once
    if sink is None:
        return ExitStatus.BAD_INPUT
    try:
        analysis = handshake_probe.analyze(source.path, streaming=True, **options)
        show = progress_line(source.path, source.shown)
        while (chunk := analysis.chunk("jsonl")) is not None:
            sink.write(table_from_jsonl(chunk))
            if show is not None:
                show(analysis.frames, analysis.offset)
        if show is not None:
            sys.stderr.write("\r\033[K")
        if analysis.error and analysis.frames == 0:
            sink.abort()             # nothing could be read: no file, as the text formats print nothing
        else:
            sink.close()             # no flows: still a file (or stream) with the schema and no rows
    except BaseException:
        sink.abort()
        raise
    warn_after(analysis, source, args)
    status = ExitStatus.BAD_INPUT if analysis.damaged else ExitStatus.OK
    if analysis.error:
        error(source.text(analysis.error) + (_before_it(analysis.flow_count) if analysis.frames else ""))
    return status


def _run_many(paths: List[str], args: argparse.Namespace, options: dict) -> int:
    from handshake_probe.commands.analyze import _before_it
    from handshake_probe.commands.inputs import opened_all
    from handshake_probe.files.parallel import analyze_many
    from handshake_probe.files.tables import analyze_table
    from handshake_probe.messages import warning
    from handshake_probe.views.arrow import with_file
    from handshake_probe.views.progress import FileBar
    if args.flow is not None:
        error("--flow N needs exactly one file")
        return ExitStatus.BAD_INPUT
    bad: List[str] = []
    status = ExitStatus.OK
    with opened_all(paths, bad) as sources:
        for line in bad:
            error(line)
        by_path = {s.path: s for s in sources}
        sink = _open_sink(args)
        if sink is None:
            return ExitStatus.BAD_INPUT
        bar = FileBar(len(sources))
        try:
            for result in analyze_many([s.path for s in sources], args.jobs, options, work=analyze_table):
                source = by_path[result.path]
                bar.clear()
                for line in result.warnings:
                    warning(source.text(line))
                sink.write(with_file(result.table, source.shown))
                if result.error:
                    error(source.text(result.error) + _before_it(result.table.num_rows))
                if result.damaged:
                    status = ExitStatus.BAD_INPUT
                bar.step(source.shown)
            bar.close()
            sink.close()
        except BaseException:
            bar.close()
            sink.abort()
            raise
    return ExitStatus.BAD_INPUT if bad else status
