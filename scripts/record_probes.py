"""Re-record the prober's scenarios into captures/probe-<scenario>.pcap (raw IP, linktype 101), each with
the project's own `handshake-probe probe --scenario NAME -w FILE` (needs root: a TUN device).

    python scripts/record_probes.py                   # all scenarios
    python scripts/record_probes.py --only echo
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handshake_probe.prober.scenarios import SCENARIOS  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=list(SCENARIOS), metavar="NAME")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "captures")
    args = ap.parse_args()
    failed = 0
    for name in args.only or list(SCENARIOS):
        out = args.out_dir / f"probe-{name}.pcap"
        cmd = [sys.executable, "-m", "handshake_probe", "probe", "--scenario", name, "-w", str(out)]
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        verdict = next((l for l in res.stdout.splitlines() if l.startswith("verdict:")), "(no verdict)")
        print(f"{' '.join(cmd[1:])}: exit {res.returncode}\n  {verdict[:160]}")
        failed += res.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
