"""`handshake-probe probe` against the real kernel, through a real TUN device and real raw sockets.

The kernel is the oracle twice over: its answers are the segments under test, and its own socket table
is set beside the analyzer's state for the same moment: during a scenario through sock_diag (fast enough
to read between the kernel's FIN and our answer) with /proc/net/tcp read beside it, after it with `ss`.
The three are checked against each other on real sockets. Expectations are written out here,
independently of scenarios.py. Every scenario runs over IPv4 and over IPv6 (the `tun_run` fixture and the
firewall guards are parametrized by family), with the same expectations: TCP's states do not depend on it.

Live tests need root (CAP_NET_ADMIN for the TUN device and firewall rules, CAP_NET_RAW for raw
sockets); they skip without it. The privilege and argument tests run anywhere.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import pytest

import handshake_probe
from handshake_probe.prober.verdict import analyze as analyze_frames
from tests.frames import Flags, Seg, segments_of, tcpdump_flags
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


def _end(addr: Tuple[str, int]) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def ss_state(local: Tuple[str, int], remote: Tuple[str, int]) -> str:
    """The kernel's state for one 4-tuple as `ss` reports it (falls back to /proc/net/tcp)."""
    if shutil.which("ss") is None:
        return proc_state(local, remote)
    out = subprocess.run(["ss", "-tanH", "state", "all", "src", _end(local), "dst", _end(remote)],
                         capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    if not lines:
        return "CLOSED"
    state = lines[0].split()[0]
    return _SS_NAMES.get(state, state)


def segments(out: Outcome) -> List[Seg]:
    return segments_of(out.frames)


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


FAMILIES = [pytest.param(4, id="ipv4"), pytest.param(6, id="ipv6")]


@needs_root
@pytest.mark.parametrize("version", FAMILIES)
def test_oracles_agree_with_ss(version: int) -> None:
    """ss, /proc/net/tcp(6) and the prober's sock_diag lookup agree on real sockets in several states."""
    listener = socket.socket(socket.AF_INET6 if version == 6 else socket.AF_INET)
    listener.bind(("::1" if version == 6 else "127.0.0.1", 0))
    listener.listen()
    server_end = listener.getsockname()[:2]
    client = socket.create_connection(server_end)
    accepted, _ = listener.accept()
    client_end = client.getsockname()[:2]

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
@pytest.fixture(scope="module", params=FAMILIES)
def tun_run(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Dict[str, Outcome], Path, List[str], TwoOracles]]:
    """Every scenario once, through the TUN guard, with an ISN that wraps, both oracles watching; over
    IPv4 (198.18.X.0/30) and over IPv6 (2001:db8:6870:X::/64)."""
    if not IS_ROOT or not os.path.exists("/dev/net/tun"):
        pytest.skip("needs root and /dev/net/tun")
    pcap = tmp_path_factory.mktemp("probe") / "probes.pcap"
    lines: List[str] = []
    seen_devices: List[str] = []
    device_addrs: List[str] = []
    oracle = TwoOracles()

    def during(out: Outcome) -> None:
        names = re.findall(r"hprobe\d+", "\n".join(lines))
        seen_devices.extend(d for d in _devices() if d.split(": ")[1] in names)   # "index: name"
        if names and not device_addrs:
            device_addrs.append(subprocess.run(["ip", "-o", "addr", "show", "dev", names[0]],
                                               capture_output=True, text=True).stdout)

    started = time.monotonic()
    outcomes = run_probe(ProbeOptions(ALL, write=str(pcap), isn=WRAP_ISN, ipv6=request.param == 6),
                         emit=lines.append, oracle=oracle, on_outcome=during)
    lines.append(f"took {time.monotonic() - started:.1f} s")
    lines.append(f"device addresses: {device_addrs[0] if device_addrs else ''}")
    device = re.search(r"TUN device (hprobe\d+)", "\n".join(lines))
    assert device is not None and device.group(1) in {d.split(": ")[1] for d in seen_devices}
    lines.append(f"device seen: {sorted(set(seen_devices))[0]}")
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
    records = analyze_frames(out.frames, name).records
    assert len(records) == 1
    rec = records[0]
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
        # the frames up to the checkpoint, and nothing after: the endpoint's state then
        rec = analyze_frames(out.frames[:cp.frames], name).records[0]
        assert rec[f"{cp.role}_states"][-1] == cp.kernel, cp.label


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
    analysis = handshake_probe.analyze(str(pcap), streaming=False)
    records = list(analysis)
    assert (analysis.frames, analysis.segments, len(records)) == (total, total, len(ALL))
    for rec, name in zip(records, ALL):
        assert (rec["client_states"], rec["server_states"], rec["close"]) == PATHS[name]
    # An explicit environment without COLUMNS: readline may have set one at C level under pytest,
    # and a fitted table would wrap the summary line this looks for.
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-m", "handshake_probe", "analyze", str(pcap)], cwd=ROOT,
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0 and f"{total} frames, {total} TCP segments, {len(ALL)} flows" in out.stdout
    if shutil.which("tcpdump"):
        dump = subprocess.run(["tcpdump", "-nr", str(pcap)], capture_output=True, text=True)
        assert dump.returncode == 0 and "RAW" in dump.stderr
        assert len(dump.stdout.splitlines()) == total


