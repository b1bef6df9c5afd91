"""`handshake-probe capture [-i IFACE] [-w FILE] [FILTER ...]`: live flows and their transitions.

The live edge (`handshake_probe.live`) sets up the capture socket (kernel BPF filter, the arriving
copy only on `lo`, kernel timestamps); the engine (`_engine.Live`) reads it on a thread of its own
that never holds the GIL, runs every frame through the same decode -> flow table -> records path
`analyze` runs on files, and writes the pcap (`-w`, whole records only). This module only prints
what the engine hands over in batches: transition lines (final when printed), or with `--format
jsonl` each flow's record as the flow finishes; at the end the last flows as a table and one
summary line. Finished flows leave memory as in `analyze` (`--linger`, idle timeout, max open):
a capture of hours keeps memory flat. SIGINT and SIGTERM end the capture normally (exit 0): they
only set an event that the loop looks at every 0.2 s or sooner (a second one interrupts at once:
exit 130).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import tempfile
import sys
import threading
import time
from datetime import datetime
from types import FrameType
from typing import Any, Callable, Dict, Mapping, Optional, TextIO, Union

from handshake_probe import DEFAULT_MSL, _engine
from handshake_probe.exitcodes import ExitStatus
from handshake_probe.live.capture import (CapturePermissionError, InterfaceError, LibpcapMissingError,
                                  LiveCapture)
from handshake_probe.messages import error, plural
from handshake_probe.views.table import table_width, write_records
from handshake_probe.commands import p0fdb
from handshake_probe.commands.argtypes import positive_float, positive_int

POLL_INTERVAL = 0.2  # seconds: how long one wait for the engine's next batch may take
DEFAULT_LAST = 50  # flows in the closing table
_LINKTYPE_NAMES = {1: "EN10MB (Ethernet)", 101: "RAW (raw IP)"}

_SignalHandler = Union[Callable[[int, Optional[FrameType]], Any], int, None]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Capture live traffic (kernel BPF filter, as tcpdump), print each flow's RFC 9293 "
                     "transitions as they happen, and the last flows at the end (Ctrl-C to stop).")
    p.add_argument("-i", "--interface", dest="iface", default="lo", metavar="IFACE",
                   help="interface to capture on (default: lo)")
    p.add_argument("-w", "--write", metavar="FILE", help="also write every captured frame to this pcap file")
    p.add_argument("-c", "--count", type=positive_int, metavar="N", help="stop after N frames")
    p.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds")
    p.add_argument("--msl", type=positive_float, default=DEFAULT_MSL, metavar="SECONDS",
                   help=f"maximum segment lifetime; TIME-WAIT lasts 2*MSL (default {DEFAULT_MSL:g})")
    p.add_argument("--format", choices=("table", "jsonl"), default="table",
                   help="table: transition lines as they happen, the last flows at the end (default); "
                        "jsonl: each flow's record (as `analyze --format jsonl`) as soon as the flow is "
                        "over, the summary line on stderr")
    p.add_argument("--last", type=positive_int, default=DEFAULT_LAST, metavar="N",
                   help=f"flows shown in the closing table: the last N to finish (default {DEFAULT_LAST})")
    p.add_argument("--reader", choices=("ring", "recvmmsg"), default="ring",
                   help="how the engine reads the socket: a TPACKET_V3 ring mapped from the kernel "
                        "(default; recvmmsg where the kernel refuses one) or recvmmsg batches")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print transitions as they happen")
    p0fdb.add_argument(p)
    p.add_argument("--report", metavar="REPORT.html",
                   help="at the end, also write the HTML report of the flows (from the frames captured: "
                        "the -w file, or a temporary one)")
    p.add_argument("filter", nargs="*", metavar="FILTER",
                   help="tcpdump filter expression; the words are joined with spaces, e.g. tcp port 8080")


def transition_line(event: Mapping[str, Any]) -> str:
    """`12:00:00.123456  flow 3  127.0.0.1:40452 -> 127.0.0.1:8080  client  CLOSED -> SYN-SENT  (snd SYN)`
    from one of the engine's transition events."""
    clock = datetime.fromtimestamp(event["ts"]).strftime("%H:%M:%S.%f")
    return (f"{clock}  flow {event['flow']}  {event['client']} -> {event['server']}  "
            f"{event['endpoint']:6}  {event['from']} -> {event['to']}  ({event['cause']})\n")


