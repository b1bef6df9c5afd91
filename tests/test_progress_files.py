"""A progress bar over files for `analyze` with several files: on a terminal only (stderr), never in pipes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from handshake_probe.cli import main
from tests.ttyrun import run_with_tty_stderr

ROOT = Path(__file__).resolve().parents[1]
FILES = [str(p) for p in sorted((ROOT / "captures").glob("echo-*.pcap"))]


@pytest.mark.parametrize("fmt", ["jsonl", "table"])
def test_bar_over_files_on_a_terminal(fmt: str) -> None:
    argv = [sys.executable, "-m", "handshake_probe", "analyze", *FILES, "--jobs", "2", "--format", fmt]
    code, out, tty = run_with_tty_stderr(argv, ROOT)
    piped = subprocess.run(argv, capture_output=True, cwd=ROOT, timeout=120)
    assert code == piped.returncode == 0
    assert out == piped.stdout and piped.stderr == b""          # the bar never touches the output
    n = len(FILES)
    assert n >= 3 and f"] 0/{n} files" in tty and f"] {n}/{n} files" in tty
    assert f"[{'#' * 30}] {n}/{n} files" in tty
    assert tty.endswith("\r\x1b[K")                               # and it is cleared at the end


def test_bar_with_parquet_output(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    argv = [sys.executable, "-m", "handshake_probe", "analyze", *FILES, "--format", "parquet",
            "-o", str(tmp_path / "f.parquet")]
    code, _out, tty = run_with_tty_stderr(argv, ROOT)
    assert code == 0 and f"{len(FILES)}/{len(FILES)} files" in tty


def test_silent_when_not_a_terminal(capsys) -> None:
    assert main(["analyze", *FILES, "--jobs", "2", "--format", "csv"]) == 0
    assert capsys.readouterr().err == ""
