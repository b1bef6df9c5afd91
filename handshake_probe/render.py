"""Turning flow records into text: the flow table, one flow's segment listing, JSON Lines, JSON, CSV."""

from __future__ import annotations

import csv
import json
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, TextIO, Tuple

from tabulate import tabulate

from handshake_probe.analysis import Analysis
from handshake_probe.core.endpoint import MOD
from handshake_probe.core.flow import Flow
from handshake_probe.core.record import CSV_COLUMNS, anomaly_text, csv_row, flow_record
from handshake_probe.core.segment import Flags, flag_names, tcpdump_flags
from handshake_probe.messages import plural

FORMATS = ("table", "jsonl", "json", "csv")


def handshake_cell(rec: Dict[str, Any]) -> str:
    hs = rec["handshake"]
    if hs["complete"]:
        return f"complete ({_fmt_ms(hs['syn_to_synack_ms'])} / {_fmt_ms(hs['synack_to_ack_ms'])})"
    if hs["status"] == "partial":
        parts = []
        if hs["syn_count"]:
            parts.append(f"{hs['syn_count']} SYN")
        if hs["synack_count"]:
            parts.append(f"{hs['synack_count']} SYN-ACK")
        return f"partial ({', '.join(parts)})"
    return "none"


def _fmt_ms(ms: Optional[float]) -> str:
    return "-" if ms is None else f"{ms:.3f} ms"


CLOSE_TEXT = {"fin": "FIN both ways", "client-rst": "RST by client", "server-rst": "RST by server",
              "rejected": "rejected (RST)", "none": "never closed"}


# Table columns: name -> (header, cell). `--columns` picks and orders them by name.
COLUMNS: Dict[str, Tuple[str, Callable[[Dict[str, Any]], Any]]] = {
    "flow": ("#", lambda r: r["flow"]),
    "client": ("client", lambda r: r["client"]),
    "server": ("server", lambda r: r["server"]),
    "packets": ("pkts", lambda r: r["packets"]),
    "duration": ("ms", lambda r: r["duration_ms"]),
    "handshake": ("handshake (SYN>SYN-ACK / SYN-ACK>ACK)", handshake_cell),
    "close": ("close", lambda r: CLOSE_TEXT[r["close"]]),
    "conn_state": ("conn_state", lambda r: r.get("conn_state", "")),
    "history": ("history", lambda r: r.get("history", "")),
    "completeness": ("compl.", lambda r: r.get("completeness", "")),
    "anomalies": ("anomalies", lambda r: anomaly_text(r.get("anomalies"))),
    "violations": ("viol.", lambda r: r["violation_count"]),
    "client_states": ("client states", lambda r: ">".join(r["client_states"])),
    "server_states": ("server states", lambda r: ">".join(r["server_states"])),
}
DEFAULT_COLUMNS = ("flow", "client", "server", "packets", "handshake", "close", "conn_state", "history",
                   "client_states", "server_states")


def flow_table(records: Iterable[Dict[str, Any]], columns: Sequence[str] = DEFAULT_COLUMNS) -> str:
    chosen = [COLUMNS[c] for c in columns]
    rows = [[cell(r) for _, cell in chosen] for r in records]
    return tabulate(rows, headers=[h for h, _ in chosen], tablefmt="simple")


def summary_line(analysis: Analysis, name: Optional[str] = None, violations: Optional[int] = None) -> str:
    """The line under the table. `name`: the file as the user named it (default: the path read).
    `violations`: the count when the flows were streamed out and are not in `analysis.flows` (several
    files, each analyzed in its own process); by default they are counted from the flows kept."""
    text = (f"{name or analysis.path}: {plural(analysis.frames, 'frame')}, "
            f"{plural(analysis.segments, 'TCP segment')}, {plural(analysis.flow_count, 'flow')}")
    if analysis.skipped:
        text += "; skipped " + ", ".join(f"{n} {why}" for why, n in sorted(analysis.skipped.items()))
    if violations is None:
        violations = sum(f.violation_count for f in analysis.flows)
    if violations:
        text += (f"; {plural(violations, 'violation')} (segments that fit no RFC 9293 transition; "
                 "see --flow N)")
    return text


def _rel(value: int, base: Optional[int]) -> str:
    return "" if base is None else str((value - base) % MOD)


def flow_detail(flow: Flow) -> str:
    """Every segment of one flow with both endpoints' states after it; '*' marks a transition."""
    rec = flow_record(flow)
    head = [f"flow {rec['flow']}: client {rec['client']} -> server {rec['server']} "
            f"(direction {rec['direction']}), {rec['packets']} packets, close: {CLOSE_TEXT[rec['close']]}",
            f"handshake: {handshake_cell(rec)}",
            f"client: {' > '.join(rec['client_states'])}",
            f"server: {' > '.join(rec['server_states'])}", ""]
    t0 = flow.first_ts
    rows = []
    for row in flow.rows or []:
        seg = row.seg
        snd, rcv = (flow.client, flow.server) if row.from_client else (flow.server, flow.client)
        moved = {t.endpoint for t in row.transitions}
        has_ack = bool(seg.flags & Flags.ACK)
        rows.append([
            seg.frame, f"{(seg.ts - t0) * 1000:.3f}",
            "client->server" if row.from_client else "server->client",
            tcpdump_flags(seg.flags), flag_names(seg.flags),
            _rel(seg.seq, snd.base), _rel(seg.ack, rcv.base) if has_ack else "",
            seg.seq, seg.ack if has_ack else "", seg.payload_len, seg.window,
            row.client_state.value + (" *" if "client" in moved else ""),
            row.server_state.value + (" *" if "server" in moved else ""),
            "; ".join(row.notes)])
    headers = ["frame", "ms", "direction", "flags", "names", "seq", "ack", "seq (abs)", "ack (abs)",
               "len", "win", "client", "server", "notes"]
    lines = head + [tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True), "",
                    "transitions (* above):"]
    for t in rec["transitions"]:
        where = f"frame {t['frame']}" if t["frame"] is not None else "timer"
        lines.append(f"  {(t['ts'] - t0) * 1000:10.3f} ms  {where:>11}  {t['endpoint']:6}  "
                     f"{t['from']} -> {t['to']}  ({t['cause']})")
    if rec["violations"]:
        lines.append(f"violations ({rec['violation_count']}):")
        for v in rec["violations"]:
            lines.append(f"  frame {v['frame']}  {v['endpoint']} in {v['state']}: {v['reason']}")
    return "\n".join(lines)


def write_records(records: Iterable[Dict[str, Any]], fmt: str, out: TextIO, header: bool = True,
                  columns: Sequence[str] = DEFAULT_COLUMNS) -> None:
    """Write records as they come (a generator keeps only one record in memory for jsonl and csv)."""
    if fmt == "jsonl":
        for rec in records:
            out.write(json.dumps(rec, separators=(",", ":")) + "\n")
    elif fmt == "json":
        # One object per line inside the array: json's C encoder (no indent) is ~10x faster than the
        # indenting pure-Python one, and a line per flow still reads and diffs well.
        out.write("[")
        for i, rec in enumerate(records):
            out.write(("\n" if i == 0 else ",\n") + json.dumps(rec, separators=(",", ":")))
        out.write("\n]\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        if header:
            writer.writerow(CSV_COLUMNS)
        for rec in records:
            writer.writerow(csv_row(rec))
    else:
        out.write(flow_table(records, columns) + "\n")
