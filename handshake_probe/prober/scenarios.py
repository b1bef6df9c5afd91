"""The scenarios: each a short script of what the prober sends and what it expects back, plus what the
analyzer must conclude from the frames (both endpoints' paths, the close kind, the flag ladder).

Ladders are written with tcpdump's letters: `>` the prober sent it, `<` the kernel sent it; a `?` marks a
segment the kernel sends or not depending on timing (a separate ACK when its delayed-ACK timer fires before
the application answers), and ` | ` separates whole alternatives.
"""

from __future__ import annotations

import errno
import socket
import time
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

from handshake_probe.prober.context import Ctx, check
from handshake_probe.prober.kernel import connected, kernel_socket
from handshake_probe.prober.link import Got
from handshake_probe.prober.peer import ACK, MOD, SYN, RawPeer, describe

__all__ = ["Scenario", "SCENARIOS", "LOCAL_ONLY", "NO_ANSWER_USER_TIMEOUT"]


def _syn_linear_timeouts() -> int:
    """Linux 6.x's tcp_syn_linear_timeouts: that many SYN retries wait a flat initial RTO before the
    exponential backoff starts (default 4; older kernels lack the knob and back off from the first)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_syn_linear_timeouts") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


# no-answer: the waits before each SYN retry are the initial RTO (1 s, RFC 6298 §2.1) for the linear ones and
# the first backed-off one, then doubled (RFC 6298 §5.5): 1, 1, 1, 1, 1, 2 s with the default 4 linear.
# Retrying up to the first doubling shows the backoff; TCP_USER_TIMEOUT (which applies to SYN-SENT too)
# ends the attempt half a second after the last SYN instead of after one more doubled RTO.
NO_ANSWER_LINEAR = _syn_linear_timeouts()
NO_ANSWER_GAPS = (1.0,) * (NO_ANSWER_LINEAR + 1) + (2.0,)
NO_ANSWER_SYNCNT = len(NO_ANSWER_GAPS)
NO_ANSWER_USER_TIMEOUT = sum(NO_ANSWER_GAPS) + 0.5


@dataclass(frozen=True)
class Scenario:
    name: str
    does: str                       # one line: what the prober does and expects
    script: Callable[[Ctx], None]
    ladder: str                     # expected flags, e.g. ">S <S. >." ("?" = optional)
    client: str                     # the analyzer's client path, joined by ">"
    server: str
    close: str                      # the analyzer's close kind
    kernel_role: str = "server"     # which analyzer endpoint is the kernel
    target_ladder: str = ""         # accepted with --target (a server whose timing we do not drive)


def _pure_ack(want_ack: int) -> Callable[[Got], bool]:
    """A bare ACK of `want_ack`: the kernel acknowledged before its own segment was ready."""
    def test(got: Got) -> bool:
        seg = got.seg
        return seg.flags == ACK and seg.payload_len == 0 and seg.ack == want_ack % MOD
    return test


# ---------------------------------------------------------------------------- building blocks
def _open(ctx: Ctx, p: RawPeer) -> None:
    """The three-way handshake as the active opener (RFC 9293 §3.5 figure 6)."""
    p.send("S")                                                   # <SEQ=x><CTL=SYN>
    p.expect("S.", "the SYN-ACK", ack=p.iss + 1)                  # <SEQ=y><ACK=x+1><CTL=SYN,ACK>
    ctx.checkpoint("after its SYN-ACK", "SYN-RECEIVED", p)
    p.send("A")                                                   # <SEQ=x+1><ACK=y+1><CTL=ACK>
    ctx.checkpoint("after the handshake", "ESTABLISHED", p)


def _exchange(ctx: Ctx, p: RawPeer) -> None:
    """Send the message, read it back uppercased; the kernel's ACK covers exactly our bytes."""
    sent_end = (p.snd_nxt + len(ctx.message)) % MOD
    p.send("PA", ctx.message)
    reply = p.data(len(ctx.message), f"the echo {ctx.message.upper().decode(errors='replace')!r}")
    check(reply == ctx.message.upper(), f"expected the echo {ctx.message.upper()!r}, got {reply!r}")
    check(p.last is not None and p.last.seg.ack == sent_end,
          f"the echo acks {p.last.seg.ack if p.last else '-'}, expected {sent_end} "
          f"(our data acknowledged by its length)")


