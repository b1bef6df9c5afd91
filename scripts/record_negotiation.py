#!/usr/bin/env python3
"""Record kernel handshakes that negotiate differently into captures/negotiation-*.pcap.

Each scenario runs in network namespaces of its own (`ip netns add hp-neg-<pid>-...`), so the sysctls it
needs never touch the host's: a fresh namespace has its own `net.ipv4.tcp_window_scaling`,
`tcp_fastopen` and `tcp_ecn`, and everything in it goes when it is deleted. The namespaces are deleted on
every exit path (finally, and on SIGINT/SIGTERM). tcpdump records inside the namespace:

    ip netns exec NS tcpdump -i IFACE -s 0 -U --immediate-mode -Z root -w FILE 'tcp port P'

Scenarios (one echo exchange each: the client sends `python`, the server answers `PYTHON`, the client
closes):
* negotiation-no-wscale: two namespaces joined by a veth pair (198.18.176.1 <-> 198.18.176.2); the
  server's has net.ipv4.tcp_window_scaling=0, the client's 1: the SYN offers a window scale, the
  SYN-ACK does not, so none is in effect (RFC 7323 §2.2). Recorded on the client's veth end.
* negotiation-tfo: loopback with net.ipv4.tcp_fastopen=3 and a listener with TCP_FASTOPEN; the first
  connection asks for a cookie (SYN with an empty Fast Open option), the second sends `python` on its
  SYN with MSG_FASTOPEN and the cookie, and the SYN-ACK acknowledges it (RFC 7413).
* negotiation-ecn: loopback with net.ipv4.tcp_ecn=1: an ECN-setup SYN (ECE+CWR) and SYN-ACK (ECE),
  RFC 3168 §6.1.1.
* negotiation-mss-clamp: loopback; the client sets TCP_MAXSEG 1000 and the listener 1200 before the
  handshake: MSS 1000 on the SYN, 1200 on the SYN-ACK.

Each file is read back with the engine and checked (flags, what is in effect); a file that fails is
renamed `<name>.pcap.rejected` and the script exits 1. Root needed (namespaces, tcpdump).

    python scripts/record_negotiation.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
PORT = 47120          # inside our own namespaces: no other program's traffic to filter out
TIMEOUT = 10.0
SETTLE = 0.3
NS_PREFIX = f"hp-neg-{os.getpid()}"
_namespaces: List[str] = []


# ------------------------------------------------------------------------------------- namespaces
def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


def add_ns(suffix: str, sysctls: Dict[str, str]) -> str:
    name = f"{NS_PREFIX}-{suffix}"
    sh("ip", "netns", "add", name)
    _namespaces.append(name)
    sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
    for key, value in sysctls.items():
        sh("ip", "netns", "exec", name, "sysctl", "-qw", f"{key}={value}")
    return name


def delete_namespaces() -> None:
    while _namespaces:
        name = _namespaces.pop()
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def _on_signal(signum: int, _frame: object) -> None:
    delete_namespaces()
    sys.exit(128 + signum)


# --------------------------------------------------------------------------------------- recording
class Recorder:
    """tcpdump inside a namespace: started, waited for ("listening on"), stopped with SIGINT."""

    def __init__(self, ns: str, iface: str, out: Path) -> None:
        self.cmd = ["ip", "netns", "exec", ns, "tcpdump", "-i", iface, "-s", "0", "-U", "--immediate-mode",
                    "-Z", "root", "-w", str(out), f"tcp port {PORT}"]
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def __enter__(self) -> "Recorder":
        self.proc = subprocess.Popen(self.cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + TIMEOUT
        line = b""
        while b"listening on" not in line:
            line = self.proc.stderr.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"tcpdump did not start: {line!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        time.sleep(SETTLE)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def inside(ns: str, role: str, *args: str) -> List[str]:
    """This script run inside namespace `ns` in `role` (the traffic itself runs there)."""
    return ["ip", "netns", "exec", ns, sys.executable, str(Path(__file__).resolve()), "--inside", role, *args]


# ------------------------------------------------------------------------- traffic (inside a netns)
def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def serve(host: str, connections: int, options: Sequence[str], ready: Optional[threading.Event] = None) -> None:
    """Echo in upper case `connections` times, then close. `options`: "tfo", "mss=N"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as lsock:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for opt in options:
            if opt == "tfo":
                lsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)
            elif opt.startswith("mss="):
                lsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, int(opt[4:]))
        lsock.bind((host, PORT))
        lsock.listen(4)
        lsock.settimeout(TIMEOUT)
        if ready is not None:
            ready.set()
        else:
            print("ready", flush=True)
        for _ in range(connections):
            conn, _addr = lsock.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                data = recv_exactly(conn, 6)
                conn.sendall(data.upper())
                recv_exactly(conn, 1)       # the client's FIN


