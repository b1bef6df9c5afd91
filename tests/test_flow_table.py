"""Streaming mode of the flow table: finished flows leave memory, in the order they finish."""

from __future__ import annotations

import json
from pathlib import Path

import handshake_probe
from handshake_probe.analysis import analyze_file
from handshake_probe.cli import main
from handshake_probe.core.flows import FlowTable
from handshake_probe.core.record import flow_record
from tests.talk import Talk

CAPTURES = Path(__file__).resolve().parents[1] / "captures"


def streaming_talk(**limits) -> tuple[Talk, list]:
    done: list = []
    t = Talk()
    t.table = FlowTable(on_finished=done.append, **limits)
    return t, done


def test_ended_flow_leaves_after_linger_and_open_flows_stay():
    t, done = streaming_talk(linger=5.0, idle_timeout=300.0)
    t.handshake()
    t.c("FA")
    t.s("FA")
    t.c("A")
    other = Talk(client=("10.0.0.7", 7))
    other.table = t.table
    other.ts = t.ts
    other.handshake()                      # an open flow, still talking
    for _ in range(1100):                  # enough packets for a sweep, 10 s later in capture time
        other.c("A", dt=0.01)
    assert [f.number for f in done] == [1]
    assert t.table.flows == [] and t.table.count == 2
    t.table.finish()
    assert [f.number for f in done] == [1, 2]


def test_idle_flow_is_finished_after_idle_timeout():
    t, done = streaming_talk(idle_timeout=1.0)
    t.handshake()                          # never closes
    other = Talk(client=("10.0.0.7", 7))
    other.table = t.table
    other.ts = t.ts + 2.0
    for _ in range(1100):
        other.c("A", dt=0.001)
    assert done and done[0].number == 1 and done[0].close_kind == "none"


def test_max_open_evicts_least_recently_active():
    t, done = streaming_talk(max_open=10)
    for i in range(30):
        x = Talk(client=("10.0.1.%d" % i, 1000 + i))
        x.table = t.table
        x.ts = 100.0 + i
        x.c("S")
    for _ in range(1100):
        t.c("S", dt=0.0)                   # same SYN again: a retransmission, triggers sweeps
    assert t.table.evicted == 21 and len(done) == 21          # 31 open, 10 allowed
    assert [f.number for f in done] == list(range(1, 22))     # the least recently active first


def test_reused_port_is_remembered_after_the_flow_left():
    t, done = streaming_talk(linger=0.5)
    t.handshake()
    t.c("RA")
    filler = Talk(client=("10.0.0.7", 7))
    filler.table, filler.ts = t.table, t.ts + 1.0
    for _ in range(1100):
        filler.c("A", dt=0.0)
    assert done[0].number == 1
    t.new_client_isn(99_999)
    t.c("S", dt=5.0)
    assert t.table._open[next(k for k in t.table._open if 40000 in k)].reused_port


def test_streamed_jsonl_holds_the_same_records_as_the_kept_ones(capsys):
    path = str(CAPTURES / "echo-port-reuse-3000.pcap")
    assert main(["analyze", path, "--format", "jsonl"]) == 0
    streamed = sorted((json.loads(l) for l in capsys.readouterr().out.splitlines()), key=lambda r: r["flow"])
    kept = list(handshake_probe.analyze(path, streaming=False))     # the engine, keeping every flow
    assert len(streamed) == 3000 and streamed == kept
    # and the Python core's records, but for the fields only the engine has
    core = [flow_record(f) for f in analyze_file(path).flows]
    assert [{k: v for k, v in r.items() if k != "tunnels"} for r in streamed] == core


def test_eviction_warns_in_one_line(capsys, tmp_path):
    from bench.gen_capture import generate
    path = str(tmp_path / "busy.pcap")
    generate(path, 3000)                       # overlapping flows, as on a busy server
    code = main(["analyze", path, "--format", "csv", "--max-open", "2"])
    out, err = capsys.readouterr()
    assert code == 0 and out.splitlines()[0].startswith("flow,client,server")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "flows finished early: more than --max-open 2 were open at once" in lines[0]
