"""Progress for long files: reported while reading, silent when stderr is not a terminal."""

from __future__ import annotations

from pathlib import Path

import handshake_probe.flowsource as flowsource
from handshake_probe.cli import main

CAPTURE = Path(__file__).resolve().parents[1] / "captures" / "echo-port-reuse-3000.pcap"


def test_progress_is_reported_with_frames_and_offsets():
    seen = []
    records, summary = flowsource.records_and_summary(str(CAPTURE), progress=lambda n, off: seen.append((n, off)))
    frames = [n for n, _ in seen]
    offsets = [off for _, off in seen]
    # Reported while reading, once per batch of the engine's reading thread (the same size each
    # time), and not a batch left unreported before the end: 30000 frames, several reports.
    assert len(frames) >= 2 and frames == [frames[0] * (i + 1) for i in range(len(frames))]
    assert frames[-1] < 30000 <= frames[-1] + frames[0]
    # bytes read so far: growing with every report, short of the whole file until the end
    assert offsets == sorted(set(offsets)) and 0 < offsets[0] and offsets[-1] < CAPTURE.stat().st_size
    assert summary.frames == 30000 and len(records) == 3000


def test_cli_is_silent_on_stderr_when_not_a_terminal(capsys):
    assert main(["analyze", str(CAPTURE), "--format", "jsonl"]) == 0
    assert capsys.readouterr().err == ""
