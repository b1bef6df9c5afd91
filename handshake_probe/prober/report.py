"""Text for a finished scenario: the analyzer's ladder (views.table.flow_detail, as `analyze --flow N`), what the
kernel said at each checkpoint, and the verdict: the cause first, then what was expected beside what
happened, wrapped to the terminal (ladders break between segments, state paths after a `>`)."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from handshake_probe.views.ladder import ladder_text
from handshake_probe.views.table import fitted, flow_detail
from handshake_probe.prober.verdict import Outcome, state_after

__all__ = ["render", "verdict_line", "verdict_lines", "wrap_item", "summary", "DEFAULT_WIDTH"]


DEFAULT_WIDTH = 100     # a verdict sent to a pipe or a file is wrapped too: the cause must lead there as well
_MIN_WIDTH = 40
_LABEL = 12             # "  expected: " then the text, continuation lines aligned under it


def _atoms(text: str, room: int) -> List[Tuple[str, bool]]:
    """The words of `text` as (word, glued to the previous one); a word wider than `room` (a long state
    path) is cut after its '>' marks, its pieces glued (no space between them on one line)."""
    out: List[Tuple[str, bool]] = []
    for word in text.split():
        glued = False
        while len(word) > room and ">" in word[1:room]:
            cut = word.rindex(">", 1, room) + 1
            out.append((word[:cut], glued))
            word, glued = word[cut:], True
        out.append((word, glued))
    return out


def wrap_item(label: str, text: str, width: int) -> List[str]:
    """`label:` then `text` filled to `width` columns, continuation lines indented under the text (no
    label: all lines indented). A ladder breaks between segments and a state path after a '>', never
    inside a state name or a flag token; only a single word wider than the room is left longer."""
    room = max(width - _LABEL, 1)
    lines: List[str] = []
    line = ""
    for atom, glued in _atoms(text, room):
        glue = "" if not line or glued else " "
        if line and len(line) + len(glue) + len(atom) > room:
            lines.append(line)
            line = atom
        else:
            line += glue + atom
    lines.append(line)
    head = f"  {label}:".ljust(_LABEL) if label else " " * _LABEL
    return [(head if i == 0 else " " * _LABEL) + text_line for i, text_line in enumerate(lines)]


def _paths(client: str, server: str, close: str, kernel: str) -> List[str]:
    items = [f"client {client}", f"server {server}", f"close {close}"]
    return items + ([f"kernel {kernel}"] if kernel else [])


def _block(label: str, ladder: str, items: List[str], width: int) -> List[str]:
    """The ladder after the label, then one line (or more, wrapped) per path under it."""
    lines = wrap_item(label, ladder, width)
    for item in items:
        lines += wrap_item("", item, width)
    return lines


def verdict_lines(out: Outcome, width: Optional[int] = None) -> List[str]:
    """The verdict, wrapped to `width` (None: DEFAULT_WIDTH): first `verdict: PASS|FAIL NAME (seconds)`,
    then, for a failure, the cause (the first thing that went wrong) on its own line, the other problems,
    and what was expected beside what happened, each wrapped under its label."""
    width = max(width or DEFAULT_WIDTH, _MIN_WIDTH)
    sc = out.scenario
    client, server, close = out.paths()
    happened = _paths(client, server, close, ">".join(cp.kernel for cp in out.checkpoints))
    if out.ok:
        return ([f"verdict: PASS {sc.name}: all as expected ({out.seconds:.2f} s)"]
                + _block("happened", out.ladder, happened, width))
    lines = [f"verdict: FAIL {sc.name} ({out.seconds:.2f} s)"]
    lines += wrap_item("cause", out.problems[0], width)
    for problem in out.problems[1:]:
        lines += wrap_item("also", problem, width)
    expected = _paths(sc.client, sc.server, sc.close, ">".join(cp.expected for cp in out.checkpoints))
    lines += _block("expected", out.expected_ladder, expected, width)
    lines += _block("happened", out.ladder or "(no segments)", happened, width)
    return lines


def verdict_line(out: Outcome) -> str:
    """The verdict's first line: `verdict: PASS NAME: ...` or `verdict: FAIL NAME (...)`."""
    return verdict_lines(out)[0]


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
        lines.append(fitted(f"kernel ({cp.role}) {cp.label} [{where}]: {cp.kernel}; {tail}", width))
    for note in out.notes:
        lines.append(fitted(f"note: {note}", width))
    lines += verdict_lines(out, width)
    return "\n".join(lines)


def summary(outcomes: Sequence[Outcome]) -> str:
    passed = sum(o.ok for o in outcomes)
    failed = [o.scenario.name for o in outcomes if not o.ok]
    text = f"probe: {passed}/{len(outcomes)} scenarios as expected"
    return text + (f"; failed: {', '.join(failed)}" if failed else "")
