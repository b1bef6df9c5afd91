"""Judging flow records against parsed expectations (spec.py): one record (`check_record`, what
`assert_flow` uses) or every rule of a Spec against a capture's records (`evaluate`, the `check` verdict).

Pure: records and expectations come in, Failures, Outcomes and a Report go out; report.py writes the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from handshake_probe.checks.spec import (NEWER_FIELDS, RETRANSMISSION_KINDS, _MISSING, Expectation, Record, Rule,
                                         Spec, _did_you_mean, _is_number, _show)

__all__ = ["Verdict", "Failure", "Outcome", "Report", "resolve", "check_record", "evaluate"]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    expected: str = ""
    found: str = ""
    note: str = ""      # said even when met: what this check could not see (e.g. no anomaly data)


def resolve(rec: Record, path: str) -> Any:
    """The value at a dotted path ('handshake.complete', 'anomalies.retransmission', 'client_states.0'),
    or _MISSING. An anomaly kind the flow's `anomalies` table does not list counts as 0: the table
    lists only the kinds that occurred."""
    node: Any = rec
    parts = path.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, Mapping):
            if part in node:
                node = node[part]
                continue
            if i == 1 and parts[0] == "anomalies" and len(parts) == 2:
                return 0
            return _MISSING
        if isinstance(node, list) and part.lstrip("-").isdigit():
            try:
                node = node[int(part)]
                continue
            except IndexError:
                return _MISSING
        return _MISSING
    return node


def _missing_text(rec: Record, path: str) -> str:
    """Why a field is not there: a newer field this version lacks, or (likely) a typo."""
    parts = path.split(".")
    node: Any = rec
    for i, part in enumerate(parts):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
            continue
        if i == 0 and part in NEWER_FIELDS:
            return f"no field {part!r} in the flow record (this version of handshake-probe does not produce it)"
        prefix = ".".join(parts[:i])
        if isinstance(node, Mapping):
            hint = _did_you_mean(part, [str(k) for k in node])
            where = f"{prefix!r} has no field {part!r}" if prefix else f"no field {part!r} in the flow record"
            return where + hint
        return f"{prefix!r} is {_show(node)}, which has no field {part!r}"
    return f"no field {path!r}"


def _same(expected: Any, found: Any) -> bool:
    """Equality without Python's True == 1: a bool expectation only matches a bool."""
    if isinstance(expected, bool) or isinstance(found, bool):
        return isinstance(expected, bool) and isinstance(found, bool) and expected == found
    if _is_number(expected) and _is_number(found):
        return expected == found
    if isinstance(expected, list) and isinstance(found, list):
        return len(expected) == len(found) and all(_same(e, f) for e, f in zip(expected, found))
    if isinstance(expected, Mapping) and isinstance(found, Mapping):
        return expected.keys() == found.keys() and all(_same(expected[k], found[k]) for k in expected)
    return type(expected) is type(found) and expected == found


def _check_equal(e: Expectation, rec: Record) -> Verdict:
    found = resolve(rec, e.path)
    if found is _MISSING:
        return Verdict(False, _show(e.expected, e.path), _missing_text(rec, e.path))
    if isinstance(e.expected, list) and not isinstance(found, list):
        # A list against a single value means "one of these" (close = ["fin", "client-rst"]).
        ok = any(_same(x, found) for x in e.expected)
        return Verdict(ok, "one of " + _show(e.expected), _show(found, e.path))
    return Verdict(_same(e.expected, found), _show(e.expected, e.path), _show(found, e.path))


def _check_bound(e: Expectation, rec: Record) -> Verdict:
    found = resolve(rec, e.path)
    sign = "<=" if e.kind == "max" else ">="
    expected = f"{sign} {_show(e.expected)}"
    if found is _MISSING:
        return Verdict(False, expected, _missing_text(rec, e.path))
    if not _is_number(found):
        return Verdict(False, expected, f"{_show(found, e.path)} (not a number)")
    ok = found <= e.expected if e.kind == "max" else found >= e.expected
    return Verdict(ok, expected, _show(found))


def _check_contains(e: Expectation, rec: Record) -> Verdict:
    found = resolve(rec, e.path)
    expected = "contains " + _show(e.expected, e.path)
    if found is _MISSING:
        return Verdict(False, expected, _missing_text(rec, e.path))
    if isinstance(found, list):
        want = e.expected if isinstance(e.expected, list) else [e.expected]
        n = len(want)
        ok = any(all(_same(w, f) for w, f in zip(want, found[i:i + n])) for i in range(len(found) - n + 1))
        return Verdict(ok, expected, _show(found, e.path))
    if isinstance(found, str) and isinstance(e.expected, str):
        return Verdict(e.expected in found, expected, found)
    return Verdict(False, expected, f"{_show(found, e.path)} (contains needs a list or a string field)")


