"""Flow records and their per-segment rows, packed once into the compact JSON the report page renders from.

The page must open a 100,000-flow capture in under 2 s, so the data is split in two:

- the *head* (parsed when the page opens): the captures' counters, the vocabulary, an interned string
  table, and the flow table as columns (one array per column, numbers and string indexes);
- the *details* (parsed only when a flow is opened), in chunks of CHUNK flows, one `<script
  type="application/json">` element each: every flow's full record (less what the head holds), its
  transitions and its segments.

Everything comes from the public boundary (records and rows); nothing is computed here that the page
could not show as the engine said it. Times are written as integer microseconds since the flow's first
segment when that prints the same milliseconds (`.3f`) as the exact difference, else as `[seconds]`
(nanosecond captures): the page shows what `--flow N` shows, and its ladder equals ladder_svg's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import handshake_probe

__all__ = ["CHUNK", "Source", "Packer", "source_from_file", "pack", "layout_constants"]

Record = Mapping[str, Any]
Row = Mapping[str, Any]
Time = Union[int, List[float]]

_RADIX = 64         # state names packed in a number (the engine has 12)
_MOD = 1 << 32      # sequence numbers
CHUNK = 1000        # flows per details chunk: opening a flow parses ~0.3-1 MB, not the whole capture
FORMAT = 1          # the data's layout version, read by assets/report.js

# Record keys the head or the details hold in their own compact form; every other key (tunnels,
# negotiation, keys added to the contract later) goes into the details as the record has it.
_PACKED = frozenset({"flow", "client", "server", "packets", "first_ts", "last_ts", "duration_ms",
                     "client_states", "server_states", "transitions", "close", "conn_state", "history",
                     "anomalies"})


@dataclass
class Source:
    """One capture (a file, a live capture, a probe scenario): its name, its counters and its flows as
    (record, rows) pairs; `flows` may be a generator, consumed once while packing."""

    name: str
    flows: Iterable[Tuple[Record, Optional[Sequence[Row]]]]
    counters: Dict[str, Any] = field(default_factory=dict)   # frames, segments, skipped, error, warnings...


def _time(ts: float, t0: float) -> Time:
    d = ts - t0
    us = round(d * 1e6)
    if f"{us / 1000:.3f}" == f"{d * 1000:.3f}":
        return us
    return [d]


class Packer:
    """Packs flows as they come (one record in memory at a time) into the head's columns and the
    details' chunks."""

    COLUMNS = ("src", "n", "cl", "sv", "pk", "t", "dur", "close", "conn", "hist", "cp", "sp", "an", "vc",
               "hs", "r1", "r2")

    def __init__(self) -> None:
        self.strings: List[str] = [""]
        self._index: Dict[str, int] = {"": 0}
        self.columns: Dict[str, List[Any]] = {c: [] for c in self.COLUMNS}
        self.first_ts: List[float] = []
        self.sources: List[Dict[str, Any]] = []
        self.chunks: List[str] = []
        self._chunk: List[Any] = []
        self.states: List[str] = []
        self._state_index: Dict[str, int] = {}
        self._cause_index: Dict[str, int] = {}

    def s(self, text: Optional[str]) -> int:
        """The index of `text` in the string table (0: empty or none)."""
        if not text:
            return 0
        at = self._index.get(text)
        if at is None:
            at = self._index[text] = len(self.strings)
            self.strings.append(text)
        return at

    def add_source(self, source: Source) -> None:
        src = len(self.sources)
        self.sources.append({"name": source.name})
        count = 0
        for record, rows in source.flows:
            self.add(src, record, rows or [])
            count += 1
        info = {"name": source.name, "flows_in_report": count}
        info.update({k: v for k, v in source.counters.items() if k != "name"})
        self.sources[src] = info

    def add(self, src: int, rec: Record, rows: Sequence[Row]) -> None:
        c = self.columns
        hs = rec["handshake"]
        anomalies = ";".join(f"{k}={n}" for k, n in (rec.get("anomalies") or {}).items() if n)
        for key, value in (("src", src), ("n", rec["flow"]), ("cl", rec["client"]), ("sv", rec["server"]),
                           ("pk", rec["packets"]), ("dur", rec["duration_ms"]), ("close", self.s(rec["close"])),
                           ("conn", self.s(rec.get("conn_state"))), ("hist", self.s(rec.get("history"))),
                           ("cp", self.s(">".join(rec["client_states"]))),
                           ("sp", self.s(">".join(rec["server_states"]))), ("an", self.s(anomalies)),
                           ("vc", rec["violation_count"]), ("hs", self.s(hs["status"])),
                           ("r1", hs.get("syn_to_synack_ms")), ("r2", hs.get("synack_to_ack_ms"))):
            c[key].append(value)
        self.first_ts.append(rec["first_ts"])
        self._chunk.append(self._detail(rec, rows))
        if len(self._chunk) == CHUNK:
            self._flush()

    def _state(self, name: str) -> int:
        at = self._state_index.get(name)
        if at is None:
            if len(self.states) == _RADIX:
                raise ValueError(f"more than {_RADIX} state names")
            at = self._state_index[name] = len(self.states)
            self.states.append(name)
        return at

    def _detail(self, rec: Record, rows: Sequence[Row]) -> Dict[str, Any]:
        """One flow's details, packed (assets/report.js `flowOf` unpacks them):

        - `k`: the string index of the record's remaining keys as JSON, less the per-flow numbers (`v`:
          client/server packets and bytes), the handshake times (in the head), the violations (`vi`) and
          the negotiation (`ng`): flows share a handful of these shapes;
        - `isn`: each side's ISN as the rows imply it (absolute = ISN + relative, mod 2^32);
        - `tr`: transitions, [frame, code] or [frame, code, time] when the time is not its frame's
          (timers: frame null); code = ((cause * R + from) * R + to) * 2 + endpoint;
        - `rows`: [frame - previous frame, time, flags * 2 + from_client, seq, ack, len, window,
          (client state * R + server state) * 4 + moved, notes?, syn options?], seq as relative when the
          ISN gives the absolute back, else [absolute, relative]; ack likewise against the other side's
          ISN; window as [raw, shift] where a window scale is in effect (RFC 7323 §2.3), else raw;
          syn options (a SYN's offer, `mss 65495 ws 7 sack ts`) as a string index, notes then [] if none.
        """
        t0 = rec["first_ts"]
        extra = {k: v for k, v in rec.items() if k not in _PACKED}
        numbers = [extra.pop(k, None) for k in ("client_packets", "server_packets", "client_bytes", "server_bytes")]
        negotiation = extra.pop("negotiation", None)
        violations = extra.pop("violations", [])
        hs = {k: v for k, v in extra.pop("handshake", {}).items() if not k.endswith("_ms")}
        extra["handshake"] = hs
        extra["anomalies"] = {k: n for k, n in (rec.get("anomalies") or {}).items() if n}
        out: Dict[str, Any] = {"k": self.s(json.dumps(extra, separators=(",", ":"))), "v": numbers}
        if violations:
            out["vi"] = violations
        if negotiation is not None:
            out["ng"] = negotiation
        roles = {"client": 0, "server": 1}
        isn: List[Optional[int]] = [None, None]
        for row in rows:
            side = 0 if row["from_client"] else 1
            if isn[side] is None and row["rel_seq"] is not None:
                isn[side] = (row["seq"] - row["rel_seq"]) % _MOD
        row_ts: Dict[int, float] = {}
        packed: List[List[Any]] = []
        frame = 0
        for row in rows:
            moved = 0
            for t in row["transitions"]:
                moved |= 1 << roles[t["endpoint"]]
            side = 0 if row["from_client"] else 1
            seq: Any = row["rel_seq"]
            if seq is None or isn[side] is None or (isn[side] + seq) % _MOD != row["seq"]:
                seq = [row["seq"], row["rel_seq"]]
            ack: Any = row["rel_ack"]
            if row["ack"] is not None and (ack is None or isn[1 - side] is None
                                           or (isn[1 - side] + ack) % _MOD != row["ack"]):
                ack = [row["ack"], row["rel_ack"]]
            flags = self.s(f"{row['tcpdump_flags']} {row['flag_names']}")
            states = (self._state(row["client_state"]) * _RADIX + self._state(row["server_state"])) * 4 + moved
            shift = row.get("window_scale")
            window: Any = row["window"] if shift is None else [row["window"], shift]
            entry: List[Any] = [row["frame"] - frame, _time(row["ts"], t0), flags * 2 + (1 - side), seq, ack,
                                row["len"], window, states]
            options = row.get("syn_options")
            if row["notes"] or options:
                entry.append(list(row["notes"]))
            if options:
                entry.append(self.s(options))
            packed.append(entry)
            frame = row["frame"]
            row_ts.setdefault(frame, row["ts"])
        transitions: List[List[Any]] = []
        for t in rec["transitions"]:
            cause = self._cause_index.setdefault(t["cause"], len(self._cause_index))
            code = ((cause * _RADIX + self._state(t["from"])) * _RADIX + self._state(t["to"])) * 2 + roles[t["endpoint"]]
            entry = [t["frame"], code]
            if t["frame"] is None or row_ts.get(t["frame"]) != t["ts"]:
                entry.append(_time(t["ts"], t0))
            transitions.append(entry)
        out.update(isn=isn, tr=transitions, rows=packed)
        return out

    def _flush(self) -> None:
        if self._chunk:
            self.chunks.append(to_json(self._chunk))
            self._chunk = []

    def head(self, title: str) -> str:
        """The head's JSON (call once every source is added; it also closes the last chunk)."""
        self._flush()
        # Start times since each capture's first segment: captures recorded years apart share one axis.
        starts: Dict[int, float] = {}
        for src, ts in zip(self.columns["src"], self.first_ts):
            starts[src] = min(ts, starts.get(src, ts))
        for src, ts in starts.items():
            self.sources[src]["t0"] = ts
        t0 = min(self.first_ts, default=0.0)
        self.columns["t"] = [round((ts - starts[src]) * 1000, 3) for src, ts in zip(self.columns["src"], self.first_ts)]
        data = {
            "format": FORMAT, "title": title, "version": handshake_probe.__version__, "t0": t0,
            "chunk": CHUNK, "sources": self.sources, "strings": self.strings, "flows": self.columns,
            "states": self.states, "causes": list(self._cause_index), "radix": _RADIX,
            "vocab": {"states": list(handshake_probe.STATES), "close": list(handshake_probe.CLOSE_KINDS),
                      "conn": list(handshake_probe.CONN_STATES), "anomalies": list(handshake_probe.ANOMALY_KINDS)},
            "layout": layout_constants(),
        }
        return to_json(data)