def _close_first(ctx: Ctx, p: RawPeer) -> None:
    """Active close (RFC 9293 §3.6 figure 12): our FIN, its FIN (with or before its ACK of ours), our ACK."""
    p.send("FA")
    p.expect("F.", "the server's FIN acking ours", ack=p.snd_nxt, skip=_pure_ack(p.snd_nxt))
    ctx.checkpoint("after its FIN", "LAST-ACK", p)
    p.send("A")
    ctx.checkpoint("after our last ACK", "CLOSED", p)


def _wait_server_fin(ctx: Ctx, p: RawPeer) -> Got:
    return p.expect("F.", "the server's FIN (it closes first)", ack=p.snd_nxt,
                    timeout=ctx.targets.idle_timeout + ctx.timeout)


# ---------------------------------------------------------------------------- the scripts
def handshake(ctx: Ctx) -> None:
    p = ctx.peer(ctx.targets.echo)
    _open(ctx, p)
    p.abort()                      # an in-window RST ends ESTABLISHED at once (RFC 9293 §3.10.7.4)
    ctx.checkpoint("after our RST", "CLOSED", p)


def echo(ctx: Ctx) -> None:
    p = ctx.peer(ctx.targets.echo)
    _open(ctx, p)
    _exchange(ctx, p)
    p.send("A")
    ctx.checkpoint("after the echo", "ESTABLISHED", p)
    _close_first(ctx, p)


def client_close(ctx: Ctx) -> None:
    p = ctx.peer(ctx.targets.echo)
    _open(ctx, p)
    _close_first(ctx, p)


def server_close(ctx: Ctx) -> None:
    """The server is the active closer (RFC 9293 §3.6 figure 12 with the roles swapped): it ends in
    TIME-WAIT, we pass through CLOSE-WAIT and LAST-ACK."""
    p = ctx.peer(ctx.targets.idle)
    _open(ctx, p)
    _wait_server_fin(ctx, p)
    ctx.checkpoint("after its FIN", "FIN-WAIT-1", p)
    p.send("A")
    ctx.checkpoint("after our ACK of its FIN", "FIN-WAIT-2", p)
    p.send("FA")
    p.expect(".", "the ACK of our FIN", ack=p.snd_nxt)
    ctx.checkpoint("after its ACK of our FIN", "TIME-WAIT", p)


def half_close(ctx: Ctx) -> None:
    held = ctx.targets.held
    p = ctx.peer(held.address if held is not None else ctx.targets.echo)
    _open(ctx, p)
    # Our request and our FIN in one segment: we will send no more, but we keep receiving (RFC 9293 §3.6).
    p.send("FPA", ctx.message)
    fin_end = p.snd_nxt
    if held is not None:
        p.expect(".", "the ACK of our data and FIN", ack=fin_end)
        request = held.read_to_eof(ctx.timeout)
        check(request == ctx.message, f"the server read {request!r}, expected {ctx.message!r}")
        ctx.checkpoint("after our FIN, the server still open", "CLOSE-WAIT", p)
        held.send(ctx.message.upper())
    reply = p.data(len(ctx.message), "the reply after our FIN")
    check(reply == ctx.message.upper(), f"expected {ctx.message.upper()!r} after our FIN, got {reply!r}")
    fin_now = p.fin_seen
    p.send("A")
    if held is not None:
        ctx.checkpoint("after the reply, the server still open", "CLOSE-WAIT", p)
        held.close_connection()
    if not fin_now:
        p.expect("F.", "the server's FIN", ack=fin_end, skip=_pure_ack(fin_end))
        ctx.checkpoint("after its FIN", "LAST-ACK", p)
        p.send("A")
    ctx.checkpoint("after our last ACK", "CLOSED", p)