@needs_root
@needs_tun
def test_tun_device_gone_after_the_run(tun_run) -> None:
    """Judged by interface index: the kernel hands a freed name (hprobe0) to the next run's device at once."""
    seen = next(l for l in tun_run[2] if l.startswith("device seen: "))[len("device seen: "):]
    assert re.fullmatch(r"\d+: hprobe\d+", seen)
    assert _wait_for(lambda: seen not in _devices(), 10.0)


def _version(run) -> int:
    """The run's IP version, from the device line (`kernel 198.18.X.1` or `kernel 2001:db8:...::1`)."""
    device = re.search(r"TUN device hprobe\d+: kernel (\S+),", "\n".join(run[2]))
    assert device is not None
    return 6 if ":" in device.group(1) else 4


@needs_root
@needs_tun
def test_every_frame_is_of_the_runs_family_between_the_device_ends(tun_run) -> None:
    version = _version(tun_run)
    device = re.search(r"kernel (\S+), prober (\S+) ", "\n".join(tun_run[2]))
    assert device is not None
    ends = {device.group(1), device.group(2)}
    for out in tun_run[0].values():
        for seg in segments(out):
            assert seg.ip_version == version and {seg.src, seg.dst} == ends


@needs_root
@needs_tun
def test_the_device_carries_one_address_of_the_family(tun_run) -> None:
    """IPv4: 198.18.X.1/30 and no IPv6 at all. IPv6: 2001:db8:6870:X::1/64 and nothing else: no link-local
    address, so the kernel sends no MLD reports or router solicitations into the device (a TUN device is
    NOARP: no neighbour discovery either)."""
    line = next(l for l in tun_run[2] if l.startswith("device addresses: "))
    addrs = re.findall(r"\binet6? (\S+)", line)
    if _version(tun_run) == 6:
        assert len(addrs) == 1 and re.fullmatch(r"2001:db8:6870:[0-9a-f]{1,4}::1/64", addrs[0]), line
    else:
        assert len(addrs) == 1 and re.fullmatch(r"198\.1[89]\.\d+\.1/30", addrs[0]), line


