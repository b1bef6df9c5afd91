"""`analyze DIR --dask-scheduler tcp://HOST:8786 -o OUT`: the captures analyzed on an existing Dask cluster,
one task per capture, and written here as one Parquet file per capture in OUT (a dataset directory:
`read_parquet('OUT/*.parquet')`).

The workers open the captures by the path or URL given (a shared filesystem, or any fsspec URL they can
open) and send back each capture's flows as an Arrow table; this process writes the files, so OUT need
not be shared. Messages and exit codes are the local run's (`analyze DIR --jobs N`), in file order: a
path this machine sees that does not open or is no capture is one line before anything runs; a capture
that breaks mid-way keeps the flows read before the fault (its file is written) and gets its line; the
other captures are never lost. On a terminal Dask's own progress bar runs over the tasks (on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import redirect_stdout
from typing import Any, Dict, List

from handshake_probe.exitcodes import ExitStatus
from handshake_probe.messages import error, warning

__all__ = ["run", "output_names"]

MISSING = "--dask-scheduler needs dask and distributed: pip install 'handshake-probe[cluster]'"


def output_names(paths: List[str]) -> List[str]:
    """The Parquet file name of each capture: its own name plus `.parquet`; a name seen before gets the
    capture's position in front (`3-a.pcap.parquet`), so no capture overwrites another."""
    names: List[str] = []
    seen: set[str] = set()
    for i, p in enumerate(paths, 1):
        name = os.path.basename(p.rstrip("/")) + ".parquet"
        if name in seen:
            name = f"{i}-{name}"
        seen.add(name)
        names.append(name)
    return names


def run(args: argparse.Namespace) -> int:
    from handshake_probe.commands.analyze import _before_it, engine_options
    from handshake_probe.commands.columnar import pyarrow_missing
    try:
        import distributed
    except ImportError:
        error(MISSING)
        return ExitStatus.UNAVAILABLE
    missing = pyarrow_missing("--dask-scheduler")
    if missing:
        error(missing)
        return ExitStatus.UNAVAILABLE
    if args.output is None:
        error("--dask-scheduler needs -o DIR: the directory that gets one Parquet file per capture")
        return ExitStatus.BAD_INPUT
    if args.format not in ("table", "parquet"):
        error(f"--dask-scheduler writes Parquet files; --format {args.format} does not apply")
        return ExitStatus.BAD_INPUT
    if "-" in args.file:
        error("--dask-scheduler: the workers cannot read this process's standard input; give paths or URLs")
        return ExitStatus.BAD_INPUT
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        error(f"-o {args.output}: not a directory (--dask-scheduler writes one Parquet file per capture in it)")
        return ExitStatus.BAD_INPUT

    try:
        os.makedirs(args.output, exist_ok=True)
    except OSError as err:
        error(f"cannot write {args.output}: {err.strerror or err}")
        return ExitStatus.BAD_INPUT
    from handshake_probe.commands.inputs import InputError, check_capture
    from handshake_probe.dask import capture_paths
    from handshake_probe.files.tables import analyze_table, is_url
    from handshake_probe.views.arrow import ParquetSink, with_file
    try:
        paths = capture_paths(args.file, absolute=False)
    except (OSError, ValueError) as err:
        error(f"cannot list {' '.join(args.file)}: {err}")
        return ExitStatus.BAD_INPUT
    if not paths:
        error("no capture files found")
        return ExitStatus.BAD_INPUT
    # Paths this machine sees are checked here first, with the local run's lines; URLs by the workers.
    bad = 0
    good: List[str] = []
    for p in paths:
        try:
            if not is_url(p):
                check_capture(p, p)
            good.append(p)
        except InputError as err:
            error(str(err))
            bad += 1
    try:
        client = distributed.Client(args.dask_scheduler, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        error(f"cannot reach the Dask scheduler at {args.dask_scheduler}: {err}")
        return ExitStatus.UNAVAILABLE
    status = ExitStatus.OK
    options: Dict[str, Any] = engine_options(args)
    try:
        # Workers get absolute paths (their working directory is not ours); messages keep the names given.
        where = [p if is_url(p) else os.path.abspath(p) for p in good]
        futures = client.map(analyze_table, where, [options] * len(good), [None] * len(good), good, pure=False,
                             key=[f"handshake-probe-{i}-{os.path.basename(p)}" for i, p in enumerate(good)])
        if sys.stderr.isatty() and futures:
            # Dask's own bar draws on stdout; here stdout is free, but stderr is where progress goes.
            with redirect_stdout(sys.stderr):
                distributed.progress(futures, notebook=False, scheduler=client.scheduler.address)
        for path, name, future in zip(good, output_names(good), futures):
            try:
                result = future.result()
            except Exception as err:       # this capture only: the others' results are kept
                error(f"{path}: the Dask task failed: {type(err).__name__}: {err}")
                # An engine panic is a bug (70, as locally); a worker that died or vanished is the
                # cluster's failing (69).
                bug = type(err).__name__ == "EngineError"
                status = max(status, ExitStatus.INTERNAL if bug else ExitStatus.UNAVAILABLE)
                continue
            finally:
                future.release()
            for line in result.warnings:
                warning(line)
            if not (result.error and result.frames == 0):
                sink = ParquetSink(os.path.join(args.output, name))
                try:
                    sink.write(with_file(result.table, path))
                    sink.close()
                except BaseException:
                    sink.abort()
                    raise
            if result.error:
                error(result.error + _before_it(result.table.num_rows))
            if result.damaged and status == ExitStatus.OK:
                status = ExitStatus.BAD_INPUT
    finally:
        client.close()
    return ExitStatus.BAD_INPUT if bad and status == ExitStatus.OK else status
