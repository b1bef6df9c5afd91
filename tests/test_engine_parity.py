"""The migration aid: the Rust engine against the Python core, record for record.

Until the Python core is deleted, every capture in `captures/`, every trace in `../shared/conformance`
(tunnels included), the broken-file corpus and hypothesis-generated segment streams go through both,
and the records (the JSON contract), the JSON Lines text, the counters, the warnings and the error
must be identical, in both the streaming and the keep-everything mode.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import handshake_probe
from handshake_probe.analysis import analyze_file
from handshake_probe.core.record import flow_record

from tests.test_broken_files import CASES, write

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = ROOT.parent / "shared" / "conformance"
INPUTS = sorted(p for p in (ROOT / "captures").rglob("*") if p.suffix in (".pcap", ".pcapng"))
if CONFORMANCE.is_dir():
    INPUTS += sorted(p for p in CONFORMANCE.rglob("traces/*") if p.is_file())


def python_side(path: str, streaming: bool, **opts: Any) -> Tuple[List[Dict[str, Any]], Any]:
    records: List[Dict[str, Any]] = []
    if streaming:
        a = analyze_file(path, on_finished=lambda f: records.append(flow_record(f)), **opts)
    else:
        a = analyze_file(path, **opts)
        records = [flow_record(f) for f in a.flows]
    return records, a


def engine_side(path: str, streaming: bool, **opts: Any) -> Tuple[List[Dict[str, Any]], Any]:
    a = handshake_probe.analyze(path, streaming=streaming, **opts)
    return list(a), a


def assert_same(path: str, streaming: bool, **opts: Any) -> int:
    ours, a = engine_side(path, streaming, **opts)
    ref, b = python_side(path, streaming, **opts)
    assert len(ours) == len(ref), f"{path}: {len(ours)} flows, Python core {len(ref)}"
    for x, y in zip(ours, ref):
        assert x == y, f"{path}: flow {y['flow']} differs"
        assert list(x) == list(y), "key order is part of the contract"
    assert (a.frames, a.segments, dict(a.skipped)) == (b.frames, b.segments, dict(b.skipped))
    assert a.warnings == b.warnings
    assert a.error == b.error
    assert (a.flow_count, a.evicted, a.damaged) == (b.flow_count, b.evicted, b.damaged)
    return len(ours)


@pytest.mark.parametrize("path", INPUTS, ids=[p.name for p in INPUTS])
@pytest.mark.parametrize("streaming", [False, True], ids=["all", "streaming"])
def test_records_identical(path: Path, streaming: bool) -> None:
    assert_same(str(path), streaming)
    assert_same(str(path), streaming, check_checksums=True, msl=1.0)


@pytest.mark.parametrize("path", INPUTS[:8], ids=[p.name for p in INPUTS[:8]])
def test_small_limits_identical(path: Path) -> None:
    """Eviction and lingering: which flow leaves when, and so the output order, must agree too."""
    assert_same(str(path), True, max_open=2, linger=0.0001, idle_timeout=0.001)


@pytest.mark.parametrize("path", INPUTS[:6], ids=[p.name for p in INPUTS[:6]])
def test_jsonl_text_identical(path: Path) -> None:
    ref, _ = python_side(str(path), True)
    expected = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in ref)
    a = handshake_probe.analyze(str(path))
    text = b""
    while (chunk := a.chunk("jsonl", 3)) is not None:
        text += chunk
    assert text.decode() == expected


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_files_identical(tmp_path: Path, case: Any) -> None:
    path = write(tmp_path, case)
    assert_same(str(path), True)


# --- hypothesis: random segment streams over a few 4-tuples, as a raw-IPv4 pcap ---------------------

FLAG_CHOICES = [0x02, 0x12, 0x10, 0x18, 0x11, 0x14, 0x04, 0x01, 0x19, 0x06, 0x03]
SEQS = st.one_of(st.sampled_from([0, 1, 1000, 1001, 5000, 5001, 0xFFFFFFFF, 0xFFFFFFF0, 7]),
                 st.integers(0, 0xFFFFFFFF))
segment = st.tuples(st.integers(0, 2), st.booleans(), st.sampled_from(FLAG_CHOICES), SEQS, SEQS,
                    st.sampled_from([0, 1, 5, 100]), st.sampled_from([0, 1, 512, 65535]),
                    st.floats(0, 40))


def stream_pcap(segments: List[Tuple[Any, ...]]) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)]
    ts = 1_700_000_000.0
    for tuple_no, from_client, flags, seq, ack, plen, win, dt in segments:
        ts += dt
        cport, sport = 40000 + tuple_no, 80 if tuple_no != 2 else 50000
        src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
        ports = (cport, sport)
        if not from_client:
            src, dst, ports = dst, src, ports[::-1]
        tcp = struct.pack("!HHIIBBHHH", *ports, seq, ack, 5 << 4, flags, win, 0, 0) + b"x" * plen
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, src, dst)
        sec, usec = divmod(round(ts * 1_000_000), 1_000_000)
        out.append(struct.pack("<IIII", sec, usec, len(ip + tcp), len(ip + tcp)) + ip + tcp)
    return b"".join(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(segment, min_size=1, max_size=40))
def test_random_streams_identical(tmp_path: Path, segments: List[Tuple[Any, ...]]) -> None:
    path = tmp_path / "random.pcap"
    path.write_bytes(stream_pcap(segments))
    assert_same(str(path), False)
    assert_same(str(path), True, linger=1.0, idle_timeout=20.0, max_open=2)