@needs_root
@needs_tun
def test_headers_and_checksums_of_the_family(tun_run) -> None:
    """Our segments leave with TTL / hop limit 64 and announce MSS = MTU 1500 minus 40 (IPv4) or 60 (IPv6)
    bytes of headers, as the kernel's own SYN-ACK does over the same device (RFC 9293 §3.7.1, RFC 8200
    §8.3). Every frame on the device, ours and the kernel's (no checksum offload on a TUN device), carries
    a TCP checksum that Scapy, recomputing it over the family's pseudo-header, agrees with."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    version = _version(tun_run)
    layer = IPv6 if version == 6 else IP
    mss = 1440 if version == 6 else 1460
    syns = 0
    for out in tun_run[0].values():
        me = prober_end(out)
        for f, seg in zip(out.frames, segments(out)):
            pkt = layer(f.data)
            given = pkt[TCP].chksum
            del pkt[TCP].chksum
            assert layer(bytes(pkt))[TCP].chksum == given, f"{out.scenario.name} frame {f.frame}"
            if (seg.src, seg.sport) == me:
                assert (pkt.hlim if version == 6 else pkt.ttl) == 64
            if seg.flags & Flags.SYN:
                assert seg.options["mss"] == mss, (out.scenario.name, seg)
                syns += 1
    assert syns >= 10


# ------------------------------------------------------------------------------- guards
def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def _devices() -> Set[str]:
    """Probe devices as "index: name": an index is never handed out twice, a name is at once."""
    return set(re.findall(r"^(\d+: hprobe\d+)", _links(), re.M))


def _firewall() -> Tuple[str, str]:
    """(iptables-save and ip6tables-save, nft list ruleset): every rule a probe of either family adds."""
    ipt = "".join(subprocess.run([tool], capture_output=True, text=True).stdout
                  for tool in ("iptables-save", "ip6tables-save") if shutil.which(tool))
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


def _others() -> bool:
    """Are rules of another probe (another test run on this host) present right now?"""
    return any(not item.startswith("link ") and not re.search(rf"handshake.probe.{os.getpid()}\b", item)
               for item in _ours())


def _filter_table() -> Tuple[bool, bool]:
    """Do `table ip filter` and `table ip6 filter` exist (iptables-nft creates them on demand; the guard
    removes what it made)?"""
    if shutil.which("nft") is None:
        return False, False
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout.splitlines()
    return "table ip filter" in tables, "table ip6 filter" in tables


needs_ip6tables = pytest.mark.skipif(shutil.which("ip6tables") is None, reason="ip6tables not installed")


@needs_root
@pytest.mark.parametrize("guard,version", [pytest.param("iptables", 4, marks=needs_iptables, id="iptables"),
                                           pytest.param("nft", 4, marks=needs_nft, id="nft"),
                                           pytest.param("iptables", 6, marks=needs_ip6tables, id="ip6tables"),
                                           pytest.param("nft", 6, marks=needs_nft, id="nft-ip6")])
def test_firewall_guard_end_to_end(guard: str, version: int) -> None:
    """127.0.0.1 (or ::1) on lo, the kernel's RSTs dropped by a rule (iptables / ip6tables, an nft table of
    family ip / ip6) that exists during the run and not after; our own RSTs (rst-abort, handshake) pass.
    The kernel's own state is read at every checkpoint, as through the TUN device. nft runs all but the
    7.5 s no-answer to keep the file short."""
    before, table_before = _ours(), _filter_table()
    names = ALL if guard == "iptables" else [n for n in ALL if n != "no-answer"]
    during: List[Set[str]] = []
    lines: List[str] = []
    oracle = TwoOracles()
    outcomes = run_probe(ProbeOptions(names, guard=guard, ipv6=version == 6), emit=lines.append, oracle=oracle,
                         on_outcome=lambda o: during.append(_ours(os.getpid())))
    failed = {o.scenario.name: o.problems for o in outcomes if not o.ok}
    assert not failed
    loopback = "::1" if version == 6 else "127.0.0.1"
    tool = {"iptables": "ip6tables" if version == 6 else "iptables", "nft": f"nft (ip{'6' if version == 6 else ''})"}
    assert any(f"guard: {tool[guard]} drops outgoing RSTs from {loopback} " in line for line in lines), lines
    for o in outcomes:
        assert ladder(o) in LADDERS[o.scenario.name]
        assert o.frames[0].linktype == 1                        # Ethernet, as lo is captured
        assert {s.ip_version for s in segments(o)} == {version} and prober_end(o)[0] == loopback
        assert [cp.kernel for cp in o.checkpoints] == KERNEL[o.scenario.name]
    assert oracle.readings and all(diag == proc for _, _, diag, proc in oracle.readings)
    assert all(d for d in during), "the guard rule was not there during the run"
    ipt, nft = _firewall()
    mine = re.compile(rf"handshake.probe.{os.getpid()}")
    assert not mine.search(ipt) and not mine.search(nft)
    # Judged by this process's pid: probes of other test runs on the host may come and go meanwhile. The
    # filter tables iptables-nft made on demand must be gone too, unless another run's rule holds them.
    assert _wait_for(lambda: not _ours(os.getpid()) and (_filter_table() == table_before or _others()), 3.0), \
        (_ours(), before)


def _probe_cmd(*args: str) -> List[str]:
    return [sys.executable, "-m", "handshake_probe", "probe", *args]


def _env() -> Dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@needs_root
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize("guard", [pytest.param("tun", marks=needs_tun),
                                   pytest.param("iptables", marks=needs_iptables),
                                   pytest.param("nft", marks=needs_nft)])
@pytest.mark.parametrize("family", [pytest.param([], id="ipv4"), pytest.param(["-6"], id="ipv6")])
def test_killed_mid_scenario_leaves_nothing(guard: str, sig: int, family: List[str]) -> None:
    """SIGTERM: the probe removes what it added before it exits (143). SIGKILL: the TUN device goes with
    the process (not persistent); a firewall rule stays until the next start sweeps it.

    Only this probe's own additions are judged: its device by interface index (the kernel hands a freed
    name such as hprobe0 to the next device at once, and probes of other runs on the host come and go)
    and its rules by its pid. The kernel unregisters a device asynchronously, waiting for the last
    reference (routes, sockets) to go, which can take seconds on a loaded host: the wait is 10 s."""
    table_before = _filter_table()
    proc = subprocess.Popen(_probe_cmd(*family, "--rst-guard", guard, "--scenario", "no-answer"), cwd=ROOT, env=_env(),
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
                     and (guard == "tun" or _filter_table() == table_before or _others()), 10.0), \
        (present(), _ours(proc.pid))


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


_TOOLS = [pytest.param("iptables", marks=needs_iptables), pytest.param("ip6tables", marks=needs_ip6tables),
          pytest.param("nft", marks=needs_nft), pytest.param("nft-ip6", marks=needs_nft)]


def _plant(tool: str, pid: int, tag: str, port: int) -> List[str]:
    """Add a guard rule as a run of `pid` would have (tag: its comment); return the command undoing it."""
    if tool in ("iptables", "ip6tables"):
        rule = ["OUTPUT", "-o", "lo", "-p", "tcp", "--sport", str(port), "--tcp-flags", "RST", "RST",
                "-m", "comment", "--comment", tag, "-j", "DROP"]
        subprocess.run([tool, "-w", "5", "-I", *rule], check=True)
        return [tool, "-w", "5", "-D", *rule]
    family = "ip6" if tool == "nft-ip6" else "ip"
    table = "handshake_probe_" + tag.split(":", 1)[1].replace(":", "_")
    subprocess.run(["nft", "-f", "-"], check=True, text=True, input=(
        f"table {family} {table} {{\n chain output {{\n"
        f"  type filter hook output priority 0; policy accept;\n"
        f"  oifname \"lo\" tcp sport {port} tcp flags & rst == rst drop comment \"{tag}\"\n"
        f" }}\n}}\n"))
    return ["nft", "delete", "table", family, table]


def _unplant(tool: str, planted: List[List[str]], table_before: Tuple[bool, bool]) -> None:
    for cmd in planted:
        subprocess.run(cmd, capture_output=True)
    if tool in ("iptables", "ip6tables") and not table_before[tool == "ip6tables"]:
        # iptables-nft made the filter table and chain for our planted rule: take them away again.
        family = "ip6" if tool == "ip6tables" else "ip"
        subprocess.run([tool, "-w", "5", "-X", "OUTPUT"], capture_output=True)
        if shutil.which("nft") and "chain" not in subprocess.run(
                ["nft", "list", "table", family, "filter"], capture_output=True, text=True).stdout:
            subprocess.run(["nft", "delete", "table", family, "filter"], capture_output=True)


@needs_root
@pytest.mark.parametrize("tool", _TOOLS)
def test_leftover_of_a_dead_pid_is_removed_at_start(tool: str) -> None:
    """A rule of a dead run, of either family, is swept by the next start (itself an IPv4 run)."""
    dead = _dead_pid()
    alive = subprocess.Popen(["sleep", "30"])
    planted: List[List[str]] = []
    table_before = _filter_table()
    try:
        for pid in (dead, alive.pid):
            planted.append(_plant(tool, pid, f"handshake-probe:{pid}", 9))
        assert _ours(dead) and _ours(alive.pid)
        lines: List[str] = []
        run_probe(ProbeOptions(["closed-port"]), emit=lines.append)
        assert _ours(dead) == set(), "the dead pid's leftover survived the next start"
        assert any(f"dead pid {dead}" in line for line in lines), lines
        assert _ours(alive.pid), "a live process's rule must be left alone"
    finally:
        alive.kill()
        alive.wait()
        _unplant(tool, planted, table_before)


@needs_root
@pytest.mark.parametrize("host,guard", [
    pytest.param("127.0.0.1", "tun", marks=needs_tun, id="127.0.0.1-tun"),
    pytest.param("::1", "tun", marks=needs_tun, id="ipv6-tun"),
    pytest.param("::1", "iptables", marks=needs_ip6tables, id="ipv6-ip6tables"),
    pytest.param("::1", "nft", marks=needs_nft, id="ipv6-nft")])
def test_command_with_a_loopback_target(host: str, guard: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--target on 127.0.0.1 through the TUN guard (route_localnet on the device), on [::1] through the
    TUN guard (our segments go in through lo, RFC 4291 §2.5.3 keeps ::1 off every other device; the
    answers come back through the device) and through the ip6tables and nft guards: a server whose timing
    we do not drive passes with the target ladders; a closed port fails the verdict, exit 1, its cause
    first."""
    from handshake_probe.cli import main
    from handshake_probe.echo.server import EchoServer

    where = f"[{host}]" if ":" in host else host
    names = [n for n in ALL if n != "no-answer"]          # no-answer's 7.5 s is in tun_run and the guards'
    with EchoServer(host=host, idle_timeout=0.3) as (_, port):
        assert main(["probe", "--rst-guard", guard, "--target", f"{where}:{port}", "--scenario",
                     ",".join(names)]) == 0
    out = capsys.readouterr().out
    assert out.count("verdict: PASS") == len(names) and f"probe: {len(names)}/{len(names)} scenarios as expected" in out
    closed = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    closed.bind((host, 0))                             # bound, not listening: the SYN meets RST
    try:
        assert main(["probe", "--rst-guard", guard, "--target", f"{where}:{closed.getsockname()[1]}",
                     "--scenario", "handshake", "--timeout", "0.5"]) == 1
    finally:
        closed.close()
    lines = capsys.readouterr().out.splitlines()
    at = lines.index(next(l for l in lines if l.startswith("verdict: FAIL handshake")))
    assert lines[at + 1].startswith("  cause:") and "expected the SYN-ACK (S.), got R." in lines[at + 1]


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
    ["--scenario", "handshake", "--target", "[2001:db8::99]:80"],      # documentation range, not our peer
    ["--scenario", "handshake", "--target", "[2001:db8:6870:1::2]:80"],  # a TUN prober end, never the kernel's
    ["--scenario", "handshake", "--target", "[fd00::1]:80"],           # a ULA, not loopback
    ["--scenario", "handshake", "--target", "[::ffff:8.8.8.8]:80"],    # IPv4-mapped
    ["--scenario", "handshake", "--target", "[::ffff:127.0.0.1]:80"],  # IPv4-mapped loopback: say 127.0.0.1
    ["--scenario", "handshake", "--target", "[::ffff:8.8.8.8]:80", "--allow-remote", "--rst-guard", "nft"],
    ["--scenario", "handshake", "--target", "[fe80::]:80"],            # link-local
    ["--scenario", "handshake", "--target", "[fe80::1]:80", "--allow-remote", "--rst-guard", "nft"],
    ["--scenario", "handshake", "--target", "[fe80::1%lo]:80"],        # a zone index
    ["--scenario", "handshake", "--target", "[::1%lo]:80"],
    ["--scenario", "handshake", "--target", "[::]:80"],                # unspecified
    ["--scenario", "handshake", "--target", "[ff02::1]:80", "--allow-remote", "--rst-guard", "nft"],
    ["--scenario", "handshake", "--target", "::1:80"],                 # no brackets: where does the port start?
    ["--scenario", "handshake", "--target", "[127.0.0.1]:80"],         # brackets on IPv4
    ["--scenario", "handshake", "-6", "--target", "127.0.0.1:80"],     # -6 with an IPv4 target
    ["--scenario", "all", "-6", "--target", "[2001:db8::1]:80", "--allow-remote"],  # the tun guard stays here
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
@pytest.mark.parametrize("version,other", [(4, "198.18.5.2"), (6, "2001:db8::99")], ids=["ipv4", "ipv6"])
def test_only_the_own_tun_peer_is_a_target_in_the_tun_range(version: int, other: str) -> None:
    """The kernel's end of this run's TUN device (198.18.X.1 or 2001:db8:6870:X::1, X from the pid) is a
    target like loopback; any other address of the range is refused before a packet is sent: written into
    the device, the kernel would forward it out of another interface (here, IPv6's default route)."""
    from handshake_probe.prober.family import IPV4, IPV6
    from handshake_probe.prober.tun import own_kernel_addr
    family = IPV6 if version == 6 else IPV4
    peer = own_kernel_addr(family, os.getpid())
    listener = socket.socket(family.af)
    # FREEBIND: listen on the address before the device that carries it exists.
    if version == 6:
        listener.setsockopt(socket.IPPROTO_IPV6, getattr(socket, "IPV6_FREEBIND", 78), 1)
    else:
        listener.setsockopt(socket.SOL_IP, getattr(socket, "IP_FREEBIND", 15), 1)
    listener.bind((peer, 0))
    listener.listen()
    try:
        lines: List[str] = []
        outcomes = run_probe(ProbeOptions(["handshake"], target=(peer, listener.getsockname()[1])),
                             emit=lines.append)
        assert [o.ok for o in outcomes] == [True], [o.problems for o in outcomes]
        assert any(f"kernel {peer}," in line for line in lines), lines
        assert {s.ip_version for s in segments(outcomes[0])} == {version}
    finally:
        listener.close()
    sent: List[Outcome] = []
    before = _devices()
    with pytest.raises(ValueError, match="not loopback"):
        run_probe(ProbeOptions(["handshake"], target=(other, 80)), emit=lambda s: None, on_outcome=sent.append)
    assert sent == [] and _devices() <= before           # refused before even the device was made