def client(host: str, mode: str) -> None:
    """One echo exchange; `mode`: "plain", "tfo" (MSG_FASTOPEN: `python` on the SYN), "mss=N"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # blocking while connecting: a socket with a timeout is non-blocking underneath, and a Fast Open
        # sendto() then returns EINPROGRESS instead of sending
        if mode.startswith("mss="):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, int(mode[4:]))
        if mode == "tfo":
            sock.sendto(b"python", socket.MSG_FASTOPEN, (host, PORT))
        else:
            sock.connect((host, PORT))
            sock.sendall(b"python")
        sock.settimeout(TIMEOUT)
        reply = recv_exactly(sock, 6)
        if reply != b"PYTHON":
            raise RuntimeError(f"echo answered {reply!r}")
        time.sleep(0.05)


def run_inside(role: str, args: Sequence[str]) -> None:
    host = args[0]
    if role == "serve":
        serve(host, int(args[1]), args[2:])
    elif role == "loopback":
        # server thread and client(s) in this namespace; args: host, server options, client modes...
        server_opts = [o for o in args[1].split(",") if o]
        modes = list(args[2:])
        ready = threading.Event()
        t = threading.Thread(target=serve, args=(host, len(modes), server_opts, ready), daemon=True)
        t.start()
        ready.wait(TIMEOUT)
        for mode in modes:
            client(host, mode)
            time.sleep(0.05)
        t.join(TIMEOUT)
    elif role == "client":
        for mode in args[1:]:
            client(host, mode)


# ------------------------------------------------------------------------------------ the scenarios
def loopback(name: str, sysctls: Dict[str, str], server_opts: str, modes: Sequence[str]) -> Callable[[Path], None]:
    def record(out: Path) -> None:
        ns = add_ns(name.split("-", 1)[1], sysctls)
        with Recorder(ns, "lo", out):
            subprocess.run(inside(ns, "loopback", "127.0.0.1", server_opts, *modes), check=True, timeout=60)
    return record


def record_no_wscale(out: Path) -> None:
    cli = add_ns("ws-client", {"net.ipv4.tcp_window_scaling": "1"})
    srv = add_ns("ws-server", {"net.ipv4.tcp_window_scaling": "0"})
    veth_c, veth_s = f"hpc{os.getpid() % 100000}", f"hps{os.getpid() % 100000}"
    sh("ip", "link", "add", veth_c, "netns", cli, "type", "veth", "peer", "name", veth_s, "netns", srv)
    for ns, dev, addr in ((cli, veth_c, "198.18.176.1/30"), (srv, veth_s, "198.18.176.2/30")):
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", addr, "dev", dev)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
    server = subprocess.Popen(inside(srv, "serve", "198.18.176.2", "1"), stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("the server in the namespace did not start")
        with Recorder(cli, veth_c, out):
            subprocess.run(inside(cli, "client", "198.18.176.2", "plain"), check=True, timeout=60)
        server.wait(timeout=TIMEOUT)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


SCENARIOS: Dict[str, Callable[[Path], None]] = {
    "negotiation-no-wscale": record_no_wscale,
    "negotiation-tfo": loopback("negotiation-tfo", {"net.ipv4.tcp_fastopen": "3"}, "tfo", ["tfo", "tfo"]),
    "negotiation-ecn": loopback("negotiation-ecn", {"net.ipv4.tcp_ecn": "1"}, "", ["plain"]),
    "negotiation-mss-clamp": loopback("negotiation-mss-clamp", {}, "mss=1200", ["mss=1000"]),
}

ANY_INT = object()   # a shift count that depends on the namespace's buffer sizes (7 or more)

# What each recording must show (flow number -> in_effect / side fields), checked with the engine.
EXPECT: Dict[str, Dict[int, Dict[str, object]]] = {
    "negotiation-no-wscale": {1: {"in_effect.window_scaling": False, "client.window_scale": ANY_INT,
                                  "server.window_scale": None}},
    "negotiation-tfo": {1: {"client.tfo.cookie_request": True, "in_effect.tfo": False},
                        2: {"client.tfo.data": 6, "client.tfo.data_acked": True, "in_effect.tfo": True}},
    "negotiation-ecn": {1: {"in_effect.ecn": True}},
    "negotiation-mss-clamp": {1: {"client.mss": 1000, "server.mss": 1200, "in_effect.mss_to_server": 1200,
                                  "in_effect.mss_to_client": 1000}},
}


def check(name: str, out: Path) -> List[str]:
    sys.path.insert(0, str(ROOT))
    import handshake_probe
    records = list(handshake_probe.analyze(str(out), streaming=False))
    problems = []
    for number, fields in EXPECT[name].items():
        if len(records) < number:
            problems.append(f"no flow {number}")
            continue
        neg = records[number - 1]["negotiation"]
        if not records[number - 1]["handshake"]["complete"]:
            problems.append(f"flow {number}: handshake not complete")
        for path, want in fields.items():
            value: object = neg
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value != want and not (want is ANY_INT and isinstance(value, int)):
                problems.append(f"flow {number}: {path} = {value!r}, expected {want!r}")
    return problems


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("--inside", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inside:
        run_inside(args.inside[0], args.inside[1:])
        return 0
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    status = 0
    for name in args.only or SCENARIOS:
        out = CAPTURES / f"{name}.pcap"
        try:
            SCENARIOS[name](out)
        finally:
            delete_namespaces()
        problems = check(name, out)
        if problems:
            out.rename(out.with_suffix(".pcap.rejected"))
            print(f"{name}: REJECTED: {'; '.join(problems)}")
            status = 1
        else:
            print(f"{name}: ok ({out.relative_to(ROOT)})")
    return status


if __name__ == "__main__":
    sys.exit(main())
