#!/usr/bin/env python3
"""Live capture at load: does `handshake-probe capture` keep every packet tcpdump keeps, and see the
flows `analyze` sees?

Two loads on `lo`, each captured at the same time by `handshake-probe capture` (a subprocess, as a
user runs it: `-q --format jsonl -w FILE FILTER`) and by tcpdump with the same filter:

* replay (default): `tcpreplay -i lo --topspeed` of a capture (by default bench/gen_capture.py's,
  --flows 110000: 1,022,721 packets, Ethernet/IPv4+IPv6, addresses 10.0.0.0/8 and 2001:db8::/32 that
  no host here owns, so the kernel answers nothing). Then `analyze --format jsonl` on the replayed
  file: flow count and each flow's client and server state paths are compared with the live records.
* flood: `hping3 -S --flood` to a CLOSED port on 127.0.0.1 for --duration seconds (hping3 3.a2
  ignores -c in flood mode, so the duration bounds it; `--count N` sends N SYNs with `-i u1 -c N`
  instead): the kernel answers each SYN with RST/ACK, each pair a rejected flow (`REJ`).

Printed: the offered rate, packets seen by both captures, kernel drops, flows, the comparison, the
capture's CPU time and peak memory, and the machine's load (uptime) before and after. A benchmark,
not a test: it never fails on speed. Usage (root, tcpdump, tcpreplay, hping3):

    python bench/live_load.py                        # replay the generated 1M-packet capture
    python bench/live_load.py --pcap some.pcap --filter 'tcp port 80'
    python bench/live_load.py --load flood --duration 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
GEN_FILTER = "tcp and (host 10.1.0.1 or host 2001:db8::1)"  # gen_capture.py's two servers
SETTLE = 1.0  # after the load: the last packets reach both captures
STOP_TIMEOUT = 120.0

SUMMARY = re.compile(r"capture on \S+: (\d+) frames? captured, (\d+) TCP segments?, (\d+) flows?, "
                     r"(\d+) packets? dropped by the kernel \((\d+) received by the filter\)")


def env() -> Dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def uptime() -> str:
    with open("/proc/loadavg") as f:
        one, five, fifteen = f.read().split()[:3]
    return f"load average {one}, {five}, {fifteen} on {os.cpu_count()} CPUs"


def wait_line(proc: subprocess.Popen, needle: str, what: str) -> None:
    """Read stderr lines until `needle` (the capture is listening)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if needle in line:
            return
        if not line and proc.poll() is not None:
            raise SystemExit(f"{what} did not start")
    raise SystemExit(f"{what} did not start within 30 s")


class Capture:
    """`handshake-probe capture -q --format jsonl -w FILE FILTER` in /usr/bin/time -v."""

    def __init__(self, bpf: str, pcap: Path, records: Path, reader: str) -> None:
        self.records_path = records
        self.out = open(records, "w")
        timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
        self.proc = subprocess.Popen(
            timer + [sys.executable, "-m", "handshake_probe", "capture", "-q", "--format", "jsonl",
                     "--reader", reader, "-w", str(pcap), bpf],
            stdout=self.out, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env())
        wait_line(self.proc, "listening on", "handshake-probe capture")

    def stop(self) -> Tuple[Tuple[int, ...], Dict[str, str]]:
        """(frames, segments, flows, dropped, received) and /usr/bin/time's figures."""
        # /usr/bin/time forwards nothing: signal the capture itself (its only child).
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        pids = [int(p) for p in children.read_text().split()] if children.exists() else []
        for pid in pids or [self.proc.pid]:
            os.kill(pid, signal.SIGINT)
        _, err = self.proc.communicate(timeout=STOP_TIMEOUT)
        self.out.close()
        m = SUMMARY.search(err)
        if not m:
            raise SystemExit(f"no summary from the capture:\n{err}")
        timing = dict(re.findall(r"^\s*(User time \(seconds\)|System time \(seconds\)|Maximum resident "
                                 r"set size \(kbytes\)|Percent of CPU this job got): (\S+)", err, re.M))
        return tuple(int(g) for g in m.groups()), timing


