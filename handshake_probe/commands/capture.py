"""`handshake-probe capture [-i IFACE] [-w FILE] [FILTER ...]`: live flows and their transitions.

The live edge (`handshake_probe.live`) hands raw frames to the same decode -> FlowTable path the
analyzer uses (`analysis.analyze_frames`); this module only wires it up: each transition is
printed as the flow table makes it, every frame is written to the pcap, and at the end the flow
table and one summary line are printed. SIGINT and SIGTERM end the capture normally (exit 0):
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
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, TextIO, Union

from handshake_probe.analysis import analyze_frames
from handshake_probe.core.flow import Flow, Transition
from handshake_probe.core.flows import DEFAULT_MSL, FlowTable
from handshake_probe.core.record import flow_record
from handshake_probe.exitcodes import ExitStatus
from handshake_probe.live import (CapturePermissionError, InterfaceError, LibpcapMissingError,
                                  LiveCapture)
from handshake_probe.pcapio import PcapWriter, RawFrame
from handshake_probe.messages import plural
from handshake_probe.render import table_width, write_records
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
    p.add_argument("filter", nargs="*", metavar="FILTER",
                   help="tcpdump filter expression; the words are joined with spaces, e.g. tcp port 8080")


def transition_line(flow: Flow, t: Transition) -> str:
    """`12:00:00.123456  flow 3  127.0.0.1:40452 -> 127.0.0.1:8080  client  CLOSED -> SYN-SENT  (snd SYN)`"""
    clock = datetime.fromtimestamp(t.ts).strftime("%H:%M:%S.%f")
    return (f"{clock}  flow {flow.number}  {flow.client.label()} -> {flow.server.label()}  "
            f"{t.endpoint:6}  {t.from_state.value} -> {t.to_state.value}  ({t.cause.value})\n")


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
        def show(flow: Flow, t: Transition) -> None:
            out.write(transition_line(flow, t))

        table = FlowTable(args.msl, on_transition=None if args.quiet else show)

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
        analysis = analyze_frames(frames, args.iface, table)
        received, dropped = cap.stats()
        if writer is not None:
            writer.flush()
        for warning in analysis.warnings:
            print(f"handshake-probe: warning: {warning}", file=sys.stderr)
        if analysis.frames or table.flows:
            out.write("\n")
        write_records((flow_record(f) for f in table.flows), "table", out, width=table_width(out))
        out.write("\n" + _summary(args.iface, analysis.frames, analysis.segments, len(table.flows),
                                  received, dropped, analysis.skipped, table.flows) + "\n")
        out.flush()
        for line in failure:
            _error(line)
        return ExitStatus.UNAVAILABLE if failure else ExitStatus.OK
    finally:
        _restore_handlers(previous)


def _summary(iface: str, frames: int, segments: int, flows: int, received: int, dropped: int,
             skipped: Dict[str, int], flow_list: Iterable[Flow]) -> str:
    text = (f"capture on {iface}: {plural(frames, 'frame')} captured, {plural(segments, 'TCP segment')}, "
            f"{plural(flows, 'flow')}, {plural(dropped, 'packet')} dropped by the kernel "
            f"({received} received by the filter)")
    if skipped:
        text += "; skipped " + ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
    violations = sum(f.violation_count for f in flow_list)
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
