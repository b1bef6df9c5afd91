"""Zeek's `conn_state` and `history` for one flow, computed the way Zeek computes them.

Zeek does not use RFC 9293's states: each endpoint has its own coarse state (INACTIVE, SYN_SENT,
SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET), `conn_state` is a function of the two final states,
and `history` is a string of letters appended while packets are processed, with rules of its own
(letters once per direction, or again only on a new sequence number, or on a log scale). A summary of
those rules does not reproduce Zeek's output on real traces (flips, stale direction flags, the
reassembler's content gaps), so this module follows Zeek's source, function by function.

Everything cited is zeek/zeek at a13de64fbbdb01f90961c04719b308fbbb6d199e (the commit the conformance
baselines were taken from):

- `scripts/base/protocols/conn/main.zeek` 54-144 (the letters), 184-241 (`conn_state()`)
- `src/packet_analysis/protocol/tcp/TCP.cc` 41-75 (`WantConnection`: the likely-server-port flip)
- `src/packet_analysis/protocol/ip/IPBasedAnalyzer.cc` 163-183 (`NewConn`: flip at creation)
- `src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc` (`TSA` below): `init_endpoint` 96-162,
  `get_relative_seq` 164-190, `update_history` 192-240, `update_window` 242-296, `init_peer` 432-453,
  `update_ack_seq` 455-465, `update_last_seq` 469-503, `Process` 505-653, `SetPartialStatus` 709-718,
  `UpdateInactiveState` 722-846, `UpdateSYN_SentState` 848-880, `UpdateEstablishedState` 882-914,
  `UpdateClosedState` 916-943, `FlipRoles` 1032-1046, `ConnectionClosed` 1197-1223
- `src/analyzer/protocol/tcp/TCP_Endpoint.cc` (`TE`): `SetState` 112-128, `Size` 130-162,
  `CheckHistory` 220-251 (the SYN-ACK flip), `DidRxmit`/`ZeroWindow`/`Gap` 266-282;
  `TCP_Endpoint.h` 21-29 (states), 196-206 (history masks)
- `src/session/Session.h` 196-204 (`CheckHistory`), `src/session/Session.cc` 208-227
  (`ScaledHistoryEntry`: the log scale), `src/Conn.cc` 302-351 (`FlipRoles` adds `^`)
- `src/analyzer/protocol/tcp/TCP_Reassembler.cc` 116-136 (`Gap`), 138-248 (`Undelivered`), 420-497
  (`DataSent`, `AckReceived`); `src/Reassem.cc` 179-243 (`Trim`)

What is deliberately not emulated (see the README's conformance section for its effect):
- Zeek's timers. Zeek removes a connection 5 s after an unanswered SYN (`tcp_attempt_delay`), 5 s
  after a close or reset, ... and a later packet then starts a *new* Zeek connection (another conn.log
  row). We keep one record per flow as the flow table splits them, with the history of the whole flow.
- Checksums: a segment whose `checksum_ok` is False (the decoder verified it) gets Zeek's `C`/`c` and is
  otherwise ignored, as Zeek does; None (not verified, the default) behaves as Zeek with checksums
  ignored. Zeek's `IsReuse` would then also split such a connection in two; we do not.
- Data cut by the snaplen: Zeek does not hand such payload to its reassembler (`TCP_Endpoint::DataSent`,
  `caplen >= len`), so an ACK of it is a content gap (`G`/`g`). A Segment does not say yet whether its
  payload was captured; a segment with a true `payload_cut` attribute is treated as Zeek treats it.
- Application analyzers (`SetSkip`), `x` (analysis limits), IP-level weirds.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from handshake_probe.core.segment import Segment

if TYPE_CHECKING:
    from handshake_probe.core.flow import Flow

# TCP flag bits as in segment.Flags (a Segment's flags is a plain int: `&` on ints is the cheap path).
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10

_M32 = 0xFFFFFFFF
_TOO_LARGE_SEQ_DELTA = 1048576            # TSA line 21

# Zeek's endpoint states (TCP_Endpoint.h 21-29), in Zeek's order; the names are what conn.log's
# documentation calls them.
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
STATE_NAMES = ("INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED", "RESET")

# History masks (TCP_Endpoint.h 196-206); the responder's are shifted 16 bits up (TE CheckHistory).
_HIST_SYN, _HIST_FIN, _HIST_RST, _HIST_FIN_RST = 0x1, 0x2, 0x4, 0x8
_HIST_DATA, _HIST_ACK, _HIST_MULTI_FLAG = 0x10, 0x20, 0x40

# adapter->first_packet_seen bits (TSA lines 19-20)
_ORIG, _RESP = 1, 2

# Zeek's `likely_server_ports` as a default `zeek -r` (base scripts) fills it: every TCP port a base
# protocol script registers with `Analyzer::register_for_ports` (scripts/base/frameworks/analyzer/
# main.zeek 240-260 adds them). Collected from scripts/base/protocols/*/main.zeek: dce-rpc 135, dnp3
# 20000, dns 53, finger 79, ftp 21 2811, http 80 81 631 1080 3128 8000 8080 8888, imap 143, irc
# 6666-6669, krb 88, ldap 389 3268, modbus 502, mqtt 1883, mysql 1434 3306, postgresql 5432, rdp 3389,
# redis 6379, smb 139 445, smtp 25 587, socks 1080, ssh 22, ssl 443 465 563 585 614 636 989 990 992
# 993 995 5223, syslog 514, xmpp 5222 5269.
LIKELY_SERVER_PORTS = frozenset({
    21, 22, 25, 53, 79, 80, 81, 88, 135, 139, 143, 389, 443, 445, 465, 502, 514, 563, 585, 587, 614,
    631, 636, 989, 990, 992, 993, 995, 1080, 1434, 1883, 2811, 3128, 3268, 3306, 3389, 5222, 5223,
    5269, 5432, 6379, 6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000})

# conn_state(): RSTOS0 needs the history to look like "SYN, then nothing but RST-ish" (main.zeek 209).
# Zeek's `pattern == string` is an anchored match.
_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*", re.S)

_MAX_ABOVE_HOLE_WITHOUT_ACKS = 16384      # tcp_max_above_hole_without_any_acks (init-bare.zeek)


def seq_delta(a: int, b: int) -> int:
    """`seq_delta()` (a - b as a signed 32-bit difference), Zeek's sequence comparison."""
    d = (a - b) & _M32
    return d - 0x100000000 if d & 0x80000000 else d


