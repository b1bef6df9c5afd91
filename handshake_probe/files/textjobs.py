"""Several files in the text formats (jsonl, csv, json, table) with worker processes: no record crosses
between processes as a Python object.

Each worker reads one capture through the engine, which writes the records' text itself
(`Analysis.chunk`), puts the lines in flow order (a reorder buffer: a line waits only for the flows
before it that are still open) and writes them, with the file's name added, to a spool file of its own.
What it sends back is small: the spool's path, the flow count, the summary line, warnings and the error.
The parent copies each spool to standard output in the order of the files, in fixed-size blocks, and
removes it: the parent's memory does not grow with the files' sizes or their number, and the workers
never wait for the parent (a slow first file does not stall the others, as a bounded pipe would).
Disk holds at most the output not yet copied.

The table format needs every record of a file to size its columns: the worker renders that file's
table (the same `flow_table` call the single-file path makes) and spools its text.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Dict, Iterator, List, Optional, Sequence, Tuple

__all__ = ["TextResult", "copy_spool", "file_cell", "spool_dir", "spool_one", "spooled"]

COPY_BLOCK = 1 << 20


@dataclass
class TextResult:
    """What a worker sends back: plain data, so it pickles; the records themselves are in `spool`."""

    path: str
    spool: str                         # the file's output text, in flow order (removed by the reader)
    flows: int                         # records written
    summary: str
    warnings: List[str] = field(default_factory=list)
    error: Optional[str] = None
    damaged: bool = False


@contextmanager
def spool_dir() -> Iterator[str]:
    """A private directory for the workers' spools, removed on every way out."""
    path = tempfile.mkdtemp(prefix="handshake-probe-jobs-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def file_cell(shown: str, fmt: str) -> bytes:
    """The "file" value as the format writes it: a JSON string, or a CSV cell quoted as Python's csv
    writer (QUOTE_MINIMAL) quotes it."""
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([shown, ""])
        return buf.getvalue()[:-2].encode()      # the cell, without the "," and the empty one after it
    return json.dumps(shown).encode()


def _csv_file_index() -> int:
    import handshake_probe
    return list(handshake_probe.CSV_COLUMNS).index("file")


def _with_file(line: bytes, fmt: str, cell: bytes, index: int) -> bytes:
    """One engine-written record line (no newline) with the file named in it, where Python's writers
    put it: the last key of the JSON object, the "file" column of the CSV row (empty from the engine)."""
    if fmt != "csv":
        return line[:-1] + b',"file":' + cell + b"}"
    # The cells before "file" (addresses, states, counts) hold no comma or quote; checked, and a row
    # where one would is split by the csv module instead.
    head = line.split(b",", index + 1)
    if len(head) == index + 2 and head[index] == b"" and b'"' not in b"".join(head[:index]):
        return b",".join(head[:index]) + b"," + cell + b"," + head[index + 1]
    row = next(csv.reader([line.decode()]))
    row[index] = cell.decode()
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue().encode()


def _flow_number(line: bytes, fmt: str) -> int:
    """The record's "flow": the first CSV column, the first key the engine writes in JSON."""
    if fmt == "csv":
        return int(line[:line.index(b",")])
    start = line.index(b":") + 1
    return int(line[start:line.index(b",", start)])


def spool_one(path: str, shown: str, fmt: str, options: Dict[str, Any], directory: str, index: int,
              table: Optional[Tuple[Optional[Sequence[str]], Optional[int]]] = None) -> TextResult:
    """Analyze `path` and write its output text (records in flow order, named `shown`) to a new spool
    in `directory`. `fmt`: jsonl or csv (rows, no header: the parent writes it once), or table
    (`table`: its columns and width). json uses the jsonl lines."""
    import handshake_probe
    from handshake_probe.views.table import flow_table, summary_line
    analysis = handshake_probe.analyze(path, streaming=True, **options)
    spool = os.path.join(directory, f"{index:08d}.out")
    flows = 0
    with open(spool, "wb") as out:
        if fmt == "table":
            records = []
            for rec in analysis:
                rec["file"] = shown
                records.append(rec)
            records.sort(key=lambda r: r["flow"])
            flows = len(records)
            columns, width = table if table is not None else (None, None)
            out.write((flow_table(records, columns, width) + "\n").encode())
        else:
            flows = _spool_lines(analysis, "csv" if fmt == "csv" else "jsonl", file_cell(shown, fmt), out)
    return TextResult(path, spool, flows, summary_line(analysis), analysis.warnings, analysis.error,
                      analysis.damaged)


def _spool_lines(analysis: Any, fmt: str, cell: bytes, out: BinaryIO) -> int:
    """The engine's lines, as flows finish, written in flow order: a line waits in `pending` until
    every flow numbered before it is out (flows are numbered 1, 2, ... as they begin)."""
    index = _csv_file_index() if fmt == "csv" else -1
    pending: List[Tuple[int, bytes]] = []
    following = 1
    written = 0
    while (chunk := analysis.chunk(fmt)) is not None:
        ready: List[bytes] = []
        for line in chunk.split(b"\n"):
            if not line:
                continue
            number = _flow_number(line, fmt)
            if number == following and not pending:
                ready.append(_with_file(line, fmt, cell, index))
                following += 1
                continue
            heapq.heappush(pending, (number, line))
            while pending and pending[0][0] == following:
                ready.append(_with_file(heapq.heappop(pending)[1], fmt, cell, index))
                following += 1
        if ready:
            out.write(b"\n".join(ready) + b"\n")
            written += len(ready)
    # Numbers the engine never wrote (none expected) do not hold the rest back: the end flushes all.
    rest = [_with_file(line, fmt, cell, index) for _, line in sorted(pending)]
    if rest:
        out.write(b"\n".join(rest) + b"\n")
        written += len(rest)
    return written


def spooled(items: Sequence[Tuple[str, str]], fmt: str, jobs: int, options: Dict[str, Any], directory: str,
            table: Optional[Tuple[Optional[Sequence[str]], Optional[int]]] = None) -> Iterator[TextResult]:
    """Each (path, shown)'s result in the order given, up to `jobs` files analyzed at once (in this
    process with one job or one file)."""
    if jobs <= 1 or len(items) == 1:
        for i, (path, shown) in enumerate(items):
            yield spool_one(path, shown, fmt, options, directory, i, table)
        return
    from concurrent.futures import ProcessPoolExecutor
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(items)))
    try:
        futures = [pool.submit(spool_one, path, shown, fmt, options, directory, i, table)
                   for i, (path, shown) in enumerate(items)]
        for fut in futures:
            yield fut.result()
    finally:
        # Stopped early (a closed pipe, ^C, a worker's fault): the files not started are not started.
        pool.shutdown(wait=True, cancel_futures=True)


def copy_spool(spool: str, out: BinaryIO, json_array_first: Optional[bool] = None) -> Optional[bool]:
    """Copy a spool to `out` in COPY_BLOCK blocks and remove it. With `json_array_first` (not None): the
    spool holds JSON Lines written as the elements of the JSON array `analyze --format json` prints
    ("\\n" before the first, ",\\n" before the others); returns whether the next one is still the first."""
    try:
        with open(spool, "rb") as src:
            if json_array_first is None:
                shutil.copyfileobj(src, out, COPY_BLOCK)
                return None
            first = json_array_first
            for line in src:
                out.write((b"\n" if first else b",\n") + line.rstrip(b"\n"))
                first = False
            return first
    finally:
        os.unlink(spool)
