"""The verdict as text: a failing flow's expected vs found and its ladder (`format_flow_failures`, the body
of an `assert_flow` message), and the whole report for a CI log (`format_report`). Rendering only (no I/O)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from handshake_probe.checks.evaluate import Failure, Report, _plural
from handshake_probe.checks.spec import Record

__all__ = ["flow_ladder", "format_flow_failures", "format_report"]


def flow_ladder(rec: Record, rows: Optional[Sequence[Mapping[str, Any]]]) -> str:
    """The flow drawn for a failure message, from its record and its kept rows (flowsource): the ladder
    diagram when handshake_probe.views.ladder exists, else `analyze --flow N`'s segment listing. Rendering
    only (no I/O)."""
    from handshake_probe.views.table import flow_detail

    try:
        from handshake_probe.views.ladder import ladder_text
    except ImportError:
        return flow_detail(rec, rows)
    try:
        return ladder_text(rec, rows)
    except Exception as err:   # a diagnostic must never hide the verdict it illustrates
        return f"(ladder failed: {err}; segment listing instead)\n" + flow_detail(rec, rows)


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def format_flow_failures(failures: Sequence[Failure], ladder: Optional[str] = None, indent: str = "  ") -> str:
    """Expected vs found for each failure of one flow, then its ladder: the body of a failure message."""
    lines: List[str] = []
    for f in failures:
        head = f"{f.rule}: {f.what}" if f.rule else f.what
        lines += [f"{indent}{head}", f"{indent}  expected: {f.expected}", f"{indent}  found:    {f.found}"]
    if ladder is not None:
        lines += [f"{indent}ladder:", _indent(ladder, indent + "  ")]
    return "\n".join(lines)


_GREEN, _RED, _RESET = "\033[32m", "\033[31m", "\033[0m"


def format_report(report: Report, *, title: str, ladders: Mapping[int, str], max_flows: int = 10,
                  color: bool = False) -> str:
    """The whole verdict as CI-log text: one line per expectation, then each failing flow in full
    (expected vs found and its ladder) for the first `max_flows` of them, then one result line."""
    def paint(text: str, ok: bool) -> str:
        # Colour only helps on a terminal; a CI log keeps plain words (the caller decides).
        return f"{_GREEN if ok else _RED}{text}{_RESET}" if color else text

    def mark(ok: bool) -> str:
        return paint("ok  " if ok else "FAIL", ok)

    lines = [title]
    for o in report.outcomes:
        if o.ok:
            # Counting and selecting concern the capture, not each flow: no "(N flows)" after them.
            tail = "" if o.what.startswith(("flows =", "selects")) else f"({_plural(o.checked, 'flow')})"
            if o.notes:
                tail += f" [{'; '.join(o.notes)}]"
        else:
            flows = [f.flow for f in o.failures if f.flow is not None]
            if flows:
                listed = ", ".join(str(n) for n in flows[:10]) + (" ..." if len(flows) > 10 else "")
                tail = f"({len(flows)} of {_plural(o.checked, 'flow')} failed: {listed})"
            else:
                tail = ""
        lines.append(f"  {mark(o.ok)}  {o.rule}: {o.what}  {tail}".rstrip())

    capture_failures = [f for f in report.failures if f.flow is None]
    if capture_failures:
        lines += ["", "capture:", format_flow_failures(capture_failures)]
    failed = report.failed_flows
    by_flow: Dict[int, List[Failure]] = {}
    for f in report.failures:
        if f.flow is not None:
            by_flow.setdefault(f.flow, []).append(f)
    for n in failed[:max_flows]:
        first = by_flow[n][0]
        lines += ["", f"flow {n}: {first.endpoints}", format_flow_failures(by_flow[n], ladders.get(n))]
    if len(failed) > max_flows:
        rest = failed[max_flows:]
        listed = ", ".join(str(n) for n in rest[:20]) + (" ..." if len(rest) > 20 else "")
        lines += ["", f"... and {_plural(len(rest), 'more failing flow')} not shown ({listed}); "
                      f"raise --max-flows to see them"]

    total = len(report.outcomes)
    bad = sum(not o.ok for o in report.outcomes)
    lines.append("")
    if bad:
        listed = ", ".join(map(str, failed[:10])) + (" ..." if len(failed) > 10 else "")
        where = f" ({'flow' if len(failed) == 1 else 'flows'} {listed})" if failed else ""
        lines.append(paint("FAILED", False) + f": {bad} of {_plural(total, 'expectation')} not met{where}")
    else:
        lines.append(paint("PASSED", True) + f": all {_plural(total, 'expectation')} met "
                     f"on {_plural(report.flows, 'flow')}")
    return "\n".join(lines)
