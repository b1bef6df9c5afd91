"""Where the edges get flows from: flow records, a kept flow's per-segment rows, and the summary.

The views (table, `--flow N`, ladders, check, the pytest plugin) read only what the engine's boundary
hands out: records (dicts, the JSON contract), rows (dicts, one per segment, built by src/rows.rs) and
an analysis' counters. This module is the one place that chooses the analysis behind them, so that
switching from the Python core to the engine is a change here and nowhere else.

Today it runs the Python core (analyze_file + flow_record + rows_of, the migration aid). On the engine:

    analysis = handshake_probe.analyze(path, streaming=False, keep_rows=list(wanted), **options)
    views = [(rec, analysis.rows(rec["flow"])) for rec in analysis if rec["flow"] in wanted]

(with `progress`, step it with `analysis.advance()` and report `analysis.frames, analysis.offset`), and
`records_and_summary` is `list(analysis)` without keep_rows; `summary_of` reads either Analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, AbstractSet, Any, Callable, Collection, Dict, List, Mapping, Optional, Tuple

if TYPE_CHECKING:   # only named in a hint: importing this module must not import the core
    from handshake_probe.core.flow import Flow

__all__ = ["Record", "Row", "FlowView", "Summary", "summary_of", "records_and_summary", "flows_with_rows",
           "flow_with_rows", "core_flow_view"]

Record = Dict[str, Any]             # a flow record: the JSON object of `--format jsonl`
Row = Dict[str, Any]                # one segment of a kept flow (keys: see core.record.rows_of)
FlowView = Tuple[Record, List[Row]]
Progress = Callable[[int, int], None]   # (frames, byte offset), for a progress line


@dataclass(frozen=True)
class Summary:
    """What an analysis tells besides its flows: the attributes the engine's Analysis and the Python
    core's share. A copy, so that no edge can reach the core's flow objects through it."""

    path: str
    frames: int
    segments: int
    skipped: Mapping[str, int]      # reason -> count (non-tcp, fragment, malformed, ...)
    warnings: List[str]
    error: Optional[str]            # the file-level fault that stopped reading
    flow_count: int                 # flows seen (= the last flow number)
    evicted: int
    violations: int
    damaged: bool


def summary_of(analysis: Any) -> Summary:
    """The Summary of either core's Analysis (read once it has been run to its end)."""
    return Summary(analysis.path, analysis.frames, analysis.segments, analysis.skipped,
                   list(analysis.warnings), analysis.error, analysis.flow_count, analysis.evicted,
                   analysis.violations, analysis.damaged)


def records_and_summary(path: str, progress: Optional[Progress] = None,
                        **options: Any) -> Tuple[List[Record], Summary]:
    """Every flow's record, in flow order, and the summary. `options`: msl, check_checksums, linger,
    idle_timeout, max_open (the engine's analyze options)."""
    from handshake_probe.analysis import analyze_file
    from handshake_probe.core.record import flow_record

    analysis = analyze_file(path, progress=progress, **options)
    return [flow_record(f) for f in analysis.flows], summary_of(analysis)


def flows_with_rows(path: str, numbers: Collection[int], progress: Optional[Progress] = None,
                    **options: Any) -> Tuple[List[FlowView], Summary]:
    """(record, rows) of the flows numbered `numbers` that the capture has, in flow order, and the
    summary. Rows are kept for these flows only: memory grows with flows, not packets."""
    from handshake_probe.analysis import analyze_file
    from handshake_probe.core.record import flow_record, rows_of

    # A range stays a range (`ladder --max-flows M` may ask for a great many): membership is O(1) in
    # both; anything else becomes a set, to be asked once per flow.
    wanted = numbers if isinstance(numbers, (range, AbstractSet)) else frozenset(numbers)
    analysis = analyze_file(path, keep_rows=wanted.__contains__, progress=progress, **options)
    views = [(flow_record(f), rows_of(f)) for f in analysis.flows if f.number in wanted]
    return views, summary_of(analysis)


def flow_with_rows(path: str, number: int, **options: Any) -> Optional[FlowView]:
    """(record, rows) of flow `number` (1-based), or None when the capture has no such flow."""
    views, _summary = flows_with_rows(path, (number,), **options)
    return views[0] if views else None


def core_flow_view(flow: "Flow") -> FlowView:
    """MIGRATION AID: (record, rows) of a Python core Flow object, for the edges that still receive
    one (`assert_flow` given a Flow, the prober). Rows are [] when the flow kept none. Goes with the
    core."""
    from handshake_probe.core.record import flow_record, rows_of

    return flow_record(flow), rows_of(flow)
