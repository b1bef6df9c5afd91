"""Benchmark: a directory of captures analyzed locally (`--jobs 2`) and on a Dask LocalCluster, side by side.

    python bench/many.py                           # 20 captures, ~1M packets in all, in /tmp/hp-bench-many
    python bench/many.py --files 20 --flows 5500 --dir /tmp/hp-bench-many

Writes the captures with bench/gen_capture.py (seeded: same arguments, same bytes) unless they are there,
then times, each in its own process under /usr/bin/time (wall seconds, peak RSS of the largest process):

  - `handshake-probe analyze DIR --jobs 2 --format jsonl`                  (the text path, for reference)
  - `handshake-probe analyze DIR --jobs 2 --format parquet -o FILE`        (local processes, one Parquet file)
  - `handshake-probe analyze DIR --dask-scheduler ADDR -o OUTDIR`          (a LocalCluster started here:
    2 worker processes, 1 thread each; its start-up is timed apart, as a real cluster is already up)

and checks that both Parquet outputs hold the same number of flows. A benchmark, not a test: it never
fails on speed. The machine's other load shows in the figures: run it twice.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(cmd: List[str]) -> Tuple[float, float, float]:
    """(wall seconds, CPU seconds of the command and its children, peak RSS MB of its largest process)."""
    with tempfile.NamedTemporaryFile("r") as report:
        subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", report.name] + cmd, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall, user, system, rss_kb = report.read().split()[-4:]
    return float(wall), float(user) + float(system), int(rss_kb) / 1024.0


def make_captures(directory: Path, files: int, flows: int) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        path = directory / f"part-{i:02d}.pcap"
        if not path.exists():
            subprocess.run([sys.executable, str(ROOT / "bench" / "gen_capture.py"), str(path), "--flows", str(flows),
                            "--seed", str(100 + i)], check=True, stdout=subprocess.DEVNULL)
    import handshake_probe
    total = 0
    for path in sorted(directory.glob("*.pcap")):
        analysis = handshake_probe.analyze(str(path))
        while not analysis.advance(1 << 20):
            pass
        total += analysis.frames
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/tmp/hp-bench-many")
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--flows", type=int, default=5500, help="flows per capture (5500: ~51,000 packets)")
    args = ap.parse_args()
    from distributed import LocalCluster
    import pyarrow.parquet as pq

    captures = Path(args.dir) / "captures"
    packets = make_captures(captures, args.files, args.flows)
    out = Path(args.dir) / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    prog = [sys.executable, "-m", "handshake_probe", "analyze", str(captures)]
    rows = []
    wall, cpu, rss = timed(prog + ["--jobs", "2", "--format", "jsonl"])
    rows.append(("local --jobs 2 --format jsonl", wall, cpu, rss, "-"))
    wall, cpu, rss = timed(prog + ["--jobs", "2", "--format", "parquet", "-o", str(out / "local.parquet")])
    local_flows = pq.ParquetFile(out / "local.parquet").metadata.num_rows
    rows.append(("local --jobs 2 --format parquet", wall, cpu, rss, f"{local_flows:,}"))
    start = time.monotonic()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        up = time.monotonic() - start
        wall, cpu, rss = timed(prog + ["--dask-scheduler", cluster.scheduler_address, "-o", str(out / "cluster")])
    cluster_flows = sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob(str(out / "cluster" / "*.parquet")))
    rows.append(("--dask-scheduler (LocalCluster, 2 workers)", wall, cpu, rss, f"{cluster_flows:,}"))
    print(f"{args.files} captures, {packets:,} packets in all ({os.cpu_count()} cores); "
          f"LocalCluster start-up {up:.1f} s (not counted)")
    print()
    print("| run | seconds | packets/s | client CPU s | peak RSS (client) | flows written |")
    print("|---|---|---|---|---|---|")
    for name, wall, cpu, rss, flows in rows:
        print(f"| {name} | {wall:.2f} | {packets / wall:,.0f} | {cpu:.2f} | {rss:.0f} MB | {flows} |")
    if local_flows != cluster_flows:
        print(f"MISMATCH: local {local_flows} flows, cluster {cluster_flows}")
    print("\n(client CPU and RSS: the command's own process tree; the cluster's workers are not in it)")


if __name__ == "__main__":
    main()