def rst_abort(ctx: Ctx) -> None:
    p = ctx.peer(ctx.targets.echo)
    _open(ctx, p)
    _exchange(ctx, p)
    # ABORT (RFC 9293 §3.10.5) in the middle of a conversation: the kernel drops the connection with no
    # TIME-WAIT and no answer (§3.10.7.4: an acceptable RST in ESTABLISHED -> CLOSED).
    p.abort()
    ctx.checkpoint("after our RST", "CLOSED", p)


def closed_port(ctx: Ctx) -> None:
    p = ctx.peer(ctx.targets.closed)
    p.send("S")
    # RFC 9293 §3.10.7.1: a SYN (ACK off) to a CLOSED port gets <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    p.expect("R.", "RST/ACK from the closed port", seq=0, ack=p.iss + 1)
    ctx.checkpoint("after its RST", "CLOSED", p)


def no_answer(ctx: Ctx) -> None:
    """The kernel is the client and the prober stays silent: a SYN retransmitted with the same ISN
    (RFC 9293 §3.8.1), its timer backing off (RFC 6298 §5.5), then connect() fails with ETIMEDOUT."""
    ks = kernel_socket(ctx.targets.kernel_addr)
    try:
        ks.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, NO_ANSWER_SYNCNT)
        ks.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(NO_ANSWER_USER_TIMEOUT * 1000))
        ks.bind((ctx.targets.kernel_addr, 0))
        p = ctx.peer(ks.getsockname()[:2])     # the prober only listens: it never answers
        ks.setblocking(False)
        ks.connect_ex((ctx.link.prober_addr, ctx.port))
        first = p.expect("S", "the kernel's SYN")
        ctx.checkpoint("while it retries", "SYN-SENT", p, role="client")
        stamps = [first.seg.ts]
        deadline = time.monotonic() + NO_ANSWER_USER_TIMEOUT + ctx.timeout
        err = None
        while err is None and time.monotonic() < deadline:
            got = p.poll(0.05)
            if got is not None:
                check(got.seg.seq == first.seg.seq and got.seg.flags == SYN,
                      f"expected the same SYN again (RFC 9293 §3.8.1), got {describe(got)}")
                stamps.append(got.seg.ts)
            err = connected(ks, 0)
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        ctx.notes.append(f"{len(stamps)} SYNs, same ISN; waits {', '.join(f'{g:.2f}' for g in gaps)} s "
                         f"(tcp_syn_linear_timeouts={NO_ANSWER_LINEAR}); connect() then "
                         f"{'still pending' if err is None else errno.errorcode.get(err, err)}")
        check(err == errno.ETIMEDOUT, f"connect() should fail with ETIMEDOUT, got "
              f"{'nothing yet' if err is None else errno.errorcode.get(err, err)}")
        check(len(stamps) == 1 + NO_ANSWER_SYNCNT, f"expected {1 + NO_ANSWER_SYNCNT} SYNs, saw {len(stamps)}")
        off = [f"{g:.2f} s (expected {w:g})" for g, w in zip(gaps, NO_ANSWER_GAPS) if abs(g - w) > 0.35]
        check(not off, f"retry waits off the backoff schedule: {', '.join(off)}")
        ctx.checkpoint("after connect() gave up", "CLOSED", p, role="client", visible=False)
    finally:
        ks.close()


