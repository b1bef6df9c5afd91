#!/usr/bin/env python3
"""Live capture under load: how many packets/s can LiveCapture take on lo without losing one?

An EchoServer runs in its own process; load processes hammer it over loopback as fast as they go:
* `conn` processes: short connections, the lesson's exchange (connect, b"python" -> b"PYTHON",
  close), 10 segments each;
* `stream` processes: one connection each, small messages with TCP_NODELAY, sent in bursts of
  --burst K (one send() each) before their echoes are read; --burst 1 is a ping-pong.
Meanwhile this process captures with `LiveCapture(bpf="tcp port P")` (and, with --decode, feeds every
frame to the engine, `_engine.Engine.feed`, as the `capture` command does), and tcpdump counts the same traffic
independently (`-w /dev/null`, a 256 MiB buffer). Offered = what tcpdump's kernel filter saw, halved
(on lo tcpdump receives the outgoing and the incoming copy of every packet; it keeps one).

A benchmark, not a test: it prints figures and never fails on speed. Usage:

    python bench/live_load.py                        # 5 s, 2 conn + 6 stream processes, bursts of 16
    python bench/live_load.py --decode --duration 10
    python bench/live_load.py --conn 3 --stream 0    # short connections only
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout: sys.path[0] is bench/

from handshake_probe import _engine  # noqa: E402
from handshake_probe.echo import EchoServer  # noqa: E402
from handshake_probe.live import LiveCapture  # noqa: E402

SETTLE = 0.5  # after the load stops: the last segments reach both captures


# ----------------------------------------------------------------------------- processes


def serve(ready: "mp.Queue[int]", stop: "mp.synchronize.Event") -> None:
    server = EchoServer(backlog=1024, log=lambda line: None)
    with server as (_, port):
        ready.put(port)
        stop.wait()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("server closed early")
        data += chunk
    return data


def conn_load(port: int, until: float, result: "mp.Queue[Tuple[str, int]]") -> None:
    done = 0
    while time.time() < until:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"python")
            recv_exactly(sock, 6)
        done += 1
    result.put(("conn", done))


def stream_load(port: int, until: float, size: int, burst: int,
                result: "mp.Queue[Tuple[str, int]]") -> None:
    """`burst` messages sent back to back (one send each), then all their echoes read."""
    message = b"x" * size
    done = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        send = sock.send
        while time.time() < until:
            for _ in range(burst):
                send(message)  # small: a blocking send takes it whole
            recv_exactly(sock, size * burst)
            done += burst
    result.put(("stream", done))


# ----------------------------------------------------------------------------- tcpdump


class TcpdumpCounter:
    """tcpdump as an independent counter: `-w /dev/null`, its statistics parsed at SIGINT."""

    def __init__(self, bpf: str) -> None:
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-s", "0", "-U", "--immediate-mode", "-B", str(256 * 1024),
             "-w", "/dev/null", bpf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        if "listening on" not in line:
            raise SystemExit(f"tcpdump did not start: {line.strip()}")

    def stop(self) -> Tuple[int, int, int]:
        """(captured, received by filter, dropped by kernel)."""
        self.proc.send_signal(2)
        _, err = self.proc.communicate(timeout=10)

        def number(suffix: str) -> int:
            m = re.search(r"^(\d+) " + suffix, err, re.M)
            return int(m.group(1)) if m else -1

        return (number("packets captured"), number("packets received by filter"),
                number("packets dropped by kernel"))


# ----------------------------------------------------------------------------- main


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds of load (default 5)")
    ap.add_argument("--conn", type=int, default=2, help="short-connection processes (default 2)")
    ap.add_argument("--stream", type=int, default=6, help="stream processes (default 6)")
    ap.add_argument("--size", type=int, default=32, help="stream message size in bytes (default 32)")
    ap.add_argument("--burst", type=int, default=16,
                    help="stream messages sent before reading their echoes (default 16; 1 = ping-pong)")
    ap.add_argument("--decode", action="store_true",
                    help="feed every frame to the engine in the capture loop (as `capture` does)")
    ap.add_argument("--rcvbuf", type=int, default=64 << 20, help="LiveCapture rcvbuf (default 64 MiB)")
    ap.add_argument("--no-tcpdump", action="store_true", help="skip the independent tcpdump count")
    args = ap.parse_args(argv)

    ctx = mp.get_context("spawn")  # no fork of a process that has threads
    ready: "mp.Queue[int]" = ctx.Queue()
    results: "mp.Queue[Tuple[str, int]]" = ctx.Queue()
    server_stop = ctx.Event()
    server = ctx.Process(target=serve, args=(ready, server_stop), daemon=True)
    server.start()
    port = ready.get(timeout=30)
    bpf = f"tcp port {port}"

    tcpdump = None if args.no_tcpdump or shutil.which("tcpdump") is None else TcpdumpCounter(bpf)
    cap = LiveCapture("lo", bpf, rcvbuf=args.rcvbuf)
    engine = _engine.Engine(cap.linktype) if args.decode else None

    until = time.time() + 1.0 + args.duration  # 1 s for the spawned processes to start
    loads = [ctx.Process(target=conn_load, args=(port, until, results)) for _ in range(args.conn)]
    loads += [ctx.Process(target=stream_load, args=(port, until, args.size, args.burst, results))
              for _ in range(args.stream)]
    for p in loads:
        p.start()

    stop = threading.Event()

    def watch() -> None:
        for p in loads:
            p.join()
        time.sleep(SETTLE)
        stop.set()

    threading.Thread(target=watch, daemon=True).start()

    frames = 0
    first_ts = last_ts = 0.0
    feed = engine.feed if engine is not None else None
    cpu0, wall0 = time.process_time(), time.monotonic()
    for frame in cap.frames(stop=stop):
        frames += 1
        if frames == 1:
            first_ts = frame.ts
        last_ts = frame.ts
        if feed is not None:
            feed(frame.data, frame.ts, frame.wirelen)    # the transition events are not printed here
    if engine is not None:
        engine.finish()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    received, dropped = cap.stats()
    cap.close()
    counted = tcpdump.stop() if tcpdump is not None else None
    server_stop.set()
    server.join(10)

    work = {"conn": 0, "stream": 0}
    for _ in loads:
        kind, n = results.get(timeout=10)
        work[kind] += n
    span = max(last_ts - first_ts, 1e-9)
    print(f"load: {args.conn} conn + {args.stream} stream processes for {args.duration:g} s on "
          f"{mp.cpu_count()} CPUs: {work['conn']} connections, {work['stream']} stream exchanges")
    if counted is not None:
        captured_td, recv_td, drop_td = counted
        offered = recv_td // 2
        print(f"offered (tcpdump: {recv_td} received by filter = 2 copies each on lo, {captured_td} "
              f"captured, {drop_td} dropped): {offered} packets, {offered / span:,.0f} packets/s")
    else:
        offered = received
        print(f"offered (kernel count at our socket): {offered} packets, {offered / span:,.0f} packets/s")
    print(f"captured by LiveCapture: {frames} frames in {span:.2f} s = {frames / span:,.0f} packets/s"
          + (f", the engine decoded {engine.segments} segments into {engine.flow_count} flows"
             + (f" ({engine.skipped.get('malformed', 0)} malformed)" if engine.skipped.get("malformed") else "")
             if engine is not None else ""))
    print(f"kernel (PACKET_STATISTICS): {received} received by the filter, {dropped} dropped")
    print(f"lost: {offered - frames} (offered - captured); capture loop {cpu:.2f} s CPU in "
          f"{wall:.2f} s ({cpu / wall * 100:.0f} % of one CPU, {cpu / max(frames, 1) * 1e6:.1f} us "
          f"a frame); rcvbuf {cap.rcvbuf >> 20} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
