"""Expectations about a capture's flows and their verdict: the language behind `handshake-probe check` and
the pytest plugin's `assert_flow`. There is one implementation, so a CI check and a unit test cannot disagree:
this module parses expectations (files, short forms, keyword arguments) against the engine's vocabulary;
evaluate.py judges flow records against them; report.py turns the verdict into text.

Pure: expectations come in (a parsed TOML or JSON document, short-form `KEY=VALUE` strings, keyword
arguments), flow records come in (the `--format json` objects of `core/record.py`), and results and text
go out. This module opens no files and writes to no terminal; the command and the plugin do that.

Expectation file (TOML; a JSON file has the same shape: `{"flows": 3, "all": {...}, "flow": [{...}]}`)::

    flows = 3                       # the capture has exactly 3 flows

    [all]                           # every flow must meet these
    close = "fin"
    handshake_complete = true
    no_rst = true

    [[flow]]                        # the flows picked by `select` must meet these
    select = {index = 1}            # 1-based flow number, as `analyze` numbers them
    client_final = "TIME-WAIT"
    max_handshake_ms = 5

    [[flow]]
    select = {server_port = 8000}   # or {client = "127.0.0.1:40000", server = "127.0.0.1:8000"}
    flows = 2                       # optional: how many flows `select` must pick (default: at least one)
    anomalies.retransmission = 0    # any record field, by dotted path
    max = {"anomalies.duplicate_ack" = 2, duration_ms = 500}

`select` keys (all given keys must match): `index`, `client`, `server` (`"ip:port"`, IPv6 as
`"[::1]:port"`), `server_port`. A selector that picks no flow is a failed expectation.

Expectation keys, in `[all]`, in a `[[flow]]` entry, after `--all-flows`/`--flow N` and as `assert_flow`
keyword arguments:

    close = "fin"                  the record's field equals the value; a list means "one of":
    conn_state = ["SF", "S1"]      close = ["fin", "client-rst"]
    handshake_complete = true      handshake.complete
    handshake = "complete"         handshake.status (complete, partial, none)
    client_final = "TIME-WAIT"     the last state of the client's path (server_final: the server's)
    client_states = [...]          the exact path, as a list or as "CLOSED>SYN-SENT>..." (server_states too)
    client_states_contains = [...] the path has these states one after the other (server_states_contains)
    no_rst = true                  no RST: close, transitions, violations and Zeek history all checked
    no_retransmission = true       no retransmission anomaly, and no repeated SYN or SYN-ACK
    no_violations = true           violation_count is 0
    no_anomalies = true            every anomaly count is 0
    max_handshake_ms = 5           SYN>SYN-ACK plus SYN-ACK>ACK, at most 5 ms (needs a complete handshake)
    max_duration_ms = 1000         duration_ms at most 1000
    max = {FIELD = N, ...}         upper bounds on numeric fields (min = {...}: lower bounds)
    contains = {FIELD = V, ...}    a list field has V as a consecutive sub-list, a string field has V in it
    FIELD.SUB = VALUE              any other key is a record field, by dotted path: anomalies.retransmission,
                                   handshake.syn_count, history, completeness, reused_port, ...
                                   negotiation.in_effect.window_scaling = true, negotiation.client.mss = 1460
                                   (negotiation paths are checked against the engine's NEGOTIATION_* lists)

TOML's dotted keys and sub-tables nest (`anomalies.retransmission = 0` is `anomalies = {retransmission = 0}`);
both forms check the named fields one by one. An anomaly kind that the flow's `anomalies` table does not
list counts as 0. `true`/`false` for the `no_*` keys: `no_rst = false` expects an RST.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from handshake_probe import _engine

if TYPE_CHECKING:
    from handshake_probe.checks.evaluate import Verdict

__all__ = ["SpecError", "Selector", "Expectation", "Rule", "Spec", "load_spec", "spec_from_document",
           "spec_from_short_forms", "parse_expectations", "parse_assignment", "KNOWN_ANOMALIES", "CONN_STATES"]

Record = Mapping[str, Any]

# Values the record can hold for fields whose vocabulary is fixed: a typo in an expectation file is then an
# invalid file (exit 2) instead of an expectation that can never be met. Defined once, in the engine.
STATES = frozenset(_engine.STATES)
CLOSE_KINDS = tuple(_engine.CLOSE_KINDS)
HANDSHAKE_STATUSES = tuple(_engine.HANDSHAKE_STATUSES)
DIRECTIONS = tuple(_engine.DIRECTIONS)
CONN_STATES = tuple(_engine.CONN_STATES)
KNOWN_ANOMALIES = tuple(_engine.ANOMALY_KINDS)
RETRANSMISSION_KINDS = ("retransmission", "retransmission_syn", "retransmission_fin", "retransmission_data",
                        "fast_retransmission", "spurious_retransmission")
# Fields that newer analyzers add to the record; when one is absent the message says the version is too
# old rather than suggesting a typo.
NEWER_FIELDS = frozenset(("conn_state", "history", "completeness", "completeness_flags", "anomalies", "tunnels",
                          "negotiation"))
# `negotiation.*` paths (the engine's lists of its fields): `negotiation.client.mss`,
# `negotiation.in_effect.window_scaling`, `negotiation.simultaneous_open.server_syn.p0f`.
_SIDE = tuple(f for f in _engine.NEGOTIATION_SIDE_FIELDS if f not in ("server_syn", "client_synack"))
NEGOTIATION_PATHS = frozenset((
    *_engine.NEGOTIATION_FIELDS,
    *(f"{side}.{f}" for side in ("client", "server") for f in _SIDE),
    *(f"in_effect.{f}" for f in _engine.NEGOTIATION_EFFECT_FIELDS),
    *(f"simultaneous_open.{side}" for side in ("server_syn", "client_synack")),
    *(f"simultaneous_open.{side}.{f}" for side in ("server_syn", "client_synack") for f in _SIDE)))
NEGOTIATION_WARNINGS = tuple(_engine.NEGOTIATION_WARNINGS)

# The flow record's fields (core/record.py, its observers, and "file" when several files are analyzed;
# tests/test_check.py holds this list to what the analyzer writes). A key that is neither one of them
# nor an expectation shortcut is a typo: an invalid file (exit 2), not an expectation nobody can meet.
RECORD_FIELDS = frozenset((
    "flow", "client", "server", "direction", "packets", "client_packets", "server_packets", "client_bytes",
    "server_bytes", "first_ts", "last_ts", "duration_ms", "client_states", "server_states", "transitions",
    "handshake", "close", "violations", "violation_count", "reused_port", "conn_state", "history", "zeek_orig",
    "completeness", "completeness_flags", "anomalies", "tunnels", "negotiation", "file"))
HANDSHAKE_FIELDS = ("complete", "status", "syn_to_synack_ms", "synack_to_ack_ms", "syn_count", "synack_count")

STATE_PATH_FIELDS = ("client_states", "server_states")
OPERATOR_TABLES = ("max", "min", "contains")
SELECT_KEYS = ("index", "client", "server", "server_port")
SHORTCUTS = ("handshake_complete", "client_final", "server_final", "client_states_contains",
             "server_states_contains", "no_rst", "no_retransmission", "no_violations", "no_anomalies",
             "max_handshake_ms", "max_duration_ms")

_MISSING = object()


# --------------------------------------------------------------------------------------------- errors


class SpecError(ValueError):
    """An invalid expectation: `where` names the place in the document, `line` the TOML/JSON line if known.

    str(err) is one line: "line 4: [[flow]] 2: select: unknown key 'port' (...)"."""

    def __init__(self, where: Sequence[Any], reason: str, line: Optional[int] = None,
                 anchor: Optional[Sequence[Any]] = None) -> None:
        self.where = tuple(where)
        self.reason = reason
        self.line = line
        # What to look for in the text to find the line, when it is not `where` (an unknown top-level
        # key is reported without a place, since the key is the place).
        self.anchor = tuple(anchor) if anchor is not None else self.where
        super().__init__(reason)

    def __str__(self) -> str:
        place = _where_text(self.where)
        text = f"{place}: {self.reason}" if place else self.reason
        return f"line {self.line}: {text}" if self.line is not None else text


def _where_text(where: Sequence[Any]) -> str:
    """("flow", 1, "select", "port") -> "[[flow]] 2: select.port" (entries are 1-based for people)."""
    parts: List[str] = []
    rest = list(where)
    if rest and rest[0] == "flow" and len(rest) > 1 and isinstance(rest[1], int):
        parts.append(f"[[flow]] {rest[1] + 1}")
        rest = rest[2:]
    elif rest and rest[0] == "all":
        parts.append("[all]")
        rest = rest[1:]
    keys = ".".join(str(k) for k in rest)
    if keys:
        parts.append(keys)
    return ": ".join(parts)


# --------------------------------------------------------------------------------------------- selectors


def _normalise_address(text: Any, where: Sequence[Any]) -> str:
    """'127.0.0.1:8000' / '[::1]:8000' -> the record's spelling (IPv6 compressed, in brackets)."""
    if not isinstance(text, str):
        raise SpecError(where, f"expected an \"ip:port\" string, not {_quote(text)}")
    m = re.fullmatch(r"\s*(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})\s*", text)
    if not m:
        raise SpecError(where, f"expected \"ip:port\" (IPv6 as \"[::1]:port\"), not {text!r}")
    host, port = m.group(1) or m.group(2), int(m.group(3))
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise SpecError(where, f"{host!r} is not an IP address") from None
    if port > 65535:
        raise SpecError(where, f"port {port} is out of range")
    return f"[{addr.compressed}]:{port}" if addr.version == 6 else f"{addr}:{port}"