def simultaneous_close(ctx: Ctx) -> None:
    """Both FINs cross (RFC 9293 §3.6 figure 13): the kernel goes FIN-WAIT-1 -> CLOSING -> TIME-WAIT."""
    p = ctx.peer(ctx.targets.idle)
    _open(ctx, p)
    fin = _wait_server_fin(ctx, p)
    ctx.checkpoint("after its FIN", "FIN-WAIT-1", p)
    # Our FIN acks only what preceded its FIN, as if ours had left before theirs arrived (RFC 9293 §3.6 fig. 13).
    p.send("FA", ack=fin.seg.seq)
    p.expect(".", "the ACK of our FIN", ack=p.snd_nxt)
    ctx.checkpoint("after our crossing FIN", "CLOSING", p)
    p.send("A")
    ctx.checkpoint("after our ACK of its FIN", "TIME-WAIT", p)


def simultaneous_open(ctx: Ctx) -> None:
    """Both SYNs cross (RFC 9293 §3.5 figure 7): each side SYN-SENT -> SYN-RECEIVED -> ESTABLISHED."""
    ks = kernel_socket(ctx.targets.kernel_addr)
    try:
        ks.bind((ctx.targets.kernel_addr, 0))
        p = ctx.peer(ks.getsockname()[:2])
        ks.setblocking(False)
        ks.connect_ex((ctx.link.prober_addr, ctx.port))
        syn = p.expect("S", "the kernel's SYN")
        ctx.checkpoint("after its SYN", "SYN-SENT", p, role="client")
        # Our SYN, no ACK: it crossed theirs (RFC 9293 §3.5 figure 7).
        p.send("S")
        synack = p.expect("S.", "its SYN-ACK", seq=syn.seg.seq, ack=p.iss + 1)
        ctx.checkpoint("after our SYN", "SYN-RECEIVED", p, role="client")
        p.send("SA", seq=p.iss)                      # our SYN again, now acking theirs
        # Its SYN-ACK acked our SYN: ESTABLISHED. Ours carries a SYN in a synchronized state, which
        # Linux answers with an ACK (RFC 9293 §3.10.7.4, fourth: the challenge ACK of RFC 5961 §4).
        ack = p.expect(".", "its ACK of our SYN-ACK", seq=syn.seg.seq + 1, ack=p.iss + 1)
        err = connected(ks, ctx.timeout)
        check(err == 0, f"the kernel's connect() should succeed, got "
              f"{'nothing' if err is None else errno.errorcode.get(err, err)}")
        wscale = synack.seg.options["wscale"]
        if wscale is not None:
            ctx.notes.append(f"its SYN-ACK offers window scale {wscale} although our SYN "
                             f"did not (RFC 7323 §2.2), and its ACK advertises window {ack.seg.window}: "
                             f"shifted by that scale, which a peer that never agreed reads unscaled")
        ctx.checkpoint("after our SYN-ACK", "ESTABLISHED", p, role="client")
        p.abort()
        ctx.checkpoint("after our RST", "CLOSED", p, role="client")
    finally:
        ks.close()


_ACTIVE = "CLOSED>SYN-SENT>ESTABLISHED"
_PASSIVE = "LISTEN>SYN-RECEIVED>ESTABLISHED"
_HANDSHAKE = ">S <S. >."