class Tcpdump:
    """tcpdump as the independent counter, same filter, a ring as large as our socket buffer
    (-B 65536 KiB; its 2 MiB default drops at these rates); statistics parsed at SIGINT."""

    def __init__(self, bpf: str) -> None:
        self.proc = subprocess.Popen(["tcpdump", "-i", "lo", "-s", "0", "-B", "65536", "-w", "/dev/null",
                                      bpf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_line(self.proc, "listening on", "tcpdump")

    def stop(self) -> Tuple[int, int]:
        """(captured, dropped by the kernel)."""
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=STOP_TIMEOUT)

        def number(suffix: str) -> int:
            m = re.search(r"^(\d+) " + suffix, err, re.M)
            return int(m.group(1)) if m else -1

        return number("packets captured"), number("packets dropped by kernel")


def records(path: Path) -> List[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# Transitions decided by the clock, not by a segment: a 4-tuple taken over by a new SYN while the
# old flow lingered (a replay at top speed brings the reuse closer than the 5 s linger) and the
# 2MSL timer.
TIMED = ("new SYN on the 4-tuple", "2MSL timeout")


def untimed_path(rec: dict, endpoint: str) -> Tuple[str, ...]:
    moves = [t["to"] for t in rec["transitions"] if t["endpoint"] == endpoint and t["cause"] not in TIMED]
    return (rec[f"{endpoint}_states"][0], *moves)


def paths(recs: List[dict], untimed: bool = False) -> Dict[int, Tuple[str, str, Tuple[str, ...], Tuple[str, ...]]]:
    if untimed:
        return {r["flow"]: (r["client"], r["server"], untimed_path(r, "client"), untimed_path(r, "server"))
                for r in recs}
    return {r["flow"]: (r["client"], r["server"], tuple(r["client_states"]), tuple(r["server_states"]))
            for r in recs}


def compare(live: List[dict], offline: List[dict], untimed: bool = False) -> Tuple[int, List[str]]:
    """(flows whose ends and both state paths differ or are missing on either side, examples)."""
    a, b = paths(live, untimed), paths(offline, untimed)
    bad = sorted(n for n in a.keys() | b.keys() if a.get(n) != b.get(n))
    return len(bad), [f"flow {n}: live {a.get(n)} / analyze {b.get(n)}" for n in bad[:3]]


def analyze(path: Path, extra: List[str], out: Path) -> List[dict]:
    with open(out, "w") as f:
        subprocess.run([sys.executable, "-m", "handshake_probe", "analyze", "--format", "jsonl", *extra,
                        str(path)], stdout=f, check=True, cwd=ROOT, env=env(), timeout=600)
    return records(out)


def frame_bytes(path: Path) -> Iterator[bytes]:
    from handshake_probe import _engine
    for frame in _engine.Frames(str(path)):
        yield frame[3]


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_load(args: argparse.Namespace, bpf: str, tmp: Path) -> Tuple[str, Optional[Path]]:
    """Start both captures, run the load, stop them; print the figures. Returns the load's line
    and the file that was replayed (None for the flood)."""
    print(f"before: {uptime()}")
    live_pcap, live_jsonl = tmp / "live.pcap", tmp / "live.jsonl"
    cap = Capture(bpf, live_pcap, live_jsonl, args.reader)
    td = Tcpdump(bpf) if not args.no_tcpdump else None
    try:
        if args.load == "replay":
            done = subprocess.run(["tcpreplay", "-i", "lo", "--topspeed", str(args.pcap)],
                                  capture_output=True, text=True, timeout=600)
            load = " ".join(re.findall(r"^\s*(Actual: .*|Rated: .*)$", done.stdout, re.M)) or done.stderr
        else:
            flood = (["hping3", "-S", "-i", "u1", "-c", str(args.count)] if args.count else
                     ["timeout", "-s", "INT", str(args.duration), "hping3", "-S", "--flood"])
            t0 = time.monotonic()
            done = subprocess.run(flood + ["-p", str(args.port), "127.0.0.1"], capture_output=True,
                                  text=True, timeout=max(args.duration, 60) + 30)
            sent = re.search(r"(\d+) packets transmitted", done.stdout + done.stderr)
            load = (f"hping3 sent {sent.group(1) if sent else '?'} SYNs to 127.0.0.1:{args.port} "
                    f"in {time.monotonic() - t0:.2f} s")
        time.sleep(SETTLE)
    finally:
        during = uptime()
        (frames, segments, flows, dropped, received), timing = cap.stop()
        counted = td.stop() if td is not None else None
    print(f"load: {load}")
    print(f"after: {during}")
    print(f"handshake-probe capture --reader {args.reader}: {frames:,} frames, {flows:,} flows, {dropped:,} dropped by the kernel "
          f"({received:,} received by the filter); CPU {timing.get('User time (seconds)', '?')} s user + "
          f"{timing.get('System time (seconds)', '?')} s system, peak RSS "
          f"{int(timing.get('Maximum resident set size (kbytes)', 0)) // 1024} MiB")
    if counted is not None:
        print(f"tcpdump (same filter): {counted[0]:,} captured, {counted[1]:,} dropped by the kernel")
        print(f"equal counts: {'yes' if counted[0] == frames else 'NO'} (difference {frames - counted[0]:+,})")
    live = records(live_jsonl)
    if args.load == "replay":
        # The replay squeezes the file's time (--topspeed): gaps between a flow's end and the next
        # SYN on its 4-tuple that were longer than the 5 s linger in the file are shorter live.
        # `analyze --linger 3600` (longer than any gap in the file) decides as the replay does; the
        # live pcap (-w) carries the live timestamps, so plain `analyze` on it must agree exactly.
        for what, path in ((args.pcap.name, args.pcap), ("the live -w pcap", live_pcap)):
            want = analyze(path, [], tmp / "analyze.jsonl")
            bad, examples = compare(live, want)
            print(f"analyze {what}: {len(want):,} flows; live: {len(live):,} flows; flows that differ "
                  f"(ends or either state path): {bad}")
            for line in examples[:1]:
                print("  e.g. " + line)
            if bad:
                timed, _ = compare(live, want, untimed=True)
                print(f"  apart from the endings time decides ({' and '.join(map(repr, TIMED))}): "
                      f"{timed} differ")
        same = sum(1 for a, b in zip(frame_bytes(args.pcap), frame_bytes(live_pcap)) if a == b)
        print(f"frames of the live pcap equal to the replayed file's, in order: {same:,} of "
              f"{sum(1 for _ in frame_bytes(args.pcap)):,}")
    else:
        rejected = sum(1 for r in live if r["conn_state"] == "REJ")
        print(f"flows: {len(live):,}, of them rejected (REJ): {rejected:,}; frames = 2 x flows: "
              f"{'yes' if frames == 2 * len(live) else 'NO'}")
        for r in [r for r in live if r["conn_state"] != "REJ"][:3]:
            print(f"  not REJ: flow {r['flow']} {r['client']} -> {r['server']}: {r['conn_state']} "
                  f"{r['history']}, {r['packets']} packets, client {'>'.join(r['client_states'])}, "
                  f"server {'>'.join(r['server_states'])}")
    return load, args.pcap if args.load == "replay" else None


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--load", choices=("replay", "flood"), default="replay")
    ap.add_argument("--pcap", type=Path, help="capture to replay (default: generate one)")
    ap.add_argument("--flows", type=int, default=110_000, help="flows to generate (default 110000)")
    ap.add_argument("--filter", help=f"capture filter (default for the generated capture: {GEN_FILTER!r}; "
                                     "for the flood: tcp port PORT)")
    ap.add_argument("--duration", type=float, default=3.0, help="flood: seconds (default 3)")
    ap.add_argument("--count", type=int, help="flood: send exactly N SYNs (hping3 -i u1 -c N) instead")
    ap.add_argument("--no-tcpdump", action="store_true", help="skip tcpdump's independent count")
    ap.add_argument("--reader", choices=("ring", "recvmmsg"), default="ring",
                    help="capture --reader (default ring: TPACKET_V3)")
    args = ap.parse_args(argv)
    needed = ["tcpdump"] + (["tcpreplay"] if args.load == "replay" else ["hping3"])
    missing = [t for t in needed if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"needs {', '.join(missing)} (apt-get install {' '.join(missing)})")
    with tempfile.TemporaryDirectory(prefix="live-load-") as d:
        tmp = Path(d)
        if args.load == "replay":
            if args.pcap is None:
                args.pcap = tmp / "gen.pcap"
                subprocess.run([sys.executable, str(ROOT / "bench" / "gen_capture.py"), str(args.pcap),
                                "--flows", str(args.flows)], check=True, cwd=ROOT, timeout=600)
            bpf = args.filter or GEN_FILTER
        else:
            args.port = closed_port()
            bpf = args.filter or f"tcp port {args.port}"
        print(f"filter: {bpf!r}")
        run_load(args, bpf, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