def _port_of(label: str) -> Optional[int]:
    try:
        return int(label.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class Selector:
    """Which flows a `[[flow]]` entry is about; every given key must match."""

    index: Optional[int] = None
    client: Optional[str] = None
    server: Optional[str] = None
    server_port: Optional[int] = None

    @classmethod
    def parse(cls, table: Any, where: Sequence[Any]) -> "Selector":
        if not isinstance(table, Mapping):
            raise SpecError(where, "select must be a table such as {index = 1} or {server_port = 8000}")
        unknown = [k for k in table if k not in SELECT_KEYS]
        if unknown:
            hint = _did_you_mean(unknown[0], SELECT_KEYS)
            raise SpecError((*where, unknown[0]),
                            f"unknown select key {unknown[0]!r} (use {', '.join(SELECT_KEYS)}){hint}")
        if not table:
            raise SpecError(where, f"select needs at least one of {', '.join(SELECT_KEYS)}")
        index = table.get("index")
        if index is not None and (not _is_int(index) or index < 1):
            raise SpecError((*where, "index"), f"index must be a flow number >= 1, not {_quote(index)}")
        port = table.get("server_port")
        if port is not None and (not _is_int(port) or not 0 <= port <= 65535):
            raise SpecError((*where, "server_port"), f"server_port must be 0..65535, not {_quote(port)}")
        client = _normalise_address(table["client"], (*where, "client")) if "client" in table else None
        server = _normalise_address(table["server"], (*where, "server")) if "server" in table else None
        return cls(index, client, server, port)

    def matches(self, rec: Record) -> bool:
        return ((self.index is None or rec.get("flow") == self.index)
                and (self.client is None or rec.get("client") == self.client)
                and (self.server is None or rec.get("server") == self.server)
                and (self.server_port is None or _port_of(str(rec.get("server", ""))) == self.server_port))

    def __str__(self) -> str:
        parts = [f"{k} = {json.dumps(v)}" for k, v in
                 (("index", self.index), ("client", self.client), ("server", self.server),
                  ("server_port", self.server_port)) if v is not None]
        return "{" + ", ".join(parts) + "}"


# --------------------------------------------------------------------------------------------- expectations


@dataclass(frozen=True)
class Expectation:
    """One thing a flow must satisfy. `kind` says how `expected` is compared with the record at `path`."""

    key: str          # as the user wrote it (dotted), for messages
    kind: str         # equal, max, min, contains, final, no_rst, no_retransmission, no_violations,
                      # no_anomalies, handshake_ms
    path: str         # the record field it reads (dotted); "" for the derived checks
    expected: Any

    def describe(self) -> str:
        if self.kind == "max":
            return f"{self.path} <= {_show(self.expected)}"
        if self.kind == "min":
            return f"{self.path} >= {_show(self.expected)}"
        if self.kind == "contains":
            return f"{self.path} contains {_show(self.expected, self.path)}"
        if self.kind == "equal" and isinstance(self.expected, list) and self.path not in STATE_PATH_FIELDS:
            return f"{self.key} in {_show(self.expected)}"
        if self.kind == "final" and isinstance(self.expected, list):
            # "one of" these final states, not a path: `client_final in [TIME-WAIT, CLOSED]`.
            return f"{self.key} in {_show(self.expected)}"
        return f"{self.key} = {_show(self.expected, self.path)}"

    def evaluate(self, rec: Record) -> "Verdict":
        from handshake_probe.checks.evaluate import _CHECKS   # judging is evaluate.py's; it imports this module
        return _CHECKS[self.kind](self, rec)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _show(value: Any, path: str = "") -> str:
    """A value as a person reads it in a CI log: paths as A > B > C, strings bare, null as 'null'."""
    if value is _MISSING:
        return "(missing)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else repr(value)
    if isinstance(value, list):
        if path in STATE_PATH_FIELDS and all(isinstance(v, str) for v in value):
            return " > ".join(value) if value else "(empty path)"
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def _quote(value: Any) -> str:
    """A value in an error message: strings quoted, so that "3" and 3 read differently."""
    return json.dumps(value) if isinstance(value, str) else _show(value)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# --------------------------------------------------------------------------------------------- parsing


def _flatten(table: Mapping[str, Any], prefix: str = "") -> Iterable[Tuple[str, Any]]:
    """Nested tables become dotted keys: TOML's `anomalies.retransmission = 0` and
    `anomalies = {retransmission = 0}` are the same expectation. An empty table stays a value ({})."""
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, dotted + ".")
        else:
            yield dotted, value


