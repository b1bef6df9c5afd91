#!/usr/bin/env python3
"""Record real kernel TCP traffic on loopback into captures/<name>.pcap, one file per scenario.

Every scenario runs kernel sockets against an in-process EchoServer (or, where the scenario
needs a behaviour EchoServer does not have, a purpose-made listener in this file) while
tcpdump records the loopback interface:

    tcpdump -i lo -s 0 -U --immediate-mode -Z root -w FILE 'tcp port P'

Two flags go beyond the plain `-s 0 -U -w` recipe, both learned the hard way on this kernel:
* --immediate-mode: libpcap's TPACKET_V3 ring hands packets to tcpdump only when a ring block
  fills or its 1 s timeout expires; a SIGINT sooner than that loses the whole block, even
  with -U (a 2-packet connect recorded with a 0.3 s wait came out empty).
* -Z root: tcpdump otherwise drops to the `tcpdump` user before opening the output file and
  cannot write into the root-owned captures/ directory.

Each capture is checked with scapy after it is written (the expected flag sequence, the
packet count tcpdump reported, no kernel drops); a capture that fails is renamed to
`<name>.pcap.rejected` and the script exits non-zero.

Only loopback addresses are used; nothing on the host is reconfigured.

Usage:
    python scripts/record_captures.py                 # every scenario
    python scripts/record_captures.py --only echo-half-close [--only ...]
"""

from __future__ import annotations

import argparse
import re
import os
import platform
import queue
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    # Run as `python scripts/record_captures.py` from a checkout: sys.path[0] is scripts/.
    sys.path.insert(0, str(ROOT))

from handshake_probe.echo.server import EchoLog, EchoServer  # noqa: E402

CAPTURES = ROOT / "captures"
V4 = "127.0.0.1"
V6 = "::1"
TIMEOUT = 10.0  # upper bound for any single blocking socket call in a scenario
SETTLE = 0.3  # after the last expected packet, before SIGINT: lets late ACKs land in the file


class CaptureError(RuntimeError):
    """A recording that does not show what its scenario is meant to show."""


# --------------------------------------------------------------------------- tcpdump


@dataclass
class TcpdumpStats:
    captured: int
    received: int
    dropped: int


class Tcpdump:
    """tcpdump on lo as a context manager: starts, waits until listening, stops with SIGINT."""

    def __init__(self, path: Path, bpf: str, buffer_kib: Optional[int] = None) -> None:
        self.path = path
        self.bpf = bpf
        self.buffer_kib = buffer_kib
        self.stats: Optional[TcpdumpStats] = None
        self._proc: Optional[subprocess.Popen[str]] = None
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._stderr: list[str] = []

    def command(self) -> list[str]:
        cmd = ["tcpdump", "-i", "lo", "-s", "0", "-U", "--immediate-mode"]
        if self.buffer_kib is not None:
            cmd += ["-B", str(self.buffer_kib)]  # a bigger ring for the 3000-connection burst
        if os.geteuid() == 0:
            cmd += ["-Z", "root"]
        return cmd + ["-w", str(self.path), self.bpf]

    def __enter__(self) -> "Tcpdump":
        if shutil.which("tcpdump") is None:
            raise SystemExit("tcpdump not found (apt-get install -y tcpdump)")
        return self._start("tcpdump", stdout=subprocess.DEVNULL)

    def _start(self, label: str, **popen: Any) -> "Tcpdump":
        """Start the recorder and return once it says "listening on"."""
        self.path.unlink(missing_ok=True)
        self._proc = subprocess.Popen(self.command(), stderr=subprocess.PIPE, text=True, **popen)
        # A reader thread, so waiting for "listening on" can time out instead of blocking
        # forever on a recorder that failed without printing it.
        threading.Thread(target=self._read_stderr, daemon=True).start()
        deadline = time.monotonic() + 10.0
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._kill()
                raise CaptureError(f"{label} did not start listening within 10 s")
            if line is None:
                self._proc.wait()
                raise CaptureError(f"{label} exited: {''.join(self._stderr).strip()}")
            if "listening on" in line:
                return self

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        if self._proc.poll() is None:
            time.sleep(SETTLE)
            self._proc.send_signal(signal.SIGINT)  # tcpdump flushes and closes the file
            try:
                self._proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                self._kill()
                raise CaptureError("tcpdump ignored SIGINT; killed")
        # Drain the reader so the final statistics lines are in self._stderr.
        while self._lines.get() is not None:
            pass
        self.stats = self._parse_stats("".join(self._stderr))

    @staticmethod
    def _parse_stats(text: str) -> TcpdumpStats:
        def number(suffix: str) -> int:
            for line in text.splitlines():
                if line.strip().endswith(suffix):
                    return int(line.split()[0])
            raise CaptureError(f"tcpdump printed no '{suffix}' line:\n{text}")
        return TcpdumpStats(number("packets captured"), number("packets received by filter"),
                            number("packets dropped by kernel"))