@needs_root
@needs_tun
@pytest.mark.parametrize("version,stray", [(4, "198.18.5.1"), (4, "8.8.8.8"), (6, "2001:db8::99"),
                                           (6, "fd00::1"), (6, "2001:4860:4860::8888")])
def test_the_link_refuses_a_packet_to_an_address_not_cleared(version: int, stray: str) -> None:
    """The last check, at the moment of sending: whatever a scenario asks, the link sends only to the
    kernel's own end and the cleared --target. A stray destination raises and nothing is written."""
    from handshake_probe.prober.family import IPV4, IPV6
    from handshake_probe.prober.link import TunLink, UnsafeDestination
    from handshake_probe.prober.peer import RawPeer
    from handshake_probe.prober.tun import TunDevice
    with TunDevice(family=IPV6 if version == 6 else IPV4) as tun:
        link = TunLink(tun)
        try:
            link.scope(frozenset({40000}))
            with pytest.raises(UnsafeDestination, match=f"refused to send a packet to {stray}"):
                RawPeer(link, 40000, (stray, 80), 1, 0.2).send("S")
            assert link.take() == []
        finally:
            link.close()


@needs_root
@pytest.mark.parametrize("tool", _TOOLS)
def test_leftover_of_a_reused_pid_is_removed(tool: str) -> None:
    """A rule names its process by pid and start time: a live process with the same pid but another
    start time did not make it (the pid was reused), so the rule is a leftover and goes; the rule of the
    process that really is alive stays."""
    from handshake_probe.prober.guard import start_time
    alive = subprocess.Popen(["sleep", "30"])
    start = start_time(alive.pid)
    assert start is not None
    planted: List[List[str]] = []
    table_before = _filter_table()
    try:
        for tick, port in ((start - 1, 9), (start, 7)):       # a dead run's rule, then the live one's
            planted.append(_plant(tool, alive.pid, f"handshake-probe:{alive.pid}:{tick}", port))
        lines: List[str] = []
        run_probe(ProbeOptions(["closed-port"]), emit=lines.append)
        ipt, nft = _firewall()
        found = nft if tool.startswith("nft") else ipt
        assert f"handshake-probe:{alive.pid}:{start - 1}" not in found, "the reused pid's leftover survived"
        assert f"handshake-probe:{alive.pid}:{start}" in found, "the live process's rule must stay"
        assert any(f"dead pid {alive.pid}" in line for line in lines), lines
    finally:
        alive.kill()
        alive.wait()
        _unplant(tool, planted, table_before)