def _check_final(e: Expectation, rec: Record) -> Verdict:
    path = resolve(rec, e.path)
    if path is _MISSING or not isinstance(path, list) or not path:
        return Verdict(False, _show(e.expected), _missing_text(rec, e.path))
    final = path[-1]
    if isinstance(e.expected, list):
        return Verdict(final in e.expected, "one of " + _show(e.expected), f"{final} (path {_show(path, e.path)})")
    return Verdict(final == e.expected, str(e.expected), f"{final} (path {_show(path, e.path)})")


def _flag(e: Expectation, clean: bool, evidence: str, note: str = "") -> Verdict:
    """For the no_* checks: `clean` is what was found; the expectation says whether it should be clean."""
    wanted = bool(e.expected)
    absent, present = _FLAG_TEXT[e.kind]
    return Verdict(clean == wanted, absent if wanted else present, "none" if clean else evidence, note)


_FLAG_TEXT = {"no_rst": ("no RST", "an RST"), "no_retransmission": ("no retransmission", "a retransmission"),
              "no_violations": ("no violations", "a violation"), "no_anomalies": ("no anomalies", "an anomaly")}


def _check_no_rst(e: Expectation, rec: Record) -> Verdict:
    # A reset shows in four places: how the flow closed, the transitions it caused, the violations an
    # unacceptable one left (it changes no state), and Zeek's history letters (R/r) once they exist.
    evidence: List[str] = []
    close = rec.get("close")
    if close in ("client-rst", "server-rst", "rejected"):
        evidence.append(f"close = {close}")
    frames = set()   # one line per RST segment, though it moves both endpoints (snd RST and rcv RST)
    for t in rec.get("transitions") or ():
        if "RST" in str(t.get("cause", "")) and t.get("frame") not in frames:
            frames.add(t.get("frame"))
            evidence.append(f"frame {t.get('frame')}: {t.get('endpoint')} {t.get('cause')}")
    for v in rec.get("violations") or ():
        if "RST" in str(v.get("cue", "")) and v.get("frame") not in frames:
            frames.add(v.get("frame"))
            evidence.append(f"frame {v.get('frame')}: {v.get('endpoint')} {v.get('cue')} ({v.get('reason')})")
    history = rec.get("history")
    if isinstance(history, str) and ("R" in history or "r" in history):
        evidence.append(f"history {history}")
    return _flag(e, not evidence, "; ".join(evidence[:4]) + (" ..." if len(evidence) > 4 else ""))


def _check_no_retransmission(e: Expectation, rec: Record) -> Verdict:
    evidence: List[str] = []
    hs = rec.get("handshake") or {}
    if (hs.get("syn_count") or 0) > 1:
        evidence.append(f"SYN sent {hs['syn_count']} times")
    if (hs.get("synack_count") or 0) > 1:
        evidence.append(f"SYN-ACK sent {hs['synack_count']} times")
    anomalies = rec.get("anomalies")
    note = ""
    if isinstance(anomalies, Mapping):
        evidence += [f"{k} {anomalies[k]}" for k in RETRANSMISSION_KINDS if anomalies.get(k)]
    else:
        # Until the record carries anomaly counts, only the handshake's repeats are visible: say so
        # rather than let a clean verdict claim more than was checked.
        note = "no anomaly counts in this record: only repeated SYN/SYN-ACK checked"
    return _flag(e, not evidence, ", ".join(evidence), note)


def _check_no_violations(e: Expectation, rec: Record) -> Verdict:
    count = rec.get("violation_count", 0) or 0
    first = (rec.get("violations") or [{}])[0]
    detail = f"{count} violation{'' if count == 1 else 's'}, first: frame {first.get('frame')} {first.get('endpoint')} in " \
             f"{first.get('state')}: {first.get('reason')}" if count else ""
    return _flag(e, count == 0, detail)


def _check_no_anomalies(e: Expectation, rec: Record) -> Verdict:
    anomalies = rec.get("anomalies", _MISSING)
    if not isinstance(anomalies, Mapping):
        return Verdict(False, "no anomalies" if e.expected else "at least one anomaly",
                       _missing_text(rec, "anomalies"))
    seen = {k: v for k, v in anomalies.items() if v}
    return _flag(e, not seen, _show(seen))


def _check_handshake_ms(e: Expectation, rec: Record) -> Verdict:
    hs = rec.get("handshake") or {}
    a, b = hs.get("syn_to_synack_ms"), hs.get("synack_to_ack_ms")
    expected = f"<= {_show(e.expected)} ms (SYN>SYN-ACK + SYN-ACK>ACK)"
    if not hs.get("complete") or a is None or b is None:
        return Verdict(False, expected, f"no complete handshake (status {hs.get('status')})")
    total = round(a + b, 3)
    return Verdict(total <= e.expected, expected, f"{_show(total)} ms ({_show(a)} + {_show(b)})")


