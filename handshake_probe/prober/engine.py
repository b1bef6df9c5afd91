"""Set up the prober's world, run the scenarios, take it all down again on every exit path.

Order of setup (each step registered for teardown before the next one starts):
  1. capabilities checked (nothing touched yet);
  2. leftovers of dead probes swept (firewall rules with a dead pid);
  3. the link: a TUN device (tun guard), or reserved ports + a firewall rule + raw sockets (iptables/nft);
  4. the kernel-side servers (echo, echo with idle timeout, held server, a closed port), unless --target.
Teardown runs in reverse with SIGTERM/SIGHUP/SIGINT held off, so a second signal cannot cut it short.
"""

from __future__ import annotations

import ipaddress
import os
import random
import signal
import subprocess
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from handshake_probe.echo.server import EchoServer
from handshake_probe.files.pcapwriter import PcapWriter, RawFrame
from handshake_probe.prober import caps, guard as guards
from handshake_probe.prober.context import Ctx, Targets
from handshake_probe.prober.family import Family, canonical, family_for, refused_always
from handshake_probe.prober.kernel import Address, HeldServer, Oracle, diag_state, kernel_socket
from handshake_probe.prober.link import Link, RawLink, TunLink
from handshake_probe.prober.peer import ProbeFailure
from handshake_probe.prober.scenarios import LOCAL_ONLY, SCENARIOS
from handshake_probe.prober.tun import TunDevice, own_kernel_addr
from handshake_probe.prober.verdict import Outcome, analyze, judge, ladder_of

__all__ = ["ProbeOptions", "Terminated", "run_probe", "IDLE_TIMEOUT", "check_target", "check_options"]

IDLE_TIMEOUT = 0.3        # the idle echo server closes first after this long (server-close, simultaneous-close)


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread so that every `finally` runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass
class ProbeOptions:
    scenarios: Sequence[str]
    write: Optional[str] = None
    target: Optional[Address] = None
    message: bytes = b"python"
    isn: Optional[int] = None
    timeout: float = 2.0
    guard: str = "tun"
    allow_remote: bool = False
    ipv6: bool = False                 # -6: IPv6 without a --target (a --target's address says its family)

    @property
    def family(self) -> Family:
        return family_for(self.target, self.ipv6)


def _own_tun_peer(family: Family) -> str:
    """The kernel's end (198.18.X.1, 2001:db8:6870:X::1) of the TUN device this process will make:
    TunDevice picks its subnet from the pid, so it is known before the device exists (and checked again
    after)."""
    return own_kernel_addr(family, os.getpid())


def check_target(host: str, guard: str, allow_remote: bool) -> bool:
    """Validate --target's host; True when it is this host's kernel (the oracle can be asked).

    The network-safety rule: packets go to loopback (127.0.0.0/8, ::1) or to the kernel's end of this
    run's own TUN device, nowhere else without --allow-remote. Any other address in the TUN range
    (198.18.0.0/15, 2001:db8::/32) is *not* ours: written into the TUN device, the kernel would route it
    on, out of another interface. Some addresses are refused even with --allow-remote (family.py:
    unspecified, multicast, IPv4-mapped, link-local, a zone index). Raises ValueError with the reason."""
    never = refused_always(host)
    if never:
        raise ValueError(never)
    addr = ipaddress.ip_address(host)
    family = family_for((host, 0), False)
    host = canonical(host)
    if addr in family.loopback_net:
        return True
    if guard == "tun" and addr in family.tun_range and host == _own_tun_peer(family):
        return True
    if not allow_remote:
        mine = (f", nor this probe's own TUN peer ({_own_tun_peer(family)})"
                if addr in family.tun_range else "")
        raise ValueError(f"{host} is not loopback ({family.loopback_net.compressed}){mine}; "
                         "add --allow-remote (with --rst-guard iptables or nft) to probe another host")
    if guard == "tun":
        raise ValueError("the tun guard reaches only this host; use --rst-guard iptables or nft "
                         "for a remote --target")
    return False


def check_options(opts: "ProbeOptions") -> bool:
    """Everything about the options that can be judged before any privilege is used or anything is
    touched (so bad arguments exit 2 for any user, not 77 for an unprivileged one): the target, and
    the scenarios a remote target cannot run. True when the target is this host's kernel."""
    local = True if opts.target is None else check_target(opts.target[0], opts.guard, opts.allow_remote)
    if opts.ipv6 and opts.family.version != 6:
        raise ValueError(f"-6 asks for IPv6, but --target {opts.target[0] if opts.target else ''} is IPv4")
    if not local:
        bad = [n for n in opts.scenarios if n in LOCAL_ONLY]
        if bad:
            raise ValueError(f"{', '.join(bad)} {'needs' if len(bad) == 1 else 'need'} this host's kernel, "
                             "not a remote --target")
    return local