needs_unshare = pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) not installed")


@needs_root
@needs_unshare
@pytest.mark.parametrize("guard,setup,says", [
    pytest.param("nft", "", "IPv6 loopback ::1 is not usable here", marks=needs_nft, id="nft-lo-down"),
    pytest.param("tun", "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1;",
                 "IPv6 is disabled on this host", marks=needs_tun, id="tun-ipv6-disabled")])
def test_without_ipv6_one_line_and_exit_69(guard: str, setup: str, says: str) -> None:
    """A host (here a fresh network namespace: lo down, or IPv6 switched off) that cannot speak IPv6 where
    the guard needs it: `-6` says so in one line, exit 69, before anything is set up; IPv4 still runs."""
    script = (f"{setup} {shlex.join(_probe_cmd('-6', '--rst-guard', guard, '--scenario', 'handshake'))}; "
              f"echo rc=$?; ip link set lo up; "
              f"{shlex.join(_probe_cmd('--rst-guard', guard, '--scenario', 'handshake'))} | tail -1")
    done = subprocess.run(["unshare", "-n", "sh", "-c", script], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=60)
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"handshake-probe: error: {says}"), done.stderr
    assert "rc=69" in done.stdout and "probe: 1/1 scenarios as expected" in done.stdout, done.stdout


