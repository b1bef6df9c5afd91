"""Benchmark: handshake-probe beside the tools users would pick instead, on the same file, in one run.

    python bench/run.py                      # generates /tmp/bench-1m.pcap (100k flows) if missing
    python bench/run.py FILE --scapy-limit 100000

Times the whole command `handshake-probe analyze FILE --format jsonl` (Python start-up included),
`tshark -q -z conv,tcp`, `tcptrace -n` (Debian package tcptrace), a dpkt loop (read, parse Ethernet/IP/
TCP, read the flags: no flow analysis at all) and scapy's PcapReader loop (full dissection, reading each
packet's TCP flags; on the first --scapy-limit packets, since it reads ~10k packets/s). Each runs in its
own process under /usr/bin/time for wall time and peak RSS. Prints packets/s and the ratios. A
benchmark, not a test: it never fails on speed.
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

DPKT_LOOP = """
import sys
import dpkt
n = 0
with open(sys.argv[1], "rb") as f:
    for ts, buf in dpkt.pcap.Reader(f):
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) and isinstance(ip.data, dpkt.tcp.TCP):
            ip.data.flags
        n += 1
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
    import handshake_probe
    analysis = handshake_probe.analyze(path)
    while not analysis.advance(1 << 20):
        pass
    return analysis.frames


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

    def other(name: str, cmd: List[str], n: int = packets) -> None:
        wall, rss, _ = timed(cmd)
        rows.append([name, n, wall, n / wall, rss, hp_rate / (n / wall)])

    for tool, cmd in (("tshark", ["-r", args.file, "-q", "-z", "conv,tcp"]), ("tcptrace", ["-n", args.file])):
        path: Optional[str] = shutil.which(tool)
        if path:
            other(f"{tool} {' '.join(c for c in cmd if c != args.file)}", [path] + cmd)
        else:
            print(f"{tool} not installed: skipped (apt-get install {tool})")
    try:
        import dpkt  # noqa: F401
        other("dpkt loop (parse only, no flows)", [sys.executable, "-c", DPKT_LOOP, args.file])
    except ImportError:
        print("dpkt not installed: skipped (pip install dpkt)")
    limit = min(args.scapy_limit, packets)
    other(f"scapy PcapReader loop (first {limit})", [sys.executable, "-c", SCAPY_LOOP, args.file, str(limit)],
          limit)
    print(tabulate(rows, headers=["tool", "packets", "seconds", "packets/s", "peak RSS MB",
                                  "handshake-probe is x faster"],
                   floatfmt=(".0f", ".0f", ".2f", ",.0f", ".0f", ".1f")))


if __name__ == "__main__":
    main()
