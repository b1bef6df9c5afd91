"""The ladder (sequence) diagram of a TCP flow as a standalone SVG for reports and docs.

Two vertical lifelines labelled with the client's and the server's ip:port; one slanted arrow per segment,
from the sender's lifeline down to the receiver's (time runs downwards), labelled with the tcpdump flags and
seq/ack/len; a state box on an endpoint's side wherever its state changes; the time since the flow's first
segment on the left. SYN, FIN and RST arrows have their own colours. Only the standard library is used;
every piece of text is XML-escaped. Rows are evenly spaced (the times are written, not scaled: a capture
mixes microseconds and minutes).
"""

from __future__ import annotations

import math
import textwrap
from typing import Iterable, List, Optional, Sequence, Tuple
from xml.sax.saxutils import escape, quoteattr

from handshake_probe.views.ladder import Gap, Ladder, Record, Rows, Step, Timer, ladder_steps

__all__ = ["ladder_svg", "ladders_svg", "SVG_MAX_ROWS", "SVG_HEAD", "SVG_TAIL", "COLOURS"]

SVG_HEAD = 40
SVG_TAIL = 20
SVG_MAX_ROWS = SVG_HEAD + SVG_TAIL

COLOURS = {"syn": "#2e7d32", "fin": "#1565c0", "rst": "#c62828", "ack": "#455a64"}
_LEGEND = (("syn", "SYN"), ("fin", "FIN"), ("rst", "RST"), ("ack", "ACK / data"))
_FONT = "DejaVu Sans Mono, Menlo, Consolas, 'Liberation Mono', monospace"
_CH = 0.61            # advance of a monospace character, in em
_SLANT = 26           # how far an arrow falls while it crosses: the time the segment takes
_ROW = 54             # vertical step between two arrows
_BOX_H = 18
_BOX_STEP = 21        # two states entered on one segment are stacked this far apart
_NOTE_STEP = 14
_STATE_FILL = "#fff8e1"
_STATE_STROKE = "#c8a84b"


def _w(chars: int, size: float) -> float:
    return chars * size * _CH


def _a(value: object) -> str:
    return quoteattr(str(value))


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, text: str, size: float = 12, anchor: str = "start", fill: str = "#212121",
          extra: str = "") -> str:
    return (f'<text x="{_num(x)}" y="{_num(y)}" font-size="{_num(size)}" text-anchor="{anchor}" '
            f'fill="{fill}"{extra}>{escape(text)}</text>')


