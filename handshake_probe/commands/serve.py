"""`handshake-probe serve`: the socket lesson's echo server, done right (see handshake_probe/echo/server.py)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Optional, Tuple

from handshake_probe.echo.server import EchoServer, format_peer
from handshake_probe.exitcodes import ExitStatus
from handshake_probe.commands.argtypes import port, positive_float, positive_int


def keepalive_triple(text: str) -> Tuple[int, int, int]:
    try:
        idle, interval, count = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected IDLE,INTERVAL,COUNT (three integers), not {text!r}")
    if min(idle, interval, count) < 1:
        raise argparse.ArgumentTypeError("IDLE, INTERVAL and COUNT must all be >= 1")
    return idle, interval, count



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; ::1 for IPv6)")
    p.add_argument("--port", type=port, default=8000, help="port (default 8000; 0 picks a free one and prints it)")
    p.add_argument("--backlog", type=positive_int, metavar="N",
                   help="listen backlog: clients the kernel queues until the server accepts them "
                        "(default: the system's net.core.somaxconn, the most the kernel allows)")
    p.add_argument("--mode", choices=("upper", "echo"), default="upper",
                   help="upper: reply with the data uppercased (the lesson's default); echo: unchanged")
    p.add_argument("--max-clients", type=positive_int, metavar="N",
                   help="serve at most N clients at once; others wait in the listen backlog")
    p.add_argument("--idle-timeout", type=positive_float, metavar="S",
                   help="close a connection first when its client has been silent S seconds")
    p.add_argument("--keepalive", type=keepalive_triple, metavar="IDLE,INTERVAL,COUNT",
                   help="TCP keepalive per connection (TCP_KEEPIDLE,TCP_KEEPINTVL,TCP_KEEPCNT in seconds/probes); "
                        "the kernel default is 7200,75,9: small values show keepalive probes within seconds")


def run(args: argparse.Namespace) -> int:
    said = threading.Lock()

    def log(line: str) -> None:
        # One write per line, under one lock, for the client threads and this one alike: the last
        # "disconnect" of a shutdown and "server stopped" never share a line.
        with said:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    try:
        server = EchoServer(host=args.host, port=args.port, backlog=args.backlog, mode=args.mode,
                            idle_timeout=args.idle_timeout, max_clients=args.max_clients,
                            keepalive=args.keepalive, log=log)
        host, port = server.bind()
    except (OSError, ValueError) as err:
        print(f"handshake-probe: error: cannot serve on {args.host}:{args.port}: {err}", file=sys.stderr)
        return ExitStatus.UNAVAILABLE if isinstance(err, OSError) else ExitStatus.BAD_INPUT
    def stop(signum: int, frame: Optional[FrameType]) -> None:
        # shutdown() waits for the accept loop, which runs in this very thread: signal it from elsewhere.
        threading.Thread(target=server.shutdown, daemon=True).start()

    # Handlers first, then the line that tells a script the server is up: a signal sent as soon as
    # the line is read must stop the server cleanly, not kill it half-way.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        log(f"listening on {format_peer((host, port))} (mode {args.mode}, backlog {server.backlog}); "
            "Ctrl-C stops")
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.shutdown()
    log("server stopped")
    return ExitStatus.OK