@needs_root
@needs_tun
def test_ipv6_tun_device_is_silent() -> None:
    """Nothing but what we provoke comes out of an IPv6 TUN device: no router solicitation, no MLD report,
    no neighbour or duplicate-address solicitation (NOARP, no link-local address), for 2 s after it is up."""
    from handshake_probe.prober.family import IPV6
    from handshake_probe.prober.tun import TunDevice
    import select
    with TunDevice(family=IPV6) as tun:
        read: List[bytes] = []
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            ready, _, _ = select.select([tun.fd], [], [], 0.1)
            if ready:
                read.append(tun.read())
        assert read == [], [r[:48].hex() for r in read]


@needs_root
@pytest.mark.parametrize("guard,version", [pytest.param("iptables", 6, marks=needs_ip6tables, id="ip6tables"),
                                           pytest.param("nft", 6, marks=needs_nft, id="nft-ip6"),
                                           pytest.param("nft", 4, marks=needs_nft, id="nft-ip")])
def test_without_its_rule_the_kernel_resets_the_handshake(guard: str, version: int) -> None:
    """The guard is what keeps the handshake alive: the same run with the rule never installed sees the
    kernel's own RST from our port (it holds no connection for the SYN-ACK it receives, RFC 9293 §3.10.7.1),
    so the scenario fails. With the rule (test_firewall_guard_end_to_end) it passes."""
    from unittest import mock
    from handshake_probe.prober import guard as guards
    cls = guards.IptablesGuard if guard == "iptables" else guards.NftGuard
    with mock.patch.object(cls, "install", lambda self: None):
        outcomes = run_probe(ProbeOptions(["handshake"], guard=guard, ipv6=version == 6, timeout=0.5),
                             emit=lambda s: None)
    out = outcomes[0]
    assert not out.ok
    segs = segments(out)
    me = (segs[0].src, segs[0].sport)
    # a bare RST (no ACK) from our port: the prober only ever sends RST/ACK (RawPeer.abort), so the kernel
    # sent it, in answer to the SYN-ACK (<SEQ=SEG.ACK><CTL=RST>, RFC 9293 §3.10.7.1)
    kernel_rsts = [s for s in segs if s.flags == Flags.RST and (s.src, s.sport) == me]
    assert len(kernel_rsts) == 1, ladder(out)
    synack = next(s for s in segs if s.flags == Flags.SYN | Flags.ACK)
    assert kernel_rsts[0].seq == synack.ack
    assert {s.ip_version for s in segs} == {version}


@needs_root
@needs_tun
def test_a_new_ipv6_device_address_is_usable_at_once() -> None:
    """A fresh IPv6 address is tentative until the kernel's address worker runs, even on a NOARP device
    with no DAD to do; bound too early it fails with EADDRNOTAVAIL (18 of 100 devices before the wait
    was added). TunDevice returns only once its kernel address can be bound, as the echo servers will."""
    from handshake_probe.prober.family import IPV6
    from handshake_probe.prober.tun import TunDevice
    for seed in range(30):
        with TunDevice(family=IPV6, seed=os.getpid() + seed) as tun:
            with socket.socket(socket.AF_INET6) as s:
                s.bind((tun.kernel_addr, 0))
