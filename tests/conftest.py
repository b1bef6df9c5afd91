"""Suite-wide: tests see the same output whatever terminal runs them."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    # An exported COLUMNS fits the flow table to that width (views.table.table_width); tests that want a
    # width set it themselves, the others read full, unwrapped tables as a pipe gets them.
    monkeypatch.delenv("COLUMNS", raising=False)
