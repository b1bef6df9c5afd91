"""Wireshark's TCP analysis flags, per segment and counted per flow: a `FlowObserver`.

The reference is Wireshark's own definition: the user guide's "TCP Analysis" section and
`epan/dissectors/packet-tcp.c` (`tcp_analyze_sequence_number`, `verify_tcp_window_scaling`, the
conversation split in `dissect_tcp`). The checks below follow that function in its order, with its
variable names where they help a reader hold the two side by side (`nextseq`, `lastack`,
`maxseqtobeacked`, `dupacknum`, `lastnondupack`, `lastsegmentflags`). Every place where we differ
is marked "Differs from Wireshark" with the reason.

Which Wireshark: 4.0, the tshark installed here and the one that wrote the conformance summaries in
../shared/conformance/tshark. Wireshark's current source differs from 4.0 in five rules, none of them
described in the user guide; where they part ways we do what tshark 4.0 does, found with small crafted
captures (tests/test_anomalies.py keeps each as a unit case, named after its probe):
  - out-of-order: 4.0 times the segment from the one that set `nextseq` (as the code's comment says);
    the current source times it from the other direction's last segment;
  - the current source calls a segment lying wholly inside one still waiting for its ACK a
    retransmission, never out-of-order, and adds an out-of-order case after a pure ACK (issue 17214);
  - the current source accepts a zero-window-probe ACK that takes the probe's byte in (ack + 1,
    issue 10745) and calls the ACK that reopens the window after a probe a window update (issue 8404);
    4.0 calls both "ACKed unseen segment";
  - "ACKed unseen segment" once per gap: the current source re-arms it from the list of segments not yet
    acknowledged; 4.0 uses the `dupacknum = -1` mark described at `_ack_unseen`;
  - the current source adds two SACK-based fast-retransmission rules (RFC 6675).

Each direction of a flow keeps the state Wireshark keeps per `tcp_flow_t`: the next expected sequence
number, the last ACK and window it sent, its window-scale shift, the duplicate-ACK run and the flags
of its last segment; nothing grows with the packets. `fwd` is the sender of the segment at hand, `rev`
the other direction. Sequence numbers are compared modulo 2**32 as Wireshark's GT_SEQ/LT_SEQ do.

Reused ports are the flow table's call (`Flow.reused_port`, set when a SYN with a new ISN takes over a
4-tuple): Wireshark also starts a new conversation at a SYN with the same ISN after an RST or FIN, and
at a SYN-ACK with a new ISN; our flow table does not, so such a capture counts fewer reused ports.

Pure: no I/O, no clock (time is the segment's `ts`). `on_segment` runs per packet: about 1 µs a segment
here, most of it attribute reads and integer comparisons; nothing to report returns `()`.

Window scaling (RFC 7323 §2): raw 16-bit window fields are compared where Wireshark compares them
(zero window, window update, duplicate ACK, zero-window probe): a zero is zero under any shift, and two
raw values are equal exactly when their scaled values are (the shift of a direction never changes
after its SYN). Only "window full" needs bytes: the receiver's advertised window is shifted by the
scale it announced in its SYN, never for a window carried on a SYN itself (RFC 7323 §2.2), and not
at all when one side's SYN lacked the option (§2.3). When the receiver's handshake was not captured its
scale is unknown (Wireshark's win_scale -1) and "window full" is not evaluated for data sent to it,
as Wireshark does with its default "window scaling factor: not known" preference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from handshake_probe.core.segment import Segment

if TYPE_CHECKING:
    from handshake_probe.core.flow import Flow

__all__ = ["AnomalyObserver", "ANOMALY_KINDS", "checking_checksums"]

# TCP flag bits, as plain ints: IntFlag's `&` is ~1.4 µs a test (see segment.py).
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_SFR = _SYN | _FIN | _RST

_M = 0xFFFFFFFF
_HALF = 0x80000000


# Wireshark's sequence comparisons (packet-tcp.h), written out inline on the hot path:
#   GT_SEQ(x, y)  (x - y) as int32 > 0   ->  (y - x) & _M >= _HALF
#   LT_SEQ(x, y)  (x - y) as int32 < 0   ->  (x - y) & _M >= _HALF
#   LE_SEQ(x, y)                         ->  (y - x) & _M <  _HALF
def _gt(x: int, y: int) -> bool:
    return (y - x) & _M >= _HALF


# --- the flags a segment can get (Wireshark's TCP_A_* analysis flags, plus ours) -------------------
RETRANSMISSION = 1 << 0
FAST_RETRANSMISSION = 1 << 1
SPURIOUS_RETRANSMISSION = 1 << 2
OUT_OF_ORDER = 1 << 3
LOST_SEGMENT = 1 << 4
ACK_LOST_SEGMENT = 1 << 5
DUPLICATE_ACK = 1 << 6
ZERO_WINDOW = 1 << 7
ZERO_WINDOW_PROBE = 1 << 8
ZERO_WINDOW_PROBE_ACK = 1 << 9
WINDOW_FULL = 1 << 10
WINDOW_UPDATE = 1 << 11
KEEP_ALIVE = 1 << 12
KEEP_ALIVE_ACK = 1 << 13
REUSED_PORTS = 1 << 14
BAD_CHECKSUM = 1 << 15
_ANY_RETRANSMISSION = RETRANSMISSION | FAST_RETRANSMISSION | SPURIOUS_RETRANSMISSION

# The per-flow counters: fixed snake_case names, every one present in every record (zeros included), in
# this order. `retransmission` counts every segment Wireshark marks `tcp.analysis.retransmission`, which
# includes fast and spurious retransmissions (they carry that field too), so it compares with
# `tshark -Y tcp.analysis.retransmission`; `retransmission_syn/_fin/_data` split the same segments by what
# they carry (SYN or SYN-ACK; else FIN, with or without data; else data), so the three add up to it.
ANOMALY_KINDS: Tuple[str, ...] = (
    "retransmission", "retransmission_syn", "retransmission_fin", "retransmission_data",
    "fast_retransmission", "spurious_retransmission", "out_of_order", "lost_segment", "ack_lost_segment",
    "duplicate_ack", "zero_window", "zero_window_probe", "zero_window_probe_ack", "window_full",
    "window_update", "keep_alive", "keep_alive_ack", "reused_ports", "bad_checksum")

# flag -> (counter, Wireshark's Info-column text). The order is the order labels are listed for one
# segment: the order in which Wireshark's Info column shows them (its print functions prepend each one,
# so the last printed comes first), checked with tshark 4.0 on segments that carry two flags.
_LABELS: Tuple[Tuple[int, str, str], ...] = (
    (ZERO_WINDOW_PROBE_ACK, "zero_window_probe_ack", "TCP ZeroWindowProbeAck"),
    (ZERO_WINDOW, "zero_window", "TCP ZeroWindow"),
    (ZERO_WINDOW_PROBE, "zero_window_probe", "TCP ZeroWindowProbe"),
    (DUPLICATE_ACK, "duplicate_ack", ""),         # "TCP Dup ACK <frame>#<n>", made per segment
    (KEEP_ALIVE_ACK, "keep_alive_ack", "TCP Keep-Alive ACK"),
    (KEEP_ALIVE, "keep_alive", "TCP Keep-Alive"),
    (WINDOW_FULL, "window_full", "TCP Window Full"),
    (WINDOW_UPDATE, "window_update", "TCP Window Update"),
    (ACK_LOST_SEGMENT, "ack_lost_segment", "TCP ACKed unseen segment"),
    (LOST_SEGMENT, "lost_segment", "TCP Previous segment not captured"),
    (REUSED_PORTS, "reused_ports", "TCP Port numbers reused"),
    (OUT_OF_ORDER, "out_of_order", "TCP Out-Of-Order"),
    (SPURIOUS_RETRANSMISSION, "spurious_retransmission", "TCP Spurious Retransmission"),
    (FAST_RETRANSMISSION, "fast_retransmission", "TCP Fast Retransmission"),
    (RETRANSMISSION, "", "TCP Retransmission"),   # counted below with its kind
    (BAD_CHECKSUM, "bad_checksum", "TCP CHECKSUM INCORRECT"),
)

# Wireshark's window-scale states (tcp_flow_t.win_scale): -1 not known, -2 known not to be used.
_SCALE_UNKNOWN = -1
_SCALE_NONE = -2

# Fast retransmission: within 20 ms of the last duplicate ACK (Wireshark's constant).
_FAST_RETRANS_WINDOW = 0.020
# Out-of-order: within the handshake's RTT of the segment that set nextseq, or 3 ms without a handshake.
_OOO_DEFAULT = 0.003
_NEVER = float("inf")


class _Direction:
    """What Wireshark keeps per direction (tcp_flow_t and its tcp_analyze_seq_flow_info_t)."""

    __slots__ = ("nextseq", "nextseq_ts", "maxseqtobeacked", "lastack", "lastacktime", "window",
                 "win_scale", "window_on_syn", "dupacknum", "lastnondupack", "lastflags", "isn")

    def __init__(self) -> None:
        # None is "not seen yet", where Wireshark uses 0 (and so also mistakes a real 0 for unknown).
        self.nextseq: Optional[int] = None          # highest seq + len (+1 for SYN/FIN) seen
        self.nextseq_ts: Optional[float] = None     # time of the segment that set it
        self.maxseqtobeacked: Optional[int] = None  # end of the contiguous data seen: ACKs beyond it ack unseen data
        self.lastack: Optional[int] = None          # ACK field of its last segment (None: no ACK bit)
        self.lastacktime: Optional[float] = None    # time of its last segment
        self.window: Optional[int] = None           # raw window field of its last segment
        self.win_scale = _SCALE_UNKNOWN
        # Its last window came on a SYN: never scaled (RFC 7323 §2.2). Our reading of Wireshark's
        # `is_first_ack` in the window-full test, checked with tshark 4.0 (test case "on-syn-ack").
        self.window_on_syn = False
        self.dupacknum = 0                          # duplicate ACKs in the current run
        self.lastnondupack = 0                      # frame of the ACK the run duplicates
        self.lastflags = 0                          # analysis flags of its last segment
        self.isn: Optional[int] = None              # sequence number of its SYN


class AnomalyObserver:
    """Wireshark-style TCP anomalies for one flow. `FlowTable(observers=[AnomalyObserver])`.

    `check_checksums=True` also counts segments whose TCP checksum is wrong (`bad_checksum`, label
    "TCP CHECKSUM INCORRECT"); it needs segments decoded with `decode(..., verify_checksum=True)`, since
    the decoder is what has the bytes. Off by default, like Wireshark's "Validate the TCP checksum if
    possible" preference: with checksum offload the sending host's own segments are captured before the
    NIC fills the checksum in, so in many captures every outgoing checksum is "wrong".
    `checking_checksums` is the ready-made factory for that option."""

    __slots__ = ("_client", "_server", "_counts", "_check_checksums", "_first", "_mru_syn", "_first_rtt")

    def __init__(self, check_checksums: bool = False) -> None:
        self._client = _Direction()
        self._server = _Direction()
        self._counts = dict.fromkeys(ANOMALY_KINDS, 0)
        self._check_checksums = check_checksums
        self._first = True
        self._mru_syn: Optional[float] = None     # time of the latest SYN (Wireshark's ts_mru_syn)
        self._first_rtt: Optional[float] = None   # SYN to the first ACK without SYN (ts_first_rtt)

    # ------------------------------------------------------------------ the observer protocol
    def record(self, flow: "Flow") -> Dict[str, Any]:
        return {"anomalies": dict(self._counts)}

    def on_segment(self, flow: "Flow", seg: Segment, from_client: bool) -> Sequence[str]:
        if from_client:
            fwd, rev = self._client, self._server
        else:
            fwd, rev = self._server, self._client
        flags = seg.flags
        seq = seg.seq
        seglen = seg.payload_len
        window = seg.window
        ts = seg.ts
        # Differs from Wireshark: it keeps the ACK field of segments without the ACK bit too (a SYN's
        # ack is usually 0); we keep "none", so that such a field is never compared with a real ACK.
        ack = seg.ack if flags & _ACK else None
        f = 0
        dupack_label = ""

        if self._first:
            self._first = False
            # Reused ports: the flow table started this flow on a 4-tuple that carried an earlier one in
            # this capture, at a SYN with a new ISN (Wireshark sets TCP_A_REUSED_PORTS on that SYN).
            if flow.reused_port and flags & _SYN and not flags & _ACK:
                f |= REUSED_PORTS
        if flags & _SYN and not flags & _ACK:
            if fwd.isn == seq and fwd.maxseqtobeacked is not None:
                # A SYN again with the same ISN: Wireshark restores nextseq from maxseqtobeacked (an RST
                # sent with the ACK's value may have moved it; issue 17616) and calls it a retransmission.
                fwd.nextseq = fwd.maxseqtobeacked
            fwd.isn = seq
        if self._check_checksums and seg.checksum_ok is False:
            f |= BAD_CHECKSUM

        nextseq = fwd.nextseq
        # --- tcp_analyze_sequence_number, in Wireshark's order --------------------------------------
        # ZERO WINDOW PROBE: exactly one byte at the next expected seq while the receiver's window is 0.
        if seglen == 1 and seq == nextseq and rev.window == 0:
            f |= ZERO_WINDOW_PROBE
        else:
            # ZERO WINDOW: window 0 on a segment without SYN/FIN/RST.
            if window == 0 and not flags & _SFR:
                f |= ZERO_WINDOW
            # LOST SEGMENT ("previous segment not captured"): seq beyond the next expected one.
            if nextseq is not None and not flags & _RST and (nextseq - seq) & _M >= _HALF:
                f |= LOST_SEGMENT
                if fwd.dupacknum < 0:
                    fwd.dupacknum = 0       # re-arms "ACKed unseen segment" for the next gap (_ack_unseen)
            # KEEP-ALIVE: 0 or 1 byte at next expected seq - 1, no SYN/FIN/RST.
            if seglen <= 1 and nextseq is not None and seq == (nextseq - 1) & _M and not flags & _SFR:
                f |= KEEP_ALIVE
            same = seglen == 0 and seq == nextseq and ack == fwd.lastack and not flags & _SFR
            # WINDOW UPDATE: no data, same seq and ACK as before, a new non-zero window.
            if same and window and window != fwd.window:
                f |= WINDOW_UPDATE
            # WINDOW FULL: data reaching exactly the right edge of the receiver's advertised window.
            if (seglen and rev.win_scale != _SCALE_UNKNOWN and rev.lastack is not None
                    and rev.window is not None and not flags & _SFR):
                shift = 0 if rev.window_on_syn or rev.win_scale == _SCALE_NONE else rev.win_scale
                if (seq + seglen) & _M == (rev.lastack + (rev.window << shift)) & _M:
                    f |= WINDOW_FULL
            if same and window and window == fwd.window and rev.lastflags & KEEP_ALIVE:
                # KEEP-ALIVE ACK: repeats its last ACK and window after a keep-alive from the peer.
                f |= KEEP_ALIVE_ACK
            elif (seglen == 0 and window == 0 and fwd.window == 0 and seq == nextseq and ack == fwd.lastack
                  and not flags & _SFR and rev.lastflags & ZERO_WINDOW_PROBE):
                # ZERO WINDOW PROBE ACK: still window 0 and the same ACK, after a probe.
                f |= ZERO_WINDOW_PROBE_ACK
            elif same and window and window == fwd.window:
                # DUPLICATE ACK: no data, same seq, ACK and non-zero window as its last segment.
                # (-1 is the "ACKed unseen segment" mark, see _ack_unseen: that run starts at 1.)
                fwd.dupacknum = 1 if fwd.dupacknum < 0 else fwd.dupacknum + 1
                f |= DUPLICATE_ACK
                dupack_label = f"TCP Dup ACK {fwd.lastnondupack}#{fwd.dupacknum}"
        # finished_fwd: a new ACK value ends the run of duplicates.
        if ack != fwd.lastack:
            fwd.lastnondupack = seg.frame
            fwd.dupacknum = 0

        # ACKED UNSEEN SEGMENT: acknowledges beyond the contiguous data seen from the other direction.
        top = rev.maxseqtobeacked
        if ack is not None and top is not None and (top - ack) & _M >= _HALF:
            f |= _ack_unseen(rev)

        # RETRANSMISSION / FAST RETRANSMISSION / SPURIOUS / OUT-OF-ORDER: data (or SYN/FIN) that does not
        # advance the sequence number. A keep-alive is none of them.
        # (In-order data, the common case, skips the call: it starts at nextseq and ends beyond the
        # other side's last ACK, so it can be neither a retransmission nor spurious.)
        if ((seglen or flags & (_SYN | _FIN)) and not f & KEEP_ALIVE
                and (seq != nextseq or (seglen and rev.lastack
                                        and (rev.lastack - seq - seglen) & _M < _HALF))):
            f |= self._classify(fwd, rev, seq, seglen, flags, ts, nextseq)

        # --- bookkeeping after the checks (Wireshark's order again) ----------------------------------
        # Differs from Wireshark: it stops adding SYN/FIN's 1 to nextseq once a direction has 10000
        # unacknowledged segments listed (TCP_MAX_UNACKED_SEGMENTS); tshark 4.0's checks read nothing
        # else from that list, so we keep no list and always count the SYN/FIN.
        end = (seq + seglen + (1 if flags & (_SYN | _FIN) else 0)) & _M
        if (nextseq is None or (nextseq - end) & _M >= _HALF) and not f & ZERO_WINDOW_PROBE:
            fwd.nextseq = end                   # (a probe does not move the edge: it may not be kept)
            fwd.nextseq_ts = ts
        if fwd.maxseqtobeacked is None or seq == fwd.maxseqtobeacked:
            if not f & ZERO_WINDOW_PROBE:
                fwd.maxseqtobeacked = fwd.nextseq
        fwd.window = window
        fwd.window_on_syn = bool(flags & _SYN)
        fwd.lastack = ack
        fwd.lastacktime = ts
        fwd.lastflags = f

        if flags & _SYN:
            self._note_syn(fwd, rev, seg)
        elif flags & _ACK and self._mru_syn is not None and self._first_rtt is None:
            self._first_rtt = ts - self._mru_syn

        if not f:
            return ()
        return self._report(f, flags, dupack_label)

    # ------------------------------------------------------------------ the pieces
    def _classify(self, fwd: _Direction, rev: _Direction, seq: int, seglen: int, flags: int, ts: float,
                  nextseq: Optional[int]) -> int:
        """Which kind of retransmission (or out-of-order) a segment that carries sequence space is; 0 if
        it advances the sequence number. Wireshark's RETRANSMISSION block, fast retransmission first
        (its default "fast retransmission supersedes out-of-order" preference)."""
        seq_not_advanced = nextseq is not None and (seq - nextseq) & _M >= _HALF
        # Not a retransmission: more than one byte starting at nextseq - 1 (after a possible probe).
        if seglen > 1 and nextseq is not None and (nextseq - 1) & _M == seq:
            seq_not_advanced = False
        # SPURIOUS: all of its data was already acknowledged by the other side.
        if seglen and rev.lastack and (rev.lastack - seq - seglen) & _M < _HALF:
            return SPURIOUS_RETRANSMISSION
        if not seq_not_advanced:
            return 0
        # FAST: at the ACK value of >= 2 duplicate ACKs, within 20 ms of the other side's last segment.
        # (Wireshark's current source adds two SACK-based variants, RFC 6675; the user guide documents
        # only this rule, and tshark 4.0 has no other.)
        since = ts - rev.lastacktime if rev.lastacktime is not None else _NEVER
        if 0 <= since < _FAST_RETRANS_WINDOW and rev.dupacknum >= 2 and rev.lastack == seq:
            return FAST_RETRANSMISSION
        # OUT-OF-ORDER: within the handshake RTT (else 3 ms) of the segment that set nextseq, and not
        # ending exactly at nextseq (a copy of the newest segment is a retransmission).
        # A negative time (capture out of time order) is "long ago": Wireshark 4.0 computes it unsigned.
        since = ts - fwd.nextseq_ts if fwd.nextseq_ts is not None else _NEVER
        if (0 <= since < (self._first_rtt or _OOO_DEFAULT)
                and nextseq != (seq + seglen + (1 if flags & (_SYN | _FIN) else 0)) & _M):
            return OUT_OF_ORDER
        return RETRANSMISSION

    def _note_syn(self, fwd: _Direction, rev: _Direction, seg: Segment) -> None:
        """Window scale from a SYN or SYN-ACK (RFC 7323 §2.2), as Wireshark's verify_tcp_window_scaling:
        scaling is used only when both SYNs carry the option; a SYN-ACK without the SYN seen leaves the
        other direction's scale unknown."""
        ws = seg.options.wscale
        if ws is not None:
            fwd.win_scale = min(ws, 14)          # RFC 7323 §2.3: a shift above 14 is taken as 14
        if fwd.win_scale == _SCALE_UNKNOWN:      # this SYN has no option: nobody scales
            fwd.win_scale = rev.win_scale = _SCALE_NONE
        elif seg.flags & _ACK and rev.win_scale == _SCALE_NONE:
            fwd.win_scale = _SCALE_NONE          # the SYN had none: the SYN-ACK's offer is void
        if not seg.flags & _ACK:
            self._mru_syn = seg.ts

    def _report(self, f: int, flags: int, dupack_label: str) -> List[str]:
        counts = self._counts
        labels: List[str] = []
        for bit, kind, text in _LABELS:
            if f & bit:
                if kind:
                    counts[kind] += 1
                labels.append(text or dupack_label)
        if f & _ANY_RETRANSMISSION:
            counts["retransmission"] += 1
            if flags & _SYN:
                counts["retransmission_syn"] += 1
            elif flags & _FIN:
                counts["retransmission_fin"] += 1
            else:
                counts["retransmission_data"] += 1
        return labels


