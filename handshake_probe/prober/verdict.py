"""Judging a scenario from its frames: the engine (as `analyze` runs it), then the expectations.

Nothing here trusts the scenario script's own bookkeeping: the ladder, the endpoint paths and the
analyzer's state at each kernel checkpoint are all recomputed from the recorded raw frames, by one
run of the engine over them with every flow's rows kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from handshake_probe import _engine
from handshake_probe.pcapwriter import RawFrame
from handshake_probe.prober.context import Checkpoint
from handshake_probe.prober.kernel import Address
from handshake_probe.prober.link import decode_segment
from handshake_probe.prober.scenarios import Scenario

__all__ = ["Analysis", "Outcome", "judge", "ladder_of", "ladder_matches", "analyze", "state_after"]

Record = Dict[str, Any]
Row = Dict[str, Any]


@dataclass
class Analysis:
    """What the engine made of a scenario's frames: the flow records (the JSON contract), each flow's
    rows (one per segment, with both endpoints' states after it), the counters."""

    name: str
    records: List[Record]
    rows: Dict[int, List[Row]]
    frames: int = 0
    segments: int = 0
    warnings: List[str] = field(default_factory=list)


@dataclass
class Outcome:
    scenario: Scenario
    frames: List[RawFrame]
    analysis: Analysis
    ladder: str
    checkpoints: List[Checkpoint]
    notes: List[str]
    seconds: float
    problems: List[str] = field(default_factory=list)
    expected_ladder: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def paths(self) -> Tuple[str, str, str]:
        """(client path, server path, close kind) of the one flow, as the analyzer says."""
        if len(self.analysis.records) != 1:
            return "-", "-", "-"
        rec = self.analysis.records[0]
        return ">".join(rec["client_states"]), ">".join(rec["server_states"]), rec["close"]


def analyze(frames: Sequence[RawFrame], name: str) -> Analysis:
    """The `analyze` command's path, frame by frame: the engine decodes each frame, keeps every flow's
    rows; the records come in flow order once the input ends."""
    linktype = frames[0].linktype if frames else 101
    engine = _engine.Engine(linktype, keep_rows=True)
    for f in frames:
        engine.feed(f.data, f.ts, f.wirelen, f.frame)   # numbered as in the -w pcap
    records = engine.finish()
    rows = {rec["flow"]: engine.rows(rec["flow"]) or [] for rec in records}
    return Analysis(name, records, rows, engine.frames, engine.segments, list(engine.warnings))


def ladder_of(frames: Sequence[RawFrame], prober: Address) -> str:
    """`>S <S. >.`: tcpdump flag letters, `>` for what the prober sent and `<` for the kernel's."""
    out = []
    for f in frames:
        seg = decode_segment(f.data, f.linktype, f.ts, f.frame)
        if seg is not None:
            mark = ">" if (seg.src, seg.sport) == prober else "<"
            out.append(mark + _engine.tcpdump_flags(seg.flags))
    return " ".join(out)


def ladder_matches(ladder: str, pattern: str) -> bool:
    """`pattern`: tokens, `?` after a token makes it optional, ` | ` separates alternatives."""
    for alternative in pattern.split(" | "):
        regex = ""
        for token in alternative.split():
            optional = token.endswith("?")
            body = re.escape(token.rstrip("?")) + " "
            regex += f"(?:{body})?" if optional else body
        if re.fullmatch(regex, ladder + " " if ladder else ""):
            return True
    return False


def state_after(out: Outcome, count: int, role: str) -> Optional[str]:
    """The analyzer's state of `role` after the first `count` frames (None without exactly one flow
    among them): the state its row gives after the last of those frames. Rows hold the engine's final
    word (a CLOSE-WAIT it held until the next move told is in the FIN's own row)."""
    if count <= 0:
        return None
    last = out.frames[count - 1].frame
    seen = [[r for r in rows if r["frame"] <= last] for rows in out.analysis.rows.values()]
    seen = [rows for rows in seen if rows]
    if len(seen) != 1:
        return None
    state: str = seen[0][-1][f"{role}_state"]
    return state


def judge(out: Outcome, pattern: str) -> None:
    """Fill `out.problems`: every expectation that did not happen, said plainly."""
    out.expected_ladder = pattern
    sc = out.scenario
    if not ladder_matches(out.ladder, pattern):
        out.problems.append(f"ladder {out.ladder or '(none)'} is not {pattern}")
    if len(out.analysis.records) != 1:
        out.problems.append(f"{len(out.analysis.records)} flows, expected 1")
    else:
        client, server, close = out.paths()
        for what, got, want in (("client", client, sc.client), ("server", server, sc.server),
                                ("close", close, sc.close)):
            if got != want:
                out.problems.append(f"{what} {got}, expected {want}")
    for cp in out.checkpoints:
        if cp.kernel != cp.expected:
            out.problems.append(f"kernel {cp.label}: {cp.kernel}, expected {cp.expected}")
        if cp.visible:
            seen = state_after(out, cp.frames, cp.role)
            if seen != cp.kernel:
                out.problems.append(f"analyzer {cp.label}: {seen}, the kernel says {cp.kernel}")