class OwnCapture(Tcpdump):
    """The project's own `handshake-probe capture`, driven exactly like tcpdump: started as a process,
    ready at its "listening on" line, stopped with SIGINT; its summary line gives the statistics."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "handshake_probe", "capture", "--quiet", "-i", "lo",
                "-w", str(self.path), self.bpf]

    def __enter__(self) -> "Tcpdump":
        return self._start("handshake-probe capture", stdout=subprocess.PIPE, cwd=ROOT)

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        time.sleep(SETTLE)
        self._proc.send_signal(signal.SIGINT)       # flushes the pcap, prints the table and summary
        out, _ = self._proc.communicate(timeout=30.0)
        while self._lines.get() is not None:
            pass
        summary = next((l for l in out.splitlines() if l.startswith("capture on lo:")), None)
        if self._proc.returncode != 0 or summary is None:
            raise CaptureError(f"handshake-probe capture failed ({self._proc.returncode}): "
                               f"{''.join(self._stderr).strip()}")
        numbers = {m.group(2): int(m.group(1)) for m in
                   re.finditer(r"(\d+) (frames captured|packets dropped|received by)", summary)}
        self.stats = TcpdumpStats(numbers["frames captured"], numbers["received by"],
                                  numbers["packets dropped"])


RECORDERS = {"own": OwnCapture, "tcpdump": Tcpdump}
Recorder: type[Tcpdump] = OwnCapture   # set by --recorder


# --------------------------------------------------------------------------- reading back


@dataclass(frozen=True)
class Pkt:
    """The fields of one recorded TCP segment that the checks look at."""

    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    flags: str  # tcpdump letters: S, S., ., P., F., R., R
    seq: int
    ack: int
    payload: bytes

    def came_from(self, port: int) -> bool:
        return self.sport == port


_LETTERS = ((0x02, "S"), (0x01, "F"), (0x08, "P"), (0x04, "R"), (0x20, "U"), (0x40, "E"),
            (0x80, "W"))


def tcpdump_letters(flags: int) -> str:
    text = "".join(letter for bit, letter in _LETTERS if flags & bit)
    return text + "." if flags & 0x10 else text or "none"


def read_capture(path: Path) -> list[Pkt]:
    # Imported here: scapy takes a second to import and --help should not pay for it.
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import PcapReader

    packets: list[Pkt] = []
    with PcapReader(str(path)) as reader:
        for frame in reader:
            ip = frame.getlayer(IP) or frame.getlayer(IPv6)
            tcp = frame.getlayer(TCP)
            if ip is None or tcp is None:
                raise CaptureError(f"{path.name}: a non-TCP frame slipped through the filter")
            packets.append(Pkt(float(frame.time), ip.src, tcp.sport, ip.dst, tcp.dport,
                               tcpdump_letters(int(tcp.flags)), tcp.seq, tcp.ack,
                               bytes(tcp.payload)))
    return packets


def ladder(packets: Sequence[Pkt], client_port: int) -> str:
    """`C:S S:S. C:. ...` — who sent what, compact enough to print for small captures."""
    parts = []
    for p in packets:
        who = "C" if p.sport == client_port else "S"
        parts.append(f"{who}:{p.flags}" + (f"[{len(p.payload)}]" if p.payload else ""))
    return " ".join(parts)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CaptureError(message)


def index_of(packets: Sequence[Pkt], predicate: Callable[[Pkt], bool], what: str) -> int:
    for i, p in enumerate(packets):
        if predicate(p):
            return i
    raise CaptureError(f"missing: {what}")


def check_handshake(packets: Sequence[Pkt], client_port: int) -> None:
    require(len(packets) >= 3, f"only {len(packets)} packets")
    first = [(p.came_from(client_port), p.flags) for p in packets[:3]]
    require(first == [(True, "S"), (False, "S."), (True, ".")],
            f"no three-way handshake at the start: {first}")
    syn, syn_ack, ack = packets[:3]
    require(syn_ack.ack == syn.seq + 1 and ack.ack == syn_ack.seq + 1 and ack.seq == syn.seq + 1,
            "handshake seq/ack arithmetic is off")


def check_echo_exchange(packets: Sequence[Pkt], client_port: int) -> tuple[int, int]:
    """Indexes of the client's b"python" segment and the server's b"PYTHON" reply."""
    request = index_of(packets, lambda p: p.came_from(client_port) and p.payload == b"python",
                       'the client\'s b"python"')
    reply = index_of(packets, lambda p: not p.came_from(client_port) and p.payload == b"PYTHON",
                     'the server\'s b"PYTHON"')
    require(request < reply, "the reply precedes the request")
    return request, reply


def fins(packets: Sequence[Pkt]) -> list[int]:
    return [i for i, p in enumerate(packets) if "F" in p.flags]


def check_orderly_close(packets: Sequence[Pkt], client_port: int, first_closer: str) -> None:
    """Both FINs present, the named side's first, each ACKed, no RST, nothing after the last ACK."""
    require(not any("R" in p.flags for p in packets), "unexpected RST")
    fin_idx = fins(packets)
    require(len(fin_idx) == 2, f"expected 2 FINs, saw {len(fin_idx)}")
    first, second = (packets[i] for i in fin_idx)
    first_is_client = first.came_from(client_port)
    require(first_is_client == (first_closer == "client"),
            f"the first FIN came from the {'client' if first_is_client else 'server'}, "
            f"not the {first_closer}")
    require(second.came_from(client_port) != first_is_client, "both FINs from one side")
    last = packets[-1]
    require(last.flags == "." and last.ack == second.seq + len(second.payload) + 1,
            "the capture does not end with the ACK of the second FIN")
    require(any(p.ack == first.seq + len(first.payload) + 1 and p.sport == first.dport
                for p in packets[fin_idx[0] + 1:]), "the first FIN is never ACKed")


