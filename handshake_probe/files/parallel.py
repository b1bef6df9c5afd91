"""Many capture files at once: one process per file (up to --jobs), results in the order of the files."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Sequence


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


def analyze_many(paths: Sequence[str], jobs: int, options: Dict[str, Any],
                 work: Callable[[str, Dict[str, Any]], Any]) -> Iterator[Any]:
    """Yield each file's result in the order of `paths`, analyzing up to `jobs` files at once. `work`
    makes one file's result (a module-level function, so it pickles): an Arrow table for the Arrow
    formats (files/tables.py). The text formats spool the engine's text instead (files/textjobs.py)."""
    if jobs <= 1 or len(paths) == 1:
        for p in paths:
            yield work(p, options)
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
        futures = [pool.submit(work, p, options) for p in paths]
        for fut in futures:
            yield fut.result()