def run(args: argparse.Namespace) -> int:
    expr = " ".join(args.filter).strip() or None
    try:
        p0f_text = p0fdb.p0f_text(args)             # judged before the capture is set up
    except (OSError, ValueError) as err:
        error(str(err))
        return ExitStatus.BAD_INPUT
    try:
        cap = LiveCapture(args.iface, expr)
    except ValueError as err:
        error(f"bad filter expression {expr!r}: {err}")
        return ExitStatus.BAD_INPUT
    except InterfaceError as err:
        error(f"{err.strerror}")
        return ExitStatus.BAD_INPUT
    except CapturePermissionError as err:
        error(f"{err.strerror}")
        return ExitStatus.NO_PERMISSION
    except LibpcapMissingError as err:
        error(str(err))
        return ExitStatus.UNAVAILABLE
    except OSError as err:
        error(f"cannot capture on {args.iface}: {err.strerror or err}")
        return ExitStatus.UNAVAILABLE
    with cap, contextlib.ExitStack() as stack:
        write = None
        # The report is made at the end from the frames captured, read back as `analyze` reads a file
        # (equal to what was printed live: tests/test_live_replay.py), so the capture itself keeps
        # memory flat: without -w the frames go to a temporary pcap that is removed on every exit.
        pcap_path = args.write
        if args.report and not pcap_path:
            pcap_path = os.path.join(stack.enter_context(tempfile.TemporaryDirectory(prefix="hp-capture-")),
                                     "capture.pcap")
        if pcap_path:
            try:
                # Opened here for the one wording of a file error; the engine writes through a
                # duplicate of the descriptor (whole pcap records only).
                write = open(pcap_path, "wb", buffering=0)
            except OSError as err:
                error(f"{pcap_path}: {err.strerror or err}")
                return ExitStatus.BAD_INPUT
        jsonl = args.format == "jsonl"
        try:
            with write if write is not None else contextlib.nullcontext():
                live = _engine.Live(cap.fileno(), cap.linktype, snaplen=cap.snaplen,
                                    loopback=cap.loopback and not cap.kernel_drops_outgoing,
                                    count=args.count,
                                    write=None if write is None else (write.fileno(), pcap_path),
                                    jsonl=jsonl, events=not (args.quiet or jsonl),
                                    keep_last=args.last, msl=args.msl, ring=args.reader == "ring",
                                    p0f_db=p0f_text)
        except OSError as err:
            error(f"cannot capture on {args.iface}: {err.strerror or err}")
            return ExitStatus.UNAVAILABLE
        status = _capture(live, cap, args, expr)
        if args.report and pcap_path and status == ExitStatus.OK:
            from handshake_probe.report.data import source_from_file
            from handshake_probe.report.hooks import report_sources
            if not report_sources(args.report, [source_from_file(pcap_path, args.iface, msl=args.msl,
                                                                 p0f_db=p0f_text)],
                                  f"handshake-probe: capture on {args.iface}"):
                return ExitStatus.BAD_INPUT
        return status


def _capture(live: Any, cap: LiveCapture, args: argparse.Namespace, expr: Optional[str]) -> int:
    out = sys.stdout
    stop = threading.Event()
    previous = _install_stop_handlers(stop)
    try:
        linktype = _LINKTYPE_NAMES.get(cap.linktype, str(cap.linktype))
        # tcpdump's wording, so scripts (and our tests) can wait for the line before sending traffic.
        print(f"handshake-probe: listening on {args.iface}, link-type {linktype}, snapshot length "
              f"{cap.snaplen} bytes" + (f", filter {expr!r}" if expr else ""), file=sys.stderr, flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        stopping = False
        while True:
            if not stopping and (stop.is_set() or (deadline is not None and time.monotonic() >= deadline)):
                live.stop()                  # it still reads what the kernel queued before now
                stopping = True
            ended = live.done                # seen before the poll: this poll takes the last batch
            wait = POLL_INTERVAL if deadline is None or stopping else \
                min(POLL_INTERVAL, max(0.0, deadline - time.monotonic()))
            events, text = live.poll(wait)
            for event in events:
                out.write(transition_line(event))
            if text:
                _write_bytes(out, text)
            if events or text:
                out.flush()
            if ended and not events and not text:
                break
        live.join()
        summary_out = sys.stderr if args.format == "jsonl" else out
        for warning in live.warnings:
            print(f"handshake-probe: warning: {args.iface}: {warning}", file=sys.stderr)
        if args.format == "table":
            records = sorted(live.last(), key=lambda r: r["flow"])  # the last to finish, by number
            if live.frames or records:
                out.write("\n")
            write_records(records, "table", out, width=table_width(out))
            out.write("\n")
        summary_out.write(_summary(args.iface, live, args.format == "table") + "\n")
        out.flush()
        summary_out.flush()
        if live.error:
            error(f"{args.iface}: {live.error}")
            return ExitStatus.UNAVAILABLE
        return ExitStatus.OK
    finally:
        _restore_handlers(previous)


def _write_bytes(out: TextIO, text: bytes) -> None:
    """JSON Lines from the engine straight to the file under `out` (no str copy), every byte: a
    write(2) to a full pipe that a signal (Ctrl-C) interrupts returns short, and the rest is
    written again here (measured: through sys.stdout.buffer the rest of that chunk was lost)."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):
        out.write(text.decode())
        return
    out.flush()
    view = memoryview(text)
    while view:
        view = view[os.write(fd, view):]


def _summary(iface: str, live: Any, table: bool) -> str:
    """One line from the engine's counters and the kernel's."""
    text = (f"capture on {iface}: {plural(live.frames, 'frame')} captured, "
            f"{plural(live.segments, 'TCP segment')}, {plural(live.flow_count, 'flow')}, "
            f"{plural(live.dropped, 'packet')} dropped by the kernel ({live.received} received by the filter)")
    closes = live.closes
    if closes:
        text += "; closes: " + ", ".join(f"{n} {kind}" for kind, n in closes.items())
    shown = min(live.flow_count, len(live.last()))
    if table and shown < live.flow_count:
        text += f"; the table shows the last {shown}"
    skipped = live.skipped
    if skipped:
        text += "; skipped " + ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
    violations = live.violations
    if violations:
        text += f"; {plural(violations, 'violation')} (segments that fit no RFC 9293 transition)"
    if live.evicted:
        text += f"; {plural(live.evicted, 'flow')} finished early (more than max-open open)"
    text += f"; read by {live.reader}"
    if live.events_dropped:
        text += f"; {plural(live.events_dropped, 'transition line')} not printed (the printer fell behind)"
    return text


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