def to_json(value: Any) -> str:
    """Compact JSON that is safe inside a <script> element: '<' only ever appears inside strings, where
    \\u003c reads the same, so no '</script>' or '<!--' can end or confuse the element."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def layout_constants() -> Dict[str, Any]:
    """The ladder's layout constants, from views/ladder_svg.py and views/ladder.py (the one place they
    are defined), for the page's port of the layout."""
    from handshake_probe.views import ladder, ladder_svg as svg
    return {"head": svg.SVG_HEAD, "tail": svg.SVG_TAIL, "colours": dict(svg.COLOURS),
            "legend": [list(x) for x in svg._LEGEND], "font": svg._FONT, "ch": svg._CH, "slant": svg._SLANT,
            "row": svg._ROW, "box_h": svg._BOX_H, "box_step": svg._BOX_STEP, "note_step": svg._NOTE_STEP,
            "state_fill": svg._STATE_FILL, "state_stroke": svg._STATE_STROKE, "close_text": dict(ladder.CLOSE_TEXT)}


def pack(sources: Iterable[Source], title: str) -> Tuple[str, List[str], int]:
    """(head JSON, details chunks' JSON, number of flows) for these sources."""
    packer = Packer()
    for source in sources:
        packer.add_source(source)
    head = packer.head(title)
    return head, packer.chunks, len(packer.first_ts)


def _counters(analysis: Any) -> Dict[str, Any]:
    return {"frames": analysis.frames, "segments": analysis.segments, "skipped": dict(analysis.skipped),
            "error": analysis.error, "warnings": list(analysis.warnings), "flow_count": analysis.flow_count,
            "violations": analysis.violations}


def source_from_file(path: str, name: Optional[str] = None, **options: Any) -> Source:
    """A capture file as a report source: every flow with its rows, in the order flows end, read through
    handshake_probe.analyze as the source is packed (the counters are filled in when its flows have been
    consumed)."""
    # Streamed: each flow is packed (and its rows forgotten) as soon as it is over, so memory grows with
    # the flows open at once, not with the capture; the page orders the table by flow number itself.
    analysis = handshake_probe.analyze(path, streaming=True, keep_rows=True, **options)
    source = Source(name or path, [], {})

    # take_rows forgets each flow's rows once read (the engine would keep all of them otherwise).
    take = getattr(analysis, "take_rows", analysis.rows)

    def flows() -> Iterator[Tuple[Record, Optional[Sequence[Row]]]]:
        for rec in analysis:
            yield rec, take(rec["flow"])
        source.counters.update(_counters(analysis))

    source.flows = flows()
    return source