def _states(value: Any, where: Sequence[Any], *, single: bool = False) -> Any:
    """A state, a list of states or 'A>B>C' -> validated state names (lists for paths)."""
    if isinstance(value, str):
        items: List[Any] = [s.strip() for s in value.split(">")] if not single else [value.strip()]
    elif isinstance(value, list):
        items = list(value)
    else:
        raise SpecError(where, f"expected a state or a list of states, not {_quote(value)}")
    for s in items:
        if s not in STATES:
            raise SpecError(where, f"unknown state {_quote(s)}{_did_you_mean(str(s), STATES)} "
                                   f"(RFC 9293 spelling: SYN-SENT, FIN-WAIT-1, TIME-WAIT, ...)")
    if single:
        return items[0] if isinstance(value, str) else items
    return items


def _choice(value: Any, choices: Sequence[str], where: Sequence[Any], what: str) -> None:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if v not in choices:
            hint = _did_you_mean(str(v), choices) if isinstance(v, str) else ""
            raise SpecError(where, f"{_quote(v)} is not a {what} ({', '.join(choices)}){hint}")


def _known_field(path: str, where: Sequence[Any]) -> None:
    """Raise SpecError when `path` names no field of the flow record (a typo, most likely)."""
    head, _, rest = path.partition(".")
    if head not in RECORD_FIELDS:
        raise SpecError(where, f"not an expectation key nor a flow record field"
                               f"{_did_you_mean(head, [*SHORTCUTS, *sorted(RECORD_FIELDS)])}")
    sub = rest.split(".")[0]
    if head == "negotiation" and rest and rest not in NEGOTIATION_PATHS:
        near = sorted(p for p in NEGOTIATION_PATHS if p.startswith(rest.rsplit(".", 1)[0]))
        raise SpecError(where, f"'negotiation' has no field {rest!r}"
                               f"{_did_you_mean(rest, near or sorted(NEGOTIATION_PATHS))}")
    if head == "handshake" and sub and sub not in HANDSHAKE_FIELDS:
        raise SpecError(where, f"'handshake' has no field {sub!r} (it has {', '.join(HANDSHAKE_FIELDS)})"
                               f"{_did_you_mean(sub, HANDSHAKE_FIELDS)}")


