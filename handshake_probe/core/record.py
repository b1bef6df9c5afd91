"""A flow as the output contract's plain dict (the JSON object of `--format jsonl`), and its CSV row."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from handshake_probe.core.flow import Flow

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
        "transitions": [
            {"ts": t.ts, "frame": t.frame, "endpoint": t.endpoint, "from": t.from_state.value,
             "to": t.to_state.value, "cause": t.cause.value}
            for t in flow.transitions],
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
