"""Live capture and the `capture` command against the real kernel, through real raw sockets on lo.

No mocks: what is under test (the kernel running our BPF program, the two copies of every loopback
packet, the socket buffer, the signals) is the kernel's and the OS's. tcpdump, run alongside on the
same traffic, is the reference for "every segment, exactly once".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

from handshake_probe import _engine
from handshake_probe.prober.verdict import analyze as analyze_frames
from handshake_probe.echo.server import EchoServer
from handshake_probe.live.capture import (DEFAULT_SNAPLEN, BpfInsn, InterfaceError, LiveCapture, compile_bpf,
                                  has_capture_privilege)
from handshake_probe.files.pcapwriter import RawFrame
from tests.frames import decoded, read_frames, segments_of
from scripts.record_captures import Tcpdump

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0  # upper bound for any blocking call; loopback is fast
SETTLE = 0.2  # after the server saw the last close: the client's final ACK lands

needs_raw = pytest.mark.skipif(
    not has_capture_privilege(),
    reason="live capture needs CAP_NET_RAW (run as root, as CI does, or setcap cap_net_raw on python3)")
needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None,
                                   reason="tcpdump not installed (apt-get install tcpdump)")


# --------------------------------------------------------------------------- helpers


class CloseCounter:
    """EchoServer log sink that counts finished connections, so a test waits for the last close."""

    def __init__(self) -> None:
        self.closed = 0
        self._cond = threading.Condition()

    def __call__(self, line: str) -> None:
        if line.startswith("disconnect"):
            with self._cond:
                self.closed += 1
                self._cond.notify_all()

    def wait(self, n: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.closed >= n, TIMEOUT), \
                f"server saw {self.closed} of {n} closes"


def echo_once(address: Tuple[str, int]) -> None:
    """The lesson's client: connect, send b"python", read b"PYTHON", close (client FIN first)."""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(b"python")
        reply = b""
        while len(reply) < 6:
            chunk = sock.recv(6 - len(reply))
            assert chunk, "server closed early"
            reply += chunk
        assert reply == b"PYTHON"


def echo_many(address: Tuple[str, int], n: int, threads: int) -> None:
    """n echo connections from `threads` concurrent client threads."""
    errors: List[BaseException] = []

    def worker(k: int) -> None:
        try:
            for _ in range(k):
                echo_once(address)
        except BaseException as err:  # reported in the main thread
            errors.append(err)

    shares = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    workers = [threading.Thread(target=worker, args=(k,)) for k in shares]
    for w in workers:
        w.start()
    for w in workers:
        w.join(TIMEOUT * 3)
    assert not errors, errors


@contextmanager
def capturing(bpf: Optional[str],
              snaplen: int = DEFAULT_SNAPLEN) -> Iterator[Tuple[LiveCapture, List[RawFrame]]]:
    """LiveCapture read by a thread into a list; on exit, stop and wait for the queue to drain."""
    frames: List[RawFrame] = []
    stop = threading.Event()
    with LiveCapture(bpf=bpf, snaplen=snaplen) as cap:
        reader = threading.Thread(target=lambda: frames.extend(cap.frames(stop=stop)))
        reader.start()
        try:
            yield cap, frames
        finally:
            stop.set()
            reader.join(TIMEOUT)
            assert not reader.is_alive(), "frames() ignored its stop event"


