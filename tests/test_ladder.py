"""The ladder (sequence) diagram: text for terminals, SVG for documents, and the `ladder` command."""

from __future__ import annotations

import argparse
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import PcapReader

from handshake_probe.commands import COMMANDS
from handshake_probe.files.flowsource import FlowView, flow_with_rows, flows_with_rows, records_and_summary
from handshake_probe.views.ladder import ladder_steps, ladder_text, ladders_text
from handshake_probe.views.ladder_svg import COLOURS, ladder_svg, ladders_svg
from handshake_probe.files.pcapwriter import PcapWriter
from tests.talk import Talk

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
SVG = "{http://www.w3.org/2000/svg}"
# An arrow line: time, client state, |body|, server state. The body runs from lifeline to lifeline.
ARROW = re.compile(r"^(?P<left>.*?)\|(?P<body><-.*-|-.*->)\|(?P<right>.*)$")


def flow_of(name: str, number: int = 1) -> FlowView:
    """(record, rows) of a capture's flow, as the views receive it."""
    view = flow_with_rows(str(CAPTURES / name), number)
    assert view is not None
    return view


def talk_flow(t: Talk) -> FlowView:
    """(record, rows) of a crafted conversation's first flow, as the engine hands them out."""
    return t.record(), t.rows()


def arrows(text: str) -> List[Tuple[int, re.Match]]:
    """(line index, match) for every arrow line."""
    return [(i, m) for i, line in enumerate(text.splitlines()) if (m := ARROW.match(line))]


def parse_body(body: str) -> Tuple[str, str]:
    """('->' or '<-', label) from an arrow's body."""
    direction = "->" if body.endswith(">") else "<-"
    return direction, body.strip("<>-").strip(" -")


def left_state(m: re.Match) -> str:
    parts = m.group("left").split()
    return parts[-1] if parts and not re.fullmatch(r"[\d.]+", parts[-1]) else ""


# ---------------------------------------------------------------------------------------------- text
ECHO_CLOSE = [  # direction, label, client state entered, server state entered (captures/README.md)
    # the SYN and SYN-ACK arrows carry their options (issue 12)
    ("->", "[S] seq=0 mss 65495 ws 10 sack ts", "SYN-SENT", "SYN-RECEIVED"),
    ("<-", "[S.] seq=0 ack=1 mss 65495 ws 10 sack ts", "ESTABLISHED", ""),
    ("->", "[.] seq=1 ack=1", "", "ESTABLISHED"),
    ("->", "[P.] seq=1 ack=1 len=6", "", ""),
    ("<-", "[.] seq=1 ack=7", "", ""),
    ("<-", "[P.] seq=1 ack=7 len=6", "", ""),
    ("->", "[.] seq=7 ack=7", "", ""),
    ("->", "[F.] seq=7 ack=7", "FIN-WAIT-1", "CLOSE-WAIT"),
    ("<-", "[F.] seq=7 ack=8", "FIN-WAIT-2", "LAST-ACK"),
    ("->", "[.] seq=8 ack=8", "", "CLOSED"),
]


@dataclass(frozen=True)
class Recorded:
    """What a re-recording changes, read from the capture with scapy: the endpoints, the ISNs and the times."""

    client: str           # "ip:port", as the ladder writes it
    server: str
    client_isn: int
    server_isn: int
    ms: List[str]         # every segment's time since the first, in ms, as the ladder writes it ("0.012")


def recorded(name: str) -> Recorded:
    with PcapReader(str(CAPTURES / name)) as reader:
        segments = [p for p in reader if IP in p and TCP in p]
    syn = next(p for p in segments if p[TCP].flags.S and not p[TCP].flags.A)
    synack = next(p for p in segments if p[TCP].flags.S and p[TCP].flags.A)
    t0 = segments[0].time     # exact decimals: microsecond timestamps give exact milliseconds
    return Recorded(f"{syn[IP].src}:{syn[TCP].sport}", f"{syn[IP].dst}:{syn[TCP].dport}", syn[TCP].seq,
                    synack[TCP].seq, [f"{(p.time - t0) * 1000:.3f}" for p in segments])


