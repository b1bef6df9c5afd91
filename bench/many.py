"""Benchmark: a directory of captures analyzed locally (`--jobs 2`) and on a Dask LocalCluster, side by side.

    python bench/many.py                           # 20 captures, ~1M packets in all, in /tmp/hp-bench-many
    python bench/many.py --files 20 --flows 5500 --dir /tmp/hp-bench-many

Writes the captures with bench/gen_capture.py (seeded: same arguments, same bytes) unless they are there,
then times, each in its own process under /usr/bin/time (wall seconds, peak RSS of the largest process):

  - `handshake-probe analyze DIR --jobs 2 --format jsonl`                  (with --jsonl: the text path)
  - `handshake-probe analyze DIR --jobs 2 --format parquet -o FILE`        (local processes, one Parquet file)
  - `handshake-probe analyze DIR --dask-scheduler ADDR -o OUTDIR`          (a LocalCluster started here:
    2 worker processes, 1 thread each; its start-up is timed apart, as a real cluster is already up)

each --repeat times, alternating, and prints the median and the best, with the CPU seconds (the workers'
included for the cluster run), and the flows both Parquet outputs hold. A benchmark, not a test: it
never fails on speed. The machine's other load shows in the figures.
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


def worker_cpu(client) -> float:
    """CPU seconds used so far by the cluster's worker processes."""
    def cpu() -> float:
        import psutil
        t = psutil.Process().cpu_times()
        return t.user + t.system
    return sum(client.run(cpu).values())


def median(xs: List[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/tmp/hp-bench-many")
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--flows", type=int, default=5500, help="flows per capture (5500: ~51,000 packets)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each (alternating); median and best shown")
    ap.add_argument("--jsonl", action="store_true", help="also time `--jobs 2 --format jsonl` (the text "
                                                         "path: workers spool the engine's text)")
    args = ap.parse_args()
    from distributed import Client, LocalCluster
    import pyarrow.parquet as pq

    captures = Path(args.dir) / "captures"
    packets = make_captures(captures, args.files, args.flows)
    out = Path(args.dir) / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    prog = [sys.executable, "-m", "handshake_probe", "analyze", str(captures)]
    runs: dict = {}

    def record(name: str, result: Tuple[float, float, float], extra_cpu: float = 0.0) -> None:
        runs.setdefault(name, []).append((result[0], result[1] + extra_cpu, result[2]))

    start = time.monotonic()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        up = time.monotonic() - start
        for i in range(args.repeat):
            if args.jsonl:
                record("local `--jobs 2 --format jsonl`", timed(prog + ["--jobs", "2", "--format", "jsonl"]))
            record("local `--jobs 2 --format parquet -o FILE`",
                   timed(prog + ["--jobs", "2", "--format", "parquet", "-o", str(out / "local.parquet")]))
            before = worker_cpu(client)
            result = timed(prog + ["--dask-scheduler", cluster.scheduler_address, "-o", str(out / "cluster")])
            record("`--dask-scheduler` (LocalCluster, 2 workers)", result, worker_cpu(client) - before)
    local_flows = pq.ParquetFile(out / "local.parquet").metadata.num_rows
    cluster_flows = sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob(str(out / "cluster" / "*.parquet")))
    print(f"{args.files} captures, {packets:,} packets in all ({os.cpu_count()} cores); "
          f"LocalCluster start-up {up:.1f} s (not counted); {args.repeat} runs each, alternating")
    print(f"flows written: local {local_flows:,}, cluster {cluster_flows:,}")
    print()
    print("| run | seconds (median) | best | packets/s (median) | CPU s (median) | peak RSS of the command |")
    print("|---|---|---|---|---|---|")
    for name, results in runs.items():
        walls = [r[0] for r in results]
        print(f"| {name} | {median(walls):.2f} | {min(walls):.2f} | {packets / median(walls):,.0f} | "
              f"{median([r[1] for r in results]):.1f} | {max(r[2] for r in results):.0f} MB |")
    if local_flows != cluster_flows:
        print(f"MISMATCH: local {local_flows} flows, cluster {cluster_flows}")
    print("\n(CPU: the command's process tree, plus the workers' for the cluster run; peak RSS: the largest "
          "process of the command's tree, the workers not included)")


if __name__ == "__main__":
    main()
