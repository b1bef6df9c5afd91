"""Judging a scenario from its frames: the same decode + FlowTable as `analyze`, then the expectations.

Nothing here trusts the scenario script's own bookkeeping: the ladder, the endpoint paths and the
analyzer's state at each kernel checkpoint are all recomputed from the recorded raw frames.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from handshake_probe.analysis import Analysis, analyze_frames
from handshake_probe.core.decode import decode
from handshake_probe.core.flows import FlowTable
from handshake_probe.core.record import flow_record
from handshake_probe.core.segment import Segment, tcpdump_flags
from handshake_probe.pcapio import RawFrame
from handshake_probe.prober.context import Checkpoint
from handshake_probe.prober.kernel import Address
from handshake_probe.prober.scenarios import Scenario

__all__ = ["Outcome", "judge", "ladder_of", "ladder_matches", "analyze", "state_after"]


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
        if len(self.analysis.flows) != 1:
            return "-", "-", "-"
        rec = flow_record(self.analysis.flows[0])
        return ">".join(rec["client_states"]), ">".join(rec["server_states"]), rec["close"]


def analyze(frames: Sequence[RawFrame], name: str) -> Analysis:
    """The `analyze` command's path: decode every frame, feed the flow table, keep every row."""
    return analyze_frames(iter(frames), name, FlowTable(keep_rows=lambda n: True))


def ladder_of(frames: Sequence[RawFrame], prober: Address) -> str:
    """`>S <S. >.`: tcpdump flag letters, `>` for what the prober sent and `<` for the kernel's."""
    out = []
    for f in frames:
        seg = decode(f.data, f.linktype, f.ts, f.frame, f.wirelen)
        if isinstance(seg, Segment):
            mark = ">" if (seg.src, seg.sport) == prober else "<"
            out.append(mark + tcpdump_flags(seg.flags))
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


def state_after(frames: Sequence[RawFrame], count: int, role: str) -> Optional[str]:
    """The analyzer's state of `role` after the first `count` frames (None without exactly one flow)."""
    table = FlowTable()
    analyze_frames(iter(frames[:count]), "checkpoint", table)
    if len(table.flows) != 1:
        return None
    ep = table.flows[0].client if role == "client" else table.flows[0].server
    return ep.state.value


def judge(out: Outcome, pattern: str) -> None:
    """Fill `out.problems`: every expectation that did not happen, said plainly."""
    out.expected_ladder = pattern
    sc = out.scenario
    if not ladder_matches(out.ladder, pattern):
        out.problems.append(f"ladder {out.ladder or '(none)'} is not {pattern}")
    if len(out.analysis.flows) != 1:
        out.problems.append(f"{len(out.analysis.flows)} flows, expected 1")
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
            seen = state_after(out.frames, cp.frames, cp.role)
            if seen != cp.kernel:
                out.problems.append(f"analyzer {cp.label}: {seen}, the kernel says {cp.kernel}")
