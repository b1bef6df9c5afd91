"""Several files in the text formats with worker processes (files/textjobs.py): the workers write the
engine's text, the parent copies it. The same bytes with one process or several, the same records as the
Python objects say, and the parent's memory does not hold the records."""

from __future__ import annotations

import io
import json
import shutil
import sys
import tracemalloc
from pathlib import Path
from typing import List

import pytest

import handshake_probe
from handshake_probe.cli import main
from handshake_probe.views.table import write_records

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
BIG = CAPTURES / "echo-port-reuse-3000.pcap"          # 3,000 flows


@pytest.fixture(scope="module")
def capture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every capture of captures/ in one directory, with a file cut mid-record (an error after some
    flows) and one that is no capture."""
    d = tmp_path_factory.mktemp("many")
    for i, path in enumerate(sorted(CAPTURES.rglob("*.pcap"))):
        shutil.copy(path, d / f"{i:02d}-{path.name}")
    (d / "50-cut.pcap").write_bytes(BIG.read_bytes()[:1_000_003])
    (d / "51-text.pcap").write_text("not a capture\n")
    return d


def run(args: List[str], capsysbinary: pytest.CaptureFixture) -> tuple:
    code = main(args)
    out, err = capsysbinary.readouterr()
    return code, out, err


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json", "table"])
def test_one_process_and_two_write_the_same_bytes(capture_dir: Path, fmt: str, capsysbinary):
    one = run(["analyze", str(capture_dir), "--format", fmt, "--jobs", "1", "--wide"], capsysbinary)
    two = run(["analyze", str(capture_dir), "--format", fmt, "--jobs", "2", "--wide"], capsysbinary)
    assert one == two
    code, out, err = two
    assert code == 2 and len(out) > 100_000
    lines = err.decode().splitlines()
    assert len(lines) == 2 and "51-text.pcap: not a pcap" in lines[0] and "50-cut.pcap" in lines[1]
    assert "flows before it are reported" in lines[1]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_the_engines_text_equals_the_records_written_from_python(capture_dir: Path, fmt: str, capsysbinary):
    """The other writer as the oracle: each file's records as Python objects (the engine's dicts), in
    flow order, the file named, written by views.table.write_records with json/csv."""
    paths = sorted(str(p) for p in capture_dir.glob("*.pcap") if not p.name.startswith("51-"))
    code, out, _ = run(["analyze", *paths, "--format", fmt, "--jobs", "2"], capsysbinary)
    assert code == 2                                   # the cut file
    records = []
    for path in paths:
        recs = sorted(handshake_probe.analyze(path, streaming=True), key=lambda r: r["flow"])
        for rec in recs:
            rec["file"] = path
        records += recs
    expected = io.StringIO()
    write_records(records, fmt, expected)
    assert len(records) > 3000 and out.decode() == expected.getvalue()


def test_the_parent_holds_no_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """With --jobs 2 the parent only copies the workers' text: its Python allocations at their peak
    stay far below the output's size (33 MB) (holding the records, as dicts or as text, would exceed it)."""
    for i in range(3):
        shutil.copy(BIG, tmp_path / f"part-{i}.pcap")
    sink = tmp_path / "out.jsonl"
    with open(tmp_path / "warm.jsonl", "w") as fh:      # imports done before measuring (a few MB)
        monkeypatch.setattr(sys, "stdout", fh)
        assert main(["analyze", str(CAPTURES / "echo-ipv6.pcap"), str(CAPTURES / "closed-port.pcap"),
                     "--format", "jsonl", "--jobs", "2"]) == 0
    with open(sink, "w") as fh:
        monkeypatch.setattr(sys, "stdout", fh)
        tracemalloc.start()
        try:
            assert main(["analyze", str(tmp_path), "--format", "jsonl", "--jobs", "2"]) == 0
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    size = sink.stat().st_size
    lines = sink.read_bytes().splitlines()
    assert len(lines) == 9000 and json.loads(lines[-1])["file"] == str(tmp_path / "part-2.pcap")
    # Measured: ~2 MB here (a 1 MB copy block), 226 MB when the parent unpickled every record.
    assert size > 30_000_000 and peak < size // 8, (peak, size)
