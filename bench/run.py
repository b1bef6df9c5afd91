"""Benchmark: handshake-probe beside the tools users would pick instead, on the same file, in one run.

    python bench/run.py                      # generates /tmp/bench-1m.pcap (100k flows) if missing
    python bench/run.py FILE --scapy-limit 100000

Times `handshake-probe analyze FILE --format jsonl`, scapy's PcapReader loop (full dissection, reading
each packet's TCP flags; on the first --scapy-limit packets, since it reads ~10k packets/s) and
`tshark -q -z conv,tcp` (when installed). Each runs in its own process under /usr/bin/time for wall
time and peak RSS. Prints packets/s and the ratios. A benchmark, not a test: it never fails on speed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCAPY_LOOP = """
import sys
from scapy.utils import PcapReader
from scapy.layers.inet import TCP
n = 0
limit = int(sys.argv[2])
with PcapReader(sys.argv[1]) as reader:
    for pkt in reader:
        if TCP in pkt:
            pkt[TCP].flags
        n += 1
        if n >= limit:
            break
print(n)
"""


def timed(cmd: List[str], stdout_to_null: bool = True) -> Tuple[float, float, str]:
    """Run under /usr/bin/time: (wall seconds, peak RSS in MB, stdout)."""
    with tempfile.NamedTemporaryFile("r") as report:
        full = ["/usr/bin/time", "-f", "%e %M", "-o", report.name] + cmd
        out = subprocess.run(full, stdout=subprocess.DEVNULL if stdout_to_null else subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, check=True)
        wall, rss_kb = report.read().split()[-2:]
    return float(wall), int(rss_kb) / 1024.0, out.stdout or ""


def count_packets(path: str) -> int:
    from handshake_probe.pcapio import read_frames
    return sum(1 for _ in read_frames(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", nargs="?", default="/tmp/bench-1m.pcap")
    ap.add_argument("--flows", type=int, default=100_000, help="flows to generate when FILE is missing")
    ap.add_argument("--scapy-limit", type=int, default=100_000)
    args = ap.parse_args()
    if not os.path.exists(args.file):
        from bench.gen_capture import generate
        print(f"generating {args.file} ({args.flows} flows) ...", flush=True)
        generate(args.file, args.flows)
    packets = count_packets(args.file)
    size_mb = os.path.getsize(args.file) / 1e6
    print(f"{args.file}: {packets} packets, {size_mb:.1f} MB; {os.cpu_count()} cores", flush=True)

    rows = []
    hp_wall, hp_rss, _ = timed([sys.executable, "-m", "handshake_probe", "analyze", args.file,
                                "--format", "jsonl"])
    hp_rate = packets / hp_wall
    rows.append(["handshake-probe analyze --format jsonl", packets, hp_wall, hp_rate, hp_rss, 1.0])

    limit = min(args.scapy_limit, packets)
    sc_wall, sc_rss, _ = timed([sys.executable, "-c", SCAPY_LOOP, args.file, str(limit)])
    sc_rate = limit / sc_wall
    rows.append([f"scapy PcapReader loop (first {limit})", limit, sc_wall, sc_rate, sc_rss, hp_rate / sc_rate])

    tshark: Optional[str] = shutil.which("tshark")
    if tshark:
        ts_wall, ts_rss, _ = timed([tshark, "-r", args.file, "-q", "-z", "conv,tcp"])
        rows.append(["tshark -q -z conv,tcp", packets, ts_wall, packets / ts_wall, ts_rss,
                     hp_rate / (packets / ts_wall)])
    else:
        print("tshark not installed: skipped (apt-get install tshark)")
    print(tabulate(rows, headers=["tool", "packets", "seconds", "packets/s", "peak RSS MB",
                                  "handshake-probe is x faster"],
                   floatfmt=(".0f", ".0f", ".2f", ",.0f", ".0f", ".1f")))


if __name__ == "__main__":
    main()
