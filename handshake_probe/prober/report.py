"""Text for a finished scenario: the analyzer's ladder (render.flow_detail, as `analyze --flow N`), what the
kernel said at each checkpoint, and one verdict line (what was expected, what happened)."""

from __future__ import annotations

from typing import List, Optional, Sequence

from handshake_probe.ladder import ladder_text
from handshake_probe.render import flow_detail
from handshake_probe.prober.verdict import Outcome, state_after

__all__ = ["render", "verdict_line", "summary"]


def _expected(out: Outcome) -> str:
    sc = out.scenario
    kernel = ">".join(cp.expected for cp in out.checkpoints)
    text = f"{out.expected_ladder}; client {sc.client}; server {sc.server}; close {sc.close}"
    return text + (f"; kernel {kernel}" if kernel else "")


def _happened(out: Outcome) -> str:
    client, server, close = out.paths()
    kernel = ">".join(cp.kernel for cp in out.checkpoints)
    text = f"{out.ladder or '(no segments)'}; client {client}; server {server}; close {close}"
    return text + (f"; kernel {kernel}" if kernel else "")


def verdict_line(out: Outcome) -> str:
    name = out.scenario.name
    if out.ok:
        return (f"verdict: PASS {name}: expected {_expected(out)}; happened {out.ladder} and all the rest "
                f"as expected ({out.seconds:.2f} s)")
    return (f"verdict: FAIL {name}: expected {_expected(out)}; happened {_happened(out)}; "
            f"{'; '.join(out.problems)} ({out.seconds:.2f} s)")


def render(out: Outcome, ladder: bool = False, width: Optional[int] = None) -> str:
    """The scenario's flows as `analyze --flow N` shows them (fitted to `width` columns, as there), or as
    a ladder diagram, then the kernel checkpoints and the verdict."""
    sc = out.scenario
    lines: List[str] = [f"== scenario {sc.name}: {sc.does}", ""]
    for rec in out.analysis.records:
        rows = out.analysis.rows.get(rec["flow"], [])
        lines += [ladder_text(rec, rows) if ladder else flow_detail(rec, rows, width), ""]
    if not out.analysis.records:
        lines += ["(no TCP segment was recorded)", ""]
    for cp in out.checkpoints:
        where = f"after frame {out.frames[cp.frames - 1].frame}" if cp.frames else "before any frame"
        if cp.visible:
            seen = state_after(out, cp.frames, cp.role)
            tail = f"analyzer's {cp.role}: {seen}"
        else:
            tail = "no segment shows this: the analyzer cannot see it"
        lines.append(f"kernel ({cp.role}) {cp.label} [{where}]: {cp.kernel}; {tail}")
    for note in out.notes:
        lines.append(f"note: {note}")
    lines.append(verdict_line(out))
    return "\n".join(lines)


def summary(outcomes: Sequence[Outcome]) -> str:
    passed = sum(o.ok for o in outcomes)
    failed = [o.scenario.name for o in outcomes if not o.ok]
    text = f"probe: {passed}/{len(outcomes)} scenarios as expected"
    return text + (f"; failed: {', '.join(failed)}" if failed else "")
