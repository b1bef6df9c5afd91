"""pytest plugin (registered through the `pytest11` entry point): fixtures for asserting TCP behaviour.

Fixtures:

* `echo_server`: an in-process EchoServer on 127.0.0.1, a free port; yields (host, port).
* `loopback_capture`: `with loopback_capture(port) as cap: <traffic>`, then `cap.flows` (the flow records
  of everything on that port during the block) and `cap.path` (the pcap, in the test's tmp_path).
  Needs live capture (handshake_probe.live) and root or CAP_NET_RAW; the test is skipped, with the
  reason, where either is missing.
* `analyze`: `analyze(path)` -> the flow records of a capture file.
* `assert_flow`: `assert_flow(flow, close="fin", client_final="TIME-WAIT", ...)`; also importable
  (`from handshake_probe.checks.plugin import assert_flow`; the old name, `handshake_probe.pytest_plugin`,
  is this same module). The keywords are the expectation keys of `handshake-probe check`
  (handshake_probe/checks/spec.py has the list); the failure message shows expected vs found and the
  flow's ladder, and a failure writes the HTML report of the flow's capture (`handshake-probe report`),
  opened at the failing flow, whose path ends the message: a CI run's artefact shows what went wrong.
  Reports go to `--handshake-probe-reports DIR` (default: .pytest_cache/d/handshake-probe-reports).

Records are the `--format json` objects (plain dicts); those from `analyze` and `loopback_capture` also
remember their capture, so that a failing `assert_flow` can draw the flow's ladder.
"""

from __future__ import annotations

import ctypes.util
import itertools
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Type, Union

import pytest

import handshake_probe
from handshake_probe.files.flowsource import Row, Summary, summary_of
from handshake_probe.checks.evaluate import check_record
from handshake_probe.checks.report import flow_ladder, format_flow_failures
from handshake_probe.checks.spec import SpecError, parse_expectations
from handshake_probe.echo.server import EchoServer
from handshake_probe.files.pcapwriter import PcapWriter

__all__ = ["FlowRecord", "LoopbackCapture", "assert_flow", "records_of"]


class FlowRecord(dict):  # type: ignore[type-arg]
    """A flow record (a dict, equal to the plain one) that remembers the capture it came from, so a
    failure message can read the capture again and draw this flow's ladder."""

    source: Optional[str] = None
    msl: Optional[float] = None       # None: the engine's DEFAULT_MSL


def _msl(msl: Optional[float]) -> Dict[str, float]:
    # The engine's default stays the engine's: the plugin loads with every pytest session, and
    # loads the engine only when a fixture runs.
    return {} if msl is None else {"msl": msl}


def records_of(path: Union[str, "os.PathLike[str]"],
               msl: Optional[float] = None) -> Tuple[Summary, List[FlowRecord]]:
    """Analyze a capture file in the engine: (the analysis' summary: frames, skipped, warnings,
    error..., its flow records in flow order)."""
    path = os.fspath(path)
    analysis = handshake_probe.analyze(path, streaming=False, **_msl(msl))
    records = []
    for plain_record in analysis:
        rec = FlowRecord(plain_record)
        rec.source, rec.msl = path, msl
        records.append(rec)
    return summary_of(analysis), records


def _flow_with_rows(path: str, number: int, msl: Optional[float]) -> Optional[Tuple[Mapping[str, Any], List[Row]]]:
    """(record, rows) of flow `number` of a capture, read again by the engine keeping that flow's rows
    only (memory grows with flows, not packets); None when the capture has no such flow."""
    analysis = handshake_probe.analyze(path, streaming=False, keep_rows=[number], **_msl(msl))
    for rec in analysis:
        if rec["flow"] == number:
            return rec, analysis.rows(number) or []
    return None


def _ladder_of(record: Mapping[str, Any], rows: Optional[List[Row]]) -> str:
    """The flow's ladder, or one line saying why there is none. `rows`: given with a flow object."""
    if rows is not None:
        return flow_ladder(record, rows)
    source = getattr(record, "source", None)
    number = record.get("flow")
    if source is None or not isinstance(number, int):
        return ("(no ladder: this record does not say which capture it came from; records from the "
                "`analyze` and `loopback_capture` fixtures do)")
    # Per-segment rows are kept only on request (memory grows with flows, not packets): read the
    # capture again keeping them for this one flow.
    view = _flow_with_rows(source, number, getattr(record, "msl", None))
    if view is None:
        return f"(no ladder: {source} has no flow {number} any more)"
    return flow_ladder(*view)