_CHECKS: Dict[str, Callable[[Expectation, Record], Verdict]] = {
    "equal": _check_equal, "max": _check_bound, "min": _check_bound, "contains": _check_contains,
    "final": _check_final, "no_rst": _check_no_rst, "no_retransmission": _check_no_retransmission,
    "no_violations": _check_no_violations, "no_anomalies": _check_no_anomalies,
    "handshake_ms": _check_handshake_ms,
}


# --------------------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Failure:
    """One expectation one flow (or the capture as a whole, flow None) did not meet."""

    rule: str          # the rule's label: "[[flow]] 2 {server_port = 8000}"
    what: str          # the expectation as written: "client_final = TIME-WAIT"
    expected: str
    found: str
    flow: Optional[int] = None
    endpoints: str = ""   # "127.0.0.1:40000 -> 127.0.0.1:8000"


@dataclass(frozen=True)
class Outcome:
    """One expectation of one rule, over all the flows the rule selected."""

    rule: str
    what: str
    checked: int
    failures: Tuple[Failure, ...] = ()
    notes: Tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class Report:
    outcomes: List[Outcome]
    flows: int                          # flows in the capture

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def failures(self) -> List[Failure]:
        return [f for o in self.outcomes for f in o.failures]

    @property
    def failed_flows(self) -> List[int]:
        """Flow numbers with at least one failure, in flow order."""
        return sorted({f.flow for f in self.failures if f.flow is not None})


def _endpoints(rec: Record) -> str:
    return f"{rec.get('client')} -> {rec.get('server')}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def check_record(rec: Record, expectations: Sequence[Expectation], rule: str = "") -> List[Failure]:
    """The failures of one flow record against expectations (what assert_flow uses)."""
    out = []
    for e in expectations:
        v = e.evaluate(rec)
        if not v.ok:
            out.append(Failure(rule, e.describe(), v.expected, v.found, rec.get("flow"), _endpoints(rec)))
    return out


def evaluate(spec: Spec, records: Sequence[Record]) -> Report:
    """Every rule of `spec` against the flow records of one capture."""
    outcomes: List[Outcome] = []
    declared_empty = any(r.selector is None and r.count == 0 for r in spec.rules)
    for rule in spec.rules:
        label = rule.label()
        selected = [r for r in records if rule.selector is None or rule.selector.matches(r)]
        if rule.count is not None:
            what = f"flows = {rule.count}" if rule.selector is None else f"selects {_plural(rule.count, 'flow')}"
            ok = len(selected) == rule.count
            fail = () if ok else (Failure(label, what, _plural(rule.count, "flow"),
                                          _plural(len(selected), "flow") + _selection_hint(rule, records)),)
            outcomes.append(Outcome(label, what, len(records), fail))
        elif rule.selector is not None:
            fail = () if selected else (Failure(label, "selects a flow", f"at least one flow matching {rule.selector}",
                                                "no flow matches" + _selection_hint(rule, records)),)
            outcomes.append(Outcome(label, "selects a flow", len(records), fail))
        if not rule.expectations:
            continue
        if not selected:
            if rule.selector is None and not declared_empty:
                # An empty capture would otherwise pass every [all] expectation: a broken recording must
                # not turn CI green. Write flows = 0 to expect an empty capture.
                outcomes.append(Outcome(label, "has flows to check", 0, (Failure(
                    label, "has flows to check", "at least one flow", "the capture has no TCP flows"),)))
            continue   # a selector that picked nothing has already failed above
        for e in rule.expectations:
            failures, notes = [], []
            for rec in selected:
                v = e.evaluate(rec)
                if v.note and v.note not in notes:
                    notes.append(v.note)
                if not v.ok:
                    failures.append(Failure(label, e.describe(), v.expected, v.found, rec.get("flow"),
                                            _endpoints(rec)))
            outcomes.append(Outcome(label, e.describe(), len(selected), tuple(failures), tuple(notes)))
    return Report(outcomes, len(records))


def _selection_hint(rule: Rule, records: Sequence[Record]) -> str:
    """What the capture does hold, so a selector that missed can be fixed from the log alone."""
    if rule.selector is None:
        return ""
    servers = sorted({str(r.get("server")) for r in records})
    if not records:
        return " (the capture has no flows)"
    shown = ", ".join(servers[:5]) + (f" and {len(servers) - 5} more" if len(servers) > 5 else "")
    return f" (the capture has {_plural(len(records), 'flow')}, numbered 1..{len(records)}; servers: {shown})"
