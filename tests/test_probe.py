"""`handshake-probe probe` against the real kernel, through a real TUN device and real raw sockets.

The kernel is the oracle twice over: its answers are the segments under test, and its own socket table
is set beside the analyzer's state for the same moment: during a scenario through sock_diag (fast enough
to read between the kernel's FIN and our answer) with /proc/net/tcp read beside it, after it with `ss`.
The three are checked against each other on real sockets. Expectations are written out here,
independently of scenarios.py.

Live tests need root (CAP_NET_ADMIN for the TUN device and firewall rules, CAP_NET_RAW for raw
sockets); they skip without it. The privilege and argument tests run anywhere.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import pytest

from handshake_probe.analysis import analyze_file, analyze_frames
from handshake_probe.core.decode import decode
from handshake_probe.core.flows import FlowTable
from handshake_probe.core.record import flow_record
from handshake_probe.core.segment import Flags, Segment, tcpdump_flags
from handshake_probe.prober.engine import ProbeOptions, run_probe
from handshake_probe.prober.kernel import diag_state, proc_state
from handshake_probe.prober.scenarios import SCENARIOS
from handshake_probe.prober.verdict import Outcome

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="live probe tests need root: CAP_NET_ADMIN (TUN device, "
                                                    "firewall rules) and CAP_NET_RAW (raw sockets)")
needs_tun = pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="no /dev/net/tun (modprobe tun)")
needs_iptables = pytest.mark.skipif(shutil.which("iptables") is None, reason="iptables not installed")
needs_nft = pytest.mark.skipif(shutil.which("nft") is None, reason="nftables not installed")

MOD = 1 << 32
WRAP_ISN = 0xFFFFFFFA          # our data crosses 2**32: every seq/ack check must be modular
ALL = list(SCENARIOS)


def _linear() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_syn_linear_timeouts").read_text())
    except (OSError, ValueError):
        return 0


# Exact ladders: ">" the prober sent, "<" the kernel sent. Where two are listed, the second is the
# same exchange when the kernel's delayed-ACK timer fires before the echo server's close() runs.
LADDERS: Dict[str, Sequence[str]] = {
    "handshake": [">S <S. >. >R."],
    "echo": [">S <S. >. >P. <. <P. >. >F. <F. >.", ">S <S. >. >P. <. <P. >. >F. <. <F. >."],
    "client-close": [">S <S. >. >F. <F. >.", ">S <S. >. >F. <. <F. >."],
    "server-close": [">S <S. >. <F. >. >F. <."],
    "half-close": [">S <S. >. >FP. <. <P. >. <F. >."],
    "rst-abort": [">S <S. >. >P. <. <P. >R."],
    "closed-port": [">S <R."],
    # the kernel's own SYN, retried up to the first doubled wait (see test_no_answer_backoff)
    "no-answer": [" ".join(["<S"] * (1 + _linear() + 2))],
    "simultaneous-close": [">S <S. >. <F. >F. <. >."],
    "simultaneous-open": ["<S >S <S. >S. <. >R."],
}

_ACTIVE = ["CLOSED", "SYN-SENT", "ESTABLISHED"]
_PASSIVE = ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"]
# The analyzer's paths (client, server) and close kind.
PATHS: Dict[str, Tuple[List[str], List[str], str]] = {
    "handshake": (_ACTIVE + ["CLOSED"], _PASSIVE + ["CLOSED"], "client-rst"),
    "echo": (_ACTIVE + ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"], _PASSIVE + ["CLOSE-WAIT", "LAST-ACK", "CLOSED"], "fin"),
    "client-close": (_ACTIVE + ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"],
                     _PASSIVE + ["CLOSE-WAIT", "LAST-ACK", "CLOSED"], "fin"),
    "server-close": (_ACTIVE + ["CLOSE-WAIT", "LAST-ACK", "CLOSED"],
                     _PASSIVE + ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"], "fin"),
    "half-close": (_ACTIVE + ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"],
                   _PASSIVE + ["CLOSE-WAIT", "LAST-ACK", "CLOSED"], "fin"),
    "rst-abort": (_ACTIVE + ["CLOSED"], _PASSIVE + ["CLOSED"], "client-rst"),
    "closed-port": (["CLOSED", "SYN-SENT", "CLOSED"], ["CLOSED"], "rejected"),
    "no-answer": (["CLOSED", "SYN-SENT"], ["UNKNOWN"], "none"),
    "simultaneous-close": (_ACTIVE + ["FIN-WAIT-1", "CLOSING", "TIME-WAIT"],
                           _PASSIVE + ["FIN-WAIT-1", "CLOSING", "TIME-WAIT"], "fin"),
    "simultaneous-open": (["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "CLOSED"],
                          ["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "CLOSED"], "server-rst"),
}

# What the kernel must say (via ss) at each checkpoint, in order; the kernel is the server except in
# no-answer and simultaneous-open, where a kernel socket connect()s to the prober.
KERNEL: Dict[str, List[str]] = {
    "handshake": ["SYN-RECEIVED", "ESTABLISHED", "CLOSED"],
    "echo": ["SYN-RECEIVED", "ESTABLISHED", "ESTABLISHED", "LAST-ACK", "CLOSED"],
    "client-close": ["SYN-RECEIVED", "ESTABLISHED", "LAST-ACK", "CLOSED"],
    "server-close": ["SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"],
    "half-close": ["SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "CLOSE-WAIT", "LAST-ACK", "CLOSED"],
    "rst-abort": ["SYN-RECEIVED", "ESTABLISHED", "CLOSED"],
    "closed-port": ["CLOSED"],
    "no-answer": ["SYN-SENT", "CLOSED"],
    "simultaneous-close": ["SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "CLOSING", "TIME-WAIT"],
    "simultaneous-open": ["SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "CLOSED"],
}
# What the kernel still holds for the 4-tuple once the run is over (TIME-WAIT lasts 60 s on Linux).
AFTER: Dict[str, str] = {"handshake": "CLOSED", "echo": "CLOSED", "client-close": "CLOSED",
                         "server-close": "TIME-WAIT", "half-close": "CLOSED", "rst-abort": "CLOSED",
                         "closed-port": "CLOSED", "no-answer": "CLOSED", "simultaneous-close": "TIME-WAIT",
                         "simultaneous-open": "CLOSED"}

_SS_NAMES = {"ESTAB": "ESTABLISHED", "SYN-RECV": "SYN-RECEIVED", "UNCONN": "CLOSED"}


def ss_state(local: Tuple[str, int], remote: Tuple[str, int]) -> str:
    """The kernel's state for one 4-tuple as `ss` reports it (falls back to /proc/net/tcp)."""
    if shutil.which("ss") is None:
        return proc_state(local, remote)
    out = subprocess.run(["ss", "-tanH", "state", "all", "src", f"{local[0]}:{local[1]}",
                          "dst", f"{remote[0]}:{remote[1]}"], capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    if not lines:
        return "CLOSED"
    state = lines[0].split()[0]
    return _SS_NAMES.get(state, state)


def segments(out: Outcome) -> List[Segment]:
    segs = [decode(f.data, f.linktype, f.ts, f.frame, f.wirelen) for f in out.frames]
    assert all(isinstance(s, Segment) for s in segs)
    return segs  # type: ignore[return-value]


def prober_end(out: Outcome) -> Tuple[str, int]:
    """The prober's (address, port): the sender of the first SYN when it is the client."""
    segs = segments(out)
    first = segs[0]
    if out.scenario.kernel_role == "client":
        return first.dst, first.dport
    return first.src, first.sport


def ladder(out: Outcome) -> str:
    me = prober_end(out)
    return " ".join((">" if (s.src, s.sport) == me else "<") + tcpdump_flags(s.flags) for s in segments(out))


def kernel_end(out: Outcome) -> Tuple[Tuple[str, int], Tuple[str, int]]:
    me = prober_end(out)
    s = segments(out)[0]
    other = (s.dst, s.dport) if (s.src, s.sport) == me else (s.src, s.sport)
    return other, me


# ------------------------------------------------------------------------------- the oracles
class TwoOracles:
    """The prober's sock_diag lookup answers (it is fast: the kernel's FIN retransmit timer, 200 ms, runs
    while a checkpoint is taken); /proc/net/tcp, a second kernel interface, is read beside it each time."""

    def __init__(self) -> None:
        self.readings: List[Tuple[Tuple[str, int], Tuple[str, int], str, str]] = []

    def __call__(self, local: Tuple[str, int], remote: Tuple[str, int]) -> str:
        state = diag_state(local, remote)
        self.readings.append((local, remote, state, proc_state(local, remote)))
        return state


@needs_root
def test_oracles_agree_with_ss() -> None:
    """ss, /proc/net/tcp and the prober's sock_diag lookup agree on real sockets in several states."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server_end = listener.getsockname()
    client = socket.create_connection(server_end)
    accepted, _ = listener.accept()
    client_end = client.getsockname()

    def all_three(local: Tuple[str, int], remote: Tuple[str, int], want: str) -> None:
        assert _wait_for(lambda: diag_state(local, remote) == want, 2.0), (local, remote, want)
        assert (ss_state(local, remote), proc_state(local, remote)) == (want, want)
    try:
        all_three(server_end, client_end, "ESTABLISHED")
        client.shutdown(socket.SHUT_WR)                      # our FIN: half-closed
        all_three(server_end, client_end, "CLOSE-WAIT")
        all_three(client_end, server_end, "FIN-WAIT-2")
        accepted.close()
        all_three(server_end, client_end, "CLOSED")          # the listener on that port is not this 4-tuple
        all_three(client_end, server_end, "TIME-WAIT")
    finally:
        for s in (client, accepted, listener):
            s.close()


# ------------------------------------------------------------------------------- the tun run
@pytest.fixture(scope="module")
def tun_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Dict[str, Outcome], Path, List[str], TwoOracles]]:
    """Every scenario once, through the TUN guard, with an ISN that wraps, both oracles watching."""
    if not IS_ROOT or not os.path.exists("/dev/net/tun"):
        pytest.skip("needs root and /dev/net/tun")
    pcap = tmp_path_factory.mktemp("probe") / "probes.pcap"
    lines: List[str] = []
    seen_devices: List[str] = []
    oracle = TwoOracles()

    def during(out: Outcome) -> None:
        seen_devices.extend(re.findall(r"hprobe\d+", _links()))

    started = time.monotonic()
    outcomes = run_probe(ProbeOptions(ALL, write=str(pcap), isn=WRAP_ISN), emit=lines.append,
                         oracle=oracle, on_outcome=during)
    lines.append(f"took {time.monotonic() - started:.1f} s")
    device = re.search(r"TUN device (hprobe\d+)", "\n".join(lines))
    assert device is not None and device.group(1) in seen_devices
    yield {o.scenario.name: o for o in outcomes}, pcap, lines, oracle


@needs_root
@needs_tun
def test_proc_net_tcp_agreed_at_every_checkpoint(tun_run) -> None:
    readings = tun_run[3].readings
    assert readings and all(diag == proc for _, _, diag, proc in readings), [
        r for r in readings if r[2] != r[3]]


@needs_root
@needs_tun
@pytest.mark.parametrize("name", ALL)
def test_scenario_passes(tun_run, name: str) -> None:
    out = tun_run[0][name]
    assert out.ok, out.problems


@needs_root
@needs_tun
@pytest.mark.parametrize("name", ALL)
def test_exact_flag_sequence(tun_run, name: str) -> None:
    assert ladder(tun_run[0][name]) in LADDERS[name]


@needs_root
@needs_tun
@pytest.mark.parametrize("name", ALL)
def test_both_endpoint_paths_from_the_analyzer(tun_run, name: str) -> None:
    out = tun_run[0][name]
    table = FlowTable()
    analyze_frames(iter(out.frames), name, table)
    assert len(table.flows) == 1
    rec = flow_record(table.flows[0])
    client, server, close = PATHS[name]
    assert (rec["client_states"], rec["server_states"], rec["close"]) == (client, server, close)


@needs_root
@needs_tun
@pytest.mark.parametrize("name", ALL)
def test_every_ack_acknowledges_everything_sent(tun_run, name: str) -> None:
    """seq/ack arithmetic, modulo 2**32: each ACK covers exactly what its peer had sent so far
    (SYN and FIN count one, data its length: RFC 9293 §3.4), except the deliberately crossing FIN."""
    out = tun_run[0][name]
    nxt: Dict[Tuple[str, int], int] = {}
    for s in segments(out):
        me, peer = (s.src, s.sport), (s.dst, s.dport)
        crossing = name == "simultaneous-close" and s.flags & Flags.FIN and me == prober_end(out)
        if s.flags & Flags.ACK and not crossing:
            assert s.ack == nxt[peer], f"frame {s.frame}: ack {s.ack}, peer sent up to {nxt[peer]}"
        if not s.flags & Flags.RST:
            nxt[me] = (s.seq + s.seq_len) % MOD


@needs_root
@needs_tun
@pytest.mark.parametrize("name", [n for n in ALL if SCENARIOS[n].kernel_role == "server"
                                  and n != "closed-port"])
def test_handshake_arithmetic(tun_run, name: str) -> None:
    syn, synack, ack = segments(tun_run[0][name])[:3]
    assert (syn.flags, syn.seq) == (Flags.SYN, WRAP_ISN)
    assert synack.flags == Flags.SYN | Flags.ACK and synack.ack == (WRAP_ISN + 1) % MOD   # x+1
    assert ack.flags == Flags.ACK and (ack.seq, ack.ack) == ((WRAP_ISN + 1) % MOD, (synack.seq + 1) % MOD)  # y+1


@needs_root
@needs_tun
def test_echo_data_acked_by_its_length(tun_run) -> None:
    out = tun_run[0]["echo"]
    segs = segments(out)                                  # parallel to out.frames
    i = next(k for k, s in enumerate(segs) if s.payload_len)
    j = next(k for k, s in enumerate(segs) if s.payload_len and k != i)
    ours, theirs = segs[i], segs[j]
    assert ours.payload_len == theirs.payload_len == len("python")
    assert ours.seq == (WRAP_ISN + 1) % MOD and (ours.seq + 6) % MOD == 1          # wrapped past 2**32
    assert segs[i + 1].ack == theirs.ack == (ours.seq + 6) % MOD                   # acked by its length
    assert segs[j + 1].ack == (theirs.seq + 6) % MOD
    assert out.frames[i].data.endswith(b"python") and out.frames[j].data.endswith(b"PYTHON")


@needs_root
@needs_tun
@pytest.mark.parametrize("name", ALL)
def test_kernel_oracle_agrees_during(tun_run, name: str) -> None:
    """At each checkpoint the kernel gave its state (sock_diag, with /proc/net/tcp agreeing); the analyzer,
    fed the frames up to that moment, must say the same for the kernel's endpoint (where a segment can show it)."""
    out = tun_run[0][name]
    assert [cp.kernel for cp in out.checkpoints] == KERNEL[name]
    for cp in out.checkpoints:
        if not cp.visible:
            continue
        table = FlowTable()
        analyze_frames(iter(out.frames[:cp.frames]), name, table)
        ep = table.flows[0].client if cp.role == "client" else table.flows[0].server
        assert ep.state.value == cp.kernel, cp.label


@needs_root
@needs_tun
@pytest.mark.parametrize("name", ALL)
def test_kernel_oracle_agrees_after(tun_run, name: str) -> None:
    out = tun_run[0][name]
    local, remote = kernel_end(out)
    assert ss_state(local, remote) == AFTER[name]
    assert diag_state(local, remote) == AFTER[name]     # the prober's own oracle reads the same
    rec = out.analysis.records[0]                       # the engine's record of the one flow
    role = "client_states" if out.scenario.kernel_role == "client" else "server_states"
    if name != "no-answer":                             # a silent give-up shows on no wire
        assert rec[role][-1] == AFTER[name]


@needs_root
@needs_tun
def test_no_answer_backoff(tun_run) -> None:
    """The kernel's own SYN retries: one ISN; waits of the 1 s initial RTO (RFC 6298 §2.1), flat for
    tcp_syn_linear_timeouts retries on Linux >= 6.x, then doubling (RFC 6298 §5.5)."""
    segs = segments(tun_run[0]["no-answer"])
    assert len({s.seq for s in segs}) == 1
    gaps = [b.ts - a.ts for a, b in zip(segs, segs[1:])]
    want = [1.0] * (_linear() + 1) + [2.0]
    assert len(gaps) == len(want)
    assert all(abs(g - w) < 0.35 for g, w in zip(gaps, want)), gaps


@needs_root
@needs_tun
def test_pcap_is_read_by_analyze_and_tcpdump(tun_run) -> None:
    outcomes, pcap = tun_run[0], tun_run[1]
    total = sum(len(o.frames) for o in outcomes.values())
    analysis = analyze_file(str(pcap))
    assert (analysis.frames, analysis.segments, len(analysis.flows)) == (total, total, len(ALL))
    for flow, name in zip(analysis.flows, ALL):
        rec = flow_record(flow)
        assert (rec["client_states"], rec["server_states"], rec["close"]) == PATHS[name]
    out = subprocess.run([sys.executable, "-m", "handshake_probe", "analyze", str(pcap)], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0 and f"{total} frames, {total} TCP segments, {len(ALL)} flows" in out.stdout
    if shutil.which("tcpdump"):
        dump = subprocess.run(["tcpdump", "-nr", str(pcap)], capture_output=True, text=True)
        assert dump.returncode == 0 and "RAW" in dump.stderr
        assert len(dump.stdout.splitlines()) == total


@needs_root
@needs_tun
def test_tun_device_gone_after_the_run(tun_run) -> None:
    device = re.search(r"TUN device (hprobe\d+)", "\n".join(tun_run[2]))
    assert device is not None
    assert _wait_for(lambda: device.group(1) not in re.findall(r"hprobe\d+", _links()), 3.0)


# ------------------------------------------------------------------------------- guards
def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def _devices() -> Set[str]:
    """Probe devices as "index: name": an index is never handed out twice, a name is at once."""
    return set(re.findall(r"^(\d+: hprobe\d+)", _links(), re.M))


def _firewall() -> Tuple[str, str]:
    ipt = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout if shutil.which("iptables-save") else ""
    nft = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout if shutil.which("nft") else ""
    return ipt, nft


def _ours(pid: Optional[int] = None) -> Set[str]:
    """Everything on the host that a probe can add: devices, rules, tables (of one pid, or any)."""
    tag = rf"{pid}\b" if pid is not None else r"\d+"
    ipt, nft = _firewall()
    found = {f"link {m}" for m in re.findall(r"hprobe\d+", _links())} if pid is None else set()
    found |= {f"iptables {line}" for line in ipt.splitlines() if re.search(rf"handshake-probe:{tag}", line)}
    found |= {f"nft {m}" for m in re.findall(rf"(handshake_probe_{tag}|handshake-probe:{tag})", nft)}
    return found


def _filter_table() -> bool:
    """Does `table ip filter` exist (iptables-nft creates it on demand; the guard removes what it made)?"""
    if shutil.which("nft") is None:
        return False
    return "table ip filter" in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


@needs_root
@pytest.mark.parametrize("guard", [pytest.param("iptables", marks=needs_iptables),
                                   pytest.param("nft", marks=needs_nft)])
def test_firewall_guard_end_to_end(guard: str) -> None:
    """127.0.0.1 on lo, the kernel's RSTs dropped by a rule that exists during the run and not after;
    our own RSTs (rst-abort, handshake) pass. nft runs all but the 7.5 s no-answer to keep the file short."""
    before, table_before = _ours(), _filter_table()
    names = ALL if guard == "iptables" else [n for n in ALL if n != "no-answer"]
    during: List[Set[str]] = []
    outcomes = run_probe(ProbeOptions(names, guard=guard), emit=lambda s: None,
                         on_outcome=lambda o: during.append(_ours(os.getpid())))
    failed = {o.scenario.name: o.problems for o in outcomes if not o.ok}
    assert not failed
    for o in outcomes:
        assert ladder(o) in LADDERS[o.scenario.name]
        assert o.frames[0].linktype == 1                        # Ethernet, as lo is captured
    assert all(d for d in during), "the guard rule was not there during the run"
    assert _wait_for(lambda: _ours() == before and _filter_table() == table_before, 3.0), (_ours(), before)


def _probe_cmd(*args: str) -> List[str]:
    return [sys.executable, "-m", "handshake_probe", "probe", *args]


def _env() -> Dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@needs_root
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize("guard", [pytest.param("tun", marks=needs_tun),
                                   pytest.param("iptables", marks=needs_iptables),
                                   pytest.param("nft", marks=needs_nft)])
def test_killed_mid_scenario_leaves_nothing(guard: str, sig: int) -> None:
    """SIGTERM: the probe removes what it added before it exits (143). SIGKILL: the TUN device goes with
    the process (not persistent); a firewall rule stays until the next start sweeps it.

    Only this probe's own additions are judged: its device by interface index (the kernel hands a freed
    name such as hprobe0 to the next device at once, and probes of other runs on the host come and go)
    and its rules by its pid. The kernel unregisters a device asynchronously, waiting for the last
    reference (routes, sockets) to go, which can take seconds on a loaded host: the wait is 10 s."""
    table_before = _filter_table()
    proc = subprocess.Popen(_probe_cmd("--rst-guard", guard, "--scenario", "no-answer"), cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        setup = ""
        while "guard:" not in setup and "TUN device" not in setup:   # the device or the rule is in place
            line = proc.stdout.readline()
            assert line, f"the probe ended before its setup line: {setup!r}"
            setup += line
        names = set(re.findall(r"hprobe\d+", setup))
        mine: Set[str] = set()

        def present() -> Set[str]:
            if guard != "tun":
                return _ours(proc.pid)
            if not mine:                                  # "index: name" of our device, once it shows
                mine.update(d for d in _devices() if d.split(": ")[1] in names)
            return mine & _devices()
        assert _wait_for(lambda: bool(present()), 3.0), f"nothing of pid {proc.pid} found while running: {setup}"
        time.sleep(0.5)                               # well inside no-answer's 7.5 s
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert "SIGTERM" in err and len(err.strip().splitlines()) == 1
    else:
        assert proc.returncode == -signal.SIGKILL
        if guard != "tun":
            assert present(), "a SIGKILLed probe cannot remove its rule: the next start must"
            lines: List[str] = []
            run_probe(ProbeOptions(["closed-port"]), emit=lines.append)
            assert any(f"dead pid {proc.pid}" in line for line in lines), lines
    # The kernel unregisters a closed TUN device asynchronously: give it time.
    assert _wait_for(lambda: not present() and not _ours(proc.pid)
                     and (guard == "tun" or _filter_table() == table_before), 10.0), (present(), _ours(proc.pid))


def _wait_for(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@needs_root
@pytest.mark.parametrize("tool", [pytest.param("iptables", marks=needs_iptables),
                                  pytest.param("nft", marks=needs_nft)])
def test_leftover_of_a_dead_pid_is_removed_at_start(tool: str) -> None:
    dead = _dead_pid()
    alive = subprocess.Popen(["sleep", "30"])
    planted = []
    table_before = _filter_table()
    try:
        for pid in (dead, alive.pid):
            if tool == "iptables":
                rule = ["OUTPUT", "-o", "lo", "-p", "tcp", "--sport", "9", "--tcp-flags", "RST", "RST",
                        "-m", "comment", "--comment", f"handshake-probe:{pid}", "-j", "DROP"]
                subprocess.run(["iptables", "-w", "5", "-I", *rule], check=True)
                planted.append(["iptables", "-w", "5", "-D", *rule])
            else:
                subprocess.run(["nft", "-f", "-"], check=True, text=True, input=(
                    f"table ip handshake_probe_{pid} {{\n chain output {{\n"
                    f"  type filter hook output priority 0; policy accept;\n"
                    f"  oifname \"lo\" tcp sport 9 tcp flags & rst == rst drop comment \"handshake-probe:{pid}\"\n"
                    f" }}\n}}\n"))
                planted.append(["nft", "delete", "table", "ip", f"handshake_probe_{pid}"])
        assert _ours(dead) and _ours(alive.pid)
        lines: List[str] = []
        run_probe(ProbeOptions(["closed-port"]), emit=lines.append)
        assert _ours(dead) == set(), "the dead pid's leftover survived the next start"
        assert any(f"dead pid {dead}" in line for line in lines), lines
        assert _ours(alive.pid), "a live process's rule must be left alone"
    finally:
        alive.kill()
        alive.wait()
        for cmd in planted:
            subprocess.run(cmd, capture_output=True)
        if tool == "iptables" and not table_before:
            # iptables-nft made the filter table and chain for our planted rule: take them away again.
            subprocess.run(["iptables", "-w", "5", "-X", "OUTPUT"], capture_output=True)
            if shutil.which("nft") and "chain" not in subprocess.run(
                    ["nft", "list", "table", "ip", "filter"], capture_output=True, text=True).stdout:
                subprocess.run(["nft", "delete", "table", "ip", "filter"], capture_output=True)


@needs_root
@needs_tun
def test_command_with_a_loopback_target(capsys: pytest.CaptureFixture[str]) -> None:
    """--target on 127.0.0.1 through the TUN guard (route_localnet on the device): a server whose timing
    we do not drive passes with the target ladders; a closed port fails the verdict, exit 1."""
    from handshake_probe.cli import main
    from handshake_probe.echo import EchoServer

    with EchoServer(host="127.0.0.1", idle_timeout=0.3) as (host, port):
        assert main(["probe", "--target", f"{host}:{port}", "--scenario",
                     "echo,half-close,server-close,simultaneous-close"]) == 0
    out = capsys.readouterr().out
    assert out.count("verdict: PASS") == 4 and "probe: 4/4 scenarios as expected" in out
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))                      # bound, not listening: the SYN meets RST
    try:
        assert main(["probe", "--target", f"127.0.0.1:{closed.getsockname()[1]}", "--scenario", "handshake",
                     "--timeout", "0.5"]) == 1
    finally:
        closed.close()
    out = capsys.readouterr().out
    assert "verdict: FAIL handshake" in out and "expected the SYN-ACK (S.), got R." in out


# ------------------------------------------------------------------------------- no privilege, bad arguments
def _unprivileged(args: Sequence[str]) -> subprocess.CompletedProcess:
    cmd = _probe_cmd(*args)
    if not IS_ROOT:
        return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    if shutil.which("setpriv"):
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", *cmd]
        return subprocess.run(cmd, cwd="/", env=_env(), capture_output=True, text=True, timeout=60)

    def drop() -> None:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    return subprocess.run(cmd, cwd="/", env=_env(), capture_output=True, text=True, timeout=60, preexec_fn=drop)


@pytest.mark.parametrize("guard,cap", [("tun", "CAP_NET_ADMIN"), ("iptables", "CAP_NET_RAW"), ("nft", "CAP_NET_RAW")])
def test_without_privilege_exit_77_and_one_line(guard: str, cap: str) -> None:
    if not IS_ROOT and os.path.exists("/proc/self/status"):
        eff = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("CapEff"))
        if int(eff.split()[1], 16) & (1 << 12 | 1 << 13):
            pytest.skip("this unprivileged user still holds CAP_NET_ADMIN/CAP_NET_RAW")
    done = _unprivileged(["--rst-guard", guard, "--scenario", "all"])
    assert done.returncode == 77, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and cap in lines[0] and "root" in lines[0]


@pytest.mark.parametrize("args", [
    ["--scenario", "nope"],
    ["--scenario", "all", "--target", "10.1.2.3:80"],                  # not loopback, no --allow-remote
    ["--scenario", "all", "--target", "10.1.2.3:80", "--allow-remote"],  # the tun guard stays on this host
    ["--scenario", "no-answer", "--target", "10.1.2.3:80", "--allow-remote", "--rst-guard", "nft"],
    ["--scenario", "handshake", "--target", "198.18.5.2:80"],         # TUN range, but not this run's peer
    ["--scenario", "handshake", "--target", "198.19.255.1:80", "--rst-guard", "nft"],
    ["--scenario", "handshake", "--target", "[::1]:80"],               # IPv4 only
    ["--scenario", "all", "--target", "localhost"],
    ["--scenario", "all", "--isn", str(1 << 32)],
    ["--scenario", "all", "--rst-guard", "pf"],
    ["--scenario", "all", "--timeout", "0"],
    [],
])
def test_bad_arguments_exit_2(args: List[str]) -> None:
    """Judged before the privilege is (as root and as any user alike): exit 2, one error line, no packet."""
    done = _unprivileged(args) if IS_ROOT else subprocess.run(_probe_cmd(*args), cwd=ROOT, env=_env(),
                                                               capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.splitlines()[-1].startswith("handshake-probe: error: ") and done.stdout == ""


@pytest.mark.parametrize("names,message", [
    (["no-answer"], "no-answer needs this host's kernel, not a remote --target"),
    (["closed-port", "no-answer"], "closed-port, no-answer need this host's kernel, not a remote --target"),
])
def test_scenarios_a_remote_target_cannot_run(names: List[str], message: str) -> None:
    from handshake_probe.prober.engine import check_options
    with pytest.raises(ValueError) as err:
        check_options(ProbeOptions(names, target=("10.1.2.3", 80), guard="nft", allow_remote=True))
    assert str(err.value) == message


@needs_root
@needs_tun
def test_ladder_option_draws_the_exchange(capsys) -> None:
    from handshake_probe.cli import main
    assert main(["probe", "--scenario", "client-close", "--ladder"]) == 0
    out = capsys.readouterr().out
    arrows = [l for l in out.splitlines() if "|---" in l or "|<--" in l]
    assert len(arrows) >= 6 and "[S] seq=0" in arrows[0] and "[S.] seq=0 ack=1" in arrows[1]
    assert "TIME-WAIT" in out and "verdict: PASS client-close" in out


@needs_root
@needs_tun
def test_only_the_own_tun_peer_is_a_target_in_the_tun_range() -> None:
    """The kernel's end of this run's TUN device (198.18.X.1, X from the pid) is a target like loopback;
    any other 198.18.0.0/15 address is refused before a packet is sent: written into the device, the
    kernel would forward it out of another interface."""
    from handshake_probe.prober.tun import pick_subnet
    peer = str(next(iter(pick_subnet(os.getpid()).hosts())))
    listener = socket.socket()
    # IP_FREEBIND: listen on the address before the device that carries it exists.
    listener.setsockopt(socket.SOL_IP, getattr(socket, "IP_FREEBIND", 15), 1)
    listener.bind((peer, 0))
    listener.listen()
    try:
        lines: List[str] = []
        outcomes = run_probe(ProbeOptions(["handshake"], target=(peer, listener.getsockname()[1])),
                             emit=lines.append)
        assert [o.ok for o in outcomes] == [True], [o.problems for o in outcomes]
        assert any(f"kernel {peer}," in line for line in lines), lines
    finally:
        listener.close()
    other = "198.18.5.2"                                  # a .2 is never the kernel's end (.1)
    sent: List[Outcome] = []
    with pytest.raises(ValueError, match="not loopback"):
        run_probe(ProbeOptions(["handshake"], target=(other, 80)), emit=lambda s: None, on_outcome=sent.append)
    assert sent == []


@needs_root
@pytest.mark.parametrize("tool", [pytest.param("iptables", marks=needs_iptables),
                                  pytest.param("nft", marks=needs_nft)])
def test_leftover_of_a_reused_pid_is_removed(tool: str) -> None:
    """A rule names its process by pid and start time: a live process with the same pid but another
    start time did not make it (the pid was reused), so the rule is a leftover and goes; the rule of the
    process that really is alive stays."""
    from handshake_probe.prober.guard import start_time
    alive = subprocess.Popen(["sleep", "30"])
    start = start_time(alive.pid)
    assert start is not None
    planted = []
    table_before = _filter_table()
    try:
        for tick, port in ((start - 1, 9), (start, 7)):       # a dead run's rule, then the live one's
            tag = f"handshake-probe:{alive.pid}:{tick}"
            if tool == "iptables":
                rule = ["OUTPUT", "-o", "lo", "-p", "tcp", "--sport", str(port), "--tcp-flags", "RST", "RST",
                        "-m", "comment", "--comment", tag, "-j", "DROP"]
                subprocess.run(["iptables", "-w", "5", "-I", *rule], check=True)
                planted.append(["iptables", "-w", "5", "-D", *rule])
            else:
                table = f"handshake_probe_{alive.pid}_{tick}"
                subprocess.run(["nft", "-f", "-"], check=True, text=True, input=(
                    f"table ip {table} {{\n chain output {{\n"
                    f"  type filter hook output priority 0; policy accept;\n"
                    f"  oifname \"lo\" tcp sport {port} tcp flags & rst == rst drop comment \"{tag}\"\n"
                    f" }}\n}}\n"))
                planted.append(["nft", "delete", "table", "ip", table])
        lines: List[str] = []
        run_probe(ProbeOptions(["closed-port"]), emit=lines.append)
        ipt, nft = _firewall()
        found = ipt if tool == "iptables" else nft
        assert f"handshake-probe:{alive.pid}:{start - 1}" not in found, "the reused pid's leftover survived"
        assert f"handshake-probe:{alive.pid}:{start}" in found, "the live process's rule must stay"
        assert any(f"dead pid {alive.pid}" in line for line in lines), lines
    finally:
        alive.kill()
        alive.wait()
        for cmd in planted:
            subprocess.run(cmd, capture_output=True)
        if tool == "iptables" and not table_before:
            subprocess.run(["iptables", "-w", "5", "-X", "OUTPUT"], capture_output=True)
            if shutil.which("nft") and "chain" not in subprocess.run(
                    ["nft", "list", "table", "ip", "filter"], capture_output=True, text=True).stdout:
                subprocess.run(["nft", "delete", "table", "ip", "filter"], capture_output=True)