# negotiation fields that hold true/false: `... = "true"` is a typo, not an unmeetable expectation
_BOOL_LEAVES = ("syn_seen", "synack_seen", "sack_permitted", ".timestamps", "cookie_request", "data_acked",
                "mptcp", ".ece", ".cwr", ".ae", ".df", "window_scaling", "in_effect.sack", "in_effect.ecn",
                "in_effect.tfo")


def _validate_field(path: str, value: Any, where: Sequence[Any], bound: bool = False) -> Any:
    """Check a value against what the record's field can hold; returns it normalised."""
    _known_field(path, where)
    if value is None:
        return value
    if path in STATE_PATH_FIELDS and not bound:
        return _states(value, where)
    if path == "close":
        _choice(value, CLOSE_KINDS, where, "close kind")
    elif path == "conn_state":
        _choice(value, CONN_STATES, where, "Zeek conn_state")
    elif path == "handshake.status":
        _choice(value, HANDSHAKE_STATUSES, where, "handshake status")
    elif path == "direction":
        _choice(value, DIRECTIONS, where, "direction")
    elif path.startswith("negotiation.") and path.endswith(_BOOL_LEAVES) and not isinstance(value, bool):
        raise SpecError(where, f"expected true or false, not {_quote(value)}")
    elif path in ("handshake.complete", "reused_port") and not isinstance(value, bool):
        raise SpecError(where, f"expected true or false, not {_quote(value)}")
    elif path.startswith("anomalies."):
        kind = path.split(".", 1)[1]
        if kind not in KNOWN_ANOMALIES:
            raise SpecError(where, f"unknown anomaly kind {kind!r}{_did_you_mean(kind, KNOWN_ANOMALIES)}")
        if not _is_int(value) or value < 0:
            raise SpecError(where, f"an anomaly count is an integer >= 0, not {_quote(value)}")
    return value