def absolute_label(label: str, direction: str, rec: Recorded) -> str:
    """A relative ladder label ("[S.] seq=0 ack=1") with seq and ack made absolute from the ISNs: seq is
    relative to the sender's ISN, ack to the receiver's, both modulo 2**32."""
    sender, receiver = ((rec.client_isn, rec.server_isn) if direction == "->"
                        else (rec.server_isn, rec.client_isn))
    label = re.sub(r"\bseq=(\d+)", lambda m: f"seq={(sender + int(m.group(1))) % 2**32}", label)
    return re.sub(r"\back=(\d+)", lambda m: f"ack={(receiver + int(m.group(1))) % 2**32}", label)


def test_text_ladder_of_the_echo_session_has_one_arrow_per_segment_in_order():
    rec = recorded("echo-client-close.pcap")
    text = ladder_text(*flow_of("echo-client-close.pcap"))
    lines = text.splitlines()
    found = arrows(text)
    assert len(found) == len(ECHO_CLOSE) == 10
    for (i, m), (direction, label, cstate, sstate) in zip(found, ECHO_CLOSE):
        assert parse_body(m.group("body")) == (direction, label), lines[i]
        assert left_state(m) == cstate, lines[i]
        assert m.group("right").strip() == sstate, lines[i]
    # FIN+ACK moves the client FIN-WAIT-1 > FIN-WAIT-2 > TIME-WAIT on one segment: the second on the next line.
    i9 = found[8][0]
    assert lines[i9 + 1].split("|")[0].split() == ["TIME-WAIT"]
    # Times on the left, ms since the first segment (the capture's own timestamps).
    assert len(rec.ms) == 10 and rec.ms[0] == "0.000"
    assert [m.group("left").split()[0] for _, m in found] == rec.ms
    # Initial states above the first arrow, and the endpoints named.
    assert re.search(r"^\s+CLOSED \|\s+\| LISTEN$", text, re.M)
    assert rec.client in text and rec.server in text
    assert f"flow 1: client {rec.client} -> server {rec.server}" in lines[0]
    assert all(len(line) <= 100 for line in lines)


