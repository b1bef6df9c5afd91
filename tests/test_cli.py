"""The command line: formats, --flow, exit codes, and bad input as one line on stderr with nothing lost."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from handshake_probe.cli import main
from handshake_probe.pcapwriter import PcapWriter

C, S = ("127.0.0.1", 40000), ("127.0.0.1", 8000)


def _frame(src, dst, flags: str, seq: int, ack: int, payload: bytes = b"") -> bytes:
    pkt = Ether() / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq,
                                                     ack=ack, window=65495) / payload
    return bytes(pkt)


def echo_session(isn: int = 1000, sisn: int = 5000) -> List[bytes]:
    """SYN, SYN-ACK, ACK, 'python' -> 'PYTHON', client closes first (four segments)."""
    return [
        _frame(C, S, "S", isn, 0),
        _frame(S, C, "SA", sisn, isn + 1),
        _frame(C, S, "A", isn + 1, sisn + 1),
        _frame(C, S, "PA", isn + 1, sisn + 1, b"python"),
        _frame(S, C, "A", sisn + 1, isn + 7),
        _frame(S, C, "PA", sisn + 1, isn + 7, b"PYTHON"),
        _frame(C, S, "A", isn + 7, sisn + 7),
        _frame(C, S, "FA", isn + 7, sisn + 7),
        _frame(S, C, "A", sisn + 7, isn + 8),
        _frame(S, C, "FA", sisn + 7, isn + 8),
        _frame(C, S, "A", isn + 8, sisn + 8),
    ]


@pytest.fixture
def two_flows(tmp_path: Path) -> Path:
    path = tmp_path / "two.pcap"
    with PcapWriter(str(path), 1) as w:
        for i, data in enumerate(echo_session() + echo_session(isn=90_000, sisn=190_000)):
            w.write(1_700_000_000.0 + i * 0.001, data)
    return path


def run(argv: List[str], capsys: pytest.CaptureFixture[str]) -> Tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_table_has_one_row_per_flow_with_paths(two_flows: Path, capsys):
    code, out, err = run(["analyze", str(two_flows)], capsys)
    assert code == 0 and err == ""
    lines = [l for l in out.splitlines() if l.strip().startswith(("1 ", "2 "))]
    assert len(lines) == 2
    assert "CLOSED>SYN-SENT>ESTABLISHED>FIN-WAIT-1>FIN-WAIT-2>TIME-WAIT" in lines[0]
    assert "LISTEN>SYN-RECEIVED>ESTABLISHED>CLOSE-WAIT>LAST-ACK>CLOSED" in lines[0]
    assert "complete" in lines[0] and "FIN both ways" in lines[0]
    assert "22 frames, 22 TCP segments, 2 flows" in out


def test_jsonl_contract(two_flows: Path, capsys):
    code, out, _ = run(["analyze", str(two_flows), "--format", "jsonl"], capsys)
    recs = [json.loads(l) for l in out.splitlines()]
    assert code == 0 and [r["flow"] for r in recs] == [1, 2]
    r = recs[0]
    for key in ("flow", "client", "server", "direction", "packets", "first_ts", "last_ts", "client_states",
                "server_states", "transitions", "handshake", "close", "violations"):
        assert key in r
    assert r["client"] == "127.0.0.1:40000" and r["server"] == "127.0.0.1:8000"
    assert r["direction"] == "observed" and r["packets"] == 11 and r["close"] == "fin"
    assert r["first_ts"] == pytest.approx(1_700_000_000.0) and r["last_ts"] == pytest.approx(1_700_000_000.010)
    assert set(r["handshake"]) >= {"complete", "syn_to_synack_ms", "synack_to_ack_ms"}
    assert r["handshake"]["syn_to_synack_ms"] == pytest.approx(1.0, abs=1e-3)
    assert set(r["transitions"][0]) == {"ts", "frame", "endpoint", "from", "to", "cause"}
    assert r["transitions"][0] == {"ts": r["first_ts"], "frame": 1, "endpoint": "client", "from": "CLOSED",
                                   "to": "SYN-SENT", "cause": "snd SYN"}
    assert recs[1]["transitions"][0]["frame"] == 12


def test_json_is_the_same_objects_in_an_array(two_flows: Path, capsys):
    _, jsonl, _ = run(["analyze", str(two_flows), "--format", "jsonl"], capsys)
    _, js, _ = run(["analyze", str(two_flows), "--format", "json"], capsys)
    assert json.loads(js) == [json.loads(l) for l in jsonl.splitlines()]


def test_csv_flattens_summary(two_flows: Path, capsys):
    _, out, _ = run(["analyze", str(two_flows), "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2
    # flow 2 reuses the 4-tuple, which takes flow 1's client out of TIME-WAIT
    assert rows[0]["client_states"] == "CLOSED>SYN-SENT>ESTABLISHED>FIN-WAIT-1>FIN-WAIT-2>TIME-WAIT>CLOSED"
    assert rows[1]["client_states"] == "CLOSED>SYN-SENT>ESTABLISHED>FIN-WAIT-1>FIN-WAIT-2>TIME-WAIT"
    assert rows[0]["server_final"] == "CLOSED" and rows[0]["close"] == "fin" and rows[0]["handshake"] == "complete"


def test_flow_detail_lists_every_segment(two_flows: Path, capsys):
    code, out, _ = run(["analyze", str(two_flows), "--flow", "2"], capsys)
    assert code == 0
    rows = [l.split() for l in out.splitlines() if l[:3].strip().isdigit()]
    assert [r[0] for r in rows] == [str(n) for n in range(12, 23)]
    syn, synack, ack = rows[0], rows[1], rows[2]
    assert syn[2:5] == ["client->server", "S", "SYN"] and syn[5] == "0" and syn[6] == "90000"
    # SYN-ACK: seq y (relative 0), ack x+1 (relative 1); absolute values follow
    assert synack[3] == "S." and synack[5:9] == ["0", "1", "190000", "90001"]
    assert ack[3] == "." and ack[5:9] == ["1", "1", "90001", "190001"]
    assert "SYN-SENT *" in out and "TIME-WAIT *" in out
    assert "ESTABLISHED -> FIN-WAIT-1  (snd FIN)" in out


def test_unknown_flow_number_is_an_error(two_flows: Path, capsys):
    code, out, err = run(["analyze", str(two_flows), "--flow", "3"], capsys)
    assert code == 2 and err.strip() == f"handshake-probe: error: {two_flows}: no flow 3 (the capture has 2 flows)"


def test_truncated_file_keeps_flows_read_before_the_fault(two_flows: Path, tmp_path: Path, capsys):
    data = two_flows.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-30])              # the last record loses its tail
    code, out, err = run(["analyze", str(cut), "--format", "jsonl"], capsys)
    recs = [json.loads(l) for l in out.splitlines()]
    assert code == 2 and len(recs) == 2 and recs[1]["packets"] == 10
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"handshake-probe: error: {cut}: frame 22 at byte offset ")
    assert "truncated packet data" in err and "Traceback" not in err


@pytest.mark.parametrize("content,reason", [
    (b"", "empty file, not a pcap or pcapng file"),          # judged before the reader: no byte offset
    (b"GET / HTTP/1.1\r\n\r\n", "not a pcap or pcapng file"),
    (bytes.fromhex("d4c3b2a1020004"), "byte offset 0: truncated global header"),
    (bytes.fromhex("d4c3b2a10200040000000000000000000000040001000000") + b"\x00" * 8,
     "byte offset 24: truncated record header"),
    (bytes.fromhex("d4c3b2a10200040000000000000000000000040001000000")
     + bytes.fromhex("00000000 00000000 ffffff7f ffffff7f"), "byte offset 24: impossible captured length"),
])
def test_bad_files_give_one_line_and_exit_2(tmp_path: Path, capsys, content: bytes, reason: str):
    """Nothing could be read: one line on stderr naming the file, nothing on stdout (no empty table)."""
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    code, out, err = run(["analyze", str(path)], capsys)
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"handshake-probe: error: {path}: ")
    assert reason in err and "flows before it" not in err


def test_missing_file_and_directory(tmp_path: Path, capsys):
    code, _, err = run(["analyze", str(tmp_path / "nope.pcap")], capsys)
    assert code == 2 and "No such file or directory" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["analyze", str(tmp_path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_malformed_frame_is_skipped_with_a_warning(tmp_path: Path, capsys):
    frames = echo_session()
    bad = bytearray(frames[3])
    bad[14] = 0x43                            # IPv4 header length 3 words: malformed
    path = tmp_path / "ihl.pcap"
    with PcapWriter(str(path), 1) as w:
        for i, data in enumerate(frames[:3] + [bytes(bad)] + frames[4:]):
            w.write(10.0 + i, data)
    code, out, err = run(["analyze", str(path), "--format", "jsonl"], capsys)
    assert code == 2 and len(out.splitlines()) == 1
    assert "frame 4 at byte offset " in err and "frame skipped" in err and "Traceback" not in err


def test_msl_option_validated(two_flows: Path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(two_flows), "--msl", "0"])
    assert exc.value.code == 2


def test_python_dash_m_and_console_script_agree(two_flows: Path):
    a = subprocess.run([sys.executable, "-m", "handshake_probe", "analyze", str(two_flows), "--format",
                        "jsonl"], capture_output=True, text=True, check=True)
    b = subprocess.run(["handshake-probe", "analyze", str(two_flows), "--format", "jsonl"],
                       capture_output=True, text=True, check=True)
    assert a.stdout == b.stdout and len(a.stdout.splitlines()) == 2


def test_columns_choose_and_order_the_table(two_flows: Path, capsys):
    code, out, _ = run(["analyze", str(two_flows), "--columns", "flow,conn_state,history,completeness"], capsys)
    header = out.splitlines()[0].split()
    assert code == 0 and header == ["#", "conn_state", "history", "compl."]
    first = out.splitlines()[2].split()
    assert first[1] == "SF" and first[2].startswith("ShAD") and first[3] == "31"


def test_unknown_column_is_a_usage_error(two_flows: Path):
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(two_flows), "--columns", "flow,nope"])
    assert exc.value.code == 2


def test_csv_has_zeek_and_tshark_verdicts(two_flows: Path, capsys):
    _, out, _ = run(["analyze", str(two_flows), "--format", "csv"], capsys)
    row = next(csv.DictReader(io.StringIO(out)))
    assert row["conn_state"] == "SF" and row["completeness"] == "31" and row["history"].startswith("ShAD")


def test_flow_ladder_draws_one_arrow_per_segment(two_flows: Path, capsys):
    code, out, _ = run(["analyze", str(two_flows), "--flow", "1", "--ladder"], capsys)
    arrows = [l for l in out.splitlines() if "|---" in l or "|<--" in l]
    assert code == 0 and len(arrows) == 11
    assert "[S] seq=0" in arrows[0] and "[S.] seq=0 ack=1" in arrows[1] and "[.] seq=1 ack=1" in arrows[2]


def test_ladder_needs_a_flow(two_flows: Path, capsys):
    code, _, err = run(["analyze", str(two_flows), "--ladder"], capsys)
    assert code == 2 and err.strip() == "handshake-probe: error: --ladder needs --flow N"


def test_check_checksums_counts_bad_ones(two_flows: Path, capsys):
    # scapy computed correct checksums for these frames: none is bad; without the option none is checked
    code, out, _ = run(["analyze", str(two_flows), "--format", "jsonl", "--check-checksums"], capsys)
    assert code == 0 and [json.loads(l)["anomalies"]["bad_checksum"] for l in out.splitlines()] == [0, 0]
    anomalies = Path(__file__).resolve().parents[1] / "captures" / "anomalies" / "bad-checksum.pcap"
    _, on, _ = run(["analyze", str(anomalies), "--format", "jsonl", "--check-checksums"], capsys)
    _, off, _ = run(["analyze", str(anomalies), "--format", "jsonl"], capsys)
    assert sum(json.loads(l)["anomalies"]["bad_checksum"] for l in on.splitlines()) == 2
    assert sum(json.loads(l)["anomalies"]["bad_checksum"] for l in off.splitlines()) == 0


@pytest.mark.parametrize("argv", [
    ["analyze", "F", "--max-open", "-1"],       # was a traceback (StopIteration in the flow table's sweep)
    ["analyze", "F", "--max-open", "0"],
    ["analyze", "F", "--msl", "nan"],           # nan <= 0 is False: it slipped through
    ["analyze", "F", "--linger", "nan"],
    ["analyze", "F", "--idle-timeout", "inf"],
    ["analyze", "F", "--jobs", "0"],
    ["analyze", "F", "--flow", "0"],
    ["check", "F", "--msl", "nan"],
    ["ladder", "F", "--msl", "-inf"],
    ["capture", "--duration", "nan"],
    ["serve", "--port", "70000"],               # was accepted and listened on 70000 - 65536 = 4464
    ["serve", "--port", "-1"],
    ["serve", "--max-clients", "0"],
    ["serve", "--backlog", "0"],
    ["client", "--port", "0"],
    ["client", "--port", "65536"],
    ["client", "--timeout", "nan"],
    ["client", "--count", "-2"],
])
def test_out_of_range_numbers_are_usage_errors(argv: List[str], capsys):
    from handshake_probe.cli import build_parser
    with pytest.raises(SystemExit) as exc:
        build_parser(argv[0]).parse_args(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    last = err.splitlines()[-1]
    assert last.startswith("handshake-probe: error: argument ") and argv[-2] in last.split(":")[2]


# ------------------------------------------------------------------------------- fitting the terminal
CAPTURES = Path(__file__).resolve().parents[1] / "captures"
ECHO = CAPTURES / "echo-client-close.pcap"
CLIENT_PATH = "CLOSED>SYN-SENT>ESTABLISHED>FIN-WAIT-1>FIN-WAIT-2>TIME-WAIT"


def _cell_text(out: str, start: int, end: int) -> str:
    """One column's text from a fitted table (its lines joined): a wrapped path read back whole."""
    body = out.split("\n\n")[0].splitlines()[2:]
    return "".join(line[start:end].strip() for line in body)


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_table_fits_the_terminal_and_wraps_paths_inside_cells(width: int, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", str(width))
    code, out, _ = run(["analyze", str(ECHO)], capsys)
    assert code == 0 and max(map(len, out.splitlines())) <= width
    header = out.splitlines()[0]
    assert header.split()[:3] == ["#", "client", "server"] and "client states" in header
    start = header.index("client states")
    end = header.index("server states")
    assert _cell_text(out, start, end) == CLIENT_PATH          # every state, in order, nothing cut
    assert out.split("\n\n")[-1].replace("\n    ", " ") == f"{ECHO}: 10 frames, 10 TCP segments, 1 flow\n"


def test_the_flow_listing_fits_80_columns(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(["analyze", str(ECHO), "--flow", "1"], capsys)
    assert code == 0 and max(map(len, out.splitlines())) <= 80
    rows = [l.split() for l in out.splitlines() if l[:2].strip().isdigit()]
    assert rows[0][:4] == ["1", "0.000", "->", "S"] and rows[1][2:4] == ["<-", "S."]
    assert "SYN-SENT *" in out and "ESTABLISHED -> FIN-WAIT-1  (snd FIN)" in out


def test_wide_is_everything_on_one_line(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(["analyze", str(ECHO), "--wide"], capsys)
    header = out.splitlines()[0]
    assert code == 0 and len(header) > 200
    for title in ("pkts", "ms", "handshake (SYN>SYN-ACK / SYN-ACK>ACK)", "close", "conn_state", "history",
                  "compl.", "anomalies", "viol.", "client states", "server states"):
        assert title in header
    assert CLIENT_PATH in out.splitlines()[2]
    code, out, _ = run(["analyze", str(ECHO), "--flow", "1", "--wide"], capsys)
    assert "client->server" in out and "seq (abs)" in out


def test_a_pipe_gets_the_full_default_table(capsys):
    code, out, _ = run(["analyze", str(ECHO)], capsys)            # no COLUMNS, not a terminal
    assert code == 0 and "handshake (SYN>SYN-ACK / SYN-ACK>ACK)" in out and CLIENT_PATH in out.splitlines()[2]


@pytest.mark.parametrize("extra", [["--format", "csv"], ["--format", "jsonl"], ["--flow", "1"]])
def test_columns_where_they_do_not_apply_is_a_usage_error(extra: List[str], capsys):
    code, out, err = run(["analyze", str(ECHO), "--columns", "flow,close", *extra], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("handshake-probe: error: --columns chooses the flow table's columns")


def test_the_file_commands_run_on_the_engine_alone(tmp_path: Path):
    """analyze (every format, --flow N, several files), ladder and check never import the Python core,
    its analysis glue or its reader: the engine does all per-packet work (the core goes with its last
    users, see handshake_probe/core/__init__.py)."""
    root = Path(__file__).resolve().parents[1]
    one, two = root / "captures" / "echo-client-close.pcap", root / "captures" / "closed-port.pcap"
    script = f"""
import contextlib, io, sys
from handshake_probe.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    for argv in (["analyze", {str(one)!r}], ["analyze", {str(one)!r}, "--flow", "1"],
                 ["analyze", {str(one)!r}, "--flow", "1", "--ladder"],
                 ["analyze", {str(one)!r}, "--format", "csv"], ["analyze", {str(one)!r}, "--format", "jsonl"],
                 ["analyze", {str(one)!r}, {str(two)!r}, "-j", "1", "--format", "csv"],
                 ["ladder", {str(one)!r}], ["ladder", {str(one)!r}, "--svg", {str(tmp_path / "l.svg")!r}],
                 ["check", {str(one)!r}, "--all-flows", "close=fin"]):
        assert main(argv) == 0, argv
core = [m for m in sys.modules if m.startswith("handshake_probe.core")
        or m in ("handshake_probe.analysis", "handshake_probe.pcapio")]
print(core)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"
