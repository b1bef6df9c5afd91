"""Many capture files at once: one process per file (up to --jobs), results in the order of the files."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence


CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp")


def expand(paths: Sequence[str]) -> List[str]:
    """Files as given; a directory stands for the capture files directly inside it, sorted by name."""
    out: List[str] = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(str(f) for f in Path(p).iterdir() if f.suffix.lower() in CAPTURE_SUFFIXES)
        else:
            out.append(p)
    return out


@dataclass
class FileResult:
    """What one worker sends back: plain data, so it pickles."""

    path: str
    records: List[Dict[str, Any]]
    summary: str
    warnings: List[str] = field(default_factory=list)
    error: Optional[str] = None
    damaged: bool = False


def analyze_one(path: str, options: Dict[str, Any]) -> FileResult:
    from handshake_probe.views.table import summary_line
    import handshake_probe
    # Streamed out of the flow table: memory follows open flows; then put in flow order.
    analysis = handshake_probe.analyze(path, streaming=True, **options)
    records: List[Dict[str, Any]] = []
    for rec in analysis:
        rec["file"] = path
        records.append(rec)
    records.sort(key=lambda r: r["flow"])
    return FileResult(path, records, summary_line(analysis), analysis.warnings,
                      analysis.error, analysis.damaged)


def analyze_many(paths: Sequence[str], jobs: int, options: Dict[str, Any],
                 work: Callable[[str, Dict[str, Any]], Any] = analyze_one) -> Iterator[Any]:
    """Yield each file's result in the order of `paths`, analyzing up to `jobs` files at once. `work`
    makes one file's result (a module-level function, so it pickles): records by default, an Arrow
    table for the Arrow formats (files/tables.py)."""
    if jobs <= 1 or len(paths) == 1:
        for p in paths:
            yield work(p, options)
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
        futures = [pool.submit(work, p, options) for p in paths]
        for fut in futures:
            yield fut.result()
