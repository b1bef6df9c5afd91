"""`handshake-probe client`: the socket lesson's looping client, with kernel sockets.

Reads a line, skips empty input (sending nothing would look like nothing to the server, and an empty
read there means "closed"), sends it with sendall, prints the reply. A server that went away is one
clear line, not a traceback."""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Iterable, Optional

from handshake_probe.commands.argtypes import positive_float, positive_int, server_port
from handshake_probe.echo.server import format_peer
from handshake_probe.exitcodes import ExitStatus


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    p.add_argument("--port", type=server_port, default=8000, help="server port (default 8000)")
    p.add_argument("--send", metavar="MSG", help="send MSG instead of reading lines from the terminal")
    p.add_argument("--count", type=positive_int, default=1, metavar="N", help="with --send: send it N times (default 1)")
    p.add_argument("--timeout", type=positive_float, default=5.0, metavar="S", help="reply timeout (default 5 s)")


def _receive(sock: socket.socket, size: int) -> bytes:
    """The reply to `size` bytes: the echo server answers byte for byte, possibly in several pieces."""
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(size - got)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _lines(args: argparse.Namespace) -> Iterable[str]:
    if args.send is not None:
        yield from [args.send] * args.count
        return
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            return                       # EOF (Ctrl-D): close the connection politely
        yield line.rstrip("\n")


def run(args: argparse.Namespace) -> int:
    where = format_peer((args.host, args.port))          # [::1]:8000: IPv6 needs the brackets
    try:
        sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    except OSError as err:
        print(f"handshake-probe: error: cannot connect to {where}: {err.strerror or err}", file=sys.stderr)
        return ExitStatus.UNAVAILABLE
    with sock:
        local = sock.getsockname()
        print(f"connected to {where} from {format_peer(local)}", file=sys.stderr)
        try:
            for line in _lines(args):
                if not line:
                    continue             # the lesson: never send an empty message
                data = line.encode()
                sock.sendall(data)
                print(_receive(sock, len(data)).decode(errors="replace"), flush=True)
        except socket.timeout:
            print(f"handshake-probe: error: no reply from {where} within {args.timeout:g} s", file=sys.stderr)
            return ExitStatus.UNAVAILABLE
        except (ConnectionError, OSError) as err:
            reason: Optional[str] = getattr(err, "strerror", None) or str(err)
            print(f"handshake-probe: error: the server at {where} went away: {reason}", file=sys.stderr)
            return ExitStatus.UNAVAILABLE
    return ExitStatus.OK
