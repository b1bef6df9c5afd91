"""The negotiation object (issue 12): what each side's SYN / SYN-ACK offered, what is in effect, the
scaled window, and their views. Oracles: tshark (each option on its packet, the calculated window),
p0f itself (tests/test_p0f.py), and the kernel that recorded captures/negotiation-*.pcap with one
setting changed each (scripts/record_negotiation.py)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

import handshake_probe
from handshake_probe.cli import main

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
CONFORMANCE = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "traces"


def records(name: str, **options: Any) -> List[Dict[str, Any]]:
    return list(handshake_probe.analyze(str(CAPTURES / name), streaming=False, **options))


def run(argv: List[str], capsys: pytest.CaptureFixture[str]) -> tuple:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------- the four recorded captures
def test_window_scaling_off_on_the_server_side_is_not_in_effect():
    neg = records("negotiation-no-wscale.pcap")[0]["negotiation"]
    assert neg["client"]["window_scale"] is not None and neg["server"]["window_scale"] is None
    eff = neg["in_effect"]
    assert eff["window_scaling"] is False
    assert eff["client_window_scale"] is None and eff["server_window_scale"] is None
    assert eff["sack"] and eff["timestamps"] and not eff["ecn"] and not eff["tfo"]
    assert (eff["mss_to_server"], eff["mss_to_client"]) == (1460, 1460)     # a veth: MTU 1500
    assert neg["warnings"] == ["window_scale_one_side"]


def test_fast_open_cookie_then_data_on_the_syn():
    first, second = (r["negotiation"] for r in records("negotiation-tfo.pcap"))
    assert first["client"]["tfo"] == {"cookie_request": True, "cookie": None, "data": 0, "data_acked": None}
    cookie = first["server"]["tfo"]["cookie"]
    assert cookie and len(cookie) == 16                       # 8 bytes, hex
    assert first["in_effect"]["tfo"] is False
    assert second["client"]["tfo"] == {"cookie_request": False, "cookie": cookie, "data": 6, "data_acked": True}
    assert second["in_effect"]["tfo"] is True
    assert second["client"]["p0f"].endswith(":+")             # p0f's payload class: data on the SYN


def test_ecn_setup_syn_and_syn_ack():
    neg = records("negotiation-ecn.pcap")[0]["negotiation"]
    assert neg["client"]["ecn"] == {"ece": True, "cwr": True, "ae": False}
    assert neg["server"]["ecn"] == {"ece": True, "cwr": False, "ae": False}
    assert neg["in_effect"]["ecn"] is True
    assert ",ecn" in neg["client"]["p0f"] or ":ecn" in neg["client"]["p0f"]   # p0f's quirk for ECE/CWR
    # and on every other capture (tcp_ecn=2 there: Linux accepts ECN but does not ask) it is off
    assert records("echo-client-close.pcap")[0]["negotiation"]["in_effect"]["ecn"] is False


def test_mss_clamp_each_way():
    neg = records("negotiation-mss-clamp.pcap")[0]["negotiation"]
    assert (neg["client"]["mss"], neg["server"]["mss"]) == (1000, 1200)
    assert (neg["in_effect"]["mss_to_server"], neg["in_effect"]["mss_to_client"]) == (1200, 1000)
    assert neg["warnings"] == []


def test_a_missing_syn_ack_is_null_not_a_guess():
    neg = records("syn-no-answer.pcap")[0]["negotiation"]
    assert neg["syn_seen"] and not neg["synack_seen"]
    assert neg["server"] is None and neg["in_effect"] is None
    mid = records("mid-stream.pcap")[0]["negotiation"]
    assert (mid["syn_seen"], mid["client"], mid["server"], mid["in_effect"]) == (False, None, None, None)


def test_linux_simultaneous_open_syn_ack_enables_what_the_syn_did_not_offer():
    # The prober's SYN offers only an MSS; the kernel's SYN-ACK answers with its own SACK, timestamps and
    # window scale all the same.
    neg = records("probe-simultaneous-open.pcap")[0]["negotiation"]
    crossed = neg["simultaneous_open"]
    assert crossed["server_syn"]["options"] == "mss"
    assert crossed["client_synack"]["options"] == "mss,sok,ts,nop,ws"
    assert {"synack_enables_unoffered:ws", "synack_enables_unoffered:sack",
            "synack_enables_unoffered:ts"} <= set(neg["warnings"])


def test_vocabulary_is_the_engines():
    assert "window_scale_one_side" in handshake_probe.NEGOTIATION_WARNINGS
    kinds = set(handshake_probe.NEGOTIATION_WARNINGS)
    options = set(handshake_probe.NEGOTIATION_OPTIONS)
    for pcap in sorted(CAPTURES.glob("*.pcap")):
        for rec in records(pcap.name):
            for w in rec["negotiation"]["warnings"]:
                kind, _, option = w.partition(":")
                assert kind in kinds and (not option or option in options), w


# --------------------------------------------------------------------------- tshark as the oracle
TSHARK_FIELDS = ["frame.number", "tcp.flags.ack", "tcp.options.mss_val", "tcp.options.wscale.shift",
                 "tcp.options.sack_perm", "tcp.options.timestamp.tsval", "tcp.flags.ece", "tcp.flags.cwr",
                 "tcp.flags.ae", "ip.ttl", "ip.flags.df", "tcp.options.tfo.request", "tcp.options.tfo.cookie",
                 "tcp.len", "tcp.seq_raw", "tcp.window_size_value"]


def tshark_syns(path: Path) -> List[Dict[str, str]]:
    cmd = ["tshark", "-r", str(path), "-Y", "tcp.flags.syn == 1", "-T", "fields", "-E", "separator=|"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
    return [dict(zip(TSHARK_FIELDS, line.split("|"))) for line in done.stdout.splitlines()]


def _int(text: str):
    return int(text) if text else None


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (apt-get install tshark)")
@pytest.mark.parametrize("name", ["negotiation-no-wscale.pcap", "negotiation-tfo.pcap", "negotiation-ecn.pcap",
                                  "negotiation-mss-clamp.pcap", "echo-client-close.pcap", "echo-ipv6.pcap",
                                  "probe-handshake.pcap"])
def test_each_side_is_what_tshark_reads_on_its_packet(name: str):
    path = CAPTURES / name
    by_isn = {int(row["tcp.seq_raw"]): row for row in tshark_syns(path)}
    sides = [s for r in records(name) for s in (r["negotiation"]["client"], r["negotiation"]["server"]) if s]
    assert sides
    for side in sides:
        t = by_isn[side["isn"]]
        assert side["mss"] == _int(t["tcp.options.mss_val"])
        assert side["window_scale"] == _int(t["tcp.options.wscale.shift"])
        assert side["sack_permitted"] == bool(t["tcp.options.sack_perm"])
        assert side["tsval"] == _int(t["tcp.options.timestamp.tsval"])
        assert side["timestamps"] == bool(t["tcp.options.timestamp.tsval"])
        assert side["ecn"] == {"ece": t["tcp.flags.ece"] in ("1", "True"), "cwr": t["tcp.flags.cwr"] in ("1", "True"),
                               "ae": t["tcp.flags.ae"] in ("1", "True")}
        assert side["window"] == int(t["tcp.window_size_value"])
        assert side["tfo"]["data"] == int(t["tcp.len"])
        assert side["tfo"]["cookie_request"] == bool(t["tcp.options.tfo.request"])
        assert side["tfo"]["cookie"] == (t["tcp.options.tfo.cookie"].replace(":", "") or None)
        if t["ip.ttl"]:                            # IPv4
            assert side["ttl"] == int(t["ip.ttl"])
            assert side["df"] == (t["ip.flags.df"] in ("1", "True"))


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (apt-get install tshark)")
@pytest.mark.parametrize("name", ["echo-client-close.pcap", "negotiation-no-wscale.pcap", "negotiation-tfo.pcap"])
def test_scaled_window_is_tsharks_calculated_window(name: str):
    path = CAPTURES / name
    done = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.number", "-e", "tcp.window_size",
                           "-e", "tcp.window_size_value"], capture_output=True, text=True, check=True, timeout=60)
    want = {int(f): (int(w), int(raw)) for f, w, raw in (line.split("\t") for line in done.stdout.splitlines())}
    analysis = handshake_probe.analyze(str(path), streaming=False, keep_rows=True)
    flows = [r["flow"] for r in analysis]
    scaled = 0
    for n in flows:
        for row in analysis.rows(n):
            assert (row["window_scaled"], row["window"]) == want[row["frame"]], row["frame"]
            scaled += row["window_scale"] is not None and row["window_scaled"] != row["window"]
    # scaling in effect shows in the numbers (echo, tfo), and not where one side refused it
    assert (scaled > 0) == (name != "negotiation-no-wscale.pcap")


# --------------------------------------------------------------------------------------- the views
def test_flow_view_shows_the_negotiation_and_scaled_windows(capsys: pytest.CaptureFixture[str]):
    code, out, _ = run(["analyze", str(CAPTURES / "echo-client-close.pcap"), "--flow", "1", "--wide"], capsys)
    assert code == 0
    assert "negotiation: ws 10/10 sack ts mss 65495/65495" in out
    assert "client SYN: mss 65495 ws 10 sack ts; win 65495; ttl 64 df; p0f 4:64+0:0:65495:" in out
    assert "65536 (64<<10)" in out                  # 64 << 10, tshark's calculated window
    code, out, _ = run(["analyze", str(CAPTURES / "negotiation-no-wscale.pcap"), "--flow", "1", "--wide"], capsys)
    assert "<<" not in out and "warnings: window_scale_one_side" in out


def test_ladder_arrows_of_the_handshake_carry_the_options(capsys: pytest.CaptureFixture[str]):
    code, out, _ = run(["analyze", str(CAPTURES / "echo-client-close.pcap"), "--flow", "1", "--ladder"], capsys)
    assert code == 0
    arrows = [line for line in out.splitlines() if "[S" in line]
    assert len(arrows) == 2 and all("mss 65495 ws 10 sack ts" in a for a in arrows)
    assert "[.]" in out and out.count("mss 65495") == 2          # only the SYN and the SYN-ACK
    from handshake_probe.views.ladder_svg import ladder_svg
    analysis = handshake_probe.analyze(str(CAPTURES / "negotiation-ecn.pcap"), streaming=False, keep_rows=True)
    rec = next(iter(analysis))
    svg = ladder_svg(rec, analysis.rows(1))
    assert svg.count('class="options"') == 2 and "ws 10 sack ts ecn</tspan>" in svg


def test_negotiated_column_is_off_by_default_and_selectable(capsys: pytest.CaptureFixture[str]):
    path = str(CAPTURES / "negotiation-mss-clamp.pcap")
    _, out, _ = run(["analyze", path], capsys)
    assert "negotiated" not in out
    _, out, _ = run(["analyze", path, "--columns", "flow,negotiated"], capsys)
    assert "ws 10/10 sack ts mss 1000/1200" in out


def test_csv_columns_and_the_engines_csv_agree(capsys: pytest.CaptureFixture[str]):
    from handshake_probe.views.table import csv_row
    path = str(CAPTURES / "negotiation-no-wscale.pcap")
    _, out, _ = run(["analyze", path, "--format", "csv", "--p0f-db", "/etc/p0f/p0f.fp"]
                    if Path("/etc/p0f/p0f.fp").is_file() else ["analyze", path, "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0])[-6:] == ["negotiated", "negotiation_warnings", "client_p0f", "server_p0f",
                                  "client_os", "server_os"]
    assert rows[0]["negotiated"] == "no ws sack ts mss 1460/1460"
    assert rows[0]["negotiation_warnings"] == "window_scale_one_side"
    assert rows[0]["client_p0f"].startswith("4:64+0:0:1460:mss*44,10:mss,sok,ts,nop,ws:")
    # the Python flattening (one --flow, several files) writes the same cells as the engine
    rec = records("negotiation-no-wscale.pcap")[0]
    assert [str(c) for c in csv_row(rec)][-6:-2] == [rows[0][k] for k in list(rows[0])[-6:-2]]


def test_check_asserts_negotiation_fields(capsys: pytest.CaptureFixture[str]):
    path = str(CAPTURES / "negotiation-ecn.pcap")
    code, out, _ = run(["check", path, "--all-flows", "negotiation.in_effect.ecn=true",
                        "--flow", "1", "negotiation.client.mss=65495"], capsys)
    assert code == 0, out
    code, out, _ = run(["check", path, "--flow", "1", "negotiation.client.mss=1460"], capsys)
    assert code == 1 and "found:    65495" in out
    code, _, err = run(["check", path, "--flow", "1", "negotiation.in_effect.windowscaling=true"], capsys)
    assert code == 2 and "did you mean 'in_effect.window_scaling'" in err


def test_p0f_db_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = str(CAPTURES / "echo-client-close.pcap")
    code, out, err = run(["analyze", path, "--p0f-db", str(tmp_path / "none.fp")], capsys)
    assert (code, out) == (2, "") and err.strip().endswith("No such file or directory")
    bad = tmp_path / "bad.fp"
    bad.write_text("classes = unix\n[tcp:request]\nlabel = s:unix:Linux:3.x\nsig = 4:64:0:*:*,*:mss:bogus:0\n")
    code, out, err = run(["analyze", path, "--p0f-db", str(bad)], capsys)
    assert (code, out) == (2, "") and "line 4: unrecognized quirk 'bogus'" in err and len(err.splitlines()) == 1


def test_p0f_db_labels_both_sides(tmp_path: Path):
    db = tmp_path / "p0f.fp"
    db.write_text("classes = win,unix,other\n[tcp:request]\nlabel = s:unix:Linux:test\n"
                  "sig = *:64:0:*:mss*1,10:mss,sok,ts,nop,ws:df,id+:0\n"
                  "[tcp:response]\nlabel = g:unix:Linux:\nsig = *:64:0:*:*,*:mss,sok,ts,nop,ws:df:0\n")
    neg = records("echo-client-close.pcap", p0f_db=db.read_text())[0]["negotiation"]
    assert (neg["client"]["os"], neg["server"]["os"]) == ("Linux test", "Linux")
    assert records("echo-client-close.pcap")[0]["negotiation"]["client"]["os"] is None
    other = records("negotiation-mss-clamp.pcap", p0f_db=db.read_text())[0]["negotiation"]
    assert other["client"]["os"] == "???"          # what p0f prints when nothing matches
