"""One capture's flows as an Arrow table: the unit of work of `analyze DIR --format parquet --jobs N` (one
process per file) and of the Dask runs (one task, one partition per capture).

Workers open a capture by path, or by any fsspec URL (`s3://`, `gs://`, `http(s)://`, ...) their machine
can open: the engine reads files, so a URL is copied to a temporary file first (removed afterwards) and
every message names the URL, never the copy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional

__all__ = ["TableResult", "analyze_table", "is_url", "local_copy"]


@dataclass
class TableResult:
    """What a worker sends back: plain data and one Arrow table, so it pickles."""

    path: str                        # as given (a path or a URL)
    table: Any                       # pyarrow.Table of views.arrow.schema(), in flow order; `file` null
    summary: str                     # the table output's summary line
    warnings: List[str] = field(default_factory=list)
    error: Optional[str] = None      # the fault that stopped reading, one line naming `path`
    damaged: bool = False            # exit 2: an error, or frames skipped as malformed
    frames: int = 0


def is_url(path: str) -> bool:
    """A URL for fsspec (`s3://...`); `file://` and plain paths are read in place."""
    return "://" in path and not path.startswith("file://")


@contextmanager
def local_copy(url: str, storage_options: Optional[Mapping[str, Any]] = None) -> Iterator[str]:
    """A local file with the bytes behind `url` (fsspec), removed on every way out."""
    import fsspec
    fd, tmp = tempfile.mkstemp(prefix="handshake-probe-", suffix=".pcap")
    try:
        with os.fdopen(fd, "wb") as dst, fsspec.open(url, "rb", **(storage_options or {})) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield tmp
    finally:
        os.unlink(tmp)


def analyze_table(path: str, options: Dict[str, Any], storage_options: Optional[Mapping[str, Any]] = None,
                  shown: Optional[str] = None) -> TableResult:
    """The capture at `path` (a path or a URL) analyzed in the engine, its records in flow order as one
    Arrow table. A file that does not open or is no capture gives an empty table and the one line the
    local command prints for it; a fault mid-file keeps the flows read before it. Messages call the
    file `shown` (default: `path`; a cluster's workers get absolute paths, the user sees what he typed)."""
    result = _analyze_table(path, options, storage_options)
    if shown is not None and shown != result.path:
        def text(line: str) -> str:
            return line.replace(result.path, shown)
        result = TableResult(shown, result.table, text(result.summary), [text(w) for w in result.warnings],
                             text(result.error) if result.error else None, result.damaged, result.frames)
    return result


def _analyze_table(path: str, options: Dict[str, Any],
                   storage_options: Optional[Mapping[str, Any]] = None) -> TableResult:
    from handshake_probe.commands.inputs import InputError, check_capture
    from handshake_probe.views.arrow import table_from_jsonl
    if path.startswith("file://"):
        path = path[len("file://"):]
    if is_url(path):
        try:
            with local_copy(path, storage_options) as tmp:
                result = _analyze_local(tmp, path, options)
        except (OSError, ValueError) as err:      # fsspec: not found, no access, unknown protocol
            return TableResult(path, table_from_jsonl(b""), "", error=f"cannot open {path}: {err}", damaged=True)
        return result
    try:
        check_capture(path, path)
    except InputError as err:
        return TableResult(path, table_from_jsonl(b""), "", error=str(err), damaged=True)
    return _analyze_local(path, path, options)


def _analyze_local(local: str, shown: str, options: Dict[str, Any]) -> TableResult:
    import pyarrow as pa

    import handshake_probe
    from handshake_probe.commands.inputs import InputError, check_capture
    from handshake_probe.views.arrow import table_from_jsonl
    from handshake_probe.views.table import summary_line

    def text(line: str) -> str:
        return line.replace(local, shown) if local != shown else line

    if local != shown:
        try:
            check_capture(local, shown)
        except InputError as err:
            return TableResult(shown, table_from_jsonl(b""), "", error=str(err), damaged=True)
    # Streamed out of the flow table (memory follows open flows), then put in flow order, as the local
    # multi-file path does.
    analysis = handshake_probe.analyze(local, streaming=True, **options)
    parts = []
    while (chunk := analysis.chunk("jsonl")) is not None:
        parts.append(table_from_jsonl(chunk))
    table = pa.concat_tables(parts) if parts else table_from_jsonl(b"")
    table = table.sort_by("flow").combine_chunks()
    return TableResult(shown, table, text(summary_line(analysis)), [text(w) for w in analysis.warnings],
                       text(analysis.error) if analysis.error else None, analysis.damaged, analysis.frames)
