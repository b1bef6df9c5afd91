#!/usr/bin/env python3
"""Memory of a long live capture: `handshake-probe capture -q FILTER` on lo while tcpreplay loops a
generated capture at a fixed rate (bounded: --loops x the file), its resident memory sampled from
/proc every --every seconds. Finished flows leave the engine as in `analyze` (linger 5 s, idle
timeout, max-open), so after the first seconds the curve should be flat however long it runs.

    python bench/live_memory.py                      # 10,000 flows (~93k packets) x 60 loops at 20k/s: ~5 min
    python bench/live_memory.py --pps 50000 --loops 20

A benchmark, not a test: it prints figures and never fails. Needs root, tcpreplay.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from live_load import GEN_FILTER, SUMMARY, env, uptime, wait_line  # noqa: E402


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(m.group(1)) / 1024 if m else float("nan")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", type=int, default=10_000, help="flows in the generated capture (default 10000)")
    ap.add_argument("--pps", type=int, default=20_000, help="replay rate, packets/s (default 20000)")
    ap.add_argument("--loops", type=int, default=60, help="times the file is replayed (default 60)")
    ap.add_argument("--every", type=float, default=15.0, help="seconds between samples (default 15)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="live-memory-") as d:
        pcap = Path(d) / "gen.pcap"
        subprocess.run([sys.executable, str(ROOT / "bench" / "gen_capture.py"), str(pcap), "--flows",
                        str(args.flows)], check=True, timeout=600, stdout=subprocess.DEVNULL)
        print(f"before: {uptime()}")
        cap = subprocess.Popen([sys.executable, "-m", "handshake_probe", "capture", "-q", GEN_FILTER],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env())
        wait_line(cap, "listening on", "handshake-probe capture")
        replay = subprocess.Popen(["tcpreplay", "-i", "lo", f"--pps={args.pps}", f"--loop={args.loops}",
                                   str(pcap)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        samples: List[Tuple[float, float]] = []
        t0 = time.monotonic()
        try:
            while replay.poll() is None:
                samples.append((time.monotonic() - t0, rss_mib(cap.pid)))
                print(f"  {samples[-1][0]:6.0f} s  RSS {samples[-1][1]:7.1f} MiB", flush=True)
                try:
                    replay.wait(args.every)
                except subprocess.TimeoutExpired:
                    pass
            samples.append((time.monotonic() - t0, rss_mib(cap.pid)))
            print(f"  {samples[-1][0]:6.0f} s  RSS {samples[-1][1]:7.1f} MiB (replay done)")
        finally:
            if replay.poll() is None:
                replay.send_signal(signal.SIGINT)
            replayed, _ = replay.communicate(timeout=60)
            time.sleep(1.0)
            cap.send_signal(signal.SIGINT)
            out, err = cap.communicate(timeout=120)
        print(f"after: {uptime()}")
        actual = re.search(r"Actual: .*", replayed or "")
        print(f"tcpreplay: {actual.group(0) if actual else '?'}")
        m = SUMMARY.search(out)
        print(m.group(0) if m else f"no summary: {err}")
        steady = [rss for t, rss in samples if t >= 30]
        if steady:
            print(f"RSS after the first 30 s: min {min(steady):.1f} MiB, max {max(steady):.1f} MiB over "
                  f"{samples[-1][0]:.0f} s ({len(steady)} samples)")
    return 0


if __name__ == "__main__":
    os.nice(0)
    sys.exit(main())
