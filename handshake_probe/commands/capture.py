"""`handshake-probe capture [-i IFACE] [-w FILE] [FILTER ...]`: live flows and their transitions.

The live edge (`handshake_probe.live`) hands raw frames to the engine (`_engine.Engine`, the same
decode -> flow table -> records path `analyze` runs on files); this module only wires it up: each
transition event the engine returns is printed as a line, every frame is written to the pcap, and
at the end the flow table (from the engine's records) and one summary line (from its counters) are
printed. SIGINT and SIGTERM end the capture normally (exit 0):
they only set an event that the capture loop looks at every 0.2 s or sooner (a second one
interrupts at once: exit 130).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from datetime import datetime
from types import FrameType
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, TextIO, Union

from handshake_probe import DEFAULT_MSL, _engine
from handshake_probe.exitcodes import ExitStatus
from handshake_probe.live.capture import (CapturePermissionError, InterfaceError, LibpcapMissingError,
                                  LiveCapture)
from handshake_probe.files.pcapwriter import PcapWriter, RawFrame
from handshake_probe.messages import plural
from handshake_probe.views.table import table_width, write_records
from handshake_probe.commands.argtypes import positive_float, positive_int

FLUSH_INTERVAL = 0.25  # seconds: how stale the pcap file and the printed lines may get under load
_LINKTYPE_NAMES = {1: "EN10MB (Ethernet)", 101: "RAW (raw IP)"}

_SignalHandler = Union[Callable[[int, Optional[FrameType]], Any], int, None]



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Capture live traffic (kernel BPF filter, as tcpdump), print each flow's RFC 9293 "
                     "transitions as they happen, and the flow table at the end (Ctrl-C to stop).")
    p.add_argument("-i", "--interface", dest="iface", default="lo", metavar="IFACE",
                   help="interface to capture on (default: lo)")
    p.add_argument("-w", "--write", metavar="FILE", help="also write every captured frame to this pcap file")
    p.add_argument("-c", "--count", type=positive_int, metavar="N", help="stop after N frames")
    p.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds")
    p.add_argument("--msl", type=positive_float, default=DEFAULT_MSL, metavar="SECONDS",
                   help=f"maximum segment lifetime; TIME-WAIT lasts 2*MSL (default {DEFAULT_MSL:g})")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print transitions as they happen")
    p.add_argument("--report", metavar="REPORT.html", help="at the end, also write the HTML report of the flows")
    p.add_argument("filter", nargs="*", metavar="FILTER",
                   help="tcpdump filter expression; the words are joined with spaces, e.g. tcp port 8080")


def transition_line(event: Mapping[str, Any]) -> str:
    """`12:00:00.123456  flow 3  127.0.0.1:40452 -> 127.0.0.1:8080  client  CLOSED -> SYN-SENT  (snd SYN)`
    from one of the engine's transition events."""
    clock = datetime.fromtimestamp(event["ts"]).strftime("%H:%M:%S.%f")
    return (f"{clock}  flow {event['flow']}  {event['client']} -> {event['server']}  "
            f"{event['endpoint']:6}  {event['from']} -> {event['to']}  ({event['cause']})\n")


