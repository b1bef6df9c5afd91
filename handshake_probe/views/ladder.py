"""The sequence diagram textbooks draw for a TCP connection, as text for terminals and CI logs.

A client column and a server column, one arrow per segment (tcpdump flags, seq/ack, payload length), the time
in ms since the flow's first segment on the left, and each endpoint's state written on its own side where it
changes. Notes the analysis attached to a segment ("RST not acceptable", violations) go under its arrow.

    flow 1: client 127.0.0.1:40452 -> server 127.0.0.1:44621, 10 segments, close: FIN both ways
    seq/ack relative to each side's ISN
       ms       client                                                                      server
       127.0.0.1:40452                                                                   127.0.0.1:44621
                CLOSED |                                                                  | LISTEN
    0.000     SYN-SENT |--------------------------- [S] seq=0 --------------------------->| SYN-RECEIVED
    0.012  ESTABLISHED |<----------------------- [S.] seq=0 ack=1 ------------------------|
    0.024              |------------------------ [.] seq=1 ack=1 ------------------------>| ESTABLISHED

`ladder_steps` turns a flow (its record and its rows, as the engine hands them out: see
handshake_probe.files.flowsource) into the diagram's items (shared with the SVG renderer, `ladder_svg`);
`ladder_text` lays them out in at most `width` columns. Long flows keep the first `head` and last `tail`
segments and say how many were left out. Only the standard library is used.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

Record = Mapping[str, Any]                 # a flow record (the JSON contract)
Rows = Optional[Sequence[Mapping[str, Any]]]   # its segments; None or [] when they were not kept

__all__ = ["Step", "Gap", "Timer", "Ladder", "ladder_steps", "ladder_text", "ladders_text",
           "DEFAULT_MAX_ROWS", "DEFAULT_HEAD", "DEFAULT_TAIL", "DEFAULT_WIDTH", "DEFAULT_MAX_FLOWS"]

DEFAULT_HEAD = 12         # segments kept at the start of a long flow (the handshake and some data)
DEFAULT_TAIL = 8          # segments kept at the end (the close)
DEFAULT_MAX_ROWS = DEFAULT_HEAD + DEFAULT_TAIL   # flows longer than this are elided in the middle
DEFAULT_WIDTH = 100       # columns
DEFAULT_MAX_FLOWS = 20    # ladders printed for a capture without --flow

CLOSE_TEXT = {"fin": "FIN both ways", "client-rst": "RST by client", "server-rst": "RST by server",
              "rejected": "rejected (RST)", "none": "never closed"}

_STATE_WIDTH = 12         # len("SYN-RECEIVED"), the longest RFC 9293 state name


# --------------------------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class Step:
    """One segment: an arrow from its sender to its receiver."""

    frame: int
    ms: float                       # since the flow's first segment
    from_client: bool
    flags: str                      # tcpdump style: S, S., ., P., F., R.
    kind: str                       # "syn", "fin", "rst" or "ack" (anything else): the arrow's colour
    seq: int                        # relative to the sender's ISN unless absolute
    ack: Optional[int]              # None without the ACK bit
    length: int                     # payload bytes
    client_states: Tuple[str, ...]  # states the client entered on this segment, in order (usually 0 or 1)
    server_states: Tuple[str, ...]
    notes: Tuple[str, ...]          # what the analysis said about this segment
    options: str = ""               # a SYN's or SYN-ACK's offer: "mss 65495 ws 7 sack ts" (else "")

    @property
    def label(self) -> str:
        """`[S] seq=0 mss 65495 ws 7 sack ts`, `[S.] seq=0 ack=1 ...`, `[P.] seq=1 ack=1 len=6`: the text
        on the arrow (the flags bracketed as tcpdump prints them, so that a lone `.` for ACK stays
        visible; a SYN's options after its numbers)."""
        return f"[{self.flags}] {self.numbers}" + (f" {self.options}" if self.options else "")

    @property
    def numbers(self) -> str:
        text = f"seq={self.seq}"
        if self.ack is not None:
            text += f" ack={self.ack}"
        if self.length:
            text += f" len={self.length}"
        return text

    def states(self, role: str) -> Tuple[str, ...]:
        return self.client_states if role == "client" else self.server_states


@dataclass(frozen=True)
class Gap:
    """Segments left out of a long flow; the states both endpoints are in after them."""

    count: int
    first_frame: int
    last_frame: int
    client_state: str
    server_state: str
    transitions: int                # state changes inside the gap


@dataclass(frozen=True)
class Timer:
    """A transition no segment caused: the 2MSL timer, or a new incarnation taking the 4-tuple over."""

    ms: float
    endpoint: str
    state: str
    cause: str


Item = Union[Step, Gap, Timer]


@dataclass
class Ladder:
    """Everything both renderers draw for one flow."""

    number: int
    client: str                     # "ip:port"
    server: str
    direction: str                  # "observed" or "inferred"
    packets: int
    close: str                      # human text: "FIN both ways", ...
    absolute: bool
    client_initial: str
    server_initial: str
    items: List[Item] = field(default_factory=list)   # in time order: steps, gaps, timers

    @property
    def steps(self) -> List[Step]:
        return [i for i in self.items if isinstance(i, Step)]

    @property
    def timers(self) -> List[Timer]:
        return [i for i in self.items if isinstance(i, Timer)]

    @property
    def numbering(self) -> str:
        return "seq/ack absolute" if self.absolute else "seq/ack relative to each side's ISN"


def _kind(flag_names: str) -> str:
    # From the row's flag names ("SYN|ACK"), so that the view needs no flag bits of its own.
    names = flag_names.split("|")
    for name in ("RST", "SYN", "FIN"):
        if name in names:
            return name.lower()
    return "ack"


def _number(absolute_value: int, relative: Optional[int], absolute: bool) -> int:
    # A row's relative number is None while the side has no origin: the absolute one is drawn then.
    return absolute_value if absolute or relative is None else relative


def ladder_steps(rec: Record, rows: Rows, absolute: bool = False, max_rows: Optional[int] = DEFAULT_MAX_ROWS,
                 head: int = DEFAULT_HEAD, tail: int = DEFAULT_TAIL) -> Ladder:
    """The diagram's items for a flow: its record and its kept rows (flowsource.flow_with_rows).

    A flow with more than `max_rows` segments (and more than head + tail) keeps the first `head` and the
    last `tail` and gets a Gap in between; `max_rows=None` keeps every segment."""
    if not rows:    # a flow has at least one segment: no rows means they were not kept
        raise ValueError(f"flow {rec['flow']} was analyzed without its segments "
                         "(pass keep_rows to analyze_file / FlowTable)")
    if head < 0 or tail < 0:
        raise ValueError("head and tail must be >= 0")
    ladder = Ladder(rec["flow"], rec["client"], rec["server"], rec["direction"], rec["packets"],
                    CLOSE_TEXT.get(rec["close"], rec["close"]), absolute,
                    rec["client_states"][0], rec["server_states"][0])
    n = len(rows)
    elide = max_rows is not None and n > max_rows and n > head + tail
    keep = (set(range(head)) | set(range(n - tail, n))) if elide else None
    problems: Dict[int, List[str]] = {}
    for v in rec["violations"]:
        text = f"violation: {v['endpoint']} in {v['state']}: {v['reason']}"
        problems.setdefault(v["frame"], []).append(text)
    # The record's list is the truth (a row's list can lose one when later evidence rewrites history).
    by_frame: Dict[int, List[Mapping[str, Any]]] = {}
    for t in rec["transitions"]:
        if t["frame"] is not None:
            by_frame.setdefault(t["frame"], []).append(t)
    t0 = rec["first_ts"]
    shown = {"client": ladder.client_initial, "server": ladder.server_initial}   # as last drawn
    gap: Optional[List[int]] = None     # [count, first frame, last frame, transitions]
    for i, row in enumerate(rows):
        frame = row["frame"]
        entered: Dict[str, List[str]] = {"client": [], "server": []}
        for t in by_frame.get(frame, ()):
            entered[t["endpoint"]].append(t["to"])
        for role, state in (("client", row["client_state"]), ("server", row["server_state"])):
            if not entered[role] and state != shown[role]:
                entered[role].append(state)   # restated by later evidence without a transition of its own
            if entered[role]:
                shown[role] = entered[role][-1]
        if keep is not None and i not in keep:
            if gap is None:
                gap = [0, frame, frame, 0]
            gap[0] += 1
            gap[2] = frame
            gap[3] += len(by_frame.get(frame, ()))
            continue
        if gap is not None:
            prev = rows[i - 1]
            ladder.items.append(Gap(gap[0], gap[1], gap[2], prev["client_state"], prev["server_state"], gap[3]))
            gap = None
        notes = list(row["notes"]) or problems.get(frame, [])   # a note already tells the violation
        ack = None if row["ack"] is None else _number(row["ack"], row["rel_ack"], absolute)
        ladder.items.append(Step(
            frame, (row["ts"] - t0) * 1000.0, row["from_client"], row["tcpdump_flags"],
            _kind(row["flag_names"]), _number(row["seq"], row["rel_seq"], absolute), ack, row["len"],
            tuple(entered["client"]), tuple(entered["server"]), tuple(notes), row.get("syn_options") or ""))
    for t in rec["transitions"]:
        if t["frame"] is None:
            # A timer goes before the first segment sent after it fired (the table fires timers at the end).
            timer = Timer((t["ts"] - t0) * 1000.0, t["endpoint"], t["to"], t["cause"])
            at = next((k for k, item in enumerate(ladder.items)
                       if isinstance(item, Step) and item.ms > timer.ms), len(ladder.items))
            ladder.items.insert(at, timer)
    return ladder


# ------------------------------------------------------------------------------------------- the text
def _fmt_ms(ms: float) -> str:
    return f"{ms:.3f}"


def _place(line: List[str], col: int, text: str) -> None:
    """Write text into a character buffer at col, growing it as needed."""
    col = max(col, 0)
    if len(line) < col + len(text):
        line.extend(" " * (col + len(text) - len(line)))
    line[col:col + len(text)] = list(text)


def _fit(text: str, room: int) -> str:
    return text if len(text) <= room else text[:max(room - 1, 0)] + "~"


def _split_header(parts: Sequence[Tuple[str, str]], width: int) -> List[str]:
    """Join (separator, part) pairs on as few lines as fit in width; a part never is split."""
    lines: List[str] = []
    for sep, part in parts:
        if lines and len(lines[-1]) + len(sep) + len(part) <= width:
            lines[-1] += sep + part
        else:
            lines.append(_fit(part, width))
    return lines


class _Layout:
    def __init__(self, tw: int, inner: int) -> None:
        self.tw = tw                                # time column
        self.inner = inner                          # columns between the two lifelines
        self.lc = tw + 1 + _STATE_WIDTH + 1         # column of the client's lifeline
        self.ls = self.lc + 1 + inner               # column of the server's lifeline

    def line(self, ms: str = "", cstate: str = "", body: str = "", sstate: str = "", bar: str = "|") -> str:
        body = body.ljust(self.inner)[:self.inner]
        text = f"{ms:>{self.tw}} {cstate:>{_STATE_WIDTH}} {bar}{body}{bar} {sstate}"
        return text.rstrip()

    def arrow(self, label: str, to_server: bool) -> str:
        body = ["-"] * self.inner
        label = " " + _fit(label, self.inner - 6) + " "
        start = (self.inner - len(label)) // 2
        body[start:start + len(label)] = list(label)
        if to_server:
            body[-1] = ">"
        else:
            body[0] = "<"
        return "".join(body)


def ladder_text(rec: Record, rows: Rows, absolute: bool = False, max_rows: Optional[int] = DEFAULT_MAX_ROWS,
                head: int = DEFAULT_HEAD, tail: int = DEFAULT_TAIL, width: int = DEFAULT_WIDTH) -> str:
    """The flow's sequence diagram in at most `width` columns (no trailing newline).

    seq/ack are relative to each side's ISN unless `absolute`; a flow with more than `max_rows` segments
    keeps the first `head` and the last `tail` and prints `... N segments ...` between them
    (`max_rows=None` prints every segment)."""
    ladder = ladder_steps(rec, rows, absolute, max_rows, head, tail)
    return render_ladder(ladder, width)


def render_ladder(ladder: Ladder, width: int = DEFAULT_WIDTH) -> str:
    times = [_fmt_ms(s.ms) for s in ladder.steps] + [_fmt_ms(t.ms) for t in ladder.timers]
    tw = max([2] + [len(t) for t in times])
    inner = max(width - tw - 2 * _STATE_WIDTH - 5, 24)
    lay = _Layout(tw, inner)
    width = max(width, lay.ls + 2 + _STATE_WIDTH)

    head = [("", f"flow {ladder.number}: client {ladder.client}"), (" ", f"-> server {ladder.server}")]
    if ladder.direction != "observed":
        head.append((", ", f"direction {ladder.direction}"))
    head += [(", ", f"{ladder.packets} segment" + ("" if ladder.packets == 1 else "s")), (", ", f"close: {ladder.close}"), (", ", ladder.numbering)]
    out = _split_header(head, width)

    names: List[str] = []
    _place(names, tw - 2, "ms")
    _place(names, lay.lc - 1 - len("client"), "client")
    _place(names, lay.ls + 2, "server")
    addrs: List[str] = []
    _place(addrs, max(lay.lc - 1 - len(ladder.client), 0), ladder.client)
    start = lay.ls + 2 if lay.ls + 2 + len(ladder.server) <= width else width - len(ladder.server)
    if start < len(addrs) + 2:          # two long IPv6 addresses: one line each
        out += ["".join(names).rstrip(), "".join(addrs).rstrip()]
        addrs = []
        start = max(start, 0)
    else:
        out.append("".join(names).rstrip())
    _place(addrs, start, ladder.server)
    out += ["".join(addrs).rstrip(), lay.line(cstate=ladder.client_initial, sstate=ladder.server_initial)]
    wrap = max(inner - 4, 10)
    shown = {"client": ladder.client_initial, "server": ladder.server_initial}
    for item in ladder.items:
        if isinstance(item, Gap):
            out.append(lay.line(body=f"... {item.count} segment{'s' if item.count != 1 else ''} ...".center(inner),
                                bar=":"))
            cstate = item.client_state if item.client_state != shown["client"] else ""
            sstate = item.server_state if item.server_state != shown["server"] else ""
            if cstate or sstate:
                out.append(lay.line(cstate=cstate, sstate=sstate))
            shown = {"client": item.client_state, "server": item.server_state}
            continue
        if isinstance(item, Timer):
            body = f"({item.cause})".center(inner)
            if item.endpoint == "client":
                out.append(lay.line(_fmt_ms(item.ms), cstate=item.state, body=body))
            else:
                out.append(lay.line(_fmt_ms(item.ms), body=body, sstate=item.state))
            shown[item.endpoint] = item.state
            continue
        for role in ("client", "server"):
            if item.states(role):
                shown[role] = item.states(role)[-1]
        cs, ss = list(item.client_states), list(item.server_states)
        out.append(lay.line(_fmt_ms(item.ms), cs.pop(0) if cs else "", lay.arrow(item.label, item.from_client),
                            ss.pop(0) if ss else ""))
        extra = [f"  {line}" for note in item.notes
                 for line in textwrap.wrap(note, wrap, subsequent_indent="    ", break_on_hyphens=False)]
        while cs or ss or extra:
            out.append(lay.line(cstate=cs.pop(0) if cs else "", body=extra.pop(0) if extra else "",
                                sstate=ss.pop(0) if ss else ""))
    return "\n".join(out)


def ladders_text(flows: Iterable[Tuple[Record, Rows]], total: Optional[int] = None, absolute: bool = False,
                 max_rows: Optional[int] = DEFAULT_MAX_ROWS, head: int = DEFAULT_HEAD,
                 tail: int = DEFAULT_TAIL, width: int = DEFAULT_WIDTH) -> str:
    """Several ladders one after another, a blank line between them; `flows`: (record, rows) pairs.
    With `total` (the capture's flow count) larger than the number drawn, a last line says how many
    were left out."""
    parts = [ladder_text(rec, rows, absolute, max_rows, head, tail, width) for rec, rows in flows]
    if total is not None and total > len(parts):
        parts.append(f"(showing the first {len(parts)} of {total} flows; --flow N shows one, "
                     "--max-flows M more)")
    return "\n\n".join(parts)