def _bool(value: Any, where: Sequence[Any]) -> bool:
    if not isinstance(value, bool):
        raise SpecError(where, f"expected true or false, not {_quote(value)}")
    return value


def _number(value: Any, where: Sequence[Any]) -> float:
    if not _is_number(value):
        raise SpecError(where, f"expected a number, not {_quote(value)}")
    return value


def parse_expectations(table: Mapping[str, Any], where: Sequence[Any] = ()) -> Tuple[Expectation, ...]:
    """A table of expectation keys (see the module docstring) -> Expectations, validated."""
    out: List[Expectation] = []
    for key, value in _flatten(table):
        here = (*where, key)
        head, _, rest = key.partition(".")
        if head in OPERATOR_TABLES:
            if not rest:
                raise SpecError(here, f"{head} takes a table of FIELD = VALUE, e.g. {head} = {{duration_ms = 500}}")
            _known_field(rest, here)
            if head == "contains":
                v = _states(value, here) if rest in STATE_PATH_FIELDS else value
                out.append(Expectation(key, "contains", rest, v))
            else:
                if rest.startswith("anomalies."):
                    _validate_field(rest, 0, here, bound=True)   # only to reject an unknown anomaly kind
                out.append(Expectation(key, head, rest, _number(value, here)))
        elif key in ("select", "flows"):
            raise SpecError(here, f"{key!r} belongs in a [[flow]] entry or at the top level, not here")
        elif key == "handshake_complete":
            out.append(Expectation(key, "equal", "handshake.complete", _bool(value, here)))
        elif key == "handshake" and not isinstance(value, Mapping):
            _choice(value, HANDSHAKE_STATUSES, here, "handshake status")
            out.append(Expectation(key, "equal", "handshake.status", value))
        elif key in ("client_final", "server_final"):
            out.append(Expectation(key, "final", key.split("_")[0] + "_states", _states(value, here, single=True)))
        elif key in ("client_states_contains", "server_states_contains"):
            out.append(Expectation(key, "contains", key.rsplit("_", 1)[0], _states(value, here)))
        elif key in ("no_rst", "no_retransmission", "no_violations", "no_anomalies"):
            out.append(Expectation(key, key, "", _bool(value, here)))
        elif key == "max_handshake_ms":
            out.append(Expectation(key, "handshake_ms", "handshake", _number(value, here)))
        elif key == "max_duration_ms":
            out.append(Expectation(key, "max", "duration_ms", _number(value, here)))
        elif key.startswith(("max_", "min_", "no_")) and "." not in key:
            # Not a record field: a misspelt shortcut would otherwise become an unmeetable field check.
            raise SpecError(here, f"unknown expectation {key!r}{_did_you_mean(key, SHORTCUTS)}")
        else:
            out.append(Expectation(key, "equal", key, _validate_field(key, value, here)))
    return tuple(out)