class _Block:
    """One flow's diagram, drawn from y=0 down; `height` is known once drawn."""

    def __init__(self, ladder: Ladder) -> None:
        self.ladder = ladder
        self.out: List[str] = []
        steps = ladder.steps
        times = [f"{s.ms:.3f} ms" for s in steps] + [f"{t.ms:.3f} ms" for t in ladder.timers]
        frames = [f"#{s.frame}" for s in steps]
        self.frame_w = _w(max([0] + [len(f) for f in frames]), 10) + 6
        self.axis_x = 14 + self.frame_w + _w(max([6] + [len(t) for t in times]), 12) + 10
        self.box_w = _w(12, 11) + 16                         # "SYN-RECEIVED" and a margin
        longest = max([0] + [len(s.label) for s in steps])
        gap = max(440.0, _w(longest, 12) + 120)
        self.cx = self.axis_x + 18 + self.box_w + 8
        self.sx = self.cx + gap
        head_c = _w(len(ladder.client), 12) + 24
        head_s = _w(len(ladder.server), 12) + 24
        self.width = max(self.sx + 8 + self.box_w + 16, self.sx + head_s / 2 + 12)
        self.heads = (head_c, head_s)
        title = self._title_lines()
        self.width = max(self.width, _w(len(title[0]), 14) + 40, _w(len(title[1]), 12) + 40)
        self.height = 0.0
        self.shown = {"client": ladder.client_initial, "server": ladder.server_initial}   # as last drawn
        self._draw(title)

    # ------------------------------------------------------------------ pieces
    def _title_lines(self) -> List[str]:
        lad = self.ladder
        first = f"flow {lad.number}: client {lad.client} \u2192 server {lad.server}"
        second = f"{lad.packets} segment{'' if lad.packets == 1 else 's'} \u00b7 close: {lad.close} \u00b7 {lad.numbering}"
        if lad.direction != "observed":
            second += f" \u00b7 direction {lad.direction}"
        return [first, second]

    def _state_box(self, role: str, y: float, state: str, initial: bool = False) -> None:
        x = self.cx - 8 - self.box_w if role == "client" else self.sx + 8
        lifeline = self.cx if role == "client" else self.sx
        fill, stroke = ("#eceff1", "#90a4ae") if initial else (_STATE_FILL, _STATE_STROKE)
        self.out.append(f'<g class="state" data-endpoint={_a(role)}>'
                        f'<rect x="{_num(x)}" y="{_num(y - _BOX_H / 2)}" width="{_num(self.box_w)}" '
                        f'height="{_BOX_H}" rx="4" fill="{fill}" stroke="{stroke}"/>'
                        + _text(x + self.box_w / 2, y + 4, state, 11, "middle", "#3e2723",
                                ' font-weight="bold"')
                        + f'<circle cx="{_num(lifeline)}" cy="{_num(y)}" r="3" fill="{stroke}"/></g>')

    def _tick(self, y: float, ms: float, frame: Optional[int]) -> None:
        self.out.append(f'<line x1="{_num(self.axis_x - 4)}" y1="{_num(y)}" x2="{_num(self.axis_x + 4)}" '
                        f'y2="{_num(y)}" stroke="#9e9e9e"/>')
        self.out.append(_text(self.axis_x - 8, y + 4, f"{ms:.3f} ms", 12, "end", "#424242"))
        if frame is not None:
            self.out.append(_text(14, y + 4, f"#{frame}", 10, "start", "#9e9e9e"))

    def _arrow(self, step: Step, y: float) -> None:
        colour = COLOURS[step.kind]
        x1, x2 = (self.cx, self.sx) if step.from_client else (self.sx, self.cx)
        y1, y2 = y, y + _SLANT
        self.out.append(f'<g class="segment" data-frame="{step.frame}" data-kind="{step.kind}">')
        self.out.append(f'<line class="arrow" x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" '
                        f'stroke="{colour}" stroke-width="1.6" marker-end="url(#hp-head-{step.kind})"/>')
        self.out.append(f'<circle cx="{_num(x1)}" cy="{_num(y1)}" r="2.5" fill="{colour}"/>')
        # The label runs along the arrow, read left to right whichever way the arrow points.
        lx, ly, rx, ry = (x1, y1, x2, y2) if x1 < x2 else (x2, y2, x1, y1)
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
        mx, my = (lx + rx) / 2, (ly + ry) / 2
        self.out.append(f'<text x="{_num(mx)}" y="{_num(my - 6)}" font-size="12" text-anchor="middle" '
                        f'fill="#212121" transform="rotate({angle:.2f} {_num(mx)} {_num(my)})">'
                        f'<tspan font-weight="bold" fill="{colour}">[{escape(step.flags)}]</tspan> '
                        f'{escape(step.numbers)}'
                        + (f' <tspan class="options" fill="#5d4037">{escape(step.options)}</tspan>'
                           if step.options else "") + '</text>')
        self.out.append("</g>")

    # ------------------------------------------------------------------ drawing
    def _draw(self, title: List[str]) -> None:
        lad, out = self.ladder, self.out
        out.append(_text(14, 24, title[0], 14, extra=' font-weight="bold"'))
        out.append(_text(14, 42, title[1], 12, fill="#616161"))
        head_y = 58
        for role, x, label, w in (("client", self.cx, lad.client, self.heads[0]),
                                  ("server", self.sx, lad.server, self.heads[1])):
            left = min(max(x - w / 2, 6), self.width - w - 6) if role == "server" else max(x - w / 2, 6)
            out.append(f'<rect x="{_num(left)}" y="{head_y}" width="{_num(w)}" height="38" rx="5" '
                       f'fill="#f5f5f5" stroke="#616161"/>')
            out.append(_text(left + w / 2, head_y + 16, role, 12, "middle", extra=' font-weight="bold"'))
            out.append(_text(left + w / 2, head_y + 31, label, 12, "middle", "#424242"))
        top = head_y + 38
        lifeline_at = len(out)          # the lifelines go under everything else; inserted when the end is known
        y = top + 26
        self._state_box("client", y, lad.client_initial, initial=True)
        self._state_box("server", y, lad.server_initial, initial=True)
        out.append(_text(self.axis_x, top + 47, "time \u2193", 10, "middle", "#757575"))
        y += 34
        first_tick = y
        gaps: List[Tuple[float, float]] = []
        for item in lad.items:
            if isinstance(item, Gap):
                g0, g1 = y - 14, y + 40
                gaps.append((g0, g1))
                noun = "segment" if item.count == 1 else "segments"
                out.append(_text((self.cx + self.sx) / 2, y + 12,
                                 f"\u22ee {item.count} {noun} (frames {item.first_frame}\u2013{item.last_frame}) "
                                 f"\u22ee", 12, "middle", "#616161", ' font-style="italic" class="gap"'))
                y = g1 + 14
                if item.client_state != self.shown["client"]:
                    self._state_box("client", y - 10, item.client_state)
                if item.server_state != self.shown["server"]:
                    self._state_box("server", y - 10, item.server_state)
                self.shown = {"client": item.client_state, "server": item.server_state}
                y += 16
                continue
            if isinstance(item, Timer):
                self._tick(y, item.ms, None)
                self._state_box(item.endpoint, y, item.state)
                self.shown[item.endpoint] = item.state
                x = self.cx + 14 if item.endpoint == "client" else self.sx - 14
                out.append(_text(x, y + 4, item.cause, 11, "start" if item.endpoint == "client" else "end",
                                 "#616161", ' font-style="italic" class="timer"'))
                y += _ROW - 10
                continue
            self._tick(y, item.ms, item.frame)
            self._arrow(item, y)
            depth = _ROW
            for role in ("client", "server"):
                states = item.states(role)
                sender = (role == "client") == item.from_client
                base = y if sender else y + _SLANT
                for k, state in enumerate(states):
                    self._state_box(role, base + k * _BOX_STEP, state)
                if states:
                    self.shown[role] = states[-1]
                    depth = max(depth, base - y + (len(states) - 1) * _BOX_STEP + _BOX_STEP + 4)
            lines = [line for note in item.notes
                     for line in textwrap.wrap(note, int((self.sx - self.cx - 40) / _w(1, 11)),
                                               break_on_hyphens=False)]
            for k, line in enumerate(lines):
                out.append(_text((self.cx + self.sx) / 2, y + _SLANT / 2 + 17 + k * _NOTE_STEP, line, 11,
                                 "middle", "#b71c1c", ' font-style="italic" class="note"'))
            if lines:
                depth = max(depth, 40 + len(lines) * _NOTE_STEP)
            y += depth
        bottom = y - 10
        lifelines = []
        if lad.items:   # the time axis, broken where segments are left out
            edges = [first_tick - 6] + [v for g in gaps for v in g] + [bottom]
            for a, b in zip(edges[0::2], edges[1::2]):
                lifelines.append(f'<line class="axis" x1="{_num(self.axis_x)}" y1="{_num(a)}" '
                                 f'x2="{_num(self.axis_x)}" y2="{_num(b)}" stroke="#bdbdbd"/>')
        for x in (self.cx, self.sx):
            edges = [top] + [v for g in gaps for v in g] + [bottom]
            for a, b in zip(edges[0::2], edges[1::2]):
                lifelines.append(f'<line class="lifeline" x1="{_num(x)}" y1="{_num(a)}" x2="{_num(x)}" '
                                 f'y2="{_num(b)}" stroke="#616161" stroke-width="1.5"/>')
            for a, b in gaps:
                lifelines.append(f'<line x1="{_num(x)}" y1="{_num(a)}" x2="{_num(x)}" y2="{_num(b)}" '
                                 f'stroke="#9e9e9e" stroke-width="1.5" stroke-dasharray="2 5"/>')
        out[lifeline_at:lifeline_at] = lifelines
        # Legend.
        y = bottom + 30
        x = 14.0
        for kind, name in _LEGEND:
            out.append(f'<line x1="{_num(x)}" y1="{_num(y - 4)}" x2="{_num(x + 28)}" y2="{_num(y - 4)}" '
                       f'stroke="{COLOURS[kind]}" stroke-width="1.6" marker-end="url(#hp-head-{kind})"/>')
            out.append(_text(x + 36, y, name, 11, fill="#424242"))
            x += 36 + _w(len(name), 11) + 24
        out.append(_text(x, y, "arrows fall with time; boxes: the state entered there", 11, fill="#757575"))
        self.width = max(self.width, x + _w(52, 11) + 14)
        self.height = y + 14