def check_family(family: Family, guard: str) -> None:
    """Can this host speak the run's family where the guard needs it? Asked before anything is set up, so
    a host without IPv6 gets one line (GuardError: exit 69), not a half-built run. The tun guard needs
    IPv6 allowed on new devices (it never overrides net.ipv6.conf.default.disable_ipv6 = 1); the firewall
    guards need ::1 on lo."""
    if family.version != 6:
        return
    if guard == "tun":
        try:
            with open("/proc/sys/net/ipv6/conf/default/disable_ipv6") as f:
                disabled = f.read().strip() != "0"
        except OSError:
            raise guards.GuardError("IPv6 is not available on this host (no /proc/sys/net/ipv6): "
                                    "probe over IPv4") from None
        if disabled:
            raise guards.GuardError("IPv6 is disabled on this host (net.ipv6.conf.default.disable_ipv6 = 1): "
                                    "probe over IPv4")
        return
    try:
        with kernel_socket(family.loopback) as s:
            s.bind((family.loopback, 0))
    except OSError as err:
        raise guards.GuardError(f"IPv6 loopback {family.loopback} is not usable here ({err.strerror or err}): "
                                "probe over IPv4") from None


# ------------------------------------------------------------------------- signals
class _Signals:
    """SIGTERM/SIGHUP raise Terminated, SIGINT KeyboardInterrupt; while `held`, they wait their turn."""

    def __init__(self) -> None:
        self.held = False
        self.pending: Optional[int] = None

    def handler(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.held:
            self.pending = self.pending or signum
            return
        self.fire(signum)

    @staticmethod
    def fire(signum: int) -> None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield   # signal handlers can only be set from the main thread; the caller owns signals then
            return
        sigs = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
        old = {s: signal.signal(s, self.handler) for s in sigs}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    @contextmanager
    def hold(self) -> Iterator[None]:
        self.held = True
        try:
            yield
        finally:
            self.held = False
            if self.pending is not None:
                signum, self.pending = self.pending, None
                self.fire(signum)


# ------------------------------------------------------------------------- setup pieces
def _reserve_ports(addr: str, count: int, stack: ExitStack) -> List[int]:
    """Bind (never listen) one TCP socket per port: nobody else gets the port while we play it."""
    ports = []
    for _ in range(count):
        s = kernel_socket(addr)
        stack.callback(s.close)
        s.bind((addr, 0))
        ports.append(s.getsockname()[1])
    return ports


def _route(host: str) -> Tuple[str, str]:
    """(outgoing interface, source address) the kernel would use for `host` (no packet is sent)."""
    out = subprocess.run(["ip", "-o", "route", "get", host], capture_output=True, text=True, check=True).stdout
    words = out.split()
    return words[words.index("dev") + 1], words[words.index("src") + 1]


def _make_link(opts: ProbeOptions, nports: int, local: bool, stack: ExitStack,
               emit: Callable[[str], None]) -> Tuple[Link, List[int]]:
    family = opts.family
    host = canonical(opts.target[0]) if opts.target is not None else None
    if opts.guard == "tun":
        try:
            tun = TunDevice(family=family)
        except PermissionError as err:
            raise caps.explain(err, opts.guard) from None
        except FileNotFoundError:
            raise
        except OSError as err:
            raise guards.GuardError(f"the TUN device: {err}") from None
        stack.callback(tun.close)
        if host is not None and ipaddress.ip_address(host) in family.tun_range and host != tun.kernel_addr:
            # Predicted before the device existed (check_target); a route added since moved it.
            raise ValueError(f"{host} is not this probe's own TUN peer ({tun.kernel_addr}); "
                             "nothing was sent")
        link: Link = TunLink(tun)
        stack.callback(link.close)
        if host is not None:
            link.allow(host)
        emit(f"probe: TUN device {tun.name}: kernel {tun.kernel_addr}, prober {tun.peer_addr} "
             f"(non-persistent: it vanishes with this process)")
        return link, random.sample(range(20000, 60000), nports)
    if local:
        iface, addr = "lo", family.loopback
    else:
        assert host is not None
        iface, addr = _route(host)
    ports = _reserve_ports(addr, nports, stack)
    rule = (guards.IptablesGuard if opts.guard == "iptables" else guards.NftGuard)(ports, iface, family=family)
    stack.callback(rule.remove)
    rule.install()
    tool = family.firewall if opts.guard == "iptables" else f"nft ({family.nft_family})"
    emit(f"probe: {opts.guard} guard: {tool} drops outgoing RSTs from {addr} ports {','.join(map(str, ports))} "
         f"on {iface} (comment {guards.comment_for(rule.pid, start=rule.start)})")
    try:
        link = RawLink(addr, addr, iface, family)
    except PermissionError as err:
        raise caps.explain(err, opts.guard) from None
    stack.callback(link.close)
    if host is not None:
        link.allow(host)
    return link, ports


def _targets(opts: ProbeOptions, link: Link, stack: ExitStack) -> Targets:
    kernel = link.kernel_addr
    closed = kernel_socket(kernel)
    stack.callback(closed.close)
    closed.bind((kernel, 0))          # bound, never listening: a SYN to it meets a CLOSED port
    closed_at: Address = closed.getsockname()[:2]
    if opts.target is not None:
        return Targets(opts.target, opts.target, 0.0, None, closed_at, kernel)
    echo = EchoServer(host=kernel, port=0)
    echo_at = stack.enter_context(echo)
    idle = EchoServer(host=kernel, port=0, idle_timeout=IDLE_TIMEOUT)
    idle_at = stack.enter_context(idle)
    held = HeldServer(kernel)
    stack.callback(held.close)
    return Targets(echo_at, idle_at, IDLE_TIMEOUT, held, closed_at, kernel)


# ------------------------------------------------------------------------- running
def _run_one(name: str, link: Link, port: int, targets: Targets, opts: ProbeOptions,
             oracle: Optional[Oracle], first_frame: int) -> Outcome:
    scenario = SCENARIOS[name]
    ctx = Ctx(link, port, targets, opts.message, opts.isn, opts.timeout, oracle)
    link.scope(frozenset({port}))
    started = time.monotonic()
    failure: Optional[str] = None
    try:
        scenario.script(ctx)
    except (ProbeFailure, OSError) as err:
        # An OSError is the host refusing something (a send, a bind): this scenario failed, not the run.
        failure = str(err) if isinstance(err, ProbeFailure) else f"{type(err).__name__}: {err}"
        for p in ctx.peers:
            if p.open and p.irs is not None:
                try:
                    p.abort()      # leave no half-open connection in the kernel behind a failed script
                except OSError:
                    pass
    time.sleep(0.02)               # a last in-flight answer belongs to this scenario's record
    raw = [RawFrame(first_frame + i, ts, link.linktype, data, len(data), 0)
           for i, (ts, data) in enumerate(link.take())]
    outcome = Outcome(scenario, raw, analyze(raw, f"probe {name}"), ladder_of(raw, (link.prober_addr, port)),
                      ctx.checkpoints, ctx.notes, time.monotonic() - started)
    pattern = scenario.target_ladder if opts.target is not None and scenario.target_ladder else scenario.ladder
    judge(outcome, pattern)
    if failure is not None:
        outcome.problems.insert(0, failure)
    return outcome


def run_probe(opts: ProbeOptions, emit: Callable[[str], None] = print,
              oracle: Optional[Oracle] = None,
              on_outcome: Optional[Callable[[Outcome], None]] = None) -> List[Outcome]:
    """Run the scenarios; `emit` gets progress lines, `on_outcome` each finished scenario.

    `oracle` overrides how the kernel's state is read (default: diag_state, a sock_diag lookup); it is only
    asked when the target is this host's kernel. Raises caps.MissingCapability, guards.GuardError,
    ValueError (bad target) and Terminated / KeyboardInterrupt, always after tearing everything down.
    """
    local = check_options(opts)
    names = list(opts.scenarios)
    caps.require(opts.guard)
    check_family(opts.family, opts.guard)
    signals = _Signals()
    outcomes: List[Outcome] = []
    with signals.installed():
        stack = ExitStack()
        try:
            for line in guards.sweep():
                emit(f"probe: removed a leftover: {line}")
            link, ports = _make_link(opts, len(names), local, stack, emit)
            targets = _targets(opts, link, stack)
            writer = stack.enter_context(PcapWriter(opts.write, link.linktype)) if opts.write else None
            use_oracle = (oracle or diag_state) if local else None
            frame = 1
            for name, port in zip(names, ports):
                outcome = _run_one(name, link, port, targets, opts, use_oracle, frame)
                frame += len(outcome.frames)
                if writer is not None:
                    for f in outcome.frames:
                        writer.write(f.ts, f.data)
                    writer.flush()
                outcomes.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
        finally:
            with signals.hold():
                stack.close()
    return outcomes