def _ack_unseen(rev: _Direction) -> int:
    """An ACK beyond the other direction's `maxseqtobeacked`: "ACKed unseen segment", once per gap.

    Wireshark 4.0: when `maxseqtobeacked` is beyond `nextseq` it is pulled back and the ACK flagged;
    otherwise the ACK is flagged only if the other direction is not marked, and the mark
    (`dupacknum = -1`) is set, so that a stream of ACKs for the same missing data says it once. The mark
    goes when the other direction changes its own ACK value (the reset at finished_fwd), sends a
    duplicate ACK (a run from 1), or sends a segment beyond a gap: the next unseen segment.
    (Wireshark compares the first test as unsigned integers; we compare in sequence space.)"""
    top, nextseq = rev.maxseqtobeacked, rev.nextseq
    if top is not None and nextseq is not None and _gt(top, nextseq):
        rev.maxseqtobeacked = nextseq
        return ACK_LOST_SEGMENT
    flagged = ACK_LOST_SEGMENT if rev.dupacknum == 0 else 0
    rev.dupacknum = -1
    return flagged


def checking_checksums() -> AnomalyObserver:
    """Factory for `FlowTable(observers=[checking_checksums])`: anomalies including bad TCP checksums."""
    return AnomalyObserver(check_checksums=True)
