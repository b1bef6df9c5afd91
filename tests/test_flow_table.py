"""Streaming mode of the flow table (the engine's `streaming=True`): finished flows leave memory, in the
order they finish."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Tuple

import handshake_probe
from handshake_probe.cli import main
from tests.talk import Record, Talk, Wire

CAPTURES = Path(__file__).resolve().parents[1] / "captures"


def streaming_talk(**limits: Any) -> Tuple[Talk, Wire]:
    """A conversation in a streaming engine with these limits (linger, idle_timeout, max_open)."""
    wire = Wire(msl=30.0, streaming=True, **limits)
    return Talk(wire=wire), wire


def done(wire: Wire) -> List[Record]:
    """The records the engine handed out so far (each flow once, in the order it finished)."""
    return wire.finished_so_far()


def test_ended_flow_leaves_after_linger_and_open_flows_stay():
    t, wire = streaming_talk(linger=5.0, idle_timeout=300.0)
    t.handshake()
    t.c("FA")
    t.s("FA")
    t.c("A")
    other = Talk(client=("10.0.0.7", 7), wire=wire, t0=t.ts)
    other.handshake()                      # an open flow, still talking
    for _ in range(1100):                  # enough packets for a sweep, 10 s later in capture time
        other.c("A", dt=0.01)
    assert [f["flow"] for f in done(wire)] == [1]
    assert wire.engine.flow_count == 2
    rest = wire.finish()                   # the open flow is handed out at the end, not before
    assert [f["flow"] for f in done(wire) + rest] == [1, 2]


def test_idle_flow_is_finished_after_idle_timeout():
    t, wire = streaming_talk(idle_timeout=1.0)
    t.handshake()                          # never closes
    other = Talk(client=("10.0.0.7", 7), wire=wire, t0=t.ts + 2.0)
    for _ in range(1100):
        other.c("A", dt=0.001)
    finished = done(wire)
    assert finished and finished[0]["flow"] == 1 and finished[0]["close"] == "none"


def test_max_open_evicts_least_recently_active():
    t, wire = streaming_talk(max_open=10)
    for i in range(30):
        x = Talk(client=("10.0.1.%d" % i, 1000 + i), wire=wire, t0=100.0 + i)
        x.c("S")
    for _ in range(1100):
        t.c("S", dt=0.0)                   # same SYN again: a retransmission, triggers sweeps
    assert wire.engine.evicted == 21 and len(done(wire)) == 21          # 31 open, 10 allowed
    assert [f["flow"] for f in done(wire)] == list(range(1, 22))       # the least recently active first


def test_reused_port_is_remembered_after_the_flow_left():
    t, wire = streaming_talk(linger=0.5)
    t.handshake()
    t.c("RA")
    filler = Talk(client=("10.0.0.7", 7), wire=wire, t0=t.ts + 1.0)
    for _ in range(1100):
        filler.c("A", dt=0.0)
    assert [f["flow"] for f in done(wire)] == [1]            # flow 1 left the table
    t.new_client_isn(99_999)
    syn = t.c("S", dt=5.0)
    new = [r for r in wire.finish() if r["client"] == "10.0.0.1:40000"]
    assert len(new) == 1 and new[0]["flow"] == 3 and new[0]["reused_port"] is True
    assert new[0]["first_ts"] == syn.ts and new[0]["anomalies"]["reused_ports"] == 1


def test_streamed_jsonl_holds_the_same_records_as_the_kept_ones(capsys):
    path = str(CAPTURES / "echo-port-reuse-3000.pcap")
    assert main(["analyze", path, "--format", "jsonl"]) == 0
    streamed = sorted((json.loads(l) for l in capsys.readouterr().out.splitlines()), key=lambda r: r["flow"])
    kept = list(handshake_probe.analyze(path, streaming=False))
    assert len(streamed) == 3000 and streamed == kept


def test_eviction_warns_in_one_line(capsys, tmp_path):
    from bench.gen_capture import generate
    path = str(tmp_path / "busy.pcap")
    generate(path, 3000)                       # overlapping flows, as on a busy server
    code = main(["analyze", path, "--format", "csv", "--max-open", "2"])
    out, err = capsys.readouterr()
    assert code == 0 and out.splitlines()[0].startswith("flow,client,server")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "flows finished early: more than --max-open 2 were open at once" in lines[0]
