"""The `--report FILE` option of the commands that analyze as they go (`capture`, `probe`): one call at
the end with what they already hold (`capture`: the pcap of the frames it captured; `probe`: each
scenario's records and rows), so the hook stays a few lines in each."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple

from handshake_probe.messages import error, plural
from handshake_probe.report.data import Source
from handshake_probe.report.page import write_report

__all__ = ["report_sources", "probe_sources"]


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


def probe_sources(outcomes: Sequence[Any]) -> Sequence[Source]:
    """`probe --report FILE`: one source per scenario, named after it."""
    return [Source(f"probe {o.scenario.name}", [(rec, o.analysis.rows.get(rec["flow"], []))
                                                for rec in o.analysis.records],
                   {"frames": o.analysis.frames, "segments": o.analysis.segments,
                    "warnings": list(o.analysis.warnings), "verdict": "ok" if o.ok else "; ".join(o.problems)})
            for o in outcomes]