def _error(message: str) -> None:
    print(f"handshake-probe: error: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    expr = " ".join(args.filter).strip() or None
    try:
        cap = LiveCapture(args.iface, expr)
    except ValueError as err:
        _error(f"bad filter expression {expr!r}: {err}")
        return ExitStatus.BAD_INPUT
    except InterfaceError as err:
        _error(f"{err.strerror}")
        return ExitStatus.BAD_INPUT
    except CapturePermissionError as err:
        _error(f"{err.strerror}")
        return ExitStatus.NO_PERMISSION
    except LibpcapMissingError as err:
        _error(str(err))
        return ExitStatus.UNAVAILABLE
    except OSError as err:
        _error(f"cannot capture on {args.iface}: {err.strerror or err}")
        return ExitStatus.UNAVAILABLE
    with cap:
        writer: Optional[PcapWriter] = None
        if args.write:
            try:
                writer = PcapWriter(args.write, cap.linktype, cap.snaplen)
            except OSError as err:
                _error(f"{args.write}: {err.strerror or err}")
                return ExitStatus.BAD_INPUT
        try:
            return _capture(cap, writer, args, expr)
        finally:
            if writer is not None:
                writer.close()


def _capture(cap: LiveCapture, writer: Optional[PcapWriter], args: argparse.Namespace,
             expr: Optional[str]) -> int:
    out = sys.stdout
    stop = threading.Event()
    previous = _install_stop_handlers(stop)
    try:
        engine = _engine.Engine(cap.linktype, msl=args.msl, keep_rows=True if args.report else None)

        def idle() -> None:
            # Nothing queued: a good moment to make file and screen current.
            if writer is not None:
                writer.flush()
            out.flush()

        failure: List[str] = []
        frames = cap.frames(args.count, args.duration, stop, on_idle=idle)
        frames = _recorded(_guarded(frames, failure, args.iface), writer, out)
        linktype = _LINKTYPE_NAMES.get(cap.linktype, str(cap.linktype))
        # tcpdump's wording, so scripts (and our tests) can wait for the line before sending traffic.
        print(f"handshake-probe: listening on {args.iface}, link-type {linktype}, snapshot length "
              f"{cap.snaplen} bytes" + (f", filter {expr!r}" if expr else ""), file=sys.stderr, flush=True)
        show = None if args.quiet else out.write
        feed = engine.feed
        for frame in frames:
            events = feed(frame.data, frame.ts, frame.wirelen)
            if events and show is not None:
                for event in events:
                    show(transition_line(event))
        records = engine.finish()            # the end of input decides what was held, fires 2MSL timers
        if show is not None:
            for event in engine.events():
                show(transition_line(event))
        received, dropped = cap.stats()
        if writer is not None:
            writer.flush()
        for warning in engine.warnings:
            print(f"handshake-probe: warning: {args.iface}: {warning}", file=sys.stderr)
        if engine.frames or records:
            out.write("\n")
        write_records(records, "table", out, width=table_width(out))
        out.write("\n" + _summary(args.iface, engine, received, dropped) + "\n")
        out.flush()
        for line in failure:
            _error(line)
        if args.report:
            from handshake_probe.report.hooks import report_records
            if not report_records(args.report, args.iface, records, engine.rows,
                                  {"frames": engine.frames, "segments": engine.segments}):
                return ExitStatus.BAD_INPUT
        return ExitStatus.UNAVAILABLE if failure else ExitStatus.OK
    finally:
        _restore_handlers(previous)


def _summary(iface: str, engine: Any, received: int, dropped: int) -> str:
    """One line from the engine's counters and the kernel's."""
    text = (f"capture on {iface}: {plural(engine.frames, 'frame')} captured, "
            f"{plural(engine.segments, 'TCP segment')}, {plural(engine.flow_count, 'flow')}, "
            f"{plural(dropped, 'packet')} dropped by the kernel ({received} received by the filter)")
    skipped = engine.skipped
    if skipped:
        text += "; skipped " + ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
    violations = engine.violations
    if violations:
        text += f"; {plural(violations, 'violation')} (segments that fit no RFC 9293 transition)"
    return text


def _guarded(frames: Iterator[RawFrame], failure: List[str], iface: str) -> Iterator[RawFrame]:
    """End the stream instead of the program when the socket fails (e.g. the interface went down)."""
    try:
        yield from frames
    except OSError as err:
        failure.append(f"capture on {iface} stopped: {err.strerror or err}")


def _recorded(frames: Iterable[RawFrame], writer: Optional[PcapWriter], out: TextIO) -> Iterator[RawFrame]:
    """Write each frame (if writing) before it is analysed; under a load that never lets the
    capture go idle, flush file and screen at least every FLUSH_INTERVAL."""
    monotonic = time.monotonic
    last = monotonic()
    for frame in frames:
        if writer is not None:
            writer.write(frame.ts, frame.data, frame.wirelen)
        now = monotonic()
        if now - last >= FLUSH_INTERVAL:
            if writer is not None:
                writer.flush()
            out.flush()
            last = now
        yield frame


def _install_stop_handlers(stop: threading.Event) -> Dict[int, _SignalHandler]:
    """SIGINT and SIGTERM set `stop` (the capture then ends normally); main thread only."""
    previous: Dict[int, _SignalHandler] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous  # signal.signal would raise; an embedding program handles its signals

    def handler(signum: int, _frame: Optional[FrameType]) -> None:
        if stop.is_set():
            # A second signal while the queue drains or the table prints: the user means it now
            # (the pcap stays valid: the writer is closed on the way out).
            raise KeyboardInterrupt
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    return previous


def _restore_handlers(previous: Dict[int, _SignalHandler]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