_ALL: Tuple[Scenario, ...] = (
    Scenario("handshake", "SYN -> SYN-ACK (ack = ISN+1) -> ACK (ack = y+1), then RST to leave nothing open",
             handshake, f"{_HANDSHAKE} >R.", f"{_ACTIVE}>CLOSED", f"{_PASSIVE}>CLOSED", "client-rst"),
    Scenario("echo", "handshake, 'python' -> 'PYTHON', FIN/ACK close ending in our TIME-WAIT",
             echo, f"{_HANDSHAKE} >P. <.? <P. >. >F. <.? <F. >.",
             f"{_ACTIVE}>FIN-WAIT-1>FIN-WAIT-2>TIME-WAIT", f"{_PASSIVE}>CLOSE-WAIT>LAST-ACK>CLOSED", "fin"),
    Scenario("client-close", "handshake, then we close first: FIN, its FIN, our ACK; the server ends CLOSED",
             client_close, f"{_HANDSHAKE} >F. <.? <F. >.",
             f"{_ACTIVE}>FIN-WAIT-1>FIN-WAIT-2>TIME-WAIT", f"{_PASSIVE}>CLOSE-WAIT>LAST-ACK>CLOSED", "fin"),
    Scenario("server-close", "handshake, then the server closes first (idle timeout) and ends in TIME-WAIT",
             server_close, f"{_HANDSHAKE} <F. >. >F. <.",
             f"{_ACTIVE}>CLOSE-WAIT>LAST-ACK>CLOSED", f"{_PASSIVE}>FIN-WAIT-1>FIN-WAIT-2>TIME-WAIT", "fin"),
    Scenario("half-close", "data + our FIN, then the server (in CLOSE-WAIT) still sends its reply, then closes",
             half_close, f"{_HANDSHAKE} >FP. <. <P. >. <F. >.",
             f"{_ACTIVE}>FIN-WAIT-1>FIN-WAIT-2>TIME-WAIT", f"{_PASSIVE}>CLOSE-WAIT>LAST-ACK>CLOSED", "fin",
             target_ladder=" | ".join(f"{_HANDSHAKE} >FP. <.? {tail}" for tail in (
                 "<P. >. <.? <F. >.", "<P. <F. >. >.", "<FP. >."))),
    Scenario("rst-abort", "handshake, 'python' -> 'PYTHON', then RST: the kernel drops the connection",
             rst_abort, f"{_HANDSHAKE} >P. <.? <P. >R.", f"{_ACTIVE}>CLOSED", f"{_PASSIVE}>CLOSED", "client-rst"),
    Scenario("closed-port", "SYN to a port nothing listens on -> RST/ACK (seq 0, ack = ISN+1)",
             closed_port, ">S <R.", "CLOSED>SYN-SENT>CLOSED", "CLOSED", "rejected"),
    Scenario("no-answer", f"a kernel socket connect()s to the prober, which stays silent: its SYN is retried "
             f"(TCP_SYNCNT={NO_ANSWER_SYNCNT}) after waits of {', '.join(f'{g:g}' for g in NO_ANSWER_GAPS)} s, "
             f"then ETIMEDOUT (TCP_USER_TIMEOUT {NO_ANSWER_USER_TIMEOUT:g} s)",
             no_answer, " ".join(["<S"] * (1 + NO_ANSWER_SYNCNT)), "CLOSED>SYN-SENT", "UNKNOWN", "none",
             kernel_role="client"),
    Scenario("simultaneous-close", "the server's FIN crosses ours: it goes FIN-WAIT-1 -> CLOSING -> TIME-WAIT",
             simultaneous_close, f"{_HANDSHAKE} <F. >F. <. >.",
             "CLOSED>SYN-SENT>ESTABLISHED>FIN-WAIT-1>CLOSING>TIME-WAIT",
             f"{_PASSIVE}>FIN-WAIT-1>CLOSING>TIME-WAIT", "fin"),
    Scenario("simultaneous-open", "a kernel socket connect()s to us while we send our own SYN: "
             "both SYN-SENT -> SYN-RECEIVED -> ESTABLISHED, then our RST",
             simultaneous_open, "<S >S <S. >S. <. >R.", "CLOSED>SYN-SENT>SYN-RECEIVED>ESTABLISHED>CLOSED",
             "CLOSED>SYN-SENT>SYN-RECEIVED>ESTABLISHED>CLOSED", "server-rst", kernel_role="client"),
)

SCENARIOS: Dict[str, Scenario] = {s.name: s for s in _ALL}
# Scenarios that need this host's kernel whatever --target says: a kernel socket or a port known closed.
LOCAL_ONLY = frozenset({"closed-port", "no-answer", "simultaneous-open"})
