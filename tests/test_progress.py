"""Progress for long files: reported while reading, silent when stderr is not a terminal."""

from __future__ import annotations

from pathlib import Path

import handshake_probe.flowsource as flowsource
from handshake_probe.cli import main

CAPTURE = Path(__file__).resolve().parents[1] / "captures" / "echo-port-reuse-3000.pcap"


def test_progress_is_reported_with_frames_and_offsets(monkeypatch):
    monkeypatch.setattr(flowsource, "PROGRESS_EVERY", 5000)
    seen = []
    records, summary = flowsource.records_and_summary(str(CAPTURE), progress=lambda n, off: seen.append((n, off)))
    assert [n for n, _ in seen] == [5000, 10000, 15000, 20000, 25000, 30000]
    offsets = [off for _, off in seen]
    # bytes read so far: growing with every step, the whole file after the last frame
    assert offsets == sorted(set(offsets)) and offsets[0] > 0 and offsets[-1] == CAPTURE.stat().st_size
    assert summary.frames == 30000 and len(records) == 3000


def test_cli_is_silent_on_stderr_when_not_a_terminal(capsys):
    assert main(["analyze", str(CAPTURE), "--format", "jsonl"]) == 0
    assert capsys.readouterr().err == ""