# --------------------------------------------------------------------------- helpers


class LogSink(EchoLog):
    """EchoServer log lines, so a scenario can wait until the server saw the end; a timeout fails the
    recording (CaptureError) instead of the script."""

    def wait_for(self, match: Any, timeout: float = TIMEOUT) -> str:
        try:
            return super().wait_for(match, timeout)
        except TimeoutError as err:
            raise CaptureError(str(err)) from None


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise CaptureError(f"EOF after {len(data)} of {size} bytes")
        data += chunk
    return data


def free_port(host: str = V4) -> int:
    """A port with no socket on it right now (bound to port 0, then released)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class Recording:
    """What a scenario hands back for checking and printing."""

    client_port: int
    stats: Optional[TcpdumpStats]
    notes: str = ""


# --------------------------------------------------------------------------- scenarios


def echo_session(out: Path, host: str) -> Recording:
    log = LogSink()
    with EchoServer(host=host, log=log) as (_, port), \
            Recorder(out, f"tcp port {port}") as capture:
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            client_port = sock.getsockname()[1]
            sock.sendall(b"python")
            require(recv_exactly(sock, 6) == b"PYTHON", "wrong echo")
        # close() is the lesson's way: FIN first from the client.
        log.wait_for("closed by peer")
    return Recording(client_port, capture.stats)


def check_echo_session(packets: Sequence[Pkt], rec: Recording) -> None:
    check_handshake(packets, rec.client_port)
    check_echo_exchange(packets, rec.client_port)
    check_orderly_close(packets, rec.client_port, first_closer="client")


def record_client_close(out: Path) -> Recording:
    return echo_session(out, V4)


def record_ipv6(out: Path) -> Recording:
    return echo_session(out, V6)


def record_server_close(out: Path) -> Recording:
    log = LogSink()
    with EchoServer(idle_timeout=0.3, log=log) as (host, port), \
            Recorder(out, f"tcp port {port}") as capture:
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            client_port = sock.getsockname()[1]
            sock.sendall(b"python")
            require(recv_exactly(sock, 6) == b"PYTHON", "wrong echo")
            # Silence for idle_timeout: the server closes first; we read its FIN as EOF...
            require(sock.recv(1) == b"", "server did not close")
            log.wait_for("idle timeout")
        # ...and close our side afterwards (CLOSE-WAIT -> LAST-ACK).
    return Recording(client_port, capture.stats)


def check_server_close(packets: Sequence[Pkt], rec: Recording) -> None:
    check_handshake(packets, rec.client_port)
    check_echo_exchange(packets, rec.client_port)
    check_orderly_close(packets, rec.client_port, first_closer="server")


def record_half_close(out: Path) -> Recording:
    """A purpose-made server that replies only after reading EOF.

    EchoServer answers each chunk as it arrives, so its reply races the client's FIN (the
    client sends data and FIN back to back). Here the reply is caused by the EOF, and on lo
    the FIN is captured on the receive path before TCP delivers the EOF, so the capture
    order FIN -> reply holds by causality, not by timing. It is still checked below.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((V4, 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    served = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                received = b""
                while chunk := conn.recv(65536):  # until the client's FIN
                    received += chunk
                conn.sendall(received.upper())  # data in CLOSE-WAIT
            # leaving `with` closes: our FIN (CLOSE-WAIT -> LAST-ACK)
        except BaseException as err:  # re-raised in the main thread
            failure.append(err)
        finally:
            served.set()

    with listener, Recorder(out, f"tcp port {port}") as capture:
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with socket.create_connection((V4, port), timeout=TIMEOUT) as sock:
            client_port = sock.getsockname()[1]
            sock.sendall(b"python")
            sock.shutdown(socket.SHUT_WR)  # our FIN; we keep reading (FIN-WAIT-1/2)
            reply = b""
            while chunk := sock.recv(65536):  # until the server's FIN
                reply += chunk
            require(reply == b"PYTHON", f"wrong reply {reply!r}")
        served.wait(TIMEOUT)
        thread.join(TIMEOUT)
    if failure:
        raise failure[0]
    return Recording(client_port, capture.stats,
                     "server replies only after EOF (purpose-made server)")


def check_half_close(packets: Sequence[Pkt], rec: Recording) -> None:
    check_handshake(packets, rec.client_port)
    request, reply = check_echo_exchange(packets, rec.client_port)
    check_orderly_close(packets, rec.client_port, first_closer="client")
    client_fin, server_fin = fins(packets)
    require(request < client_fin < reply < server_fin,
            "order is not data -> client FIN -> server data -> server FIN "
            f"(indexes {request}, {client_fin}, {reply}, {server_fin})")


def record_rst_abort(out: Path) -> Recording:
    log = LogSink()
    with EchoServer(log=log) as (host, port), \
            Recorder(out, f"tcp port {port}") as capture:
        sock = socket.create_connection((host, port), timeout=TIMEOUT)
        client_port = sock.getsockname()[1]
        sock.sendall(b"python")
        require(recv_exactly(sock, 6) == b"PYTHON", "wrong echo")
        # SO_LINGER on with a 0 s timeout: close() aborts and the kernel sends RST, not FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        log.wait_for("reset by peer")
    return Recording(client_port, capture.stats)


def check_rst_abort(packets: Sequence[Pkt], rec: Recording) -> None:
    check_handshake(packets, rec.client_port)
    check_echo_exchange(packets, rec.client_port)
    require(not fins(packets), "a FIN in an aborted connection")
    last = packets[-1]
    require("R" in last.flags and last.came_from(rec.client_port),
            "the capture does not end with the client's RST")
    require(sum("R" in p.flags for p in packets) == 1, "more than one RST")


def record_closed_port(out: Path) -> Recording:
    port = free_port()
    with Recorder(out, f"tcp port {port}") as capture:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((V4, 0))
        client_port = sock.getsockname()[1]
        sock.settimeout(TIMEOUT)
        try:
            sock.connect((V4, port))
            raise CaptureError(f"port {port} has a listener")
        except ConnectionRefusedError:
            pass  # the RST/ACK we came for
        finally:
            sock.close()
    return Recording(client_port, capture.stats)


def check_closed_port(packets: Sequence[Pkt], rec: Recording) -> None:
    flags = [(p.came_from(rec.client_port), p.flags) for p in packets]
    require(flags == [(True, "S"), (False, "R.")], f"expected SYN, RST/ACK; got {flags}")
    syn, rst = packets
    # RFC 9293 §3.10.7.1: the reset for a segment without ACK has seq 0, ack SEG.SEQ+SEG.LEN.
    require(rst.seq == 0 and rst.ack == syn.seq + 1, "RST/ACK seq/ack arithmetic is off")


SYN_COUNT = 3  # TCP_SYNCNT for the dropped client


def record_syn_no_answer(out: Path) -> Recording:
    """A SYN the kernel drops because the listener's accept queue is full.

    listen(0) and never accept(): Linux admits a connection while the accept queue holds
    no more than the backlog (0), so one connection fills it and every later SYN is dropped
    (the LISTENOVERFLOWS counter), with no firewall and no sysctl. The fillers complete their
    handshakes before tcpdump starts, and the filter names only the dropped client's port.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((V4, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        # Fill empirically (the queue's exact capacity is a kernel detail): connect until
        # one connect does not complete. That probe's SYN was dropped; we abandon it before
        # its first retransmission (1 s), and closing a SYN-SENT socket sends nothing.
        for _ in range(64):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.settimeout(0.5)
            try:
                probe.connect((V4, port))
            except socket.timeout:
                probe.close()
                break
            fillers.append(probe)
        else:
            raise CaptureError("the accept queue never filled")

        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.bind((V4, 0))  # bound first: the filter needs our port before the SYN
        client_port = client.getsockname()[1]
        # The kernel gives up after TCP_SYNCNT retransmissions (plus, on kernels with
        # net.ipv4.tcp_syn_linear_timeouts, that many 1 s linear retries in front).
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, SYN_COUNT)
        client.settimeout(120.0)
        started = time.monotonic()
        with client, Recorder(out, f"tcp port {client_port}") as capture:
            try:
                client.connect((V4, port))
                raise CaptureError("the dropped client connected after all")
            except TimeoutError as err:
                if isinstance(err, socket.timeout) and err.errno is None:
                    raise CaptureError("our own 120 s timeout fired, not the kernel's") from err
            took = time.monotonic() - started
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    linear = read_sysctl("net/ipv4/tcp_syn_linear_timeouts")
    return Recording(client_port, capture.stats,
                     f"{len(fillers)} filler connection(s) in the accept queue; "
                     f"TCP_SYNCNT={SYN_COUNT}, tcp_syn_linear_timeouts={linear}; "
                     f"connect() failed with ETIMEDOUT after {took:.1f} s")


def read_sysctl(name: str) -> str:
    try:
        return (Path("/proc/sys") / name).read_text().strip()
    except OSError:
        return "absent"


def check_syn_no_answer(packets: Sequence[Pkt], rec: Recording) -> None:
    require(len(packets) >= 2, f"only {len(packets)} packets")
    require(all(p.came_from(rec.client_port) and p.flags == "S" for p in packets),
            "something other than the client's SYN (a SYN-ACK?) is in the capture")
    require(len({p.seq for p in packets}) == 1, "the retransmitted SYNs change ISN")
    gaps = [b.ts - a.ts for a, b in zip(packets, packets[1:])]
    # Backoff never shrinks the interval (20 ms slack for timer granularity).
    require(all(later >= earlier - 0.02 for earlier, later in zip(gaps, gaps[1:])),
            f"retransmission gaps shrink: {gaps}")
    rec.notes += "; gaps " + ", ".join(f"{g:.2f}" for g in gaps) + " s"


REUSE_CONNECTIONS = 3000
REUSE_PORTS = 4


def record_port_reuse(out: Path) -> Recording:
    """3000 sequential echo sessions from 4 fixed client ports: every 4-tuple repeats 750 times.

    The client closes first, so each client port is in TIME-WAIT when its turn comes again.
    With SO_REUSEADDR on every client socket, bind() succeeds, and because the socket is
    bound before connect() the kernel takes over the TIME-WAIT socket at once (tcp_twsk_unique
    with timestamps on), without waiting for net.ipv4.tcp_tw_reuse's 1 s delay.
    """
    ports = sorted({free_port() for _ in range(REUSE_PORTS * 4)})[:REUSE_PORTS]
    require(len(ports) == REUSE_PORTS, "could not find free client ports")
    log = LogSink()
    with EchoServer(log=log) as (host, port), \
            Recorder(out, f"tcp port {port}", buffer_kib=65536) as capture:
        retries = 0
        for i in range(REUSE_CONNECTIONS):
            while True:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.settimeout(TIMEOUT)
                sock.bind((V4, ports[i % REUSE_PORTS]))
                try:
                    sock.connect((host, port))
                    break
                except OSError as err:
                    # EADDRNOTAVAIL: the old connection on this port is not in TIME-WAIT
                    # yet; connect() failed before sending anything, so just try again.
                    sock.close()
                    if err.errno != 99 or retries > 1000:
                        raise
                    retries += 1
                    time.sleep(0.001)
            with sock:
                sock.sendall(b"python")
                require(recv_exactly(sock, 6) == b"PYTHON", "wrong echo")
                # Client FIN first; then wait for the server's FIN so the 4-tuple is in
                # TIME-WAIT (not FIN-WAIT-2) before it comes round again. On the wire this
                # is the same as a plain close().
                sock.shutdown(socket.SHUT_WR)
                require(sock.recv(1) == b"", "server did not close")
        deadline = time.monotonic() + TIMEOUT
        while sum("disconnect" in line for line in log.lines) < REUSE_CONNECTIONS:
            require(time.monotonic() < deadline, "server did not see every close")
            time.sleep(0.01)
    return Recording(ports[0], capture.stats,
                     f"client ports {ports}; {retries} connect retries "
                     "(EADDRNOTAVAIL, nothing sent)")


def check_port_reuse(packets: Sequence[Pkt], rec: Recording) -> None:
    syns = [p for p in packets if p.flags == "S"]
    require(len(syns) == REUSE_CONNECTIONS,
            f"expected exactly {REUSE_CONNECTIONS} SYNs without ACK, saw {len(syns)}")
    require(sum(p.flags == "S." for p in packets) == REUSE_CONNECTIONS, "SYN-ACK count is off")
    require(not any("R" in p.flags for p in packets), "unexpected RST")
    require(sum("F" in p.flags for p in packets) == 2 * REUSE_CONNECTIONS, "FIN count is off")
    tuples = {(p.src, p.sport, p.dst, p.dport) for p in syns}
    require(len(tuples) == REUSE_PORTS, f"{len(tuples)} distinct 4-tuples, not {REUSE_PORTS}")
    # What ISN does the kernel pick for a 4-tuple taken over from TIME-WAIT?
    last_fin_seq: dict[tuple[str, int, str, int], int] = {}
    deltas: set[int] = set()
    for p in packets:
        key = (p.src, p.sport, p.dst, p.dport)
        if p.flags == "S" and key in last_fin_seq:
            deltas.add((p.seq - (last_fin_seq[key] + 1)) % 2**32)
        if "F" in p.flags:
            last_fin_seq[key] = p.seq
    if len(deltas) == 1:
        rec.notes += f"; every reused SYN has ISN = previous FIN's seq + 1 + {deltas.pop()}"
    else:
        rec.notes += f"; {len(deltas)} distinct ISN offsets from the previous incarnation"


@dataclass(frozen=True)
class Scenario:
    name: str
    record: Callable[[Path], Recording]
    check: Callable[[Sequence[Pkt], Recording], None]
    print_ladder: bool = True


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("echo-client-close", record_client_close, check_echo_session),
    Scenario("echo-server-close", record_server_close, check_server_close),
    Scenario("echo-half-close", record_half_close, check_half_close),
    Scenario("echo-rst-abort", record_rst_abort, check_rst_abort),
    Scenario("closed-port", record_closed_port, check_closed_port),
    Scenario("syn-no-answer", record_syn_no_answer, check_syn_no_answer),
    Scenario("echo-ipv6", record_ipv6, check_echo_session),
    Scenario("echo-port-reuse-3000", record_port_reuse, check_port_reuse, print_ladder=False),
)
BY_NAME = {s.name: s for s in SCENARIOS}


def run(scenario: Scenario, out_dir: Path) -> None:
    out = out_dir / f"{scenario.name}.pcap"
    rejected = out.with_name(out.name + ".rejected")
    rejected.unlink(missing_ok=True)
    started = time.monotonic()
    try:
        rec = scenario.record(out)
        stats = rec.stats
        require(stats is not None, "tcpdump statistics missing")
        assert stats is not None
        require(stats.dropped == 0, f"tcpdump: {stats.dropped} packets dropped by kernel")
        packets = read_capture(out)
        require(len(packets) == stats.captured,
                f"file holds {len(packets)} packets, tcpdump reported {stats.captured}")
        scenario.check(packets, rec)
    except CaptureError:
        if out.exists():
            out.rename(rejected)
        raise
    took = time.monotonic() - started
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: "
          f"{len(packets)} packets, {out.stat().st_size} bytes, {took:.1f} s")
    if scenario.print_ladder:
        print(f"  {ladder(packets, rec.client_port)}")
    if rec.notes:
        print(f"  {rec.notes}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=list(BY_NAME), metavar="NAME",
                        help="record only this scenario (repeatable); one of: "
                        + ", ".join(BY_NAME))
    parser.add_argument("--recorder", choices=RECORDERS, default="own",
                        help="own: the project's `handshake-probe capture` (default); tcpdump")
    parser.add_argument("--out-dir", type=Path, default=CAPTURES,
                        help="where to write <name>.pcap (default: captures/)")
    args = parser.parse_args(argv)
    global Recorder
    Recorder = RECORDERS[args.recorder]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [BY_NAME[name] for name in args.only] if args.only else list(SCENARIOS)
    print(f"kernel {platform.release()}")
    failed = 0
    for scenario in chosen:
        try:
            run(scenario, args.out_dir)
        except CaptureError as err:
            failed += 1
            print(f"FAILED {scenario.name}: {err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
