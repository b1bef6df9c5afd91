"""The report page: one HTML file with its CSS, its script and its data inline (nothing is fetched)."""

from __future__ import annotations

import html
import os
from importlib import resources
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

from handshake_probe.report.data import Source, pack

__all__ = ["report_html", "write_report", "write_report_from"]


def _asset(name: str) -> str:
    return resources.files("handshake_probe.report").joinpath("assets", name).read_text(encoding="utf-8")


def _page(title: str, head: str, chunks: Sequence[str]) -> str:
    details = "".join(f'<script type="application/json" id="hp-d{i}">{c}</script>\n' for i, c in enumerate(chunks))
    # The script's own text must not end its element: it never contains "</script" (checked by a test).
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>\n{_asset('report.css')}</style>\n</head>\n<body>\n"
        f"{_asset('body.html')}\n"
        f'<script type="application/json" id="hp-data">{head}</script>\n{details}'
        f"<script>\n{_asset('ladder.js')}\n{_asset('report.js')}\n</script>\n</body>\n</html>\n")


def report_html(sources: Iterable[Source], title: str = "handshake-probe report") -> str:
    """The whole page for these sources (each a capture's flows with their rows)."""
    head, chunks, _count = pack(sources, title)
    return _page(title, head, chunks)


def write_report(path: "str | os.PathLike[str]", sources: Iterable[Source],
                 title: str = "handshake-probe report") -> int:
    """Write the page to `path`; returns the number of flows in it. Raises OSError when it cannot be
    written (the file is written whole or not at all: a temporary file renamed into place)."""
    head, chunks, count = pack(sources, title)
    text = _page(title, head, chunks)
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return count


def write_report_from(path: "str | os.PathLike[str]", name: str,
                      records: Iterable[Mapping[str, Any]], rows: Any,
                      counters: Optional[Mapping[str, Any]] = None, title: Optional[str] = None) -> int:
    """The hook for `capture --report` and `probe --report`: records (flow dicts) and their rows, either
    a mapping flow number -> rows or a callable rows(number) (an engine's `rows` method), as one source
    named `name`. Returns the number of flows written."""
    get = rows.get if isinstance(rows, Mapping) else rows
    flows: List[Tuple[Mapping[str, Any], Any]] = [(rec, get(rec["flow"])) for rec in records]
    return write_report(path, [Source(name, flows, dict(counters or {}))], title or f"handshake-probe: {name}")
