"""Where the edges get flows from: flow records, a kept flow's per-segment rows, and the summary.

The views (table, `--flow N`, ladders, check, the pytest plugin) read only what the engine's boundary
hands out: records (dicts, the JSON contract), rows (dicts, one per segment, built by src/rows.rs) and
an analysis' counters. This module is the one place that chooses the analysis behind them: the engine,
`handshake_probe.analyze(path, streaming=False, keep_rows=[...])`, so that records come in flow order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, AbstractSet, Any, Callable, Collection, Dict, List, Mapping, Optional, Tuple

import handshake_probe

if TYPE_CHECKING:   # only named in a hint: importing this module must not import the core
    from handshake_probe.core.flow import Flow

__all__ = ["Record", "Row", "FlowView", "Summary", "summary_of", "records_and_summary", "flows_with_rows",
           "flow_with_rows", "core_flow_view", "MAX_KEPT_FLOWS"]

Record = Dict[str, Any]             # a flow record: the JSON object of `--format jsonl`
Row = Dict[str, Any]                # one segment of a kept flow (keys: see src/rows.rs)
FlowView = Tuple[Record, List[Row]]
Progress = Callable[[int, int], None]   # (frames, byte offset), for a progress line

# Rows are kept for at most this many flows of a range (`ladder --max-flows M` may ask for a great
# many): the engine takes the wanted numbers as a list, and a ladder per flow beyond this would be
# unreadable anyway. The ladder's last line says how many of the capture's flows were drawn.
MAX_KEPT_FLOWS = 1 << 16


@dataclass(frozen=True)
class Summary:
    """What an analysis tells besides its flows: the engine Analysis' counters, copied, so that a
    view holds plain data (it pickles, and outlives the analysis)."""

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
    """The Summary of an engine Analysis (read once it has been run to its end)."""
    return Summary(analysis.path, analysis.frames, analysis.segments, dict(analysis.skipped),
                   list(analysis.warnings), analysis.error, analysis.flow_count, analysis.evicted,
                   analysis.violations, analysis.damaged)


def _run(analysis: Any, progress: Optional[Progress]) -> None:
    """Read the whole input, reporting (frames read, bytes read) after every batch the engine's
    reading thread hands over."""
    if progress is None:
        return
    while not analysis.advance():
        progress(analysis.frames, analysis.offset)


def records_and_summary(path: str, progress: Optional[Progress] = None,
                        **options: Any) -> Tuple[List[Record], Summary]:
    """Every flow's record, in flow order, and the summary. `options`: msl, check_checksums, linger,
    idle_timeout, max_open (the engine's analyze options)."""
    analysis = handshake_probe.analyze(path, streaming=False, **options)
    _run(analysis, progress)
    records = list(analysis)
    return records, summary_of(analysis)


def _kept_numbers(numbers: Collection[int]) -> List[int]:
    """The flow numbers to keep rows for, as the list the engine takes: a range is cut to its first
    MAX_KEPT_FLOWS numbers (a list of a billion numbers would be built before reading a byte)."""
    if isinstance(numbers, range):
        numbers = numbers[:MAX_KEPT_FLOWS]
    return sorted({n for n in numbers if n >= 1})   # flows are numbered from 1: no other number is kept


def flows_with_rows(path: str, numbers: Collection[int], progress: Optional[Progress] = None,
                    **options: Any) -> Tuple[List[FlowView], Summary]:
    """(record, rows) of the flows numbered `numbers` that the capture has, in flow order, and the
    summary. Rows are kept for these flows only: memory grows with flows, not packets."""
    kept = _kept_numbers(numbers)
    wanted: AbstractSet[int] = frozenset(kept)
    analysis = handshake_probe.analyze(path, streaming=False, keep_rows=kept, **options)
    _run(analysis, progress)
    # Records of other flows are dropped as they come; rows() is None only for a flow not kept.
    views = [(rec, analysis.rows(rec["flow"]) or []) for rec in analysis if rec["flow"] in wanted]
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