def python_env() -> dict:
    """`python -m handshake_probe` from this checkout, installed or not."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class CaptureCommand:
    """`python -m handshake_probe capture ...` in a subprocess, its output read by threads."""

    def __init__(self, args: List[str], prefix: Optional[List[str]] = None) -> None:
        cmd = (prefix or []) + [sys.executable, "-m", "handshake_probe", "capture"] + args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=ROOT, env=python_env())
        self.out: List[str] = []
        self.err: List[str] = []
        self.listening = threading.Event()
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out)),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.err))]
        for r in self._readers:
            r.start()

    def _read(self, stream, lines: List[str]) -> None:
        for line in stream:
            lines.append(line)
            if "listening on" in line:
                self.listening.set()
        self.listening.set()  # EOF: whoever waits must not wait forever

    def wait_listening(self) -> None:
        assert self.listening.wait(TIMEOUT), "capture never printed 'listening on'"
        assert self.proc.poll() is None, f"capture exited early: {''.join(self.err)}"

    def finish(self, timeout: float = TIMEOUT + 5) -> Tuple[int, str, str]:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        for r in self._readers:
            r.join(TIMEOUT)
        return rc, "".join(self.out), "".join(self.err)


SUMMARY = re.compile(r"^capture on lo: (\d+) frames? captured, (\d+) TCP segments?, (\d+) flows?, "
                     r"(\d+) packets? dropped by the kernel", re.M)


def tcpdump_count(path: Path) -> int:
    """How many packets tcpdump itself reads from `path` (one line each with -q)."""
    done = subprocess.run(["tcpdump", "-nqr", str(path)], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    return len(done.stdout.splitlines())


def frames_on_disk(path: Path) -> int:
    """Whole records in a pcap still being written (-1 while it ends mid-record)."""
    try:
        return len(list(read_frames(str(path))))
    except _engine.CaptureError:
        return -1


def without_net_raw() -> Optional[List[str]]:
    """A command prefix that runs a program as root minus CAP_NET_RAW (from the bounding set)."""
    if shutil.which("setpriv"):
        return ["setpriv", "--bounding-set", "-net_raw", "--"]
    if shutil.which("capsh"):
        # capsh runs bash with the words after "--": the program and its arguments as $0 "$@".
        return ["capsh", "--drop=cap_net_raw", "--", "-c", 'exec "$0" "$@"']
    return None


# --------------------------------------------------------------------------- compile_bpf


def test_compile_bpf_rejects_a_bad_expression_with_libpcaps_message():
    with pytest.raises(ValueError, match="syntax error"):
        compile_bpf("tcp port")
    with pytest.raises(ValueError, match="illegal port number 99999"):
        compile_bpf("tcp port 99999")


@needs_tcpdump
def test_compile_bpf_is_what_tcpdump_compiles():
    done = subprocess.run(["tcpdump", "-ddd", "-y", "EN10MB", "tcp port 80"], capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    expected = [BpfInsn(*map(int, line.split())) for line in lines[1:int(lines[0]) + 1]]
    assert compile_bpf("tcp port 80") == expected


def test_compile_bpf_raw_ip_and_snaplen():
    # LINKTYPE_RAW (101) is DLT_RAW (12) to libpcap; the accept value is the snapshot length.
    program = compile_bpf("tcp", linktype=101, snaplen=96)
    assert program[0] == BpfInsn(0x30, 0, 0, 0)  # ldb [0]: the IP version nibble, no link header
    assert BpfInsn(0x06, 0, 0, 96) in program


# --------------------------------------------------------------------------- LiveCapture


def test_unknown_interface_is_refused_before_any_privilege_is_needed():
    with pytest.raises(InterfaceError, match="no such interface: nope0"):
        LiveCapture("nope0")


def down_interface() -> Optional[str]:
    """An interface of a type we capture on that is administratively down, if the host has one."""
    for entry in sorted(Path("/sys/class/net").glob("*")):
        try:
            flags = int((entry / "flags").read_text(), 16)
            kind = int((entry / "type").read_text())
        except (OSError, ValueError):
            continue
        if not flags & 0x1 and kind in (1, 772, 0xFFFE):  # IFF_UP clear; Ethernet, loopback, TUN
            return entry.name
    return None


@needs_raw
def test_an_interface_that_is_down_is_refused():
    iface = down_interface()
    if iface is None:
        pytest.skip("no interface is down on this host (the test creates none: the host is left as is)")
    with pytest.raises(InterfaceError, match=f"interface {iface} is down"):
        LiveCapture(iface)


def test_bad_filter_is_refused_before_the_socket_opens():
    # No privilege needed to learn of a typo: the filter is compiled before the socket opens.
    with pytest.raises(ValueError, match="syntax error"):
        LiveCapture(bpf="tcp port")


@needs_raw
@needs_tcpdump
def test_every_segment_exactly_once_and_nothing_lost(tmp_path: Path):
    n, threads = 300, 4
    closes = CloseCounter()
    started = time.time()
    with EchoServer(log=closes, backlog=64) as address:
        port = address[1]
        # -B 64 MiB: with its default 2 MiB ring, tcpdump itself drops packets of this burst on lo
        # (immediate mode sizes each ring slot for lo's 64 KiB MTU, so 2 MiB is ~30 packets).
        with Tcpdump(tmp_path / "tcpdump.pcap", f"tcp port {port}", buffer_kib=65536) as dump:
            with capturing(f"tcp port {port}") as (cap, frames):
                assert cap.linktype == 1 and cap.kernel_drops_outgoing
                echo_many(address, n, threads)
                closes.wait(n)
                time.sleep(SETTLE)
        received, dropped = cap.stats()
    ended = time.time()
    reference = list(read_frames(str(tmp_path / "tcpdump.pcap")))
    assert dump.stats is not None and dump.stats.dropped == 0

    # Nothing lost, nothing twice: the kernel's count, ours and tcpdump's agree, frame for frame.
    assert dropped == 0
    assert received == len(frames) == dump.stats.captured == len(reference)
    assert Counter(f.data for f in frames) == Counter(f.data for f in reference)
    assert len({f.data for f in frames}) == len(frames), "a frame was delivered twice"
    assert [f.frame for f in frames] == list(range(1, len(frames) + 1))
    assert all(f.offset == 0 and f.linktype == 1 and f.wirelen == len(f.data) for f in frames)
    # Kernel receive stamps: inside the test's wall-clock window, and never a jump back in time
    # (an unstamped packet would be dated when it was read, later than the ones after it).
    assert all(started <= f.ts <= ended for f in frames)
    assert all(b.ts - a.ts > -0.005 for a, b in zip(frames, frames[1:]))

    analysis = analyze_frames(frames, "lo")
    assert analysis.segments == len(frames) and analysis.frames == len(frames)
    flows = analysis.records
    assert len(flows) == n
    for flow in flows:
        assert flow["handshake"]["complete"], flow["flow"]
        assert flow["close"] == "fin", flow["flow"]
        assert flow["violation_count"] == 0, flow["flow"]
        assert (flow["client_bytes"], flow["server_bytes"]) == (6, 6)
    # Per connection: SYN, SYN-ACK, ACK, "python", its ACK, "PYTHON", its ACK, FIN, FIN, last ACK.
    assert Counter(f["packets"] for f in flows) == {10: n}
    assert len(frames) == 10 * n


@needs_raw
def test_the_filter_runs_in_the_kernel():
    with EchoServer() as busy, EchoServer() as quiet:
        with capturing(f"tcp port {quiet[1]}") as (quiet_cap, quiet_frames), \
                capturing(f"tcp port {busy[1]}") as (busy_cap, busy_frames):
            for _ in range(5):
                echo_once(busy)
            time.sleep(SETTLE)
    # The busy port's traffic reached the kernel's packet taps...
    assert len(busy_frames) == 50 and busy_cap.stats() == (50, 0)
    # ...and the quiet port's program rejected all of it in the kernel: PACKET_STATISTICS counts
    # every packet the filter passes (queued or dropped), and it counted none.
    assert quiet_frames == [] and quiet_cap.stats() == (0, 0)


@needs_raw
def test_without_a_filter_loopback_packets_still_come_once():
    with EchoServer() as address:
        with capturing(None) as (cap, frames):
            echo_once(address)
            time.sleep(SETTLE)
    port = address[1]
    # Everything on lo is here (other programs' UDP, ICMP, ...): keep our connection's segments.
    segs = (decoded(f) for f in frames)
    ours = [s for s in segs if s is not None and port in (s.sport, s.dport)]
    assert len(ours) == 10  # other traffic on lo may be there too; ours is there exactly once
    assert len({(s.src, s.sport, s.seq, s.ack, s.flags, s.payload_len) for s in ours}) == 10


@needs_raw
def test_snaplen_cuts_in_the_kernel_and_the_wire_length_survives():
    with EchoServer() as address:
        with capturing(f"tcp port {address[1]}", snaplen=60) as (cap, frames):
            echo_once(address)
            time.sleep(SETTLE)
    assert len(frames) == 10
    assert max(len(f.data) for f in frames) == 60
    syn = frames[0]
    assert syn.wirelen > 60  # 14 + 20 + 40 (SYN options): from PACKET_AUXDATA's tp_len
    data = [s for s in segments_of(frames) if s.payload_len]
    assert [s.payload_len for s in data] == [6, 6]  # from the IP length, not the cut bytes


@needs_raw
def test_frames_stops_on_count_duration_and_event():
    with EchoServer() as address, LiveCapture(bpf=f"tcp port {address[1]}") as cap:
        echo_once(address)
        time.sleep(SETTLE)
        first = list(cap.frames(count=3))
        assert [f.frame for f in first] == [1, 2, 3]
        rest = list(cap.frames(count=100, duration=0.5))  # the other 7, then idle until 0.5 s
        assert [f.frame for f in rest] == list(range(4, 11))

        t0 = time.monotonic()
        assert list(cap.frames(duration=0.3)) == []
        assert 0.3 <= time.monotonic() - t0 < 0.8

        stop = threading.Event()
        threading.Timer(0.1, stop.set).start()
        t0 = time.monotonic()
        assert list(cap.frames(stop=stop)) == []
        assert time.monotonic() - t0 < 0.1 + 0.2 + 0.3  # noticed within one poll interval
        assert cap.stats() == (10, 0)


# --------------------------------------------------------------------------- the command


@needs_raw
@needs_tcpdump
def test_capture_command_end_to_end(tmp_path: Path):
    out_pcap = tmp_path / "out.pcap"
    with EchoServer() as address:
        port = address[1]
        cmd = CaptureCommand(["-i", "lo", "-w", str(out_pcap), "--duration", "3", f"tcp port {port}"])
        cmd.wait_listening()
        for _ in range(3):
            echo_once(address)
        rc, out, err = cmd.finish()
    assert rc == 0, err
    server = f"127.0.0.1:{port}"
    line = re.compile(r"^\d\d:\d\d:\d\d\.\d{6}  flow 1  127\.0\.0\.1:\d+ -> " + re.escape(server)
                      + r"  client  CLOSED -> SYN-SENT  \(snd SYN\)$", re.M)
    assert line.search(out), out
    for state in ("SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT",
                  "CLOSE-WAIT", "LAST-ACK", "CLOSED"):
        assert f"-> {state}  (" in out, state
    assert "flow 3" in out
    summary = SUMMARY.search(out)
    assert summary, out
    frames, segments, flows, dropped = map(int, summary.groups())
    assert (frames, segments, flows, dropped) == (30, 30, 3, 0)
    assert "FIN both ways" in out  # the final flow table

    analyzed = subprocess.run([sys.executable, "-m", "handshake_probe", "analyze", str(out_pcap)],
                              capture_output=True, text=True, cwd=ROOT, env=python_env(), timeout=TIMEOUT)
    assert analyzed.returncode == 0, analyzed.stderr
    assert f"{out_pcap}: 30 frames, 30 TCP segments, 3 flows" in analyzed.stdout
    assert tcpdump_count(out_pcap) == 30
    if shutil.which("tshark"):
        done = subprocess.run(["tshark", "-r", str(out_pcap), "-T", "fields", "-e", "frame.number"],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert len(done.stdout.split()) == 30


@needs_raw
@needs_tcpdump
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_the_capture_cleanly(tmp_path: Path, signum: int):
    out_pcap = tmp_path / "out.pcap"
    with EchoServer() as address:
        cmd = CaptureCommand(["-w", str(out_pcap), "--quiet", f"tcp port {address[1]}"])
        cmd.wait_listening()
        for _ in range(2):
            echo_once(address)
        # The capture flushes when it goes idle: the file is complete while it still runs.
        deadline = time.monotonic() + TIMEOUT
        while frames_on_disk(out_pcap) < 20:
            assert time.monotonic() < deadline, "frames never reached the file"
            time.sleep(0.05)
        cmd.proc.send_signal(signum)
        rc, out, err = cmd.finish()
    assert rc == 0, err
    assert "Traceback" not in err
    summary = SUMMARY.search(out)
    assert summary and summary.group(1) == "20" and summary.group(4) == "0", out
    assert "TIME-WAIT" in out and "(snd SYN)" not in out  # the table, no live lines (--quiet)
    assert len(list(read_frames(str(out_pcap)))) == 20
    assert tcpdump_count(out_pcap) == 20


def test_bad_filter_exits_2_with_libpcaps_message():
    rc, out, err = CaptureCommand(["-i", "lo", "tcp", "port"]).finish()
    assert rc == 2
    assert err.count("\n") == 1 and "syntax error" in err and "'tcp port'" in err, err
    assert out == ""


def test_unknown_interface_exits_2():
    rc, out, err = CaptureCommand(["-i", "nope0"]).finish()
    assert rc == 2
    assert err == "handshake-probe: error: no such interface: nope0\n"


def test_a_bad_p0f_database_exits_2_before_capturing(tmp_path: Path):
    bad = tmp_path / "p0f.fp"
    bad.write_text("[tcp:request]\nlabel = s:unix:Linux:3.x\nsig = not a signature\n")
    rc, out, err = CaptureCommand(["-i", "lo", "--p0f-db", str(bad)]).finish()
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith(f"handshake-probe: error: {bad}: not a p0f database"), err
    assert out == ""


P0F_DB = Path("/etc/p0f/p0f.fp")


@needs_raw
@pytest.mark.skipif(not P0F_DB.exists(), reason="p0f's database /etc/p0f/p0f.fp not installed (apt-get install p0f)")
def test_capture_labels_both_sides_as_analyze_does(tmp_path: Path):
    out_pcap = tmp_path / "out.pcap"
    with EchoServer() as address:
        cmd = CaptureCommand(["-q", "--format", "jsonl", "--p0f-db", str(P0F_DB), "-w", str(out_pcap),
                              "--duration", "2", f"tcp port {address[1]}"])
        cmd.wait_listening()
        for _ in range(2):
            echo_once(address)
        rc, out, err = cmd.finish()
    assert rc == 0, err
    live = {r["flow"]: r["negotiation"] for r in map(json.loads, out.splitlines())}
    analyzed = subprocess.run([sys.executable, "-m", "handshake_probe", "analyze", "--format", "jsonl",
                               "--p0f-db", str(P0F_DB), str(out_pcap)],
                              capture_output=True, text=True, cwd=ROOT, env=python_env(), timeout=TIMEOUT)
    assert analyzed.returncode == 0, analyzed.stderr
    offline = {r["flow"]: r["negotiation"] for r in map(json.loads, analyzed.stdout.splitlines())}
    assert sorted(live) == [1, 2] and live == offline
    # A label from the database (p0f's `???` when nothing matches, never null as without --p0f-db).
    assert all(n[side]["os"] is not None for n in live.values() for side in ("client", "server"))


def test_missing_privilege_exits_77_naming_the_capability():
    prefix: Optional[List[str]] = []  # already without the capability: run as we are
    if has_capture_privilege():
        # Root minus CAP_NET_RAW: what a user without the capability sees, files still readable.
        prefix = without_net_raw()
        if prefix is None:
            pytest.skip("neither setpriv nor capsh is installed to drop CAP_NET_RAW "
                        "(apt-get install util-linux)")
    rc, out, err = CaptureCommand(["-i", "lo", "--duration", "1"], prefix=prefix).finish()
    assert rc == 77, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "CAP_NET_RAW" in err and "setcap cap_net_raw" in err and "root" in err


# --------------------------------------------------------------------------- whole records on disk


def _record_ends(data: bytes) -> List[int]:
    """Offsets where each record of a classic pcap ends (the file's own headers say where)."""
    ends, at = [], 24
    while at + 16 <= len(data):
        caplen = int.from_bytes(data[at + 8:at + 12], "little")
        at += 16 + caplen
        ends.append(at)
    return ends


def test_the_writer_puts_whole_records_only_on_disk(tmp_path: Path):
    """Whatever moment the writer dies at, the file on disk ends on a record boundary: it writes whole
    records (a file object's 8 KiB buffer would write whenever it fills, cutting a record)."""
    from handshake_probe.files.pcapwriter import PcapWriter
    path = tmp_path / "w.pcap"
    sizes = []
    with PcapWriter(str(path), 1) as w:
        for i in range(300):
            w.write(1_700_000_000 + i, bytes([i % 251]) * (60 + 37 * (i % 29)))
            sizes.append(path.stat().st_size)
    data = path.read_bytes()
    boundaries = {24, *_record_ends(data)}
    assert data[:4] == bytes.fromhex("d4c3b2a1") and len(_record_ends(data)) == 300
    assert [s for s in sizes if s not in boundaries] == []
    assert len(set(sizes)) >= 3                          # it did write while running, not only at close


@needs_raw
@pytest.mark.parametrize("run", range(3))
def test_sigkill_under_load_leaves_a_file_every_reader_reads_to_the_end(tmp_path: Path, run: int):
    """`capture -w` killed with SIGKILL while echo clients keep the loopback busy: the file ends on a
    record boundary, and our reader, tcpdump and tshark (where installed) read every record in it
    without an error (a cut last record made tshark call the file damaged)."""
    out_pcap = tmp_path / "killed.pcap"
    with EchoServer(log=lambda line: None) as address:
        cmd = CaptureCommand(["-w", str(out_pcap), "--quiet", f"tcp port {address[1]}"])
        cmd.wait_listening()
        stop = threading.Event()

        def load() -> None:
            payload = b"x" * 1400                      # records of ~1.5 kB: many cross an 8 KiB line
            while not stop.is_set():
                with socket.create_connection(address, timeout=TIMEOUT) as sock:
                    for _ in range(20):
                        sock.sendall(payload)
                        got = 0
                        while got < len(payload):
                            got += len(sock.recv(65536))
        workers = [threading.Thread(target=load) for _ in range(3)]
        for w in workers:
            w.start()
        try:
            time.sleep(0.7 + 0.3 * run)                # killed at a different moment each run
            cmd.proc.send_signal(signal.SIGKILL)
            cmd.finish()
        finally:
            stop.set()
            for w in workers:
                w.join(TIMEOUT)
    data = out_pcap.read_bytes()
    ends = _record_ends(data)
    assert ends and ends[-1] == len(data), f"the file ends {len(data) - (ends[-2] if len(ends) > 1 else 24)} " \
                                           f"bytes into a record it does not hold whole"
    assert len(list(read_frames(str(out_pcap)))) == len(ends)
    if shutil.which("tcpdump"):
        assert tcpdump_count(out_pcap) == len(ends)
    if shutil.which("tshark"):
        done = subprocess.run(["tshark", "-r", str(out_pcap), "-T", "fields", "-e", "frame.number"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "cut short" not in done.stderr, done.stderr
        assert len(done.stdout.split()) == len(ends)
