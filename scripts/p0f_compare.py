"""Compare the engine's p0f signatures with p0f's own: `p0f -r FILE` on each capture, every SYN and
SYN-ACK p0f prints matched to the flow record of the same client and server.

    python scripts/p0f_compare.py [FILE...]     # default: captures/ and ../shared/conformance

Prints, per capture, how many SYN and SYN-ACK signatures p0f printed, how many agreed, and each
difference. p0f (Debian package p0f, 3.09b) reads what libpcap reads; a capture it cannot read is
reported as such. tests/test_p0f.py runs the same comparison.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import handshake_probe  # noqa: E402

CONFORMANCE = ROOT.parent / "shared" / "conformance"
P0F_DB = Path("/etc/p0f/p0f.fp")   # Debian's p0f package: the database `p0f -r` itself loads

Key = Tuple[str, str, str]   # (mod, client, server)


def corpus() -> List[Path]:
    """The bundled captures and the conformance traces (with tunnels), those that exist."""
    files = sorted((ROOT / "captures").glob("*.pcap")) + sorted((ROOT / "captures" / "anomalies").glob("*.pcap"))
    for sub in (CONFORMANCE / "traces", CONFORMANCE / "tunnels" / "traces"):
        if sub.is_dir():
            files += sorted(p for p in sub.iterdir() if p.suffix in (".pcap", ".pcapng"))
    return files


def endpoint(text: str) -> str:
    """`1.2.3.4/80` (p0f), `1.2.3.4:80` or `[::1]:80` (records) -> one normal form."""
    sep = "/" if "/" in text else ":"
    addr, port = text.rsplit(sep, 1)
    return f"{ipaddress.ip_address(addr.strip('[]'))}|{int(port)}"


@dataclass
class Comparison:
    path: Path
    error: Optional[str] = None
    compared: Dict[str, int] = field(default_factory=lambda: {"syn": 0, "syn+ack": 0})
    agreed: Dict[str, int] = field(default_factory=lambda: {"syn": 0, "syn+ack": 0})
    labels_agreed: int = 0
    differences: List[str] = field(default_factory=list)
    ours_only: int = 0      # signatures in our records that p0f did not print


def p0f_lines(path: Path) -> Tuple[List[Tuple[Key, str, str]], Optional[str]]:
    """p0f's SYN and SYN-ACK observations: ((mod, client, server), raw_sig, os) in order."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "p0f.log"
        run = subprocess.run(["p0f", "-r", str(path), "-o", str(log)], capture_output=True, text=True,
                             timeout=120)
        if run.returncode != 0:
            last = (run.stderr.strip() or run.stdout.strip()).splitlines()
            return [], last[-1] if last else f"p0f exit {run.returncode}"
        out = []
        for line in log.read_text(errors="replace").splitlines():
            fields = dict(part.split("=", 1) for part in line.split("] ", 1)[-1].split("|") if "=" in part)
            if fields.get("mod") in ("syn", "syn+ack"):
                key = (fields["mod"], endpoint(fields["cli"]), endpoint(fields["srv"]))
                label = fields.get("os", fields.get("app", ""))
                out.append((key, fields["raw_sig"], label))
        return out, None


def our_sigs(path: Path, db: Optional[str]) -> Dict[Key, List[Tuple[str, Optional[str]]]]:
    """Each record's client SYN and server SYN-ACK (signature, label), in flow order, by (mod, client,
    server); labels from the p0f.fp text `db` (None: no labels)."""
    sigs: Dict[Key, List[Tuple[str, Optional[str]]]] = defaultdict(list)
    for rec in handshake_probe.analyze(str(path), streaming=False, p0f_db=db):
        neg = rec["negotiation"]
        ends = (endpoint(rec["client"]), endpoint(rec["server"]))
        sides = [("syn", ends, neg["client"]), ("syn+ack", ends, neg["server"])]
        crossed = neg.get("simultaneous_open")
        if crossed:
            # p0f restarts its flow at the server's SYN: that SYN and the client's SYN-ACK are
            # its "syn" and "syn+ack" with the two ends swapped
            swapped = (ends[1], ends[0])
            sides += [("syn", swapped, crossed["server_syn"]), ("syn+ack", swapped, crossed["client_synack"])]
        for mod, key_ends, side in sides:
            if side is not None:
                sigs[(mod,) + key_ends].append((side["p0f"], side["os"]))
    return sigs


def compare(path: Path, db: Optional[str] = None) -> Comparison:
    """p0f's lines against our records; with `db` (p0f.fp text, the one p0f loaded) the labels too."""
    result = Comparison(path)
    lines, error = p0f_lines(path)
    if error:
        result.error = error
        return result
    ours = our_sigs(path, db)
    for key, sig, label in lines:
        mod = key[0]
        result.compared[mod] += 1
        pending = ours.get(key, [])
        at = next((i for i, (s, _l) in enumerate(pending) if s == sig), None)
        if at is None:
            result.differences.append(f"{mod} {key[1]} -> {key[2]}: p0f {sig}, ours {pending[:1] or 'none'}")
            continue
        # p0f prints one line per flow it fingerprints; the records it skipped are ours only
        our_label = pending[at][1]
        result.ours_only += at
        del pending[:at + 1]
        result.agreed[mod] += 1
        if db is not None:
            if our_label == label:
                result.labels_agreed += 1
            else:
                result.differences.append(f"{mod} {key[1]} -> {key[2]} {sig}: p0f label {label!r}, "
                                          f"ours {our_label!r}")
    result.ours_only += sum(len(v) for v in ours.values())
    return result


def main(argv: List[str]) -> int:
    if not shutil.which("p0f"):
        print("p0f is not installed (apt-get install p0f)")
        return 2
    files = [Path(a) for a in argv] or corpus()
    db = P0F_DB.read_text() if P0F_DB.is_file() else None
    labels = 0
    totals = {"syn": [0, 0], "syn+ack": [0, 0]}
    unreadable, ours_only, differences = [], 0, 0
    for path in files:
        c = compare(path, db)
        labels += c.labels_agreed
        if c.error:
            unreadable.append(f"{path.name}: {c.error}")
            continue
        for mod in totals:
            totals[mod][0] += c.compared[mod]
            totals[mod][1] += c.agreed[mod]
        ours_only += c.ours_only
        differences += len(c.differences)
        print(f"{path.name}: SYN {c.agreed['syn']}/{c.compared['syn']}, "
              f"SYN-ACK {c.agreed['syn+ack']}/{c.compared['syn+ack']} agree; "
              f"{c.ours_only} in our records only")
        for d in c.differences:
            print(f"  DIFF {d}")
    print(f"total: {len(files)} captures; SYN {totals['syn'][1]}/{totals['syn'][0]}, "
          f"SYN-ACK {totals['syn+ack'][1]}/{totals['syn+ack'][0]} signatures agree; "
          f"{differences} differences; {ours_only} signatures p0f did not print; "
          f"{labels} labels agree ({P0F_DB if db else 'no p0f.fp'})")
    for u in unreadable:
        print(f"p0f could not read {u}")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