class ZeekEndpoint:
    """One side as `TCP_Endpoint` holds it, plus the little of `TCP_Reassembler` that finds content gaps.

    It stays with its host/port: when Zeek flips the connection, only `is_orig` changes (TSA FlipRoles
    swaps the orig/resp pointers and toggles each endpoint's `is_orig`)."""

    __slots__ = ("is_orig", "state", "prev_state", "peer", "start_seq", "last_seq", "ack_seq",
                 "seq_wraps", "ack_wraps", "hist_last_syn", "hist_last_fin", "hist_last_rst",
                 "fin_cnt", "fin_seq", "did_close", "rxmt_cnt", "rxmt_thresh", "win0_cnt",
                 "win0_thresh", "gap_cnt", "gap_thresh", "chk_cnt", "chk_thresh", "r_last", "r_trim",
                 "r_blocks", "r_skip")

    def __init__(self, is_orig: bool) -> None:
        self.is_orig = is_orig
        self.state = self.prev_state = INACTIVE
        self.peer: "ZeekEndpoint" = self
        self.start_seq = self.last_seq = self.ack_seq = 0
        self.seq_wraps = self.ack_wraps = 0
        self.hist_last_syn = self.hist_last_fin = self.hist_last_rst = 0
        self.fin_cnt = 0
        self.fin_seq = 0
        self.did_close = False
        # counters and next thresholds of the log-scale letters (TE constructor: thresholds start at 1)
        self.rxmt_cnt = self.win0_cnt = self.gap_cnt = self.chk_cnt = 0
        self.rxmt_thresh = self.win0_thresh = self.gap_thresh = self.chk_thresh = 1
        # reassembler (relative sequence numbers, first data byte is 1): last delivered, trimmed-to,
        # blocks waiting above a hole as [seq, upper) pairs in order, "gave up" flag.
        self.r_last = self.r_trim = 1
        self.r_blocks: List[List[int]] = []
        self.r_skip = False

    def set_state(self, new: int) -> None:
        if new != self.state:                     # TE SetState 112-128
            self.prev_state = self.state
            self.state = new

    def no_data_acked(self) -> bool:
        ack = (self.ack_wraps << 32) + self.ack_seq          # TCP_Endpoint.h NoDataAcked
        return ack == self.start_seq or ack == self.start_seq + 1

    def size(self) -> int:
        """TE Size 130-162: payload bytes by sequence numbers (conn_state's REJ test needs it)."""
        if (self.prev_state == SYN_SENT and self.state == RESET and self.peer.state == INACTIVE
                and not self.no_data_acked()):
            return 0
        last = (self.seq_wraps << 32) + self.last_seq
        ack = (self.ack_wraps << 32) + self.ack_seq
        size = ((last if last > ack else ack) - self.start_seq) % (1 << 64)   # uint64_t arithmetic
        if size:
            size -= 1                              # the SYN octet
        if self.fin_cnt > 0 and size:
            size -= 1                              # the FIN octet
        return size

    def relative(self, cur: int, last: int, wraps: int) -> Tuple[int, bool]:
        """TSA get_relative_seq 164-190: (relative sequence number, underflow)."""
        delta = seq_delta(cur, last)
        if delta < 0:
            if wraps and cur > last:
                wraps -= 1
        elif delta > 0 and cur < last:
            wraps += 1
        if wraps == 0:
            d = seq_delta(cur, self.start_seq & _M32)
            return d, d < 0
        return (wraps << 32) + cur - self.start_seq, False

    def init_seqs(self, start: int, last: int) -> None:
        self.start_seq = start & _M32
        self.ack_seq = start & _M32
        self.last_seq = last & _M32


