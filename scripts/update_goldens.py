"""Rewrite captures/<name>.expected.json from the current analyzer. Review the diff before committing:
a golden file is a claim that the result is right (tests/test_captures.py also checks the RFC paths)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import handshake_probe  # noqa: E402

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
FULL_RECORDS = 5   # the first flows in full; the rest summarised by path counts


def golden(path: Path) -> Dict[str, Any]:
    analysis = handshake_probe.analyze(str(path), streaming=False)   # records in flow order
    records = list(analysis)
    paths = Counter(" | ".join([">".join(r["client_states"]), ">".join(r["server_states"]), r["close"]])
                    for r in records)
    return {"file": path.name, "frames": analysis.frames, "segments": analysis.segments,
            "flows": len(records), "paths": dict(sorted(paths.items())),
            "records": records[:FULL_RECORDS]}


def main() -> None:
    for pcap in sorted(CAPTURES.glob("*.pcap")):
        out = pcap.with_suffix(".expected.json")
        out.write_text(json.dumps(golden(pcap), indent=1) + "\n")
        print(f"wrote {out.relative_to(CAPTURES.parent)}")


if __name__ == "__main__":
    main()