def assert_flow(flow: Union[Mapping[str, Any], Tuple[Mapping[str, Any], List[Row]]], **expectations: Any) -> None:
    """Assert that one flow meets `expectations` (the keys of `handshake-probe check`):

        assert_flow(cap.flows[0], close="fin", handshake_complete=True, client_final="TIME-WAIT",
                    client_states_contains=["FIN-WAIT-1", "FIN-WAIT-2"], no_rst=True,
                    max_handshake_ms=50, anomalies={"retransmission": 0}, max={"duration_ms": 1000})

    Dotted record paths go through a dict: `**{"handshake.syn_count": 1}`. An unknown or malformed
    expectation raises ValueError (a mistake in the test, not in the traffic)."""
    __tracebackhide__ = True
    if not expectations:
        raise ValueError("assert_flow needs at least one expectation, e.g. close='fin'")
    try:
        parsed = parse_expectations(expectations)
    except SpecError as err:
        raise ValueError(f"assert_flow: {err}") from None
    record: Mapping[str, Any]
    rows: Optional[List[Row]] = None
    if isinstance(flow, Mapping):
        record = flow
    else:
        record, rows = flow          # a (record, rows) view, as flowsource.flow_with_rows gives it
    failures = check_record(record, parsed)
    if failures:
        count = f"{len(failures)} of {len(parsed)} expectations" if len(parsed) > 1 else "expectation"
        head = f"flow {record.get('flow')} ({record.get('client')} -> {record.get('server')}): {count} not met"
        raise AssertionError(head + "\n" + format_flow_failures(failures, _ladder_of(record, rows))
                             + _html_report(record, rows))


# ------------------------------------------------------------------------------------------- HTML report
_REPORTS: Dict[str, Any] = {"dir": None, "test": None}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--handshake-probe-reports", metavar="DIR", default=None,
                     help="where a failing assert_flow writes the HTML report of its flow's capture "
                          "(default: .pytest_cache/d/handshake-probe-reports)")


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("--handshake-probe-reports", default=None)
    if chosen:
        _REPORTS["dir"] = Path(chosen)
    elif getattr(config, "cache", None) is not None:
        _REPORTS["dir"] = config.cache.mkdir("handshake-probe-reports")


def pytest_runtest_setup(item: pytest.Item) -> None:
    _REPORTS["test"] = item.nodeid


def _html_report(record: Mapping[str, Any], rows: Optional[List[Row]]) -> str:
    """Write the HTML report of the failing flow (the whole capture when the record knows it, opened at
    this flow; else the flow alone) and return the message's last line naming it; "" when there is
    nothing to draw from. A report that cannot be written says why in that line, never hides the verdict."""
    import re
    import tempfile
    from handshake_probe.report import Source, source_from_file, write_report
    number = record.get("flow")
    source = getattr(record, "source", None)
    directory = _REPORTS["dir"] or Path(tempfile.gettempdir()) / "handshake-probe-reports"
    test = _REPORTS["test"] or "assert_flow"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test).strip("_")[:150] + f"-flow{number}.html"
    path = Path(directory) / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if source is not None:
            msl = getattr(record, "msl", None)
            write_report(path, [source_from_file(source, **_msl(msl))], f"{test}: flow {number} failed")
        elif rows:
            write_report(path, [Source("assert_flow", [(record, rows)])], f"{test}: flow {number} failed")
        else:
            return ""
    except Exception as err:   # the verdict above stays the message; say why the page is missing
        return f"\n(no HTML report: {type(err).__name__}: {err})"
    return f"\nHTML report: {path}#flow={number}"


# ------------------------------------------------------------------------------------------- live capture


def _live_capture_unavailable() -> Optional[str]:
    """Why this test cannot capture on loopback, or None when it can."""
    try:
        from handshake_probe.live import capture as live
    except ImportError as err:
        return f"live capture is not available (handshake_probe.live cannot be imported: {err})"
    has_privilege = getattr(live, "has_capture_privilege", None)
    if has_privilege is not None and not has_privilege():
        return "live capture needs root or CAP_NET_RAW (an AF_PACKET socket could not be opened)"
    if ctypes.util.find_library("pcap") is None:
        return "live capture needs libpcap to compile its BPF filter (apt-get install libpcap0.8)"
    return None