@dataclass(frozen=True)
class Rule:
    """Expectations for the flows a selector picks (None: every flow), optionally how many it picks."""

    origin: str                       # where it came from, for messages: "[all]", "[[flow]] 2", "--flow 3"
    selector: Optional[Selector]
    count: Optional[int]
    expectations: Tuple[Expectation, ...]

    def label(self) -> str:
        # "--flow 3" already says what it selects; a [[flow]] entry is easier to find with its selector.
        if self.selector is None or self.origin.startswith("--"):
            return self.origin
        return f"{self.origin} {self.selector}"


@dataclass
class Spec:
    rules: List[Rule] = field(default_factory=list)

    def extend(self, other: "Spec") -> "Spec":
        self.rules.extend(other.rules)
        return self


def _count(value: Any, where: Sequence[Any]) -> int:
    if not _is_int(value) or value < 0:
        raise SpecError(where, f"expected a number of flows (an integer >= 0), not {_quote(value)}")
    return value


def spec_from_document(doc: Any) -> Spec:
    """A parsed TOML/JSON expectation document -> Spec. Raises SpecError (without a line; see load_spec)."""
    if not isinstance(doc, Mapping):
        raise SpecError((), "the expectation file must hold a table/object (flows, [all], [[flow]])")
    spec = Spec()
    for key in doc:
        if key not in ("flows", "all", "flow"):
            raise SpecError((), f"unknown top-level key {key!r} (use flows = N, [all] or [[flow]])"
                                    f"{_did_you_mean(key, ('flows', 'all', 'flow'))}", anchor=(key,))
    if "flows" in doc:
        spec.rules.append(Rule("capture", None, _count(doc["flows"], ("flows",)), ()))
    if "all" in doc:
        table = doc["all"]
        if not isinstance(table, Mapping):
            raise SpecError(("all",), "[all] must be a table of expectations")
        spec.rules.append(Rule("[all]", None, None, parse_expectations(table, ("all",))))
    entries = doc.get("flow", [])
    if isinstance(entries, Mapping):
        raise SpecError(("flow",), "write [[flow]] (double brackets): one entry per selected flow")
    if not isinstance(entries, list):
        raise SpecError(("flow",), "flow must be an array of tables ([[flow]])")
    for i, entry in enumerate(entries):
        where = ("flow", i)
        if not isinstance(entry, Mapping):
            raise SpecError(where, "each [[flow]] entry must be a table")
        if "select" not in entry:
            raise SpecError(where, "missing select = {index = N} (or server_port, client/server); "
                                   "expectations for every flow go in [all]")
        selector = Selector.parse(entry["select"], (*where, "select"))
        count = _count(entry["flows"], (*where, "flows")) if "flows" in entry else None
        rest = {k: v for k, v in entry.items() if k not in ("select", "flows")}
        spec.rules.append(Rule(f"[[flow]] {i + 1}", selector, count, parse_expectations(rest, where)))
    return spec


_TOML_POS = re.compile(r"\s*\(at line (\d+), column \d+\)\s*$")


def load_spec(text: str, fmt: str = "toml") -> Spec:
    """Parse an expectation file's text ('toml' or 'json'). SpecError.line is set where it can be told."""
    if fmt == "json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError((), f"invalid JSON: {err.msg}", err.lineno) from None
        return spec_from_document(doc)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # Python 3.11's TOMLDecodeError has no lineno attribute: the position is only in the message.
        msg = str(err)
        m = _TOML_POS.search(msg)
        raise SpecError((), "invalid TOML: " + (_TOML_POS.sub("", msg) if m else msg),
                        int(m.group(1)) if m else None) from None
    try:
        return spec_from_document(doc)
    except SpecError as err:
        err.line = _toml_line(text, err.anchor)
        raise


