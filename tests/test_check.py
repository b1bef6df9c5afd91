"""`handshake-probe check`: expectation files and short forms against the project's captures, exit codes
0/1/2, one-line errors for invalid files, and the logic of handshake_probe/check.py on synthetic records
(for the record fields other engineers are adding: conn_state, history, anomalies)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from handshake_probe.check import (Selector, SpecError, evaluate, format_report, load_spec, parse_assignment,
                                   parse_expectations, spec_from_short_forms)
from handshake_probe.cli import _Parser
from handshake_probe.commands import COMMANDS
from handshake_probe.commands import check as check_command

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
CLIENT_CLOSE = CAPTURES / "echo-client-close.pcap"
CLOSED_PORT = CAPTURES / "closed-port.pcap"
PORT_REUSE = CAPTURES / "echo-port-reuse-3000.pcap"


def endpoints(capture: Path) -> Tuple[str, str]:
    """(client, server) of the capture's first connection, spelt as the flow record spells them ("ip:port"),
    read with scapy from the first SYN without ACK. Every re-recording changes the ports, so the tests take
    them from the capture instead of hard-coding those of one recording."""
    from scapy.layers.inet import IP, TCP
    from scapy.utils import PcapReader

    with PcapReader(str(capture)) as reader:
        for packet in reader:
            if IP in packet and TCP in packet and packet[TCP].flags.S and not packet[TCP].flags.A:
                return f"{packet[IP].src}:{packet[TCP].sport}", f"{packet[IP].dst}:{packet[TCP].dport}"
    raise AssertionError(f"{capture}: no SYN in the capture")


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def run(argv: List[str], capsys: pytest.CaptureFixture[str]) -> Tuple[int, str, str]:
    """Run `check` through its own parser (the command registry is the lead's to wire)."""
    parser = _Parser(prog="handshake-probe check")
    check_command.add_arguments(parser)
    try:
        code = int(check_command.run(parser.parse_args([str(a) for a in argv])))
    except SystemExit as exit_:     # argparse errors: exit 2 with a usage line
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str, name: str = "expect.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------ the project's captures


@pytest.mark.parametrize("expect", sorted(CAPTURES.glob("*.expect.toml")), ids=lambda p: p.name)
def test_every_example_expectation_file_passes(expect: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = expect.with_name(expect.name.replace(".expect.toml", ".pcap"))
    code, out, err = run([capture, "--expect", expect], capsys)
    assert (code, err) == (0, ""), out
    assert out.rstrip().splitlines()[-1].startswith("PASSED: all ")
    assert "FAIL" not in out


def test_client_close_passing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expect = write(tmp_path, """
flows = 1
[all]
close = "fin"
handshake_complete = true
[[flow]]
select = {index = 1}
client_final = "TIME-WAIT"
server_final = "CLOSED"
client_states = "CLOSED > SYN-SENT > ESTABLISHED > FIN-WAIT-1 > FIN-WAIT-2 > TIME-WAIT"
server_states_contains = ["CLOSE-WAIT", "LAST-ACK"]
""")
    code, out, _ = run([CLIENT_CLOSE, "--expect", expect], capsys)
    assert code == 0
    assert "  ok    [[flow]] 1 {index = 1}: client_final = TIME-WAIT  (1 flow)" in out
    assert "PASSED: all 8 expectations met on 1 flow" in out


def test_failure_shows_expected_found_and_the_ladder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client, server = endpoints(CLIENT_CLOSE)
    port = port_of(server)
    expect = write(tmp_path, f"""
[[flow]]
select = {{server_port = {port}}}
client_final = "CLOSED"
close = "fin"
handshake.syn_count = 2
""")
    code, out, err = run([CLIENT_CLOSE, "--expect", expect], capsys)
    assert (code, err) == (1, "")
    assert f"  FAIL  [[flow]] 1 {{server_port = {port}}}: client_final = CLOSED  (1 of 1 flow failed: 1)" in out
    assert f"  ok    [[flow]] 1 {{server_port = {port}}}: close = fin  (1 flow)" in out
    detail = out.split(f"\nflow 1: {client} -> {server}\n", 1)[1]
    assert (f"  [[flow]] 1 {{server_port = {port}}}: client_final = CLOSED\n"
            "    expected: CLOSED\n"
            "    found:    TIME-WAIT (path CLOSED > SYN-SENT > ESTABLISHED > FIN-WAIT-1 > FIN-WAIT-2 > TIME-WAIT)\n"
            ) in detail
    assert "    expected: 2\n    found:    1\n" in detail
    ladder = detail.split("  ladder:\n", 1)[1]
    # The flow drawn segment by segment, with both endpoints' states (ladder diagram or segment listing).
    for text in (client, "SYN-SENT", "SYN-RECEIVED", "FIN-WAIT-1", "LAST-ACK"):
        assert text in ladder
    assert out.rstrip().endswith("FAILED: 2 of 4 expectations not met (flow 1)")
    assert "\x1b[" not in out        # not a TTY: no colour in a CI log


def test_closed_port_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = write(tmp_path, '[all]\nclose = "rejected"\nno_rst = false\nhandshake_complete = false\n')
    assert run([CLOSED_PORT, "--expect", ok], capsys)[0] == 0
    bad = write(tmp_path, '[all]\nclose = "fin"\nno_rst = true\n', "bad.toml")
    code, out, _ = run([CLOSED_PORT, "--expect", bad], capsys)
    assert code == 1
    assert "    expected: fin\n    found:    rejected\n" in out
    assert "    expected: no RST\n    found:    close = rejected" in out


def test_port_reuse_has_3000_flows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([PORT_REUSE, "--expect", write(tmp_path, "flows = 3000\n")], capsys)[0] == 0
    code, out, _ = run([PORT_REUSE, "--expect", write(tmp_path, "flows = 2999\n", "bad.toml")], capsys)
    assert code == 1
    assert "capture:\n  capture: flows = 2999\n    expected: 2999 flows\n    found:    3000 flows\n" in out


def test_many_failing_flows_are_capped(capsys: pytest.CaptureFixture[str]) -> None:
    # Every one of 3000 flows fails: the log shows a few in full, not 3000 ladders.
    code, out, _ = run([PORT_REUSE, "--all-flows", "close=rejected", "--max-flows", "2"], capsys)
    assert code == 1
    assert out.count("  ladder:") == 2
    assert "... and 2998 more failing flows not shown (3, 4, 5," in out
    assert "(3000 of 3000 flows failed: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 ...)" in out
    assert len(out.splitlines()) < 120


def test_selector_matching_nothing_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, server = endpoints(CLIENT_CLOSE)      # the right server, a client port no recording uses
    expect = write(tmp_path, f"""
[[flow]]
select = {{client = "127.0.0.1:1", server = "{server}"}}
close = "fin"
""")
    code, out, _ = run([CLIENT_CLOSE, "--expect", expect], capsys)
    assert code == 1
    assert (f'    expected: at least one flow matching {{client = "127.0.0.1:1", server = "{server}"}}\n'
            f"    found:    no flow matches (the capture has 1 flow, numbered 1..1; servers: {server})") in out
    # The expectations of a selector that picked nothing are not reported as met.
    assert "close = fin" not in out


def test_selected_flow_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The 4-tuple of the first session carries 750 of the 3000 flows; the server's port carries all 3000.
    client, server = endpoints(PORT_REUSE)
    expect = write(tmp_path, f"""
[[flow]]
select = {{client = "{client}", server = "{server}"}}
flows = 750
[[flow]]
select = {{server_port = {port_of(server)}}}
flows = 3
""")
    code, out, _ = run([PORT_REUSE, "--expect", expect], capsys)
    assert code == 1
    assert f"  ok    [[flow]] 1 {{client = \"{client}\", server = \"{server}\"}}: selects 750 flows" in out
    assert "    expected: 3 flows\n    found:    3000 flows" in out


def test_json_expectations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = {"flows": 1, "all": {"close": "fin"}, "flow": [{"select": {"index": 1}, "max_handshake_ms": 5}]}
    assert run([CLIENT_CLOSE, "--expect", write(tmp_path, json.dumps(good), "e.json")], capsys)[0] == 0
    good["all"]["close"] = "none"
    assert run([CLIENT_CLOSE, "--expect", write(tmp_path, json.dumps(good), "e.json")], capsys)[0] == 1
    code, out, err = run([CLIENT_CLOSE, "--expect", write(tmp_path, '{"flows": 1,\n "all": {,}}', "e.json")], capsys)
    assert (code, out) == (2, "")
    assert err == f"handshake-probe: error: {tmp_path / 'e.json'}: line 2: invalid JSON: Expecting property name " \
                  "enclosed in double quotes\n"


# ------------------------------------------------------------------------------ short forms


def test_short_forms_pass(capsys: pytest.CaptureFixture[str]) -> None:
    port = port_of(endpoints(CLIENT_CLOSE)[1])
    code, out, _ = run([CLIENT_CLOSE, "--flows", "1", "--all-flows", "close=fin",
                        "--all-flows", "handshake.complete=true", "--all-flows", "duration_ms<=500",
                        "--all-flows", "packets>=10", "--flow", "1", "client_final=TIME-WAIT",
                        "--flow", "1", "server_states=LISTEN>SYN-RECEIVED>ESTABLISHED>CLOSE-WAIT>LAST-ACK>CLOSED",
                        "--server-port", str(port), "close=fin,client-rst"], capsys)
    assert code == 0, out
    assert "  ok    --all-flows: duration_ms <= 500  (1 flow)" in out
    assert "  ok    --flow 1: client_final = TIME-WAIT  (1 flow)" in out
    assert f"  ok    --server-port {port}: close in [fin, client-rst]  (1 flow)" in out


def test_short_forms_fail(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([CLIENT_CLOSE, "--flows", "3", "--flow", "1", "close=client-rst",
                        "--flow", "2", "close=fin"], capsys)
    assert code == 1
    assert "    expected: 3 flows\n    found:    1 flow" in out
    assert "    expected: client-rst\n    found:    fin" in out
    assert "  FAIL  --flow 2: selects a flow" in out


def test_short_forms_and_file_combine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expect = write(tmp_path, "flows = 1\n")
    code, out, _ = run([CLIENT_CLOSE, "--expect", expect, "--all-flows", "close=none"], capsys)
    assert code == 1
    assert out.startswith(f"check {CLIENT_CLOSE}: 1 flow; expectations from {expect} and the command line\n")


@pytest.mark.parametrize("text, key, value", [
    ("flows=3", "flows", 3),
    ("handshake_complete=true", "handshake_complete", True),
    ("conn_state=SF", "conn_state", "SF"),
    ('history="ShADadFf"', "history", "ShADadFf"),
    ("close=fin,client-rst", "close", ["fin", "client-rst"]),
    ("duration_ms<=1.5", "max.duration_ms", 1.5),
    ("anomalies.duplicate_ack<=2", "max.anomalies.duplicate_ack", 2),
    ("packets>=4", "min.packets", 4),
    ("client_states=CLOSED>SYN-SENT", "client_states", "CLOSED>SYN-SENT"),
    ('client_states=["CLOSED", "SYN-SENT"]', "client_states", ["CLOSED", "SYN-SENT"]),
])
def test_short_form_values(text: str, key: str, value: Any) -> None:
    assert parse_assignment(text) == (key, value)


@pytest.mark.parametrize("argv, message", [
    (["--all-flows", "close"], "command line: 'close': expected KEY=VALUE, KEY<=NUMBER or KEY>=NUMBER"),
    (["--all-flows", "close=FIN"], '"FIN" is not a close kind'),
    (["--flow", "x", "close=fin"], "command line: --flow x close=fin: 'x' is not a number"),
    (["--all-flows", "client_final=TIME_WAIT"], "did you mean 'TIME-WAIT'?"),
    ([], "nothing to check"),
])
def test_short_form_errors_exit_2(argv: List[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([CLIENT_CLOSE, *argv], capsys)
    assert (code, out) == (2, "")
    assert message in err and err.count("\n") == 1


# ------------------------------------------------------------------------------ exit 2: unreadable input


def test_invalid_toml_is_one_line_with_the_line_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expect = write(tmp_path, 'flows = 1\n\n[all]\nclose = fin\n')
    code, out, err = run([CLIENT_CLOSE, "--expect", expect], capsys)
    assert (code, out) == (2, "")
    assert err == f"handshake-probe: error: {expect}: line 4: invalid TOML: Invalid value\n"


@pytest.mark.parametrize("text, line, message", [
    ('flows = 1\n[[flow]]\nselect = {index = 1}\n\n[[flow]]\nselect = {port = 1}\n', 6,
     "[[flow]] 2: select.port: unknown select key 'port' (use index, client, server, server_port)"),
    ('[all]\nclose = "fin"\nanomalies.retransmision = 0\n', 3,
     "[all]: anomalies.retransmision: unknown anomaly kind 'retransmision'; did you mean 'retransmission'?"),
    ('[al]\nclose = "fin"\n', 1, "unknown top-level key 'al' (use flows = N, [all] or [[flow]]); did you mean 'all'?"),
    ('[[flow]]\nclose = "fin"\n', 1, "[[flow]] 1: missing select"),
    ('[all]\nmax_duraton_ms = 3\n', 2, "did you mean 'max_duration_ms'?"),
    ('[[flow]]\nselect = {index = 1}\n[flow.max]\nduration_ms = "3"\n', 4,
     '[[flow]] 1: max.duration_ms: expected a number, not "3"'),
    ('flows = -1\n', 1, "flows: expected a number of flows (an integer >= 0), not -1"),
    ('[all]\nhandshake_complete = "yes"\n', 2, '[all]: handshake_complete: expected true or false, not "yes"'),
    ('[[flow]]\nselect = {server = "localhost:80"}\n', 2, "'localhost' is not an IP address"),
])
def test_invalid_expectation_file(text: str, line: int, message: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    expect = write(tmp_path, text)
    code, out, err = run([CLIENT_CLOSE, "--expect", expect], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"handshake-probe: error: {expect}: line {line}: ")
    assert message in err and err.count("\n") == 1


def test_unreadable_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([tmp_path / "nope.pcap", "--flows", "1"], capsys)
    assert (code, out) == (2, "")
    assert err == f"handshake-probe: error: cannot open {tmp_path / 'nope.pcap'}: No such file or directory\n"
    code, out, err = run([CLIENT_CLOSE, "--expect", tmp_path / "nope.toml"], capsys)
    assert (code, out) == (2, "")
    assert err == f"handshake-probe: error: cannot open {tmp_path / 'nope.toml'}: No such file or directory\n"


def test_damaged_capture_is_never_a_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(CLIENT_CLOSE.read_bytes()[:-30])
    code, out, err = run([cut, "--all-flows", "handshake_complete=true"], capsys)
    assert code == 2
    assert "PASSED" in out          # the verdict on what could be read is still shown
    assert "checked the 1 flow before it" in err


@pytest.mark.skipif("check" not in COMMANDS, reason="`check` is not registered in handshake_probe/commands yet")
def test_registered_command(capsys: pytest.CaptureFixture[str]) -> None:
    from handshake_probe.cli import main
    assert main(["check", str(CLIENT_CLOSE), "--flows", "1"]) == 0
    assert main(["check", str(CLIENT_CLOSE), "--flows", "2"]) == 1
    capsys.readouterr()


# ------------------------------------------------------------------------------ the logic, on records


def _record(**changes: Any) -> Dict[str, Any]:
    base = {
        "flow": 1, "client": "127.0.0.1:40000", "server": "127.0.0.1:8000", "direction": "observed",
        "packets": 10, "duration_ms": 0.5, "close": "fin",
        "client_states": ["CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"],
        "server_states": ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"],
        "transitions": [], "violations": [], "violation_count": 0,
        "handshake": {"complete": True, "status": "complete", "syn_to_synack_ms": 0.012,
                      "synack_to_ack_ms": 0.012, "syn_count": 1, "synack_count": 1},
    }
    rec = copy.deepcopy(base)
    rec.update(changes)
    return rec


def _failures(spec_text: str, records: List[Dict[str, Any]]) -> List[Tuple[Any, str, str, str]]:
    report = evaluate(load_spec(spec_text), records)
    return [(f.flow, f.what, f.expected, f.found) for f in report.failures]


def test_newer_fields_by_name_and_dotted_path() -> None:
    # conn_state, history and anomalies are plain record fields to check: nothing to wire when they land.
    rec = _record(conn_state="SF", history="ShADadFf", completeness=31,
                  anomalies={"duplicate_ack": 2, "retransmission": 1})
    spec = """
[all]
conn_state = "SF"
history = "ShADadFf"
completeness = 31
anomalies.duplicate_ack = 2
anomalies.zero_window = 0          # not listed: counts as 0
max = {"anomalies.duplicate_ack" = 2}
contains = {history = "ShA"}
"""
    assert _failures(spec, [rec]) == []
    bad = """
[all]
conn_state = ["S1", "S2"]
anomalies = {retransmission = 0}
no_retransmission = true
no_anomalies = true
[all.max]
anomalies.duplicate_ack = 1
"""
    assert _failures(bad, [rec]) == [
        (1, "conn_state in [S1, S2]", "one of [S1, S2]", "SF"),
        (1, "anomalies.retransmission = 0", "0", "1"),
        (1, "no_retransmission = true", "no retransmission", "retransmission 1"),
        (1, "no_anomalies = true", "no anomalies", "{duplicate_ack = 2, retransmission = 1}"),
        (1, "anomalies.duplicate_ack <= 1", "<= 1", "2"),
    ]


def test_missing_fields_say_why() -> None:
    # A field the record could hold but this one lacks (an older analyzer's record) fails at run time.
    found = {what: f for _, what, _, f in _failures('[all]\nconn_state = "SF"\n', [_record()])}
    assert found["conn_state = SF"] == \
        "no field 'conn_state' in the flow record (this version of handshake-probe does not produce it)"


@pytest.mark.parametrize("text,message", [
    ('[all]\nclsoe = "fin"\n', "line 2: [all]: clsoe: not an expectation key nor a flow record field; "
                                "did you mean 'close'?"),
    ('[all]\nclent_final = "CLOSED"\n', "line 2: [all]: clent_final: not an expectation key nor a flow record "
                                        "field; did you mean 'client_final'?"),
    ('[all]\nhandshake.complet = true\n', "line 2: [all]: handshake.complet: 'handshake' has no field 'complet' "
                                         "(it has complete, status, syn_to_synack_ms, synack_to_ack_ms, syn_count, "
                                         "synack_count); did you mean 'complete'?"),
    ('[all]\nmax = {duraton_ms = 5}\n', "line 2: [all]: max.duraton_ms: not an expectation key nor a flow "
                                        "record field; did you mean 'duration_ms'?"),
])
def test_an_unknown_key_is_an_invalid_file(text: str, message: str) -> None:
    """A typo is exit 2 (invalid file), as the README says, not an expectation no flow can meet (exit 1)."""
    with pytest.raises(SpecError) as err:
        load_spec(text)
    assert str(err.value) == message


def test_an_unknown_key_exits_2_from_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, '[all]\nclose = "fin"\nclent_final = "TIME-WAIT"\n', "typo.toml")
    code, out, err = run([CLIENT_CLOSE, "--expect", bad], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"handshake-probe: error: {bad}: line 3: [all]: clent_final: ")


def test_the_known_fields_are_the_records_fields() -> None:
    import handshake_probe
    from handshake_probe.check import HANDSHAKE_FIELDS, RECORD_FIELDS
    rec = next(iter(handshake_probe.analyze(str(CLIENT_CLOSE))))
    assert set(rec) | {"file"} == RECORD_FIELDS                   # "file": with several files
    assert tuple(rec["handshake"]) == HANDSHAKE_FIELDS


def test_one_of_final_states_reads_as_a_choice_not_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([CLIENT_CLOSE, "--all-flows", "client_final=SYN-SENT,CLOSED"], capsys)
    assert code == 1
    assert "  FAIL  --all-flows: client_final in [SYN-SENT, CLOSED]  (1 of 1 flow failed: 1)" in out
    assert "SYN-SENT > CLOSED" not in out                       # which would read as a path
    code, out, _ = run([CLIENT_CLOSE, "--all-flows", "client_final=TIME-WAIT,CLOSED"], capsys)
    assert code == 0 and "ok    --all-flows: client_final in [TIME-WAIT, CLOSED]" in out


def test_no_retransmission_without_anomaly_counts_says_what_it_checked() -> None:
    report = evaluate(load_spec("[all]\nno_retransmission = true\n"), [_record()])
    assert report.ok
    assert report.outcomes[0].notes == ("no anomaly counts in this record: only repeated SYN/SYN-ACK checked",)
    hs = dict(_record()["handshake"], syn_count=3)
    assert _failures("[all]\nno_retransmission = true\n", [_record(handshake=hs)]) == [
        (1, "no_retransmission = true", "no retransmission", "SYN sent 3 times")]


def test_no_rst_looks_at_close_transitions_violations_and_history() -> None:
    spec = "[all]\nno_rst = true\n"
    assert _failures(spec, [_record()]) == []
    assert _failures(spec, [_record(history="ShAr")])[0][3] == "history ShAr"
    rst = {"ts": 0, "frame": 8, "endpoint": "server", "state": "ESTABLISHED", "cue": "rcv RST", "reason": "outside"}
    assert _failures(spec, [_record(violations=[rst], violation_count=1)])[0][3] == \
        "frame 8: server rcv RST (outside)"
    assert _failures("[all]\nno_rst = false\n", [_record()]) == [(1, "no_rst = false", "an RST", "none")]


def test_state_paths_exact_and_contiguous() -> None:
    rec = _record()
    assert _failures('[all]\nclient_states_contains = "FIN-WAIT-1>FIN-WAIT-2"\n', [rec]) == []
    # "contains" is a consecutive sub-path, not any subsequence.
    assert _failures('[all]\nclient_states_contains = ["SYN-SENT", "TIME-WAIT"]\n', [rec]) == [
        (1, "client_states contains SYN-SENT > TIME-WAIT", "contains SYN-SENT > TIME-WAIT",
         "CLOSED > SYN-SENT > ESTABLISHED > FIN-WAIT-1 > FIN-WAIT-2 > TIME-WAIT")]
    assert _failures('[all]\nserver_states = ["LISTEN", "CLOSED"]\n', [rec])[0][2] == "LISTEN > CLOSED"
    assert _failures('[all]\nclient_final = ["CLOSED", "TIME-WAIT"]\n', [rec]) == []


def test_bool_is_not_a_number() -> None:
    # Python says True == 1; an expectation file must not.
    assert _failures("[all]\npackets = true\n", [_record(packets=1)]) == [(1, "packets = true", "true", "1")]
    assert _failures("[all]\nhandshake.syn_count = 1\n", [_record()]) == []


def test_handshake_time() -> None:
    assert _failures("[all]\nmax_handshake_ms = 0.03\n", [_record()]) == []
    assert _failures("[all]\nmax_handshake_ms = 0.02\n", [_record()]) == [
        (1, "max_handshake_ms = 0.02", "<= 0.02 ms (SYN>SYN-ACK + SYN-ACK>ACK)", "0.024 ms (0.012 + 0.012)")]
    partial = dict(_record()["handshake"], complete=False, status="partial", synack_to_ack_ms=None)
    assert _failures("[all]\nmax_handshake_ms = 5\n", [_record(handshake=partial)])[0][3] == \
        "no complete handshake (status partial)"


def test_empty_capture_fails_all_flows_unless_declared() -> None:
    assert _failures('[all]\nclose = "fin"\n', []) == [
        (None, "has flows to check", "at least one flow", "the capture has no TCP flows")]
    assert _failures('flows = 0\n[all]\nclose = "fin"\n', []) == []


def test_selectors() -> None:
    v6 = _record(client="[::1]:40000", server="[::1]:8000")
    assert Selector.parse({"server": "[0:0::1]:8000"}, ()).matches(v6)
    assert Selector.parse({"server_port": 8000, "index": 1}, ()).matches(v6)
    assert not Selector.parse({"server_port": 8000, "index": 2}, ()).matches(v6)
    assert not Selector.parse({"client": "127.0.0.1:40000"}, ()).matches(v6)
    with pytest.raises(SpecError, match="select needs at least one of"):
        Selector.parse({}, ())


def test_keyword_form_is_the_table_form() -> None:
    # What assert_flow passes: nested dicts are dotted paths, operator tables are bounds.
    a = parse_expectations({"anomalies": {"retransmission": 0}, "max": {"duration_ms": 5}, "no_rst": True})
    b = load_spec('[all]\nanomalies.retransmission = 0\nmax.duration_ms = 5\nno_rst = true\n').rules[0].expectations
    assert a == b
    assert spec_from_short_forms(all_flows=["anomalies.retransmission=0", "duration_ms<=5", "no_rst=true"]
                                 ).rules[0].expectations == a


def test_colour_only_when_asked() -> None:
    report = evaluate(load_spec('[all]\nclose = "fin"\npackets = 3\n'), [_record()])
    plain = format_report(report, title="t", ladders={})
    assert "\x1b[" not in plain
    painted = format_report(report, title="t", ladders={}, color=True)
    assert "\x1b[32mok  \x1b[0m" in painted and "\x1b[31mFAILED\x1b[0m" in painted


def test_ladder_falls_back_to_the_segment_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    from handshake_probe.check import flow_ladder
    from handshake_probe.flowsource import flow_with_rows
    from handshake_probe.render import flow_detail

    view = flow_with_rows(str(CLIENT_CLOSE), 1)
    assert view is not None
    rec, rows = view
    monkeypatch.setitem(sys.modules, "handshake_probe.ladder", None)   # import now fails
    assert flow_ladder(rec, rows) == flow_detail(rec, rows)


def test_every_anomaly_kind_the_engine_counts_is_a_valid_expectation(tmp_path) -> None:
    """The vocabulary comes from the engine: zero_window_probe_ack (missing from an earlier hand-kept
    list) is accepted, and so is every other kind the record carries."""
    import handshake_probe
    from handshake_probe.check import load_spec
    text = "[all]\n" + "".join(f"anomalies.{k} = 0\n" for k in handshake_probe.ANOMALY_KINDS)
    spec = load_spec(text)
    assert len(spec.rules) == 1
    assert "zero_window_probe_ack" in text