def test_text_ladder_states_sit_on_their_own_side():
    text = ladder_text(*flow_of("echo-client-close.pcap"))
    for _, m in arrows(text):
        for state in ("SYN-RECEIVED", "CLOSE-WAIT", "LAST-ACK"):
            assert state not in m.group("left")
        for state in ("SYN-SENT", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"):
            assert state not in m.group("right")


def test_absolute_numbers():
    rec = recorded("echo-client-close.pcap")
    c, s = rec.client_isn, rec.server_isn
    text = ladder_text(*flow_of("echo-client-close.pcap"), absolute=True)
    labels = [parse_body(m.group("body"))[1] for _, m in arrows(text)]
    assert labels[:3] == [f"[S] seq={c} mss 65495 ws 10 sack ts", f"[S.] seq={s} ack={(c + 1) % 2**32} mss 65495 ws 10 sack ts",
                          f"[.] seq={(c + 1) % 2**32} ack={(s + 1) % 2**32}"]
    assert labels == [absolute_label(label, direction, rec) for direction, label, _, _ in ECHO_CLOSE]
    assert "seq/ack absolute" in text
    assert all(len(line) <= 100 for line in text.splitlines())


def test_simultaneous_close_shows_both_states_entered_on_the_crossing_fin():
    text = ladder_text(*flow_of("simultaneous-close.pcap"))
    lines = text.splitlines()
    found = arrows(text)
    i9, m9 = found[8]
    assert parse_body(m9.group("body")) == ("<-", "[F.] seq=7 ack=7")
    assert left_state(m9) == "CLOSING"
    assert m9.group("right").strip() == "FIN-WAIT-1"
    assert lines[i9 + 1].split("|")[-1].strip() == "CLOSING"
    assert m9 is not None and found[9][1].group("right").strip() == "TIME-WAIT"
    assert left_state(found[10][1]) == "TIME-WAIT"


def test_note_goes_under_its_arrow():
    text = ladder_text(*flow_of("rst-out-of-window.pcap"))
    lines = text.splitlines()
    found = arrows(text)
    i8, m8 = found[7]
    assert parse_body(m8.group("body")) == ("->", "[R] seq=1073741831")
    assert "RST not acceptable" in lines[i8 + 1]
    assert ARROW.match(lines[i8 + 2])            # the next segment follows the note
    assert lines[i8 + 1].count("|") == 2         # inside the lifelines
    assert all(len(line) <= 100 for line in lines)
    last = found[-1][1]
    assert left_state(last) == "CLOSED" and last.group("right").strip() == "CLOSED"


def long_talk(exchanges: int) -> Talk:
    t = Talk().handshake()
    for _ in range(exchanges):
        t.c("PA", 100)
        t.s("A")
    t.c("FA")
    t.s("FA")
    t.c("A")
    return t


def test_long_flow_is_elided_with_the_exact_count():
    t = long_talk(600)                      # 3 + 1200 + 3 = 1206 segments
    flow = talk_flow(t)
    assert len(flow[1]) == 1206
    text = ladder_text(*flow, max_rows=20, head=12, tail=8)
    lines = text.splitlines()
    found = arrows(text)
    assert len(found) == 20
    gap = [line for line in lines if "segments ..." in line]
    assert len(gap) == 1 and "... 1186 segments ..." in gap[0]
    # The first 12 and the last 8 segments, in order, around the gap.
    gap_at = lines.index(gap[0])
    assert all(i < gap_at for i, _ in found[:12]) and all(i > gap_at for i, _ in found[12:])
    labels = [parse_body(m.group("body"))[1] for _, m in found]
    assert labels[0] == "[S] seq=0" and labels[-1] == "[.] seq=60002 ack=2"
    assert labels[-3] == "[F.] seq=60001 ack=1"
    assert all(len(line) <= 100 for line in lines)
    # The defaults keep 12 + 8 too; other limits are parameters; None keeps everything.
    assert len(arrows(ladder_text(*flow))) == 20
    small = ladder_text(*flow, max_rows=5, head=3, tail=2)
    assert len(arrows(small)) == 5 and "... 1201 segments ..." in small
    assert len(arrows(ladder_text(*flow, max_rows=None))) == 1206


def test_a_flow_at_the_limit_is_not_elided():
    flow = talk_flow(long_talk(7))          # 20 segments
    text = ladder_text(*flow, max_rows=20)
    assert len(arrows(text)) == 20 and "segments ..." not in text


def test_state_changes_inside_the_gap_are_written_after_it():
    rec, rows = talk_flow(long_talk(30))
    n = len(rows)
    text = ladder_text(rec, rows, max_rows=10, head=4, tail=1)   # the gap swallows the FINs
    lines = text.splitlines()
    gap_at = next(i for i, line in enumerate(lines) if f"... {n - 5} segments ..." in line)
    after = lines[gap_at + 1].split("|")
    assert after[0].split() == ["TIME-WAIT"] and after[2].strip() == "LAST-ACK"


def test_timer_transition_is_drawn_in_time_order():
    t = Talk(msl=0.5).handshake()
    t.c("FA")
    t.s("FA")
    t.c("A")
    Talk(client=("10.0.0.9", 50000), t0=t.ts + 5, wire=t.wire).c("S")   # the capture goes on for 5 s
    text = ladder_text(*talk_flow(t))
    line = next(line for line in text.splitlines() if "(2MSL timeout)" in line)
    # TIME-WAIT began with the server's FIN (4 ms after the SYN) and lasts 2 x 0.5 s.
    assert line.split()[0] == "1004.000"
    assert text.splitlines().index(line) == len(text.splitlines()) - 1
    assert line.split("|")[0].split()[-1] == "CLOSED"


def test_several_flows_one_after_another_with_a_cap():
    views, summary = flows_with_rows(str(CAPTURES / "echo-port-reuse-3000.pcap"), range(1, 4))
    text = ladders_text(views, total=summary.flow_count)
    assert [line.split(":")[0] for line in text.splitlines() if line.startswith("flow ")] == \
        ["flow 1", "flow 2", "flow 3"]
    assert len(arrows(text)) == 30
    assert text.splitlines()[-1].startswith("(showing the first 3 of 3000 flows")


def test_ipv6_and_narrow_width():
    flow = flow_of("echo-ipv6.pcap")
    text = ladder_text(*flow, width=72)
    assert "[::1]:" in text and len(arrows(text)) == 10
    assert all(len(line) <= 72 for line in text.splitlines())


def test_a_flow_without_rows_is_refused():
    records, _summary = records_and_summary(str(CAPTURES / "echo-client-close.pcap"))
    # Rows not kept: the engine's Analysis.rows(n) gives None, the Python core's adapter [].
    for rows in (None, []):
        with pytest.raises(ValueError, match="without its segments"):
            ladder_text(records[0], rows)


# ----------------------------------------------------------------------------------------------- SVG
def svg_tree(doc: str) -> ET.Element:
    assert doc.startswith("<?xml")
    return ET.fromstring(doc.encode("utf-8"))


def all_text(root: ET.Element) -> List[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def test_svg_has_one_arrow_per_segment_and_the_states():
    rec = recorded("echo-client-close.pcap")
    root = svg_tree(ladder_svg(*flow_of("echo-client-close.pcap")))
    assert root.tag == f"{SVG}svg" and float(root.get("width")) > 0 and float(root.get("height")) > 0
    segs = [g for g in root.iter(f"{SVG}g") if g.get("class") == "segment"]
    assert [int(g.get("data-frame")) for g in segs] == list(range(1, 11))
    lines = [l for l in root.iter(f"{SVG}line") if l.get("class") == "arrow"]
    assert len(lines) == 10 and all(l.get("marker-end", "").startswith("url(#hp-head-") for l in lines)
    # Arrows run from the sender's lifeline to the receiver's and fall with time.
    cx, sx = float(lines[0].get("x1")), float(lines[0].get("x2"))
    for line, (direction, *_rest) in zip(lines, ECHO_CLOSE):
        x1, x2 = float(line.get("x1")), float(line.get("x2"))
        assert (x1, x2) == ((cx, sx) if direction == "->" else (sx, cx))
        assert float(line.get("y2")) > float(line.get("y1"))
    ys = [float(l.get("y1")) for l in lines]
    assert ys == sorted(ys)
    # Colours: SYN, ACK, FIN.
    assert lines[0].get("stroke") == lines[1].get("stroke") == COLOURS["syn"]
    assert lines[7].get("stroke") == lines[8].get("stroke") == COLOURS["fin"]
    assert lines[2].get("stroke") == COLOURS["ack"]
    texts = all_text(root)
    labels = [" ".join("".join(g.find(f"{SVG}text").itertext()).split()) for g in segs]
    assert labels == [label for _, label, _, _ in ECHO_CLOSE]
    states = [t for g in root.iter(f"{SVG}g") if g.get("class") == "state" for t in all_text(g)]
    for state in ("CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2",
                  "TIME-WAIT", "CLOSE-WAIT", "LAST-ACK"):
        assert state in states
    assert states.count("ESTABLISHED") == 2
    assert rec.client in texts and rec.server in texts
    assert f"{rec.ms[1]} ms" in texts
    assert all(f"{ms} ms" in texts for ms in rec.ms)


def test_svg_state_boxes_are_on_their_endpoints_side():
    root = svg_tree(ladder_svg(*flow_of("echo-client-close.pcap")))
    arrow = next(l for l in root.iter(f"{SVG}line") if l.get("class") == "arrow")
    cx, sx = float(arrow.get("x1")), float(arrow.get("x2"))
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "state":
            rect = g.find(f"{SVG}rect")
            left, right = float(rect.get("x")), float(rect.get("x")) + float(rect.get("width"))
            assert right < cx if g.get("data-endpoint") == "client" else left > sx


def test_svg_rst_colour_note_and_escaping():
    rec, rows = flow_of("rst-out-of-window.pcap")
    rows[0]["notes"].append("odd <note> & \"quotes\" ]]>")
    doc = ladder_svg(rec, rows, absolute=True)
    root = svg_tree(doc)
    lines = [l for l in root.iter(f"{SVG}line") if l.get("class") == "arrow"]
    assert len(lines) == 13
    assert lines[7].get("stroke") == lines[12].get("stroke") == COLOURS["rst"]
    notes = [t for t in root.iter(f"{SVG}text") if t.get("class") == "note"]
    assert any("RST not acceptable" in "".join(t.itertext()) for t in notes)
    assert any("odd <note> & \"quotes\" ]]>" in "".join(t.itertext()) for t in notes)
    assert "seq=700000000" in " ".join(all_text(root))


def test_svg_elides_long_flows_and_stacks_flows():
    flow = talk_flow(long_talk(100))        # 206 segments
    root = svg_tree(ladder_svg(*flow))
    segs = [g for g in root.iter(f"{SVG}g") if g.get("class") == "segment"]
    assert len(segs) == 60
    gap = [t for t in root.iter(f"{SVG}text") if t.get("class") == "gap"]
    assert len(gap) == 1 and "146 segments" in "".join(gap[0].itertext())
    root = svg_tree(ladder_svg(*flow, max_rows=None))
    assert len([g for g in root.iter(f"{SVG}g") if g.get("class") == "segment"]) == 206
    views, _summary = flows_with_rows(str(CAPTURES / "echo-port-reuse-3000.pcap"), range(1, 3))
    root = svg_tree(ladders_svg(views, total=3000))
    assert [g.get("data-flow") for g in root.iter(f"{SVG}g") if g.get("class") == "flow"] == ["1", "2"]
    assert any("showing the first 2 of 3000 flows" in t for t in all_text(root))


def test_rows_have_the_engine_shape():
    # The views read rows as the engine hands them out (src/rows.rs); the Python core's adapter must
    # give the same keys, with relative numbers from each side's ISN and None where there is no ACK.
    rec, rows = flow_of("echo-client-close.pcap")
    assert len(rows) == rec["packets"] == 10
    assert all(list(r) == ["frame", "ts", "from_client", "flags", "tcpdump_flags", "flag_names", "seq", "ack",
                           "rel_seq", "rel_ack", "len", "window", "window_scale", "window_scaled",
                           "syn_options", "client_state", "server_state", "transitions", "notes"] for r in rows)
    syn, synack = rows[0], rows[1]
    assert (syn["flags"], syn["tcpdump_flags"], syn["flag_names"]) == (2, "S", "SYN")
    assert syn["ack"] is None and syn["rel_ack"] is None and syn["rel_seq"] == 0
    assert (synack["rel_seq"], synack["rel_ack"]) == (0, 1) and synack["ack"] == (syn["seq"] + 1) % 2**32
    assert [(t["endpoint"], t["to"]) for t in syn["transitions"]] == [("client", "SYN-SENT"),
                                                                     ("server", "SYN-RECEIVED")]
    assert [t for r in rows for t in r["transitions"]] == rec["transitions"]
    assert (rows[-1]["client_state"], rows[-1]["server_state"]) == ("TIME-WAIT", "CLOSED")


def test_steps_model_is_shared():
    ladder = ladder_steps(*flow_of("echo-client-close.pcap"))
    assert [s.frame for s in ladder.steps] == list(range(1, 11))
    assert (ladder.client_initial, ladder.server_initial) == ("CLOSED", "LISTEN")
    assert ladder.steps[8].client_states == ("FIN-WAIT-2", "TIME-WAIT")


# ------------------------------------------------------------------------------------------- command
def ladder_main(argv: List[str]) -> int:
    """Through the CLI once the command is registered; until then through the module itself."""
    if "ladder" in COMMANDS:
        from handshake_probe.cli import main
        return main(["ladder", *argv])
    from handshake_probe.commands import ladder
    parser = argparse.ArgumentParser(prog="handshake-probe ladder")
    ladder.add_arguments(parser)
    return ladder.run(parser.parse_args(argv))


def run(argv: List[str], capsys) -> Tuple[int, str, str]:
    code = ladder_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_command_prints_the_ladder(capsys):
    rec = recorded("echo-client-close.pcap")
    code, out, err = run([str(CAPTURES / "echo-client-close.pcap"), "--flow", "1"], capsys)
    assert code == 0 and err == ""
    assert len(arrows(out)) == 10 and all(len(l) <= 100 for l in out.splitlines())
    code, out, err = run([str(CAPTURES / "echo-client-close.pcap"), "--absolute"], capsys)
    assert code == 0 and err == "" and f"[S] seq={rec.client_isn}" in out


def test_command_caps_the_flows(capsys):
    code, out, err = run([str(CAPTURES / "echo-port-reuse-3000.pcap"), "--max-flows", "2"], capsys)
    assert code == 0 and err == ""
    assert len([l for l in out.splitlines() if l.startswith("flow ")]) == 2
    assert "showing the first 2 of 3000 flows" in out


def test_command_writes_svg(tmp_path: Path, capsys):
    out_svg = tmp_path / "flow.svg"
    code, out, err = run([str(CAPTURES / "simultaneous-close.pcap"), "--flow", "1", "--svg", str(out_svg)],
                         capsys)
    assert code == 0 and err == "" and str(out_svg) in out
    root = svg_tree(out_svg.read_text(encoding="utf-8"))
    assert len([l for l in root.iter(f"{SVG}line") if l.get("class") == "arrow"]) == 11
    code, out, err = run([str(CAPTURES / "closed-port.pcap"), "--svg", "-"], capsys)
    assert code == 0 and err == ""
    assert len([l for l in svg_tree(out).iter(f"{SVG}line") if l.get("class") == "arrow"]) == 2


def write_long_capture(path: Path, exchanges: int) -> int:
    c, s = ("10.1.0.1", 40000), ("10.1.0.2", 7)

    def frame(src, dst, flags, seq, ack, payload=b""):
        return bytes(Ether() / IP(src=src[0], dst=dst[0]) /
                     TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack, window=65535) / payload)

    cs, ss = 1000, 9000
    frames = [frame(c, s, "S", cs, 0), frame(s, c, "SA", ss, cs + 1), frame(c, s, "A", cs + 1, ss + 1)]
    cs, ss = cs + 1, ss + 1
    for _ in range(exchanges):
        frames.append(frame(c, s, "PA", cs, ss, b"x" * 10))
        cs += 10
        frames.append(frame(s, c, "A", ss, cs))
    frames += [frame(c, s, "FA", cs, ss), frame(s, c, "FA", ss, cs + 1), frame(c, s, "A", cs + 1, ss + 1)]
    with PcapWriter(str(path), 1) as w:
        for i, data in enumerate(frames):
            w.write(1_700_000_000.0 + i * 0.0005, data)
    return len(frames)


def test_command_elides_a_long_capture(tmp_path: Path, capsys):
    path = tmp_path / "long.pcap"
    n = write_long_capture(path, 150)
    code, out, err = run([str(path)], capsys)
    assert code == 0 and err == ""
    assert len(arrows(out)) == 20 and f"... {n - 20} segments ..." in out
    code, out, err = run([str(path), "--head", "5", "--tail", "3"], capsys)
    assert len(arrows(out)) == 8 and f"... {n - 8} segments ..." in out
    code, out, err = run([str(path), "--all"], capsys)
    assert len(arrows(out)) == n and "segments ..." not in out
    assert all(len(l) <= 100 for l in out.splitlines())


def test_command_bad_file_is_exit_2_with_one_line(tmp_path: Path, capsys):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"hello, not a capture")
    code, out, err = run([str(bad)], capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and "not a pcap or pcapng file" in err
    code, out, err = run([str(tmp_path / "missing.pcap"), "--flow", "1"], capsys)
    assert code == 2 and len(err.splitlines()) == 1


def test_command_unknown_flow_is_exit_2_with_one_line(capsys):
    code, out, err = run([str(CAPTURES / "echo-client-close.pcap"), "--flow", "2"], capsys)
    assert code == 2 and out == ""
    assert err.splitlines() == ["handshake-probe: error: " + str(CAPTURES / "echo-client-close.pcap")
                                + ": no flow 2 (the capture has 1 flow)"]


def test_command_unwritable_svg_is_exit_2(tmp_path: Path, capsys):
    code, out, err = run([str(CAPTURES / "echo-client-close.pcap"), "--svg",
                          str(tmp_path / "no" / "such" / "dir.svg")], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "cannot write" in err


def test_command_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        ladder_main([str(CAPTURES / "echo-client-close.pcap"), "--head", "-1"])
    assert exc.value.code == 2
