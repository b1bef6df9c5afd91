"""The `--report FILE` option of the commands that analyze as they go (`capture`, `probe`): one call at
the end with what they already hold, the records and the rows, so the hook stays one line in each."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple

from handshake_probe.messages import error, plural
from handshake_probe.report.data import Source
from handshake_probe.report.page import write_report

__all__ = ["report_sources", "report_records", "probe_sources"]


def report_sources(path: str, sources: Sequence[Source], title: str) -> bool:
    """Write the report of `sources` to `path` and say so on stdout; False (one error line on stderr)
    when it cannot be written."""
    try:
        count = write_report(path, sources, title)
    except OSError as err:
        error(f"cannot write the report {path}: {err.strerror or err}")
        return False
    print(f"wrote {path}: {plural(count, 'flow')}", flush=True)
    return True


def report_records(path: str, name: str, records: Iterable[Mapping[str, Any]], rows: Any,
                   counters: Optional[Mapping[str, Any]] = None) -> bool:
    """`capture --report FILE`: the records of one capture and their rows (a mapping flow number ->
    rows, or a callable such as an Engine's `rows`)."""
    get = rows.get if isinstance(rows, Mapping) else rows
    flows: Sequence[Tuple[Mapping[str, Any], Any]] = [(rec, get(rec["flow"])) for rec in records]
    return report_sources(path, [Source(name, flows, dict(counters or {}))], f"handshake-probe: {name}")


def probe_sources(outcomes: Sequence[Any]) -> Sequence[Source]:
    """`probe --report FILE`: one source per scenario, named after it."""
    return [Source(f"probe {o.scenario.name}", [(rec, o.analysis.rows.get(rec["flow"], []))
                                                for rec in o.analysis.records],
                   {"frames": o.analysis.frames, "segments": o.analysis.segments,
                    "warnings": list(o.analysis.warnings), "verdict": "ok" if o.ok else "; ".join(o.problems)})
            for o in outcomes]
