"""The bundled captures replayed on lo at top speed (tcpreplay) through `handshake-probe capture`: the
flows seen live equal `analyze` on the replayed file: same count, same client and server state path
for every flow, every frame kept once.

tcpreplay puts each frame on the interface as it is: lo takes Ethernet frames, so the raw-IP
(LINKTYPE_RAW) captures get a 14-byte Ethernet header first. The addresses are rewritten to
documentation prefixes (198.51.100.0/24, 2001:db8:11::/48) that no host here owns: the kernel then
drops the replayed packets after the capture taps saw them, and answers none (a replayed SYN to
127.0.0.1 could reach a port some other test listens on). Packets to a non-local address on lo go
nowhere as long as forwarding is off; the test refuses to run otherwise. The timestamps are made
10 us apart: at top speed the replay compresses the file's time, and a gap that crossed the 5 s
linger in the file but not live would change a flow's ending (README, "Live capture at load").
"""

from __future__ import annotations

import glob
import json
import re
import shutil
import signal
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from handshake_probe import _engine
from handshake_probe.files.pcapwriter import PcapWriter
from handshake_probe.live.capture import has_capture_privilege
from handshake_probe.commands.capture import transition_line
from tests.test_live import SUMMARY, python_env

TRANSITION = re.compile(r"^\d\d:\d\d:\d\d\.\d{6}  flow \d+  ")

ROOT = Path(__file__).resolve().parent.parent
FILTER = "tcp and (net 198.51.100.0/24 or net 2001:db8:11::/48)"
ETH = {4: b"\0" * 12 + b"\x08\x00", 6: b"\0" * 12 + b"\x86\xdd"}


def _forwarding_off() -> bool:
    for knob in ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"):
        try:
            if Path(knob).read_text().strip() != "0":
                return False
        except OSError:
            pass
    return True


pytestmark = [
    pytest.mark.skipif(not has_capture_privilege(), reason="live capture needs CAP_NET_RAW"),
    pytest.mark.skipif(shutil.which("tcpreplay") is None,
                       reason="tcpreplay not installed (apt-get install tcpreplay)"),
]


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Rewriter:
    """Each distinct address of the bundled captures -> its own documentation address."""

    def __init__(self) -> None:
        self.v4: Dict[bytes, bytes] = {}
        self.v6: Dict[bytes, bytes] = {}

    def _new(self, table: Dict[bytes, bytes], old: bytes, v6: bool) -> bytes:
        if old not in table:
            n = len(table) + 1
            assert n < 255, "more addresses than the prefix holds"
            table[old] = (bytes.fromhex("20010db80011" + "00" * 9) + bytes([n])) if v6 else bytes([198, 51, 100, n])
        return table[old]

    def frame(self, data: bytes, linktype: int) -> bytes:
        ip = data[14:] if linktype == 1 else data
        version = ip[0] >> 4
        if version == 4:
            ihl = (ip[0] & 15) * 4
            header = bytearray(ip[:ihl])
            header[12:16] = self._new(self.v4, bytes(header[12:16]), False)
            header[16:20] = self._new(self.v4, bytes(header[16:20]), False)
            header[10:12] = b"\0\0"
            header[10:12] = struct.pack("!H", _ip_checksum(bytes(header)))
            ip = bytes(header) + ip[ihl:]
        elif version == 6:
            ip = (ip[:8] + self._new(self.v6, ip[8:24], True) + self._new(self.v6, ip[24:40], True) + ip[40:])
        else:
            raise AssertionError(f"not IP: {ip[:1].hex()}")
        return ETH[version] + ip


def build_replay(path: Path) -> int:
    """Every bundled capture (captures/*.pcap) in one Ethernet pcap, addresses rewritten, frames
    10 us apart; returns the number of frames."""
    rw = Rewriter()
    n = 0
    t0 = 1_750_000_000.0
    with PcapWriter(str(path), 1) as out:
        for name in sorted(glob.glob(str(ROOT / "captures" / "*.pcap"))):
            for _frame, _ts, linktype, data, wirelen, _off in _engine.Frames(name):
                assert wirelen == len(data), f"{name}: a cut frame cannot be replayed whole"
                out.write(t0 + n * 1e-5, rw.frame(data, linktype))
                n += 1
    return n


