"""Real traces from other projects (../shared/conformance): every one analyzed without an error, and the
TCP flows agree with tshark's stream summaries (same streams, same endpoints, same packets each way)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Dict, List

import pytest

import handshake_probe

CONFORMANCE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"
TRACES = sorted((CONFORMANCE / "traces").glob("*")) if CONFORMANCE.is_dir() else []

pytestmark = pytest.mark.skipif(not CONFORMANCE.is_dir(), reason=f"{CONFORMANCE} is absent")


def tshark_streams(trace: Path) -> List[Dict[str, str]]:
    name = trace.name.rsplit(".", 1)[0]
    with open(CONFORMANCE / "tshark" / f"{name}.tcp-streams.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _label(addr: str, port: str) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def test_manifest_lists_every_trace():
    manifest = json.loads((CONFORMANCE / "manifest.json").read_text())
    assert {Path(m["file"]).name for m in manifest} == {t.name for t in TRACES}
    assert len(TRACES) == 21


@pytest.mark.parametrize("trace", TRACES, ids=[t.name for t in TRACES])
def test_trace_agrees_with_tshark_streams(trace: Path):
    analysis = handshake_probe.analyze(str(trace), streaming=False)     # records in flow order
    records = list(analysis)
    assert analysis.error is None and not analysis.damaged, analysis.error or analysis.warnings
    streams = tshark_streams(trace)
    # tshark numbers streams in order of first packet, as we number flows.
    assert len(records) == len(streams), f"{len(records)} flows, tshark has {len(streams)} streams"
    for rec, row in zip(records, streams):
        a, b = _label(row["A_addr"], row["A_port"]), _label(row["B_addr"], row["B_port"])
        assert {rec["client"], rec["server"]} == {a, b}, (rec["flow"], row["stream"])
        a2b, b2a = int(row["pkts_A2B"]), int(row["pkts_B2A"])
        ours = (rec["client_packets"], rec["server_packets"])
        assert ours == ((a2b, b2a) if rec["client"] == a else (b2a, a2b)), (rec["flow"], row["stream"])
        payload = (int(row["payload_bytes_A2B"]), int(row["payload_bytes_B2A"]))
        ours_bytes = (rec["client_bytes"], rec["server_bytes"])
        assert ours_bytes == (payload if rec["client"] == a else payload[::-1]), (rec["flow"], row["stream"])
        # the SYN sender is the client whenever tshark saw a SYN (without ACK)
        if int(row["SYN_A2B"]) and not int(row["SYN_B2A"]):
            assert rec["client"] == a and rec["direction"] == "observed"
