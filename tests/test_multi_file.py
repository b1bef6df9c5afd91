"""Several files in one `analyze`: processes in parallel, output in file order, the file named per record."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

import handshake_probe
from handshake_probe import _engine
from handshake_probe.cli import main
from handshake_probe.render import write_records

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
A, B = CAPTURES / "echo-client-close.pcap", CAPTURES / "closed-port.pcap"


def test_jsonl_keeps_file_order_and_names_the_file(capsys):
    assert main(["analyze", str(B), str(A), "--format", "jsonl", "--jobs", "2"]) == 0
    recs = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [(r["file"], r["close"]) for r in recs] == [(str(B), "rejected"), (str(A), "fin")]


def test_directory_expands_to_its_captures_sorted(tmp_path: Path, capsys):
    for f in (A, B):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "notes.txt").write_text("not a capture")
    assert main(["analyze", str(tmp_path), "--format", "csv", "-j", "2"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [Path(r["file"]).name for r in rows] == ["closed-port.pcap", "echo-client-close.pcap"]


def test_json_array_and_table_per_file(capsys):
    assert main(["analyze", str(A), str(B), "--format", "json"]) == 0
    assert [r["file"] for r in json.loads(capsys.readouterr().out)] == [str(A), str(B)]
    assert main(["analyze", str(A), str(B)]) == 0
    out = capsys.readouterr().out
    assert out.index(f"== {A}") < out.index(f"== {B}") and "1 flow\n" in out


def test_a_broken_file_does_not_lose_the_others(tmp_path: Path, capsys):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(A.read_bytes()[:-7])
    code = main(["analyze", str(A), str(bad), str(B), "--format", "jsonl", "-j", "2"])
    out, err = capsys.readouterr()
    files = [json.loads(l)["file"] for l in out.splitlines()]
    assert code == 2 and files == [str(A), str(bad), str(B)]
    assert len(err.strip().splitlines()) == 1 and str(bad) in err and "byte offset" in err


@pytest.mark.parametrize("path", sorted(CAPTURES.rglob("*.pcap")), ids=lambda p: p.name)
def test_csv_of_one_file_and_of_several_agree(path: Path):
    """One file's CSV is written by the engine itself (Analysis.chunk), several files' by render.csv_row
    from their records: two writers of the same cells, which must agree on every capture."""
    engine = handshake_probe.analyze(str(path))
    text = _engine.csv_header() + "\n"
    while (chunk := engine.chunk("csv")) is not None:
        text += chunk.decode()
    out = io.StringIO()
    write_records(handshake_probe.analyze(str(path)), "csv", out)
    assert out.getvalue() == text
    assert len(text.splitlines()) >= 2 and text.splitlines()[0].split(",") == handshake_probe.CSV_COLUMNS


def test_flow_needs_one_file(capsys):
    assert main(["analyze", str(A), str(B), "--flow", "1"]) == 2
    assert "--flow N needs exactly one file" in capsys.readouterr().err


def test_each_files_summary_keeps_its_violations(capsys):
    """Each file's flows stream out of its worker's flow table; the summary line still counts the
    violations (it once summed over the empty list of flows kept and said nothing)."""
    violating = CAPTURES / "rst-out-of-window.pcap"
    assert main(["analyze", str(violating)]) == 0
    alone = capsys.readouterr().out.splitlines()[-1]
    assert alone.endswith("1 flow; 1 violation (segments that fit no RFC 9293 transition; see --flow N)")
    assert main(["analyze", str(A), str(violating), "--jobs", "2"]) == 0
    summaries = [l for l in capsys.readouterr().out.splitlines() if l.startswith(str(CAPTURES))]
    assert summaries == [f"{A}: 10 frames, 10 TCP segments, 1 flow", alone]


def test_stdin_and_a_wrong_path_among_several_files(tmp_path: Path):
    """`-` is one of the files (named <stdin>); a wrong path costs one line and exit 2, not the others."""
    import os
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "handshake_probe", "analyze", str(A), "-", str(tmp_path / "nope"),
                           "--format", "jsonl"], input=B.read_bytes(), capture_output=True, timeout=60,
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    files = [json.loads(l)["file"] for l in done.stdout.decode().splitlines()]
    assert files == [str(A), "<stdin>"] and done.returncode == 2
    assert done.stderr.decode() == f"handshake-probe: error: cannot open {tmp_path / 'nope'}: No such file or directory\n"