def _toml_line(text: str, where: Sequence[Any]) -> Optional[int]:
    """Best effort: the line of a TOML document that `where` ("flow", 1, "select", "port") points at.

    tomllib returns plain dicts without positions, so the place is found again in the text: the lines of
    the table (for [[flow]], the n-th header up to the next header that is not one of its sub-tables;
    for [all], [all] and its [all.x] sub-tables), then the last key of `where` written as `key =`."""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]")
    names = [(n, m.group(1).replace(" ", "")) for n, line in enumerate(lines) if (m := header.match(line))]
    bounds = [n for n, _ in names] + [len(lines)]

    def section(i: int) -> range:      # the lines from header i up to the next header
        return range(bounds[i], bounds[i + 1])

    regions: List[range] = []
    if where and where[0] == "flow" and len(where) > 1 and isinstance(where[1], int):
        keys = [str(k) for k in where[2:] if isinstance(k, str)]
        seen = -1
        for i, (_, name) in enumerate(names):
            if name == "flow":
                seen += 1
                if seen > where[1]:
                    break
            if seen == where[1] and (name == "flow" or name.startswith("flow.")):
                regions.append(section(i))
    elif where and where[0] == "all":
        keys = [str(k) for k in where[1:] if isinstance(k, str)]
        regions = [section(i) for i, (_, name) in enumerate(names) if name == "all" or name.startswith("all.")]
    else:
        keys = [str(k) for k in where]
        for n, name in names:          # an unknown top-level table: its header is the place
            if keys and name.split(".")[0] == keys[0]:
                return n + 1
        regions = [range(0, bounds[0])]
    for key in reversed(keys):
        for leaf in reversed(key.split(".")):
            pattern = re.compile(r"(^|[\s.{,\"'])" + re.escape(leaf) + r"[\"']?\s*=")
            for region in regions:
                for n in region:
                    if pattern.search(lines[n]):
                        return n + 1
    return regions[0].start + 1 if regions and where and where[0] in ("all", "flow") else None


# --------------------------------------------------------------------------------------------- short forms


def _parse_value(text: str) -> Any:
    """A short-form value as TOML would read it (3, 1.5, true, "x", [..]); a bare word is a string and
    a comma-separated list of bare words a list (close=fin,client-rst)."""
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if "," in text:
        return [_parse_value(part) for part in text.split(",")]
    return text


def parse_assignment(text: str) -> Tuple[str, Any]:
    """'KEY=VALUE' / 'KEY<=N' / 'KEY>=N' -> (dotted key, value); the bounds become max.KEY / min.KEY."""
    m = re.fullmatch(r"\s*([A-Za-z_][\w.\-]*)\s*(<=|>=|=)(.*)", text, re.S)
    if not m:
        raise SpecError((), f"{text!r}: expected KEY=VALUE, KEY<=NUMBER or KEY>=NUMBER")
    key, op, raw = m.group(1), m.group(2), m.group(3)
    if raw.strip() == "":
        raise SpecError((), f"{text!r}: missing value after {op}")
    value = _parse_value(raw)
    if op == "<=":
        key = f"max.{key}"
    elif op == ">=":
        key = f"min.{key}"
    return key, value


def _assignments(items: Iterable[str], origin: str) -> Tuple[Expectation, ...]:
    table: Dict[str, Any] = {}
    for item in items:
        key, value = parse_assignment(item)
        table[key] = value
    try:
        return parse_expectations(table)
    except SpecError as err:
        raise SpecError((), f"{origin}: {err}") from None


def spec_from_short_forms(flows: Optional[int] = None, all_flows: Sequence[str] = (),
                          per_flow: Sequence[Tuple[str, str]] = (),
                          per_server_port: Sequence[Tuple[str, str]] = ()) -> Spec:
    """The command line's short forms: --flows N, --all-flows KEY=VALUE, --flow N KEY=VALUE,
    --server-port PORT KEY=VALUE (each repeatable; assignments for the same N or PORT form one rule)."""
    spec = Spec()
    if flows is not None:
        spec.rules.append(Rule("capture", None, _count(flows, ("--flows",)), ()))
    if all_flows:
        spec.rules.append(Rule("--all-flows", None, None, _assignments(all_flows, "--all-flows")))
    for option, pairs, key in (("--flow", per_flow, "index"), ("--server-port", per_server_port, "server_port")):
        grouped: Dict[int, List[str]] = {}
        for number, assignment in pairs:
            try:
                n = int(number)
            except ValueError:
                raise SpecError((), f"{option} {number} {assignment}: {number!r} is not a number") from None
            grouped.setdefault(n, []).append(assignment)
        for n, items in grouped.items():
            origin = f"{option} {n}"
            try:
                selector = Selector.parse({key: n}, ())
            except SpecError as err:
                raise SpecError((), f"{origin}: {err.reason}") from None
            spec.rules.append(Rule(origin, selector, None, _assignments(items, origin)))
    return spec
