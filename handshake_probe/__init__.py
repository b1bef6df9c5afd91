"""handshake-probe: a packet-level TCP handshake inspector.

The public API is the engine's narrow boundary (everything per packet runs in Rust, `_engine`):

- `analyze(path, **options)`: an iterator of flow records (dicts, the JSON contract); after it is
  exhausted its attributes tell `frames`, `segments`, `skipped`, `warnings`, `error`, `flow_count`,
  `evicted`, `violations`, `damaged`; `rows(n)` gives a kept flow's segments (`keep_rows=[n]`).
- the vocabulary, defined once in the engine: `STATES`, `CUES`, `TRANSITIONS` ((state, cue) -> state),
  `CLOSE_KINDS`, `CONN_STATES`, `ANOMALY_KINDS`, `FLAGS`.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

__version__ = "0.1.0"

_VOCABULARY = ("STATES", "CUES", "CLOSE_KINDS", "CONN_STATES", "ANOMALY_KINDS", "FLAGS", "CSV_COLUMNS",
               "TRANSITION_ROWS", "DEFAULT_MSL", "DEFAULT_LINGER", "DEFAULT_IDLE_TIMEOUT",
               "DEFAULT_MAX_OPEN")


def analyze(path: str, **options: Any) -> Any:
    """Analyze a capture file (`-` for standard input) in the engine. Options: msl, linger,
    idle_timeout, max_open, streaming (default True: records in the order flows finish),
    keep_rows (flow numbers whose segments to keep, or True), check_checksums."""
    from handshake_probe import _engine
    return _engine.Analysis(path, **options)


def __getattr__(name: str) -> Any:
    # Imported on first use so that `import handshake_probe` stays cheap for the edges that never
    # touch the engine (the echo server, the client).
    if name != "TRANSITIONS" and name not in _VOCABULARY:
        # Checked first: `from handshake_probe import live` asks here before importing the submodule,
        # and so does the `from handshake_probe import _engine` below; importing the engine for those
        # recursed without end where the engine is not built.
        raise AttributeError(f"module 'handshake_probe' has no attribute {name!r}")
    from handshake_probe import _engine
    if name == "TRANSITIONS":
        table: Dict[Tuple[str, str], str] = {(s, c): n for s, c, n, _why in _engine.TRANSITION_ROWS}
        return table
    return getattr(_engine, name)