def _document(blocks: Sequence[_Block], footer: Optional[str] = None) -> str:
    width = math.ceil(max([b.width for b in blocks] + [320]))
    parts: List[str] = []
    y = 0.0
    for i, block in enumerate(blocks):
        if i:
            parts.append(f'<line x1="8" y1="{_num(y + 12)}" x2="{width - 8}" y2="{_num(y + 12)}" '
                         f'stroke="#e0e0e0" stroke-width="2"/>')
            y += 24
        parts.append(f'<g class="flow" data-flow="{block.ladder.number}" transform="translate(0 {_num(y)})">')
        parts.extend(block.out)
        parts.append("</g>")
        y += block.height
    if footer:
        parts.append(_text(14, y + 16, footer, 12, fill="#616161"))
        y += 26
    height = math.ceil(y + 6)
    title = "; ".join(f"TCP flow {b.ladder.number}: {b.ladder.client} to {b.ladder.server}" for b in blocks)
    markers = "".join(
        f'<marker id="hp-head-{kind}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto" markerUnits="strokeWidth"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        for kind, colour in COLOURS.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family={_a(_FONT)}>\n'
            f'<title>{escape(title)}</title>\n<defs>{markers}</defs>\n'
            f'<rect width="100%" height="100%" fill="#ffffff"/>\n' + "\n".join(parts) + "\n</svg>\n")


def ladder_svg(rec: Record, rows: Rows, absolute: bool = False, max_rows: Optional[int] = SVG_MAX_ROWS,
               head: int = SVG_HEAD, tail: int = SVG_TAIL) -> str:
    """A standalone SVG document of the flow's ladder diagram, from its record and its kept rows (like
    ladder_text)."""
    return _document([_Block(ladder_steps(rec, rows, absolute, max_rows, head, tail))])


def ladders_svg(flows: Iterable[Tuple[Record, Rows]], total: Optional[int] = None, absolute: bool = False,
                max_rows: Optional[int] = SVG_MAX_ROWS, head: int = SVG_HEAD, tail: int = SVG_TAIL) -> str:
    """Several flows' diagrams stacked in one SVG; `flows`: (record, rows) pairs. With `total` larger
    than the number drawn, a footer says how many were left out."""
    blocks = [_Block(ladder_steps(rec, rows, absolute, max_rows, head, tail)) for rec, rows in flows]
    footer = None
    if total is not None and total > len(blocks):
        footer = f"showing the first {len(blocks)} of {total} flows"
    return _document(blocks, footer)
