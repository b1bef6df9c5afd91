"""handshake-probe: a packet-level TCP handshake inspector.

The public API is the engine's narrow boundary (everything per packet runs in Rust, `_engine`):

- `analyze(path, **options)`: an iterator of flow records (dicts, the JSON contract); after it is
  exhausted its attributes tell `frames`, `segments`, `skipped`, `warnings`, `error`, `flow_count`,
  `evicted`, `violations`, `damaged`; `rows(n)` gives a kept flow's segments (`keep_rows=[n]`),
  `take_rows(n)` the same and forgets them.
- the vocabulary, defined once in the engine: `STATES`, `CUES`, `TRANSITIONS` ((state, cue) -> state),
  `CLOSE_KINDS`, `CONN_STATES`, `ANOMALY_KINDS`, `FLAGS`, `NEGOTIATION_WARNINGS` (the kinds of
  `negotiation.warnings`, `synack_enables_unoffered:<option>` with an option from `NEGOTIATION_OPTIONS`),
  `NEGOTIATION_FIELDS`.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Dict, Tuple, Union

__version__ = "0.1.0"

_VOCABULARY = ("STATES", "CUES", "CLOSE_KINDS", "CONN_STATES", "ANOMALY_KINDS", "FLAGS", "CSV_COLUMNS",
               "TRANSITION_ROWS", "DEFAULT_MSL", "DEFAULT_LINGER", "DEFAULT_IDLE_TIMEOUT",
               "DEFAULT_MAX_OPEN", "NEGOTIATION_WARNINGS", "NEGOTIATION_OPTIONS", "NEGOTIATION_FIELDS")


def analyze(path: Union[str, "os.PathLike[str]"], **options: Any) -> Any:
    """Analyze a capture file (`-` for standard input) in the engine. Options: msl, linger,
    idle_timeout, max_open, streaming (default True: records in the order flows finish),
    keep_rows (flow numbers whose segments to keep, or True), check_checksums."""
    return _load_engine().Analysis(os.fspath(path), **options)


def _load_engine() -> Any:
    # importlib, not `from handshake_probe import _engine`: that form looks the name up on this
    # package first, which would call __getattr__ below again.
    return importlib.import_module("handshake_probe._engine")


def __getattr__(name: str) -> Any:
    # Imported on first use so that `import handshake_probe` stays cheap for the edges that never
    # touch the engine (the echo server, the client).
    if name == "TRANSITIONS":
        table: Dict[Tuple[str, str], str] = {(s, c): n for s, c, n, _why in _load_engine().TRANSITION_ROWS}
        return table
    if name in _VOCABULARY:
        return getattr(_load_engine(), name)
    raise AttributeError(f"module 'handshake_probe' has no attribute {name!r}")
