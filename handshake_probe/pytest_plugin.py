"""pytest plugin (registered through the `pytest11` entry point): fixtures for asserting TCP behaviour."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import pytest

from handshake_probe.analysis import analyze_file
from handshake_probe.core.record import flow_record


@pytest.fixture
def analyze() -> Callable[[str], List[Dict[str, Any]]]:
    """`analyze(path)` -> the flow records of a capture file (the `--format json` objects)."""

    def run(path: str) -> List[Dict[str, Any]]:
        result = analyze_file(str(path))
        if result.error:
            raise AssertionError(result.error)
        return [flow_record(f) for f in result.flows]

    return run