class ZeekObserver:
    """Per-flow observer: Zeek's endpoint states, history and conn_state for this flow.

    Record fields: `conn_state` (S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH),
    `history` (Zeek's letters; upper case = Zeek's originator), and `zeek_orig` ("client" or "server":
    which of our flow's endpoints Zeek calls the originator, after any flip)."""

    __slots__ = ("_client", "_server", "_history", "_hist_seen", "_is_partial", "_first_seen",
                 "_started")

    def __init__(self) -> None:
        self._client = ZeekEndpoint(True)
        self._server = ZeekEndpoint(False)
        self._client.peer, self._server.peer = self._server, self._client
        self._history = ""
        self._hist_seen = 0
        self._is_partial = False
        self._first_seen = 0
        self._started = False

    # ----------------------------------------------------------------- orientation
    def _orig(self) -> ZeekEndpoint:
        return self._client if self._client.is_orig else self._server

    def _flip(self) -> None:
        """Connection::FlipRoles (Conn.cc 302-351) with TCPSessionAdapter::FlipRoles (TSA 1032-1046).
        `hist_seen` is not flipped: Zeek does not flip it either."""
        c, s = self._client, self._server
        c.is_orig, s.is_orig = not c.is_orig, not s.is_orig
        f = self._first_seen
        self._first_seen = (_RESP if f & _ORIG else 0) | (_ORIG if f & _RESP else 0)
        self._is_partial = False
        self._history += "^"

    def _create(self, seg: Segment, sender: ZeekEndpoint) -> None:
        """The first packet makes Zeek's connection: its sender is the originator, unless
        WantConnection (packet_analysis TCP.cc 41-75) asks for a flip by the likely-server-port rule."""
        self._started = True
        # Our endpoints are built client=orig; make the first packet's sender the originator.
        if not sender.is_orig:
            self._client.is_orig, self._server.is_orig = False, True
        flags = seg.flags
        if not flags & _SYN or flags & _ACK:
            if seg.sport in LIKELY_SERVER_PORTS:
                if seg.dport in LIKELY_SERVER_PORTS:
                    # both plausible: flip only a non-SYN towards a higher port
                    flip = not flags & _SYN and seg.sport < seg.dport
                else:
                    flip = True
                if flip and seg.dst != "255.255.255.255":     # NewConn: never towards a broadcast
                    # at creation there is no adapter yet: orientation and '^' only (Conn.cc FlipRoles)
                    c, s = self._client, self._server
                    c.is_orig, s.is_orig = not c.is_orig, not s.is_orig
                    self._history += "^"

    # ----------------------------------------------------------------- history
    def _check(self, ep: ZeekEndpoint, mask: int, code: str) -> bool:
        """TE CheckHistory 220-251 then Session::CheckHistory: True if the letter was already seen."""
        if (code == "A" or code == "D") and self._history == "H":
            # A connection that began with a SYN-ACK, now seeing productive traffic: Zeek flips it
            # and rewrites the history as if it had seen the missing SYN.
            self._flip()
            self._history = "^h"
            self._first_seen |= _ORIG            # SetFirstPacketSeen(true)
        if not ep.is_orig:
            mask <<= 16
            code = code.lower()
        if self._hist_seen & mask == 0:
            self._hist_seen |= mask
            self._history += code
            return False
        return True

    def _add(self, ep: ZeekEndpoint, code: str) -> None:
        self._history += code if ep.is_orig else code.lower()     # TE AddHistory 253-258

    def _scaled(self, ep: ZeekEndpoint, code: str, which: str) -> None:
        """Session::ScaledHistoryEntry (Session.cc 208-227): the letter at the 1st, 10th, 100th... event."""
        cnt = getattr(ep, which + "_cnt") + 1
        thresh = getattr(ep, which + "_thresh")
        setattr(ep, which + "_cnt", cnt)
        if cnt == thresh:
            self._history += code if ep.is_orig else code.lower()
            setattr(ep, which + "_thresh", thresh * 10)

    def _update_history(self, flags: int, ep: ZeekEndpoint, rel_seq: int, length: int) -> None:
        """TSA update_history 192-240."""
        syn, fin, rst = flags & _SYN, flags & _FIN, flags & _RST
        bits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
        if bits > 1:
            if fin and rst:
                self._check(ep, _HIST_FIN_RST, "I")
            else:
                self._check(ep, _HIST_MULTI_FLAG, "Q")
        elif bits == 1:
            if syn:
                code = "H" if flags & _ACK else "S"
                if self._check(ep, _HIST_SYN, code) and rel_seq != ep.hist_last_syn:
                    self._add(ep, code)
                ep.hist_last_syn = rel_seq
            if fin:
                # a FIN's sequence number counts at the end of its data
                if self._check(ep, _HIST_FIN, "F") and rel_seq + length != ep.hist_last_fin:
                    self._add(ep, "F")
                ep.hist_last_fin = rel_seq + length
            if rst:
                if self._check(ep, _HIST_RST, "R") and rel_seq != ep.hist_last_rst:
                    self._add(ep, "R")
                ep.hist_last_rst = rel_seq
        elif length:
            self._check(ep, _HIST_DATA, "D")
        elif flags & _ACK:
            self._check(ep, _HIST_ACK, "A")

    # ----------------------------------------------------------------- the packet
    def on_segment(self, flow: "Flow", seg: Segment, from_client: bool) -> Sequence[str]:
        """TSA Process 505-653, in its order."""
        ep, peer = (self._client, self._server) if from_client else (self._server, self._client)
        if not self._started:
            self._create(seg, ep)
        if seg.checksum_ok is False:
            # packet_analysis TCP.cc ValidateChecksum 166-177: a bad checksum is a `C`/`c` on the log
            # scale (TE ChecksumError) and the packet is not processed further. `checksum_ok` is None
            # unless the decoder was asked to verify: that is Zeek with checksums ignored.
            self._scaled(ep, "C", "chk")
            return ()
        is_orig = ep.is_orig        # Zeek's local `is_orig`: it goes stale if the history flips roles
        flags, base_seq, ack_seq, length = seg.flags, seg.seq, seg.ack, seg.payload_len
        syn, fin, rst, ack = flags & _SYN, flags & _FIN, flags & _RST, flags & _ACK

        # SetPartialStatus (TSA 709-718)
        if ep.is_orig:
            if not self._first_seen & _ORIG:
                self._is_partial = not syn or bool(ack)
        elif not self._first_seen & _RESP and not self._is_partial:
            self._is_partial = not syn

        seg_len = length + (1 if syn else 0) + (1 if fin else 0)
        if rst:
            seg_len -= length                   # an RST's payload is not part of the stream
        seq_end = (base_seq + seg_len) & _M32

        # init_endpoint (TSA 96-162)
        st = ep.state
        if st == INACTIVE:
            if syn:
                ep.init_seqs(base_seq, seq_end)
            else:
                # partial connection: number as though a SYN was seen, first packet not a duplicate
                ep.init_seqs(base_seq - 1, base_seq)
        elif st == SYN_SENT or st == SYN_ACK_SENT:
            if syn and base_seq != ep.start_seq:
                ep.init_seqs(base_seq, seq_end)
        elif st == ESTABLISHED or st == PARTIAL:
            if syn:
                ep.init_seqs(base_seq, seq_end)
        elif st == RESET:
            if syn and ep.prev_state == INACTIVE:
                ep.init_seqs(base_seq, seq_end)

        # get_relative_seq, inline for the usual case (no 32-bit wrap so far, none on this segment)
        last = ep.last_seq
        d = (base_seq - last) & _M32
        if ep.seq_wraps == 0 and not (0 < d < 0x80000000 and base_seq < last):
            rel_seq = (base_seq - ep.start_seq) & _M32
            if rel_seq & 0x80000000:
                rel_seq -= 0x100000000
            underflow = rel_seq < 0
        else:
            rel_seq, underflow = ep.relative(base_seq, last, ep.seq_wraps)

        if flags & (_SYN | _FIN | _RST):
            self._update_history(flags, ep, rel_seq, length)
        elif length or ack:
            # update_history's last branch, without a call when the letter is already there
            mask = _HIST_DATA if length else _HIST_ACK
            if not self._hist_seen & (mask if ep.is_orig else mask << 16) or self._history == "H":
                self._check(ep, mask, "D" if length else "A")

        # update_window (TSA 242-296): only the zero-window letter matters here
        if seg.window == 0 and not rst and ep.peer.state != CLOSED and ep.state != RESET:
            self._scaled(ep, "W", "win0")

        if fin:
            ep.fin_cnt += 1
            ep.fin_seq = rel_seq + seg_len

        rel_ack = 0
        if ack:
            if peer.state == INACTIVE:
                rel_ack = 1
                peer.init_seqs(ack_seq - 1, ack_seq - 1)      # init_peer (TSA 432-453)
            else:
                pa = peer.ack_seq
                d = (ack_seq - pa) & _M32                      # seq_delta(ack_seq, peer ack), unsigned
                if peer.ack_wraps == 0 and not (0 < d < 0x80000000 and ack_seq < pa):
                    rel_ack = (ack_seq - peer.start_seq) & _M32
                    ack_under = bool(rel_ack & 0x80000000)
                else:
                    rel_ack, ack_under = peer.relative(ack_seq, pa, peer.ack_wraps)
                if ack_under:
                    rel_ack = 0
                elif not rst:                                  # update_ack_seq (TSA 455-465)
                    delta_ack = d - 0x100000000 if d & 0x80000000 else d
                    if delta_ack > 0 and not (ack_seq == 0 and delta_ack > _TOO_LARGE_SEQ_DELTA):
                        if ack_seq < pa:
                            peer.ack_wraps += 1
                        peer.ack_seq = ack_seq

        # update_last_seq (TSA 469-503)
        delta_last = (seq_end - ep.last_seq) & _M32
        if delta_last & 0x80000000:
            delta_last -= 0x100000000
        if (syn or rst) and (delta_last > _TOO_LARGE_SEQ_DELTA or delta_last < -_TOO_LARGE_SEQ_DELTA):
            pass
        elif fin and ep.last_seq == ((ep.start_seq + 1) & _M32):
            self._update_last_seq(ep, seq_end)
        elif ep.state == RESET:
            pass
        elif delta_last > 0:
            if seq_end < ep.last_seq:                          # TCP_Endpoint.h UpdateLastSeq
                ep.seq_wraps += 1
            ep.last_seq = seq_end
        elif length > 0:
            self._scaled(ep, "T", "rxmt")                      # TE DidRxmit 266-270

        # UpdateStateMachine: without SYN, FIN or RST only an INACTIVE endpoint changes state
        if flags & (_SYN | _FIN | _RST) or ep.state == INACTIVE:
            if self._state_machine(ep, peer, base_seq, ack_seq, length, delta_last, is_orig, flags):
                ep.did_close = True                            # ConnectionClosed (TSA 1197-1223)

        if ack:
            # peer->AckReceived(rel_ack); TCP_Reassembler::AckReceived first caps an ACK of the FIN
            # (the FIN's octet is not content) and ignores what it already trimmed.
            if peer.fin_cnt > 0 and rel_ack >= peer.fin_seq:
                rel_ack = peer.fin_seq - 1
            if rel_ack > peer.r_trim:
                self._ack_received(peer, rel_ack)
        if length > 0 and not rst and not underflow and not getattr(seg, "payload_cut", False):
            # TE DataSent 164-173: payload cut by the snaplen never reaches the reassembler, so its
            # ACK shows as a content gap. Segments say so only if they carry `payload_cut` (not yet).
            self._data_sent(ep, rel_seq + 1 if syn else rel_seq, length)

        # CheckPIA_FirstPacket (TSA 1361-1373), with the possibly stale is_orig
        if is_orig:
            self._first_seen |= _ORIG
        else:
            self._first_seen |= _RESP
        return ()

    @staticmethod
    def _update_last_seq(ep: ZeekEndpoint, seq: int) -> None:
        if seq < ep.last_seq:                   # TCP_Endpoint.h UpdateLastSeq
            ep.seq_wraps += 1
        ep.last_seq = seq

    # ----------------------------------------------------------------- the state machine
    def _state_machine(self, ep: ZeekEndpoint, peer: ZeekEndpoint, base_seq: int, ack_seq: int,
                       length: int, delta_last: int, is_orig: bool, flags: int) -> bool:
        """TSA UpdateStateMachine 956-982 and the Update*State functions; returns do_close."""
        syn, fin, rst, ack = flags & _SYN, flags & _FIN, flags & _RST, flags & _ACK
        st = ep.state
        do_close = False
        if st == INACTIVE:                                      # UpdateInactiveState 722-846
            if syn:
                if is_orig:
                    ep.set_state(SYN_ACK_SENT if ack else SYN_SENT)
                else:
                    if not ack and peer.state == SYN_ACK_SENT and base_seq == ep.start_seq:
                        # SYN/SYN-ACK reversal: flip and establish
                        self._is_partial = False
                        self._flip()
                        peer.set_state(ESTABLISHED)
                        self._first_seen |= _ORIG
                    if peer.state == SYN_SENT:
                        peer.set_state(ESTABLISHED)
                    ep.set_state(ESTABLISHED)
            if fin:
                ep.set_state(CLOSED)
                do_close = True
            if rst:
                ep.set_state(RESET)
                do_close = True
            if ep.state == INACTIVE:                            # no control flag changed it
                if not is_orig and length == 0 and self._orig().state == SYN_SENT:
                    pass            # an ACK of the SYN before the SYN-ACK: not a partial connection
                elif ack and peer.state == ESTABLISHED:
                    # SYN-ACK seen, then an ACK: the SYN was missed; establish
                    ep.set_state(ESTABLISHED)
                    self._is_partial = False
                    self._first_seen |= _ORIG if is_orig else _RESP
                else:
                    ep.set_state(PARTIAL)
        elif st == SYN_SENT or st == SYN_ACK_SENT:              # UpdateSYN_SentState 848-880
            if fin:
                ep.set_state(CLOSED)
                do_close = True
            if rst:
                ep.set_state(RESET)
                do_close = True
        elif st == ESTABLISHED or st == PARTIAL:                # UpdateEstablishedState 882-914
            if syn and st == PARTIAL and peer.state == INACTIVE and not ack:
                ep.set_state(SYN_SENT)
            if fin and not rst:
                ep.set_state(CLOSED)
                if peer.state == RESET and peer.prev_state == CLOSED:
                    peer.set_state(CLOSED)       # FIN then RST from the peer: a normal close after all
                do_close = True
            if rst:
                ep.set_state(RESET)
                do_close = True
        elif st == CLOSED:                                      # UpdateClosedState 916-943
            if rst and ep.peer.state != CLOSED:
                ep.set_state(RESET)
                do_close = not ep.did_close
        return do_close                                         # RESET: UpdateResetState changes nothing

    # ----------------------------------------------------------------- content gaps
    def _gap(self, ep: ZeekEndpoint) -> None:
        """TCP_Reassembler::Gap 116-136: a letter only while both sides are established or cleanly
        closing (is_clean: ESTABLISHED, or CLOSED coming from ESTABLISHED)."""
        p = ep.peer
        if ((ep.state == ESTABLISHED or (ep.state == CLOSED and ep.prev_state == ESTABLISHED))
                and (p.state == ESTABLISHED or (p.state == CLOSED and p.prev_state == ESTABLISHED))):
            self._scaled(ep, "G", "gap")

    def _deliver(self, ep: ZeekEndpoint) -> None:
        """Deliver the blocks that now continue the delivered stream (BlockInserted)."""
        blocks = ep.r_blocks
        while blocks and blocks[0][0] <= ep.r_last:
            seq, upper = blocks.pop(0)
            if upper > ep.r_last:
                ep.r_last = upper

    def _data_sent(self, ep: ZeekEndpoint, seq: int, length: int) -> None:
        """TCP_Reassembler::DataSent 420-468 and Reassembler::NewBlock, as intervals."""
        if ep.r_skip:
            return
        upper = seq + length
        acked = (ep.ack_wraps << 32) + ep.ack_seq - ep.start_seq
        if seq < acked:
            if upper <= acked:
                return                          # delivered and acknowledged already
            seq = acked
        if upper <= ep.r_trim:
            return
        if seq < ep.r_trim:
            seq = ep.r_trim
        if seq <= ep.r_last:
            if upper > ep.r_last:
                ep.r_last = upper
                self._deliver(ep)
        else:
            blocks = ep.r_blocks
            i = 0
            while i < len(blocks) and blocks[i][1] < seq:
                i += 1
            j = i
            while j < len(blocks) and blocks[j][0] <= upper:
                seq, upper = min(seq, blocks[j][0]), max(upper, blocks[j][1])
                j += 1
            blocks[i:j] = [[seq, upper]]
            # tcp_max_above_hole_without_any_acks: give up on a stream nobody acknowledges
            if ep.no_data_acked() and blocks[-1][1] - ep.r_last > _MAX_ABOVE_HOLE_WITHOUT_ACKS:
                blocks.clear()
                ep.r_skip = True

    def _ack_received(self, ep: ZeekEndpoint, seq: int) -> None:
        """TCP_Reassembler::AckReceived 470-497 with Reassembler Trim (Reassem.cc 179-243) and
        TCP_Reassembler::Undelivered 138-248: acknowledged bytes never seen are a content gap.
        `seq` is already capped below the FIN and above the trimmed point (see on_segment)."""
        if seq > ep.r_last:
            # Undelivered(seq)
            if seq <= 2 and self._is_partial:
                pass    # faked initial sequence numbers of a partial connection: not a gap
            else:
                if not ep.r_skip:
                    blocks = ep.r_blocks
                    while blocks and blocks[0][0] < seq:
                        self._gap(ep)           # the hole before the block
                        ep.r_last = blocks[0][0]
                        self._deliver(ep)
                    if seq > ep.r_last:
                        self._gap(ep)
                if seq > ep.r_last:
                    ep.r_last = seq
        blocks = ep.r_blocks
        while blocks and blocks[0][1] <= seq:
            blocks.pop(0)
        self._deliver(ep)
        ep.r_trim = seq

    # ----------------------------------------------------------------- results
    def conn_state(self) -> str:
        """main.zeek conn_state() 184-229, on Zeek's originator and responder."""
        o = self._orig()
        r = o.peer
        os_, rs = o.state, r.state
        o_inactive = os_ == INACTIVE or os_ == PARTIAL
        r_inactive = rs == INACTIVE or rs == PARTIAL
        if rs == RESET:
            if (os_ == SYN_SENT or os_ == SYN_ACK_SENT
                    or (os_ == RESET and o.size() == 0 and r.size() == 0)):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == RESET:
            if r_inactive:
                return "RSTOS0" if _RSTOS0.fullmatch(self._history) else "OTH"
            return "RSTO"
        if rs == CLOSED and os_ == CLOSED:
            return "SF"
        if os_ == CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == CLOSED:
            return "SHR" if o_inactive else "S3"
        if os_ == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"

    @property
    def history(self) -> str:
        return self._history

    @property
    def orig_is_client(self) -> bool:
        return self._client.is_orig

    def states(self) -> Dict[str, str]:
        """Zeek's final endpoint states, by our roles (for tests and for curious users)."""
        return {"client": STATE_NAMES[self._client.state], "server": STATE_NAMES[self._server.state]}

    def record(self, flow: "Flow") -> Dict[str, Any]:
        return {"conn_state": self.conn_state(), "history": self._history,
                "zeek_orig": "client" if self._client.is_orig else "server"}


def zeek_row_tuple(flow: "Flow", observer: ZeekObserver) -> Tuple[str, int, str, int]:
    """(orig_h, orig_p, resp_h, resp_p) as Zeek would log this flow's connection."""
    o, r = (flow.client, flow.server) if observer.orig_is_client else (flow.server, flow.client)
    return (o.addr, o.port, r.addr, r.port)


def find_zeek(flow: "Flow") -> Optional[ZeekObserver]:
    """The flow's ZeekObserver, if the table was built with one."""
    for observer in flow.observers:
        if isinstance(observer, ZeekObserver):
            return observer
    return None
