"""`--format parquet` and `--format arrow`: the same records as `jsonl`, field for field, on every capture."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from handshake_probe.cli import main  # noqa: E402
from handshake_probe.views import arrow  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"
CONFORMANCE = ROOT.parent / "shared" / "conformance"
A, B = CAPTURES / "echo-client-close.pcap", CAPTURES / "closed-port.pcap"
MANY = CAPTURES / "echo-port-reuse-3000.pcap"      # 3000 flows


def capture_files() -> List[Path]:
    found = sorted(p for p in CAPTURES.rglob("*") if p.suffix in (".pcap", ".pcapng"))
    if CONFORMANCE.is_dir():
        found += sorted(p for p in CONFORMANCE.rglob("*") if p.suffix in (".pcap", ".pcapng"))
    return found


def jsonl(args: List[str], capsys: pytest.CaptureFixture[str]) -> List[Dict[str, Any]]:
    main(["analyze", *args, "--format", "jsonl"])
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def assert_same_records(rows: List[Dict[str, Any]], records: List[Dict[str, Any]]) -> None:
    """Parquet rows against JSON records: every JSON key with an equal value; the columns that are not
    in this JSON (`file` for one capture, `negotiation` until the engine writes it) are null; the version."""
    assert len(rows) == len(records)
    for row, rec in zip(rows, records):
        assert row.pop("schema_version") == arrow.SCHEMA_VERSION
        extra = set(row) - set(rec)
        assert extra <= {"file", "negotiation"} and all(row[k] is None for k in extra), extra
        assert {k: row[k] for k in rec} == rec


@pytest.mark.parametrize("path", capture_files(), ids=lambda p: p.name)
def test_parquet_and_jsonl_agree_on_every_capture(path: Path, tmp_path: Path, capsys) -> None:
    records = jsonl([str(path)], capsys)
    out = tmp_path / "flows.parquet"
    assert main(["analyze", str(path), "--format", "parquet", "-o", str(out)]) in (0, 2)
    table = pq.read_table(out)
    assert table.schema.equals(arrow.schema(), check_metadata=False)
    assert table.schema.metadata[b"handshake_probe.schema_version"] == str(arrow.SCHEMA_VERSION).encode()
    assert_same_records(table.to_pylist(), records)
    if CONFORMANCE in path.parents:
        assert records, "every conformance trace has flows"


def test_several_files_with_jobs_name_the_file(tmp_path: Path, capsys) -> None:
    records = jsonl([str(B), str(A), str(MANY), "--jobs", "2"], capsys)
    out = tmp_path / "flows.parquet"
    assert main(["analyze", str(B), str(A), str(MANY), "--jobs", "2", "--format", "parquet", "-o", str(out)]) == 0
    rows = pq.read_table(out).to_pylist()
    assert [r["file"] for r in rows][:2] == [str(B), str(A)] and len(rows) == 3002
    assert_same_records(rows, records)


def test_rows_are_written_in_row_groups_as_flows_come(tmp_path: Path, monkeypatch) -> None:
    """Memory holds at most one row group: 3000 flows with groups of 1000 are 3 groups of 1000."""
    monkeypatch.setattr(arrow, "ROW_GROUP_ROWS", 1000)
    out = tmp_path / "flows.parquet"
    assert main(["analyze", str(MANY), "--format", "parquet", "-o", str(out)]) == 0
    meta = pq.ParquetFile(out).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [1000, 1000, 1000]


def test_a_broken_capture_keeps_the_flows_before_the_fault(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(A.read_bytes()[:-7])
    out = tmp_path / "flows.parquet"
    assert main(["analyze", str(bad), "--format", "jsonl"]) == 2
    text_out, text_err = capsys.readouterr()
    assert main(["analyze", str(bad), "--format", "parquet", "-o", str(out)]) == 2
    assert capsys.readouterr().err == text_err and "byte offset" in text_err and str(bad) in text_err
    assert_same_records(pq.read_table(out).to_pylist(), [json.loads(l) for l in text_out.splitlines()])
    # a file that is no capture: one line, no Parquet file, exit 2
    notes = tmp_path / "notes.pcap"
    notes.write_text("not a capture")
    assert main(["analyze", str(notes), "--format", "parquet", "-o", str(tmp_path / "none.parquet")]) == 2
    assert capsys.readouterr().err == f"handshake-probe: error: {notes}: not a pcap or pcapng file\n"
    assert not (tmp_path / "none.parquet").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_arrow_stream_through_a_pipe_into_duckdb(capsys) -> None:
    """`analyze FILE --format arrow | python -c ...`: the stream read from a pipe, by pyarrow and by DuckDB."""
    duckdb = pytest.importorskip("duckdb")
    records = jsonl([str(MANY)], capsys)
    produce = subprocess.Popen([sys.executable, "-m", "handshake_probe", "analyze", str(MANY), "--format", "arrow"],
                               stdout=subprocess.PIPE, cwd=ROOT)
    assert produce.stdout is not None
    reader = pa.ipc.open_stream(produce.stdout)
    counts = duckdb.sql("SELECT close, count(*) AS n FROM reader GROUP BY close ORDER BY close").fetchall()
    assert produce.wait(timeout=60) == 0
    expected: Dict[str, int] = {}
    for r in records:
        expected[r["close"]] = expected.get(r["close"], 0) + 1
    assert counts == sorted(expected.items()) and sum(expected.values()) == 3000
    done = subprocess.run([sys.executable, "-m", "handshake_probe", "analyze", str(A), "--format", "arrow"],
                          capture_output=True, cwd=ROOT, timeout=60)
    assert_same_records(pa.ipc.open_stream(done.stdout).read_all().to_pylist(), jsonl([str(A)], capsys))


def test_arrow_refuses_a_terminal() -> None:
    """Binary on a terminal helps nobody: one line, exit 2."""
    master, slave = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "handshake_probe", "analyze", str(A), "--format", "arrow"],
                              stdout=slave, stderr=subprocess.PIPE, cwd=ROOT, timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert done.returncode == 2
    assert done.stderr.decode().startswith("handshake-probe: error: --format arrow writes a binary Arrow IPC")


@pytest.mark.parametrize("argv, line", [
    (["--format", "parquet"], "--format parquet needs -o FILE"),
    (["--format", "csv", "-o", "x.csv"], "-o FILE is where --format parquet or arrow writes"),
    (["--format", "parquet", "-o", "x.parquet", "--flow", "1"], "--flow N shows one flow's segments"),
])
def test_usage_errors(argv: List[str], line: str, capsys) -> None:
    assert main(["analyze", str(A), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"handshake-probe: error: {line}") and len(err.splitlines()) == 1


def test_without_pyarrow_one_line_names_the_pip_command(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['pyarrow'] = None\n"
            "from handshake_probe.cli import main\n"
            f"sys.exit(main(['analyze', {str(A)!r}, '--format', 'parquet', '-o', {str(tmp_path / 'x.parquet')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 69 and done.stdout == ""
    assert done.stderr == ("handshake-probe: error: --format parquet needs pyarrow: "
                           "pip install 'handshake-probe[parquet]'\n")


NEGOTIATION = {   # every field of issue 12's object (the shared contract and its branch's additions)
    "syn_seen": True, "synack_seen": True,
    "client": {"isn": 4085707645, "window": 65495, "mss": 65495, "window_scale": 7, "sack_permitted": True,
               "timestamps": True, "tsval": 123456, "tfo": {"cookie_request": True, "cookie": None, "data": 0,
                                                             "data_acked": False},
               "mptcp": False, "ecn": {"ece": True, "cwr": True, "ae": False}, "ttl": 64, "df": True,
               "options": "mss,sok,ts,nop,ws", "offer": "mss 65495 ws 7 sack ts",
               "p0f": "4:64+0:0:65495:mss*1,7:mss,sok,ts,nop,ws:df,id+:0", "os": None},
    "server": {"isn": 2737417589, "window": 65483, "mss": 65495, "window_scale": 7, "sack_permitted": True,
               "timestamps": True, "tsval": 654321, "tfo": {"cookie_request": False, "cookie": "0a1b2c3d",
                                                             "data": 0, "data_acked": None},
               "mptcp": False, "ecn": {"ece": True, "cwr": False, "ae": False}, "ttl": 64, "df": True,
               "options": "mss,sok,ts,nop,ws", "offer": "mss 65495 ws 7 sack ts",
               "p0f": "4:64+0:0:65495:mss*1,7:mss,sok,ts,nop,ws:df,id+:0", "os": "Linux 3.11 and newer"},
    "in_effect": {"window_scaling": True, "client_window_scale": 7, "server_window_scale": 7, "sack": True,
                  "timestamps": True, "ecn": True, "tfo": False, "mss_to_server": 65495, "mss_to_client": 65495},
    "warnings": ["window_scale_one_side"],
    "summary": "ws 7/7 sack ts ecn mss 65495/65495",
    "simultaneous_open": None,
}


def _record_with(negotiation: Any) -> Dict[str, Any]:
    import handshake_probe
    rec = next(iter(handshake_probe.analyze(str(A))))
    rec["negotiation"] = negotiation
    return rec


@pytest.mark.parametrize("negotiation", [
    NEGOTIATION,
    {**NEGOTIATION, "server": None, "in_effect": None, "synack_seen": False, "warnings": []},
    {**NEGOTIATION, "simultaneous_open": {"server_syn": NEGOTIATION["server"], "client_synack": NEGOTIATION["client"]}},
], ids=["full", "syn-only", "simultaneous-open"])
def test_the_negotiation_contract_round_trips(negotiation: Dict[str, Any]) -> None:
    """A record carrying issue 12's `negotiation` (its every field) comes back from Arrow as it went in,
    through the JSON reader (the engine's text) and through Python records."""
    rec = _record_with(negotiation)
    line = (json.dumps(rec) + "\n").encode()
    for table in (arrow.table_from_jsonl(line), arrow.table_from_records([rec])):
        (row,) = table.to_pylist()
        assert row.pop("schema_version") == arrow.SCHEMA_VERSION and row.pop("file") is None
        assert row == rec


def test_a_key_outside_the_schema_is_an_error_not_a_dropped_column() -> None:
    rec = _record_with({**NEGOTIATION, "windowscale": 1})
    with pytest.raises(pa.ArrowInvalid):
        arrow.table_from_jsonl((json.dumps(rec) + "\n").encode())
    rec = _record_with(None)
    rec["new_field"] = 1
    with pytest.raises(ValueError):
        arrow.table_from_records([rec])


def test_schema_doc_is_generated_from_the_schema() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "arrow_schema_doc.py"), "--check"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    text = (ROOT / "docs" / "parquet.md").read_text()
    for path, _typ, _doc in arrow.schema_rows():
        assert f"| `{path}` |" in text
    assert "| `negotiation.in_effect.mss_to_client` |" in text and "| `anomalies.window_full` |" in text


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_an_unwritable_output_is_one_line_before_any_work(fmt: str, tmp_path: Path, capsys) -> None:
    target = tmp_path / "missing-dir" / "flows.out"
    assert main(["analyze", str(A), "--format", fmt, "-o", str(target)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"handshake-probe: error: cannot write {target}: No such file or directory\n"


def test_arrow_to_a_file_and_nothing_when_nothing_could_be_read(tmp_path: Path, capsys) -> None:
    out = tmp_path / "flows.arrows"
    assert main(["analyze", str(A), str(B), "--format", "arrow", "-o", str(out)]) == 0
    with pa.ipc.open_stream(out.read_bytes()) as reader:
        rows = reader.read_all().to_pylist()
    assert_same_records(rows, jsonl([str(A), str(B)], capsys))
    header_only = tmp_path / "header-only.pcap"
    header_only.write_bytes(A.read_bytes()[:24 + 8])        # the global header and half a record header
    for fmt, target in (("arrow", tmp_path / "h.arrows"), ("parquet", tmp_path / "h.parquet")):
        assert main(["analyze", str(header_only), "--format", fmt, "-o", str(target)]) == 2
        assert not target.exists() and "header-only.pcap" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows.arrows", "header-only.pcap"]


def test_interrupted_leaves_neither_target_nor_partial_file(tmp_path: Path, monkeypatch, capsys) -> None:
    """Ctrl-C in the middle of the writing (here: at the second table written) exits 130 and removes the
    partial file; the target never exists half written."""
    calls = []
    real_write = arrow.ParquetSink.write

    def interrupted(self: arrow.ParquetSink, table: Any) -> None:
        calls.append(table.num_rows)
        if len(calls) == 2:
            assert any(p.name.endswith(".parquet.partial") for p in tmp_path.iterdir())
            raise KeyboardInterrupt
        real_write(self, table)
    monkeypatch.setattr(arrow.ParquetSink, "write", interrupted)
    target = tmp_path / "flows.parquet"
    assert main(["analyze", str(MANY), str(A), "--jobs", "1", "--format", "parquet", "-o", str(target)]) == 130
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []
