"""A flow as the output contract's plain dict (the JSON object of `--format jsonl`), its CSV row, and
(migration aid) a kept flow's per-segment rows as the engine hands them out."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from handshake_probe.core.endpoint import MOD
from handshake_probe.core.flow import Flow, Transition
from handshake_probe.core.segment import Flags, flag_names, tcpdump_flags

# The flat columns of `--format csv`, in order (documented in the README's schema section).
CSV_COLUMNS = ["flow", "client", "server", "direction", "packets", "first_ts", "last_ts", "duration_ms",
               "handshake", "syn_to_synack_ms", "synack_to_ack_ms", "syn_count", "close",
               "client_final", "server_final", "client_states", "server_states", "transitions",
               "violations", "conn_state", "history", "completeness", "anomalies", "file"]


def _ms(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else round((b - a) * 1000.0, 3)


def flow_record(flow: Flow) -> Dict[str, Any]:
    """The JSON object for one flow. Keys are part of the project's output contract: add, never rename."""
    hs = flow.handshake
    rec: Dict[str, Any] = {
        "flow": flow.number,
        "client": flow.client.label(),
        "server": flow.server.label(),
        "direction": flow.direction,
        "packets": flow.packets,
        "client_packets": flow.client.packets,
        "server_packets": flow.server.packets,
        "client_bytes": flow.client.payload_bytes,
        "server_bytes": flow.server.payload_bytes,
        "first_ts": flow.first_ts,
        "last_ts": flow.last_ts,
        "duration_ms": _ms(flow.first_ts, flow.last_ts),
        "client_states": [s.value for s in flow.client.path],
        "server_states": [s.value for s in flow.server.path],
        "transitions": [transition_record(t) for t in flow.transitions],
        "handshake": {
            "complete": hs.complete,
            "status": hs.status,
            "syn_to_synack_ms": _ms(hs.syn_ts, hs.synack_ts),
            "synack_to_ack_ms": _ms(hs.synack_ts, hs.ack_ts),
            "syn_count": hs.syn_count,
            "synack_count": hs.synack_count,
        },
        "close": flow.close_kind,
        "violations": [
            {"ts": v.ts, "frame": v.frame, "endpoint": v.endpoint, "state": v.state.value,
             "cue": v.cue, "reason": v.reason}
            for v in flow.violations],
        "violation_count": flow.violation_count,
        "reused_port": flow.reused_port,
    }
    for observer in flow.observers:
        rec.update(observer.record(flow))
    return rec


def transition_record(t: Transition) -> Dict[str, Any]:
    """One transition as records and rows carry it (src/rows.rs transition_value)."""
    return {"ts": t.ts, "frame": t.frame, "endpoint": t.endpoint, "from": t.from_state.value,
            "to": t.to_state.value, "cause": t.cause.value}


def rows_of(flow: Flow) -> List[Dict[str, Any]]:
    """MIGRATION AID, mirrors src/rows.rs `rows_value`: a kept flow's segments as the engine's boundary
    hands them out (`Analysis.rows(n)`), so that the views read the same dicts whichever core ran.
    It goes when the Python core goes; change it only together with src/rows.rs.

    One dict per segment: both endpoints' states after it, the transitions it caused and its notes.
    rel_seq/rel_ack are relative to each side's FINAL origin (ISN, or first seq - 1), as Wireshark
    does, so a row is only final once the flow is; None without an origin (and ack/rel_ack without
    the ACK bit). An empty list when the flow kept no rows (as rows_value)."""
    client, server = flow.client, flow.server
    rows: List[Dict[str, Any]] = []
    for row in flow.rows or ():
        seg = row.seg
        snd, rcv = (client, server) if row.from_client else (server, client)
        has_ack = bool(seg.flags & Flags.ACK)
        rows.append({
            "frame": seg.frame,
            "ts": seg.ts,
            "from_client": row.from_client,
            "flags": int(seg.flags),
            "tcpdump_flags": tcpdump_flags(seg.flags),
            "flag_names": flag_names(seg.flags),
            "seq": seg.seq,
            "ack": seg.ack if has_ack else None,
            "rel_seq": None if snd.base is None else (seg.seq - snd.base) % MOD,
            "rel_ack": None if not has_ack or rcv.base is None else (seg.ack - rcv.base) % MOD,
            "len": seg.payload_len,
            "window": seg.window,
            "client_state": row.client_state.value,
            "server_state": row.server_state.value,
            "transitions": [transition_record(t) for t in row.transitions],
            "notes": list(row.notes),
        })
    return rows


def csv_row(record: Dict[str, Any]) -> List[Any]:
    """Flatten a flow record into CSV_COLUMNS."""
    hs = record["handshake"]
    flat = dict(record)
    flat.update(
        handshake=hs["status"],
        syn_to_synack_ms=hs["syn_to_synack_ms"],
        synack_to_ack_ms=hs["synack_to_ack_ms"],
        syn_count=hs["syn_count"],
        client_final=record["client_states"][-1],
        server_final=record["server_states"][-1],
        client_states=">".join(record["client_states"]),
        server_states=">".join(record["server_states"]),
        transitions=len(record["transitions"]),
        violations=record["violation_count"],
        anomalies=anomaly_text(record.get("anomalies")),
    )
    return ["" if flat.get(c) is None else flat[c] for c in CSV_COLUMNS]


def anomaly_text(counts: Optional[Dict[str, int]]) -> str:
    """`retransmission=2;duplicate_ack=1`: the non-zero anomaly counts, for one-cell outputs."""
    return ";".join(f"{k}={n}" for k, n in (counts or {}).items() if n)