class LoopbackCapture:
    """The traffic on one port of `lo` during a `with` block, written to a pcap and analyzed at exit.

    Inside the block the capture runs in a thread; after it, `path` is the pcap, `flows` the flow
    records, `analysis` the analysis' summary (frames, skipped, warnings, error)."""

    def __init__(self, port: int, path: Path, iface: str = "lo", settle: float = 0.2,
                 max_wait: float = 2.0) -> None:
        self.port = port
        self.path = path
        self.iface = iface
        self.settle = settle          # quiet time after the block that ends the capture
        self.max_wait = max_wait      # ... or this long at most
        self.frame_count = 0          # frames written to `path`
        self.analysis: Optional[Summary] = None
        self._flows: Optional[List[FlowRecord]] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None
        self._last_frame = time.monotonic()
        self._live: Any = None

    @property
    def flows(self) -> List[FlowRecord]:
        if self._flows is None:
            raise RuntimeError("cap.flows is there after the `with loopback_capture(port) as cap:` block")
        return self._flows

    def __enter__(self) -> "LoopbackCapture":
        from handshake_probe.live import capture as live

        try:
            # The socket is open, filtered and bound when the constructor returns: traffic that
            # starts right after __enter__ is captured (no start-up race to sleep over).
            self._live = live.LiveCapture(iface=self.iface, bpf=f"tcp port {self.port}")
        except PermissionError as err:
            pytest.skip(f"live capture needs root or CAP_NET_RAW: {err}")
        except getattr(live, "LibpcapMissingError", ()) as err:
            pytest.skip(f"live capture needs libpcap: {err}")
        writer = PcapWriter(str(self.path), getattr(self._live, "linktype", 1) or 1)

        def record() -> None:
            try:
                with writer:
                    for frame in self._live.frames(stop=self._stop):
                        writer.write(frame.ts, frame.data, frame.wirelen)
                        self.frame_count += 1
                        self._last_frame = time.monotonic()
            except BaseException as err:   # surfaced in __exit__, in the test's thread
                self._error = err

        self._thread = threading.Thread(target=record, name=f"loopback-capture-{self.port}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        assert self._thread is not None
        try:
            if exc_type is None:
                # Closing handshakes finish after the test's last call returns (the peer's FIN, the
                # last ACK): wait until the port has been quiet for `settle` seconds.
                deadline = time.monotonic() + self.max_wait
                while time.monotonic() < deadline:
                    quiet = time.monotonic() - self._last_frame
                    if quiet >= self.settle:
                        break
                    time.sleep(self.settle - quiet)
            self._stop.set()
            # frames() looks at `stop` at least every POLL_INTERVAL and then drains what was queued.
            self._thread.join(10.0)
            if self._thread.is_alive():
                raise RuntimeError("the live capture did not stop within 10 s of being asked")
        finally:
            close = getattr(self._live, "close", None)
            if close is not None:
                close()
        if exc_type is not None:
            return                      # the test's own exception is the news
        if self._error is not None:
            raise RuntimeError(f"live capture on {self.iface} failed: {self._error}") from self._error
        self.analysis, self._flows = records_of(self.path)
        if self.analysis.error:
            raise RuntimeError(self.analysis.error)


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def echo_server() -> Iterator[Tuple[str, int]]:
    """An in-process EchoServer (uppercasing, as `handshake-probe serve`) on 127.0.0.1; yields (host, port)."""
    with EchoServer(host="127.0.0.1", port=0) as address:
        yield address


@pytest.fixture
def loopback_capture(tmp_path: Path) -> Callable[..., LoopbackCapture]:
    """`with loopback_capture(port) as cap:` records that port's traffic on `lo`; then `cap.flows`, `cap.path`.

    Skips the test (with the reason) when live capture is unavailable: no handshake_probe.live, no root
    or CAP_NET_RAW, no libpcap."""
    reason = _live_capture_unavailable()
    if reason is not None:
        pytest.skip(reason)
    numbers = itertools.count(1)

    def start(port: int, iface: str = "lo", settle: float = 0.2) -> LoopbackCapture:
        path = tmp_path / f"loopback-{port}-{next(numbers)}.pcap"
        return LoopbackCapture(port, path, iface=iface, settle=settle)

    return start


@pytest.fixture
def analyze() -> Callable[..., List[FlowRecord]]:
    """`analyze(path)` -> the flow records of a capture file (the `--format json` objects)."""

    def run(path: Union[str, "os.PathLike[str]"], msl: Optional[float] = None) -> List[FlowRecord]:
        result, records = records_of(path, msl)
        if result.error:
            raise AssertionError(result.error)
        return records

    return run


@pytest.fixture(name="assert_flow")
def assert_flow_fixture() -> Callable[..., None]:
    """The `assert_flow` helper as a fixture (the same function as the importable one)."""
    return assert_flow