def paths(records: List[dict]) -> Dict[int, Tuple[str, str, Tuple[str, ...], Tuple[str, ...]]]:
    return {r["flow"]: (r["client"], r["server"], tuple(r["client_states"]), tuple(r["server_states"]))
            for r in records}


def replayed(replay: Path, frames: int, *options: str) -> Tuple[str, str]:
    """`handshake-probe capture OPTIONS FILTER` while tcpreplay puts `replay` on lo at top speed;
    (stdout, stderr) once a SIGINT ended it (it still reads what the kernel queued before)."""
    cap = subprocess.Popen([sys.executable, "-m", "handshake_probe", "capture", *options, FILTER],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                           env=python_env())
    try:
        assert cap.stderr is not None
        line = cap.stderr.readline()
        assert "listening on lo" in line, line + (cap.stderr.read() if cap.poll() is not None else "")
        done = subprocess.run(["tcpreplay", "-i", "lo", "--topspeed", str(replay)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"Actual: {frames} packets" in done.stdout, done.stdout
    finally:
        cap.send_signal(signal.SIGINT)
        out, err = cap.communicate(timeout=60)
    assert cap.returncode == 0, err
    summary = SUMMARY.search(out + err)
    assert summary, err
    captured, _segments, _flows, dropped = map(int, summary.groups())
    assert (captured, dropped) == (frames, 0)
    return out, err


def analyze_jsonl(path: Path) -> List[dict]:
    done = subprocess.run([sys.executable, "-m", "handshake_probe", "analyze", "--format", "jsonl", str(path)],
                          capture_output=True, text=True, check=True, cwd=ROOT, env=python_env(), timeout=120)
    return [json.loads(line) for line in done.stdout.split("\n") if line]


needs_no_forwarding = pytest.mark.skipif(
    not _forwarding_off(), reason="IP forwarding is on: replayed packets to documentation addresses could "
                                  "leave the host")


@needs_no_forwarding
def test_top_speed_replay_of_the_bundled_captures_equals_analyze(tmp_path: Path):
    replay = tmp_path / "bundled.pcap"
    frames = build_replay(replay)
    assert frames > 30_000  # echo-port-reuse-3000 alone has 30,000
    out, err = replayed(replay, frames, "-q", "--format", "jsonl")
    live = [json.loads(line) for line in out.split("\n") if line]
    offline = analyze_jsonl(replay)
    summary = SUMMARY.search(err)
    assert summary and int(summary.group(3)) == len(live) == len(offline)
    assert len(offline) > 3000
    want, got = paths(offline), paths(live)
    differ = [n for n in want if want[n] != got.get(n)]
    assert differ == [], f"{len(differ)} flows differ, first: {want[differ[0]]} / {got.get(differ[0])}"
    # Not one path that makes the comparison trivial: the replay holds every kind of ending.
    assert {r["close"] for r in live} >= {"fin", "client-rst", "rejected", "none"}


@needs_no_forwarding
def test_every_transition_printed_live_is_in_the_final_records_and_none_is_missing(tmp_path: Path):
    """What is printed live is final: the transition lines printed during the replay are exactly the
    transitions of the records `analyze` makes of the pcap the capture wrote (-w): none printed
    that a later segment took back, none left out. The bundled captures include crossing FINs
    (simultaneous-close), half-closes, RSTs in SYN-RECEIVED and out of window, simultaneous open."""
    replay, written = tmp_path / "bundled.pcap", tmp_path / "live.pcap"
    frames = build_replay(replay)
    out, _err = replayed(replay, frames, "-w", str(written))
    printed = Counter(line + "\n" for line in out.split("\n") if TRANSITION.match(line))
    expected: Counter = Counter()
    for rec in analyze_jsonl(written):
        for t in rec["transitions"]:
            expected[transition_line({**t, "flow": rec["flow"], "client": rec["client"],
                                      "server": rec["server"]})] += 1
    assert sum(printed.values()) > 30_000
    assert printed == expected, (f"printed but not final: {list((printed - expected).items())[:3]}; "
                                 f"final but not printed: {list((expected - printed).items())[:3]}")
    crossing = [line for line in printed if "simultaneous" in line or "CLOSING" in line]
    assert crossing, "the replay should hold a simultaneous close (CLOSING)"
