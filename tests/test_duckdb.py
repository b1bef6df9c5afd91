"""The README's DuckDB queries, run exactly as written with the duckdb package over a directory of Parquet
files (one per capture: the bundled ones and the conformance traces), against the same numbers computed in
Python from the `jsonl` records."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

from handshake_probe.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = ROOT.parent / "shared" / "conformance"


def readme_queries() -> List[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Many captures"):]
    section = section[:section.index("\n## ", 1)]
    queries = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert len(queries) == 2
    return queries


def captures() -> List[Path]:
    found = sorted((ROOT / "captures").rglob("*.pcap"))
    if CONFORMANCE.is_dir():
        found += sorted(p for p in CONFORMANCE.rglob("*") if p.suffix in (".pcap", ".pcapng"))
    return found


@pytest.fixture(scope="module")
def flows_dir(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, List[Dict[str, Any]]]:
    """`flows/` with one Parquet file per capture, and every capture's jsonl records."""
    import contextlib
    import io
    base = tmp_path_factory.mktemp("lake")
    (base / "flows").mkdir()
    records: List[Dict[str, Any]] = []
    for i, path in enumerate(captures()):
        assert main(["analyze", str(path), "--format", "parquet", "-o",
                     str(base / "flows" / f"{i:03d}-{path.name}.parquet")]) == 0
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["analyze", str(path), "--format", "jsonl"]) == 0
        records += [json.loads(line) for line in out.getvalue().splitlines()]
    return base, records


def port(rec: Dict[str, Any]) -> int:
    return int(rec["server"].rsplit(":", 1)[1])


def test_resets_by_server_port_per_hour(flows_dir, monkeypatch) -> None:
    base, records = flows_dir
    monkeypatch.chdir(base)
    rows = duckdb.sql(readme_queries()[0]).fetchall()
    counts: Dict[Tuple[datetime, int], List[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in records:
        hour = datetime.fromtimestamp(r["first_ts"], timezone.utc).replace(minute=0, second=0, microsecond=0,
                                                                           tzinfo=None)
        c = counts[(hour, port(r))]
        c[0] += r["close"] == "server-rst"
        c[1] += r["close"] == "client-rst"
        c[2] += r["close"] == "rejected"
        c[3] += 1
    expected = sorted((h, p, *c) for (h, p), c in counts.items() if c[0] + c[1] + c[2] > 0)
    assert rows == expected
    assert len(rows) >= 5 and any(r[2] for r in rows) and any(r[3] for r in rows)
    if CONFORMANCE.is_dir():
        assert (datetime(2023, 2, 22, 15), 888, 1, 0, 0, 1) in rows      # zeek-tcp-ctu-64702-888


def quantile_cont(values: List[float], q: float) -> float:
    """Linear interpolation between the closest ranks (DuckDB's quantile_cont, numpy's default)."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


def test_handshake_rtt_percentiles(flows_dir, monkeypatch) -> None:
    base, records = flows_dir
    monkeypatch.chdir(base)
    rows = duckdb.sql(readme_queries()[1]).fetchall()
    by_port: Dict[int, List[Any]] = defaultdict(list)
    for r in records:
        hs = r["handshake"]
        if hs["complete"]:
            both = None if hs["syn_to_synack_ms"] is None or hs["synack_to_ack_ms"] is None else \
                hs["syn_to_synack_ms"] + hs["synack_to_ack_ms"]
            by_port[port(r)].append(both)
    expected = []
    for p, rtts in by_port.items():
        known = [x for x in rtts if x is not None]
        expected.append((p, len(rtts), *(quantile_cont(known, q) for q in (0.5, 0.9, 0.99))))
    expected.sort(key=lambda e: (-e[1], e[0]))
    assert [r[:2] for r in rows] == [e[:2] for e in expected]
    for got, want in zip(rows, expected):
        assert got[2:] == pytest.approx(want[2:], abs=0.0005 + 1e-9)     # the query rounds to 3 decimals
    assert rows[0][1] >= 3000 and len(rows) >= 10
