//! Zeek's `conn_state` and `history` for one flow, computed the way Zeek computes them.
//!
//! Zeek does not use RFC 9293's states: each endpoint has its own coarse state (INACTIVE, SYN_SENT,
//! SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET), `conn_state` is a function of the two final
//! states, and `history` is a string of letters appended while packets are processed, with rules of
//! its own (letters once per direction, or again only on a new sequence number, or on a log scale). A
//! summary of those rules does not reproduce Zeek's output on real traces (flips, stale direction
//! flags, the reassembler's content gaps), so this module follows Zeek's source, function by function
//! (a port of handshake_probe/core/zeek.py, in the same order).
//!
//! Everything cited is zeek/zeek at a13de64fbbdb01f90961c04719b308fbbb6d199e (the commit the
//! conformance baselines were taken from):
//!
//! - `scripts/base/protocols/conn/main.zeek` 54-144 (the letters), 184-241 (`conn_state()`)
//! - `src/packet_analysis/protocol/tcp/TCP.cc` 41-75 (`WantConnection`: the likely-server-port flip)
//! - `src/packet_analysis/protocol/ip/IPBasedAnalyzer.cc` 163-183 (`NewConn`: flip at creation)
//! - `src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc` (`TSA` below): `init_endpoint` 96-162,
//!   `get_relative_seq` 164-190, `update_history` 192-240, `update_window` 242-296, `init_peer`
//!   432-453, `update_ack_seq` 455-465, `update_last_seq` 469-503, `Process` 505-653,
//!   `SetPartialStatus` 709-718, `UpdateInactiveState` 722-846, `UpdateSYN_SentState` 848-880,
//!   `UpdateEstablishedState` 882-914, `UpdateClosedState` 916-943, `FlipRoles` 1032-1046,
//!   `ConnectionClosed` 1197-1223
//! - `src/analyzer/protocol/tcp/TCP_Endpoint.cc` (`TE`): `SetState` 112-128, `Size` 130-162,
//!   `CheckHistory` 220-251 (the SYN-ACK flip), `DidRxmit`/`ZeroWindow`/`Gap` 266-282;
//!   `TCP_Endpoint.h` 21-29 (states), 196-206 (history masks)
//! - `src/session/Session.h` 196-204 (`CheckHistory`), `src/session/Session.cc` 208-227
//!   (`ScaledHistoryEntry`: the log scale), `src/Conn.cc` 302-351 (`FlipRoles` adds `^`)
//! - `src/analyzer/protocol/tcp/TCP_Reassembler.cc` 116-136 (`Gap`), 138-248 (`Undelivered`),
//!   420-497 (`DataSent`, `AckReceived`); `src/Reassem.cc` 179-243 (`Trim`)
//!
//! What is deliberately not emulated (see the README's conformance section for its effect):
//! - Zeek's timers. Zeek removes a connection 5 s after an unanswered SYN (`tcp_attempt_delay`),
//!   5 s after a close or reset, ... and a later packet then starts a *new* Zeek connection (another
//!   conn.log row). We keep one record per flow as the flow table splits them, with the history of
//!   the whole flow.
//! - Checksums: a segment whose `checksum_ok` is `Some(false)` (the decoder verified it) gets Zeek's
//!   `C`/`c` and is otherwise ignored, as Zeek does; `None` (not verified, the default) behaves as
//!   Zeek with checksums ignored. Zeek's `IsReuse` would then also split such a connection in two;
//!   we do not.
//! - Data cut by the snaplen: Zeek does not hand such payload to its reassembler
//!   (`TCP_Endpoint::DataSent`, `caplen >= len`), so an ACK of it is a content gap (`G`/`g`). A
//!   Segment does not say yet whether its payload was captured (the Python reference reads an
//!   optional `payload_cut` attribute that no Segment carries); when it does, `data_sent` is where
//!   it goes.
//! - Application analyzers (`SetSkip`), `x` (analysis limits), IP-level weirds.
//!
//! Arithmetic: Zeek's relative sequence numbers are 64-bit (`(wraps << 32) + seq - start`) and the
//! Python reference computes them with unbounded ints; here they are `Rel` (i128), which holds every
//! value a u64 wrap counter can produce, so results equal Python's exactly and nothing can overflow.

use crate::observe::Observer;
use crate::record::Emit;
use crate::segment::{Addr, Segment, ACK, FIN, RST, SYN};

/// A relative sequence number (Zeek's int64 `get_relative_seq`), wide enough never to overflow.
type Rel = i128;

const TOO_LARGE_SEQ_DELTA: i32 = 1_048_576; // TSA line 21

/// tcp_max_above_hole_without_any_acks (init-bare.zeek)
const MAX_ABOVE_HOLE_WITHOUT_ACKS: Rel = 16384;

/// Zeek's endpoint states (TCP_Endpoint.h 21-29), in Zeek's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZeekState {
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

impl ZeekState {
    /// The names conn.log's documentation uses.
    pub fn name(self) -> &'static str {
        match self {
            ZeekState::Inactive => "INACTIVE",
            ZeekState::SynSent => "SYN_SENT",
            ZeekState::SynAckSent => "SYN_ACK_SENT",
            ZeekState::Partial => "PARTIAL",
            ZeekState::Established => "ESTABLISHED",
            ZeekState::Closed => "CLOSED",
            ZeekState::Reset => "RESET",
        }
    }
}

/// conn.log's `conn_state` vocabulary (main.zeek 184-241), every value `conn_state()` can return.
pub const CONN_STATES: [&str; 13] = [
    "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH",
];

// History masks (TCP_Endpoint.h 196-206); the responder's are shifted 16 bits up (TE CheckHistory).
const HIST_SYN: u32 = 0x1;
const HIST_FIN: u32 = 0x2;
const HIST_RST: u32 = 0x4;
const HIST_FIN_RST: u32 = 0x8;
const HIST_DATA: u32 = 0x10;
const HIST_ACK: u32 = 0x20;
const HIST_MULTI_FLAG: u32 = 0x40;

// adapter->first_packet_seen bits (TSA lines 19-20)
const ORIG: u8 = 1;
const RESP: u8 = 2;

/// Zeek's `likely_server_ports` as a default `zeek -r` (base scripts) fills it: every TCP port a
/// base protocol script registers with `Analyzer::register_for_ports` (scripts/base/frameworks/
/// analyzer/main.zeek 240-260 adds them). Collected from scripts/base/protocols/*/main.zeek:
/// dce-rpc 135, dnp3 20000, dns 53, finger 79, ftp 21 2811, http 80 81 631 1080 3128 8000 8080 8888,
/// imap 143, irc 6666-6669, krb 88, ldap 389 3268, modbus 502, mqtt 1883, mysql 1434 3306,
/// postgresql 5432, rdp 3389, redis 6379, smb 139 445, smtp 25 587, socks 1080, ssh 22, ssl 443 465
/// 563 585 614 636 989 990 992 993 995 5223, syslog 514, xmpp 5222 5269. Sorted (binary search).
pub const LIKELY_SERVER_PORTS: [u16; 49] = [
    21, 22, 25, 53, 79, 80, 81, 88, 135, 139, 143, 389, 443, 445, 465, 502, 514, 563, 585, 587,
    614, 631, 636, 989, 990, 992, 993, 995, 1080, 1434, 1883, 2811, 3128, 3268, 3306, 3389, 5222,
    5223, 5269, 5432, 6379, 6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000,
];

pub fn is_likely_server_port(port: u16) -> bool {
    LIKELY_SERVER_PORTS.binary_search(&port).is_ok()
}

/// conn_state(): RSTOS0 needs the history to look like "SYN, then nothing but RST-ish" (main.zeek
/// 209): Zeek's anchored match of `/\^?S[^HAFGIQ]*R.*/`. `[^HAFGIQ]*` may run over R's too, so the
/// pattern matches exactly when, after an optional `^` and an `S`, an `R` comes before any of
/// H A F G I Q (the rest is free).
fn matches_rstos0(history: &str) -> bool {
    let h = history.as_bytes();
    let h = h.strip_prefix(b"^").unwrap_or(h);
    let Some(rest) = h.strip_prefix(b"S") else {
        return false;
    };
    for &c in rest {
        match c {
            b'R' => return true,
            b'H' | b'A' | b'F' | b'G' | b'I' | b'Q' => return false,
            _ => {}
        }
    }
    false
}

/// `seq_delta()` (a - b as a signed 32-bit difference), Zeek's sequence comparison.
#[inline]
fn seq_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// The log-scale letters' counters (Session::ScaledHistoryEntry), one slot each in an endpoint.
#[derive(Clone, Copy)]
enum Scaled {
    Rxmt = 0,
    Win0 = 1,
    Gap = 2,
    Chk = 3,
}

const CLIENT: usize = 0;
const SERVER: usize = 1;

/// One side as `TCP_Endpoint` holds it, plus the little of `TCP_Reassembler` that finds content gaps.
///
/// It stays with its host/port: when Zeek flips the connection, only `is_orig` changes (TSA
/// FlipRoles swaps the orig/resp pointers and toggles each endpoint's `is_orig`). Its peer is the
/// other slot of `ZeekObserver::eps`.
#[derive(Clone, Debug)]
struct ZeekEndpoint {
    is_orig: bool,
    state: ZeekState,
    prev_state: ZeekState,
    start_seq: u32,
    last_seq: u32,
    ack_seq: u32,
    seq_wraps: u64,
    ack_wraps: u64,
    hist_last_syn: Rel,
    hist_last_fin: Rel,
    hist_last_rst: Rel,
    fin_cnt: u64,
    fin_seq: Rel,
    did_close: bool,
    /// counters and next thresholds of the log-scale letters, by `Scaled`
    /// (TE constructor: thresholds start at 1)
    scaled_cnt: [u64; 4],
    scaled_thresh: [u64; 4],
    /// reassembler (relative sequence numbers, first data byte is 1): last delivered, trimmed-to,
    /// blocks waiting above a hole as [seq, upper) pairs in order, "gave up" flag.
    r_last: Rel,
    r_trim: Rel,
    r_blocks: Vec<(Rel, Rel)>,
    r_skip: bool,
}

impl ZeekEndpoint {
    fn new(is_orig: bool) -> ZeekEndpoint {
        ZeekEndpoint {
            is_orig,
            state: ZeekState::Inactive,
            prev_state: ZeekState::Inactive,
            start_seq: 0,
            last_seq: 0,
            ack_seq: 0,
            seq_wraps: 0,
            ack_wraps: 0,
            hist_last_syn: 0,
            hist_last_fin: 0,
            hist_last_rst: 0,
            fin_cnt: 0,
            fin_seq: 0,
            did_close: false,
            scaled_cnt: [0; 4],
            scaled_thresh: [1; 4],
            r_last: 1,
            r_trim: 1,
            r_blocks: Vec::new(),
            r_skip: false,
        }
    }

    fn set_state(&mut self, new: ZeekState) {
        if new != self.state {
            // TE SetState 112-128
            self.prev_state = self.state;
            self.state = new;
        }
    }

    /// `(wraps << 32) + seq` as Zeek's 64-bit absolute sequence number.
    #[inline]
    fn absolute(wraps: u64, seq: u32) -> Rel {
        (Rel::from(wraps) << 32) + Rel::from(seq)
    }

    fn no_data_acked(&self) -> bool {
        // TCP_Endpoint.h NoDataAcked (start_seq + 1 is not reduced mod 2**32 there either)
        let ack = Self::absolute(self.ack_wraps, self.ack_seq);
        let start = Rel::from(self.start_seq);
        ack == start || ack == start + 1
    }

    /// TE Size 130-162: payload bytes by sequence numbers (conn_state's REJ test needs it).
    fn size(&self, peer_state: ZeekState) -> u64 {
        if self.prev_state == ZeekState::SynSent
            && self.state == ZeekState::Reset
            && peer_state == ZeekState::Inactive
            && !self.no_data_acked()
        {
            return 0;
        }
        let last = Self::absolute(self.seq_wraps, self.last_seq);
        let ack = Self::absolute(self.ack_wraps, self.ack_seq);
        // uint64_t arithmetic: the cast keeps the low 64 bits, i.e. Python's `% (1 << 64)`
        let mut size = (last.max(ack) - Rel::from(self.start_seq)) as u64;
        size = size.saturating_sub(1); // the SYN octet (none to take off an empty size)
        if self.fin_cnt > 0 && size != 0 {
            size -= 1; // the FIN octet
        }
        size
    }

    /// TSA get_relative_seq 164-190: (relative sequence number, underflow).
    fn relative(&self, cur: u32, last: u32, wraps: u64) -> (Rel, bool) {
        let delta = seq_delta(cur, last);
        let mut wraps = wraps;
        if delta < 0 {
            if wraps != 0 && cur > last {
                wraps -= 1;
            }
        } else if delta > 0 && cur < last {
            wraps = wraps.saturating_add(1);
        }
        if wraps == 0 {
            let d = seq_delta(cur, self.start_seq);
            return (Rel::from(d), d < 0);
        }
        (
            Self::absolute(wraps, cur) - Rel::from(self.start_seq),
            false,
        )
    }

    fn init_seqs(&mut self, start: u32, last: u32) {
        self.start_seq = start;
        self.ack_seq = start;
        self.last_seq = last;
    }

    /// TCP_Endpoint.h UpdateLastSeq
    fn update_last_seq(&mut self, seq: u32) {
        if seq < self.last_seq {
            self.seq_wraps = self.seq_wraps.saturating_add(1);
        }
        self.last_seq = seq;
    }

    /// Deliver the blocks that now continue the delivered stream (BlockInserted).
    fn deliver(&mut self) {
        let mut n = 0;
        for &(seq, upper) in &self.r_blocks {
            if seq > self.r_last {
                break;
            }
            if upper > self.r_last {
                self.r_last = upper;
            }
            n += 1;
        }
        self.r_blocks.drain(..n);
    }
}

/// Per-flow observer: Zeek's endpoint states, history and conn_state for this flow.
///
/// Record fields: `conn_state` (one of `CONN_STATES`), `history` (Zeek's letters; upper case =
/// Zeek's originator), and `zeek_orig` ("client" or "server": which of our flow's endpoints Zeek
/// calls the originator, after any flip).
#[derive(Clone, Debug)]
pub struct ZeekObserver {
    /// [client, server]; each endpoint's peer is the other slot
    eps: [ZeekEndpoint; 2],
    history: String,
    hist_seen: u32,
    is_partial: bool,
    first_seen: u8,
    started: bool,
}

impl Default for ZeekObserver {
    fn default() -> Self {
        Self::new()
    }
}

impl ZeekObserver {
    pub fn new() -> Self {
        ZeekObserver {
            eps: [ZeekEndpoint::new(true), ZeekEndpoint::new(false)],
            history: String::new(),
            hist_seen: 0,
            is_partial: false,
            first_seen: 0,
            started: false,
        }
    }

    // ----------------------------------------------------------------- orientation
    fn orig(&self) -> usize {
        if self.eps[CLIENT].is_orig {
            CLIENT
        } else {
            SERVER
        }
    }

    /// Connection::FlipRoles (Conn.cc 302-351) with TCPSessionAdapter::FlipRoles (TSA 1032-1046).
    /// `hist_seen` is not flipped: Zeek does not flip it either.
    fn flip(&mut self) {
        for ep in &mut self.eps {
            ep.is_orig = !ep.is_orig;
        }
        let f = self.first_seen;
        self.first_seen =
            (if f & ORIG != 0 { RESP } else { 0 }) | (if f & RESP != 0 { ORIG } else { 0 });
        self.is_partial = false;
        self.history.push('^');
    }

    /// The first packet makes Zeek's connection: its sender is the originator, unless
    /// WantConnection (packet_analysis TCP.cc 41-75) asks for a flip by the likely-server-port rule.
    fn create(&mut self, seg: &Segment, sender: usize) {
        self.started = true;
        // Our endpoints are built client=orig; make the first packet's sender the originator.
        if !self.eps[sender].is_orig {
            self.eps[CLIENT].is_orig = false;
            self.eps[SERVER].is_orig = true;
        }
        let flags = seg.flags;
        if (flags & SYN == 0 || flags & ACK != 0) && is_likely_server_port(seg.sport) {
            let flip = if is_likely_server_port(seg.dport) {
                // both plausible: flip only a non-SYN towards a higher port
                flags & SYN == 0 && seg.sport < seg.dport
            } else {
                true
            };
            // NewConn: never towards a broadcast
            if flip && seg.dst != Addr::V4([255, 255, 255, 255]) {
                // at creation there is no adapter yet: orientation and '^' only (Conn.cc FlipRoles)
                for ep in &mut self.eps {
                    ep.is_orig = !ep.is_orig;
                }
                self.history.push('^');
            }
        }
    }

    // ----------------------------------------------------------------- history
    /// TE CheckHistory 220-251 then Session::CheckHistory: true if the letter was already seen.
    /// `code` is the originator's (upper case) letter.
    fn check(&mut self, e: usize, mask: u32, code: u8) -> bool {
        if (code == b'A' || code == b'D') && self.history == "H" {
            // A connection that began with a SYN-ACK, now seeing productive traffic: Zeek flips it
            // and rewrites the history as if it had seen the missing SYN.
            self.flip();
            self.history.clear();
            self.history.push_str("^h");
            self.first_seen |= ORIG; // SetFirstPacketSeen(true)
        }
        let (mask, code) = if self.eps[e].is_orig {
            (mask, code)
        } else {
            (mask << 16, code.to_ascii_lowercase())
        };
        if self.hist_seen & mask == 0 {
            self.hist_seen |= mask;
            self.history.push(char::from(code));
            return false;
        }
        true
    }

    /// TE AddHistory 253-258
    fn add(&mut self, e: usize, code: u8) {
        let code = if self.eps[e].is_orig {
            code
        } else {
            code.to_ascii_lowercase()
        };
        self.history.push(char::from(code));
    }

    /// Session::ScaledHistoryEntry (Session.cc 208-227): the letter at the 1st, 10th, 100th... event.
    fn scaled(&mut self, e: usize, code: u8, which: Scaled) {
        let ep = &mut self.eps[e];
        let i = which as usize;
        let cnt = ep.scaled_cnt[i].saturating_add(1);
        ep.scaled_cnt[i] = cnt;
        if cnt == ep.scaled_thresh[i] {
            ep.scaled_thresh[i] = ep.scaled_thresh[i].saturating_mul(10);
            self.add(e, code);
        }
    }

    /// TSA update_history 192-240.
    fn update_history(&mut self, flags: u16, e: usize, rel_seq: Rel, length: u32) {
        let (syn, fin, rst) = (flags & SYN != 0, flags & FIN != 0, flags & RST != 0);
        let bits = u8::from(syn) + u8::from(fin) + u8::from(rst);
        if bits > 1 {
            if fin && rst {
                self.check(e, HIST_FIN_RST, b'I');
            } else {
                self.check(e, HIST_MULTI_FLAG, b'Q');
            }
        } else if bits == 1 {
            if syn {
                let code = if flags & ACK != 0 { b'H' } else { b'S' };
                if self.check(e, HIST_SYN, code) && rel_seq != self.eps[e].hist_last_syn {
                    self.add(e, code);
                }
                self.eps[e].hist_last_syn = rel_seq;
            }
            if fin {
                // a FIN's sequence number counts at the end of its data
                let at = rel_seq + Rel::from(length);
                if self.check(e, HIST_FIN, b'F') && at != self.eps[e].hist_last_fin {
                    self.add(e, b'F');
                }
                self.eps[e].hist_last_fin = at;
            }
            if rst {
                if self.check(e, HIST_RST, b'R') && rel_seq != self.eps[e].hist_last_rst {
                    self.add(e, b'R');
                }
                self.eps[e].hist_last_rst = rel_seq;
            }
        } else if length != 0 {
            self.check(e, HIST_DATA, b'D');
        } else if flags & ACK != 0 {
            self.check(e, HIST_ACK, b'A');
        }
    }

    // ----------------------------------------------------------------- the packet
    /// TSA Process 505-653, in its order.
    fn process(&mut self, seg: &Segment, from_client: bool) {
        let (e, p) = if from_client {
            (CLIENT, SERVER)
        } else {
            (SERVER, CLIENT)
        };
        if !self.started {
            self.create(seg, e);
        }
        if seg.checksum_ok == Some(false) {
            // packet_analysis TCP.cc ValidateChecksum 166-177: a bad checksum is a `C`/`c` on the
            // log scale (TE ChecksumError) and the packet is not processed further. `checksum_ok`
            // is None unless the decoder was asked to verify: that is Zeek with checksums ignored.
            self.scaled(e, b'C', Scaled::Chk);
            return;
        }
        // Zeek's local `is_orig`: it goes stale if the history flips roles
        let is_orig = self.eps[e].is_orig;
        let (flags, base_seq, ack_seq, length) = (seg.flags, seg.seq, seg.ack, seg.payload_len);
        let (syn, fin, rst, ack) = (
            flags & SYN != 0,
            flags & FIN != 0,
            flags & RST != 0,
            flags & ACK != 0,
        );

        // SetPartialStatus (TSA 709-718)
        if self.eps[e].is_orig {
            if self.first_seen & ORIG == 0 {
                self.is_partial = !syn || ack;
            }
        } else if self.first_seen & RESP == 0 && !self.is_partial {
            self.is_partial = !syn;
        }

        let mut seg_len = i64::from(length) + i64::from(syn) + i64::from(fin);
        if rst {
            seg_len -= i64::from(length); // an RST's payload is not part of the stream
        }
        // seg_len is in [0, 2**32 + 1]: the truncating cast is the reduction mod 2**32
        let seq_end = base_seq.wrapping_add(seg_len as u32);

        // init_endpoint (TSA 96-162)
        let ep = &mut self.eps[e];
        match ep.state {
            ZeekState::Inactive => {
                if syn {
                    ep.init_seqs(base_seq, seq_end);
                } else {
                    // partial connection: number as though a SYN was seen, first packet not a duplicate
                    ep.init_seqs(base_seq.wrapping_sub(1), base_seq);
                }
            }
            ZeekState::SynSent | ZeekState::SynAckSent => {
                if syn && base_seq != ep.start_seq {
                    ep.init_seqs(base_seq, seq_end);
                }
            }
            ZeekState::Established | ZeekState::Partial => {
                if syn {
                    ep.init_seqs(base_seq, seq_end);
                }
            }
            ZeekState::Reset => {
                if syn && ep.prev_state == ZeekState::Inactive {
                    ep.init_seqs(base_seq, seq_end);
                }
            }
            ZeekState::Closed => {}
        }

        // get_relative_seq, inline for the usual case (no 32-bit wrap so far, none on this segment)
        let last = ep.last_seq;
        let d = base_seq.wrapping_sub(last);
        let (rel_seq, underflow) =
            if ep.seq_wraps == 0 && !(0 < d && d < 0x8000_0000 && base_seq < last) {
                let r = seq_delta(base_seq, ep.start_seq);
                (Rel::from(r), r < 0)
            } else {
                ep.relative(base_seq, last, ep.seq_wraps)
            };

        if flags & (SYN | FIN | RST) != 0 {
            self.update_history(flags, e, rel_seq, length);
        } else if length != 0 || ack {
            // update_history's last branch, without a call when the letter is already there
            let mask = if length != 0 { HIST_DATA } else { HIST_ACK };
            let shifted = if self.eps[e].is_orig {
                mask
            } else {
                mask << 16
            };
            if self.hist_seen & shifted == 0 || self.history == "H" {
                self.check(e, mask, if length != 0 { b'D' } else { b'A' });
            }
        }

        // update_window (TSA 242-296): only the zero-window letter matters here
        if seg.window == 0
            && !rst
            && self.eps[p].state != ZeekState::Closed
            && self.eps[e].state != ZeekState::Reset
        {
            self.scaled(e, b'W', Scaled::Win0);
        }

        if fin {
            let ep = &mut self.eps[e];
            ep.fin_cnt = ep.fin_cnt.saturating_add(1);
            ep.fin_seq = rel_seq + Rel::from(seg_len);
        }

        let mut rel_ack: Rel = 0;
        if ack {
            let peer = &mut self.eps[p];
            if peer.state == ZeekState::Inactive {
                rel_ack = 1;
                // init_peer (TSA 432-453)
                peer.init_seqs(ack_seq.wrapping_sub(1), ack_seq.wrapping_sub(1));
            } else {
                let pa = peer.ack_seq;
                // seq_delta(ack_seq, peer ack), unsigned
                let d = ack_seq.wrapping_sub(pa);
                let ack_under;
                if peer.ack_wraps == 0 && !(0 < d && d < 0x8000_0000 && ack_seq < pa) {
                    let r = ack_seq.wrapping_sub(peer.start_seq);
                    rel_ack = Rel::from(r);
                    ack_under = r & 0x8000_0000 != 0;
                } else {
                    (rel_ack, ack_under) = peer.relative(ack_seq, pa, peer.ack_wraps);
                }
                if ack_under {
                    rel_ack = 0;
                } else if !rst {
                    // update_ack_seq (TSA 455-465)
                    let delta_ack = d as i32;
                    if delta_ack > 0 && !(ack_seq == 0 && delta_ack > TOO_LARGE_SEQ_DELTA) {
                        if ack_seq < pa {
                            peer.ack_wraps = peer.ack_wraps.saturating_add(1);
                        }
                        peer.ack_seq = ack_seq;
                    }
                }
            }
        }

        // update_last_seq (TSA 469-503)
        let ep = &mut self.eps[e];
        let delta_last = seq_delta(seq_end, ep.last_seq);
        if (syn || rst) && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&delta_last) {
        } else if fin && ep.last_seq == ep.start_seq.wrapping_add(1) {
            ep.update_last_seq(seq_end);
        } else if ep.state == ZeekState::Reset {
        } else if delta_last > 0 {
            ep.update_last_seq(seq_end);
        } else if length > 0 {
            self.scaled(e, b'T', Scaled::Rxmt); // TE DidRxmit 266-270
        }

        // UpdateStateMachine: without SYN, FIN or RST only an INACTIVE endpoint changes state
        if (flags & (SYN | FIN | RST) != 0 || self.eps[e].state == ZeekState::Inactive)
            && self.state_machine(e, base_seq, length, is_orig, flags)
        {
            self.eps[e].did_close = true; // ConnectionClosed (TSA 1197-1223)
        }

        if ack {
            // peer->AckReceived(rel_ack); TCP_Reassembler::AckReceived first caps an ACK of the FIN
            // (the FIN's octet is not content) and ignores what it already trimmed.
            let peer = &self.eps[p];
            if peer.fin_cnt > 0 && rel_ack >= peer.fin_seq {
                rel_ack = peer.fin_seq - 1;
            }
            if rel_ack > peer.r_trim {
                self.ack_received(p, rel_ack);
            }
        }
        if length > 0 && !rst && !underflow {
            // TE DataSent 164-173: payload cut by the snaplen never reaches the reassembler, so its
            // ACK shows as a content gap. Segments do not say so yet (see the module doc).
            self.data_sent(e, if syn { rel_seq + 1 } else { rel_seq }, length);
        }

        // CheckPIA_FirstPacket (TSA 1361-1373), with the possibly stale is_orig
        self.first_seen |= if is_orig { ORIG } else { RESP };
    }

    // ----------------------------------------------------------------- the state machine
    /// TSA UpdateStateMachine 956-982 and the Update*State functions; returns do_close.
    fn state_machine(
        &mut self,
        e: usize,
        base_seq: u32,
        length: u32,
        is_orig: bool,
        flags: u16,
    ) -> bool {
        let p = 1 - e;
        let (syn, fin, rst, ack) = (
            flags & SYN != 0,
            flags & FIN != 0,
            flags & RST != 0,
            flags & ACK != 0,
        );
        let st = self.eps[e].state;
        let mut do_close = false;
        match st {
            ZeekState::Inactive => {
                // UpdateInactiveState 722-846
                if syn {
                    if is_orig {
                        self.eps[e].set_state(if ack {
                            ZeekState::SynAckSent
                        } else {
                            ZeekState::SynSent
                        });
                    } else {
                        if !ack
                            && self.eps[p].state == ZeekState::SynAckSent
                            && base_seq == self.eps[e].start_seq
                        {
                            // SYN/SYN-ACK reversal: flip and establish
                            self.is_partial = false;
                            self.flip();
                            self.eps[p].set_state(ZeekState::Established);
                            self.first_seen |= ORIG;
                        }
                        if self.eps[p].state == ZeekState::SynSent {
                            self.eps[p].set_state(ZeekState::Established);
                        }
                        self.eps[e].set_state(ZeekState::Established);
                    }
                }
                if fin {
                    self.eps[e].set_state(ZeekState::Closed);
                    do_close = true;
                }
                if rst {
                    self.eps[e].set_state(ZeekState::Reset);
                    do_close = true;
                }
                if self.eps[e].state == ZeekState::Inactive {
                    // no control flag changed it
                    if !is_orig && length == 0 && self.eps[self.orig()].state == ZeekState::SynSent
                    {
                        // an ACK of the SYN before the SYN-ACK: not a partial connection
                    } else if ack && self.eps[p].state == ZeekState::Established {
                        // SYN-ACK seen, then an ACK: the SYN was missed; establish
                        self.eps[e].set_state(ZeekState::Established);
                        self.is_partial = false;
                        self.first_seen |= if is_orig { ORIG } else { RESP };
                    } else {
                        self.eps[e].set_state(ZeekState::Partial);
                    }
                }
            }
            ZeekState::SynSent | ZeekState::SynAckSent => {
                // UpdateSYN_SentState 848-880
                if fin {
                    self.eps[e].set_state(ZeekState::Closed);
                    do_close = true;
                }
                if rst {
                    self.eps[e].set_state(ZeekState::Reset);
                    do_close = true;
                }
            }
            ZeekState::Established | ZeekState::Partial => {
                // UpdateEstablishedState 882-914
                if syn
                    && st == ZeekState::Partial
                    && self.eps[p].state == ZeekState::Inactive
                    && !ack
                {
                    self.eps[e].set_state(ZeekState::SynSent);
                }
                if fin && !rst {
                    self.eps[e].set_state(ZeekState::Closed);
                    let peer = &mut self.eps[p];
                    if peer.state == ZeekState::Reset && peer.prev_state == ZeekState::Closed {
                        // FIN then RST from the peer: a normal close after all
                        peer.set_state(ZeekState::Closed);
                    }
                    do_close = true;
                }
                if rst {
                    self.eps[e].set_state(ZeekState::Reset);
                    do_close = true;
                }
            }
            ZeekState::Closed => {
                // UpdateClosedState 916-943
                if rst && self.eps[p].state != ZeekState::Closed {
                    self.eps[e].set_state(ZeekState::Reset);
                    do_close = !self.eps[e].did_close;
                }
            }
            ZeekState::Reset => {} // UpdateResetState changes nothing
        }
        do_close
    }

    // ----------------------------------------------------------------- content gaps
    /// TCP_Reassembler::Gap 116-136: a letter only while both sides are established or cleanly
    /// closing (is_clean: ESTABLISHED, or CLOSED coming from ESTABLISHED).
    fn gap(&mut self, e: usize) {
        let clean = |ep: &ZeekEndpoint| {
            ep.state == ZeekState::Established
                || (ep.state == ZeekState::Closed && ep.prev_state == ZeekState::Established)
        };
        if clean(&self.eps[e]) && clean(&self.eps[1 - e]) {
            self.scaled(e, b'G', Scaled::Gap);
        }
    }

    /// TCP_Reassembler::DataSent 420-468 and Reassembler::NewBlock, as intervals.
    fn data_sent(&mut self, e: usize, seq: Rel, length: u32) {
        let ep = &mut self.eps[e];
        if ep.r_skip {
            return;
        }
        let mut seq = seq;
        let mut upper = seq + Rel::from(length);
        let acked = ZeekEndpoint::absolute(ep.ack_wraps, ep.ack_seq) - Rel::from(ep.start_seq);
        if seq < acked {
            if upper <= acked {
                return; // delivered and acknowledged already
            }
            seq = acked;
        }
        if upper <= ep.r_trim {
            return;
        }
        if seq < ep.r_trim {
            seq = ep.r_trim;
        }
        if seq <= ep.r_last {
            if upper > ep.r_last {
                ep.r_last = upper;
                ep.deliver();
            }
        } else {
            let blocks = &mut ep.r_blocks;
            let i = blocks
                .iter()
                .position(|&(_, u)| u >= seq)
                .unwrap_or(blocks.len());
            let mut j = i;
            while let Some(&(s, u)) = blocks.get(j) {
                if s > upper {
                    break;
                }
                seq = seq.min(s);
                upper = upper.max(u);
                j += 1;
            }
            blocks.splice(i..j, std::iter::once((seq, upper)));
            // tcp_max_above_hole_without_any_acks: give up on a stream nobody acknowledges
            let top = blocks.last().map_or(ep.r_last, |&(_, u)| u);
            if ep.no_data_acked() && top - ep.r_last > MAX_ABOVE_HOLE_WITHOUT_ACKS {
                ep.r_blocks.clear();
                ep.r_skip = true;
            }
        }
    }

    /// TCP_Reassembler::AckReceived 470-497 with Reassembler Trim (Reassem.cc 179-243) and
    /// TCP_Reassembler::Undelivered 138-248: acknowledged bytes never seen are a content gap.
    /// `seq` is already capped below the FIN and above the trimmed point (see `process`).
    fn ack_received(&mut self, e: usize, seq: Rel) {
        if seq > self.eps[e].r_last {
            // Undelivered(seq)
            if seq <= 2 && self.is_partial {
                // faked initial sequence numbers of a partial connection: not a gap
            } else {
                if !self.eps[e].r_skip {
                    while let Some(&(first, _)) = self.eps[e].r_blocks.first() {
                        if first >= seq {
                            break;
                        }
                        self.gap(e); // the hole before the block
                        self.eps[e].r_last = first;
                        self.eps[e].deliver();
                    }
                    if seq > self.eps[e].r_last {
                        self.gap(e);
                    }
                }
                let ep = &mut self.eps[e];
                if seq > ep.r_last {
                    ep.r_last = seq;
                }
            }
        }
        let ep = &mut self.eps[e];
        let n = ep.r_blocks.iter().take_while(|&&(_, u)| u <= seq).count();
        ep.r_blocks.drain(..n);
        ep.deliver();
        ep.r_trim = seq;
    }

    // ----------------------------------------------------------------- results
    /// main.zeek conn_state() 184-229, on Zeek's originator and responder.
    pub fn conn_state(&self) -> &'static str {
        let oi = self.orig();
        let (o, r) = (&self.eps[oi], &self.eps[1 - oi]);
        let (os, rs) = (o.state, r.state);
        let o_inactive = os == ZeekState::Inactive || os == ZeekState::Partial;
        let r_inactive = rs == ZeekState::Inactive || rs == ZeekState::Partial;
        if rs == ZeekState::Reset {
            if os == ZeekState::SynSent
                || os == ZeekState::SynAckSent
                || (os == ZeekState::Reset && o.size(rs) == 0 && r.size(os) == 0)
            {
                return "REJ";
            }
            return if o_inactive { "RSTRH" } else { "RSTR" };
        }
        if os == ZeekState::Reset {
            if r_inactive {
                return if matches_rstos0(&self.history) {
                    "RSTOS0"
                } else {
                    "OTH"
                };
            }
            return "RSTO";
        }
        if rs == ZeekState::Closed && os == ZeekState::Closed {
            return "SF";
        }
        if os == ZeekState::Closed {
            return if r_inactive { "SH" } else { "S2" };
        }
        if rs == ZeekState::Closed {
            return if o_inactive { "SHR" } else { "S3" };
        }
        if os == ZeekState::SynSent && rs == ZeekState::Inactive {
            return "S0";
        }
        if os == ZeekState::Established && rs == ZeekState::Established {
            return "S1";
        }
        "OTH"
    }

    pub fn history(&self) -> &str {
        &self.history
    }

    pub fn orig_is_client(&self) -> bool {
        self.eps[CLIENT].is_orig
    }

    /// Zeek's final endpoint states, (client, server) by our roles (for tests and curious users).
    pub fn states(&self) -> (ZeekState, ZeekState) {
        (self.eps[CLIENT].state, self.eps[SERVER].state)
    }
}

impl Observer for ZeekObserver {
    fn on_segment(
        &mut self,
        seg: &Segment,
        from_client: bool,
        _reused_port: bool,
        _notes: &mut Vec<String>,
    ) {
        self.process(seg, from_client);
    }

    fn record(&self, out: &mut dyn Emit) {
        out.key("conn_state");
        out.vocab(self.conn_state());
        out.key("history");
        out.str(&self.history);
        out.key("zeek_orig");
        out.vocab(if self.orig_is_client() {
            "client"
        } else {
            "server"
        });
    }
}

#[cfg(test)]
mod tests {
    //! Ports of tests/test_zeek.py's observer tests: hand-built segment sequences, expected values
    //! from Zeek's source (zeek/zeek a13de64f).
    use super::*;
    use crate::record::Value;
    use crate::segment::{TcpOptions, CWR, ECE, NS, PSH, URG};

    fn flags_of(text: &str) -> u16 {
        text.chars()
            .map(|c| match c {
                'F' => FIN,
                'S' => SYN,
                'R' => RST,
                'P' => PSH,
                'A' => ACK,
                'U' => URG,
                'E' => ECE,
                'C' => CWR,
                'N' => NS,
                _ => panic!("unknown flag letter {c}"),
            })
            .fold(0, |a, b| a | b)
    }

    /// tests/talk.py's Talk without the flow table: each side keeps its own sequence numbers; the
    /// "c" side is the flow's client (as the flow table decides in every sequence used here).
    struct Talk {
        zeek: ZeekObserver,
        ends: [(Addr, u16); 2],
        nxt: [i64; 2],
        isn: [i64; 2],
        frame: u64,
    }

    const C: usize = 0;
    const S: usize = 1;

    impl Talk {
        fn new() -> Talk {
            Talk::with_ports(40000, 80)
        }
        fn with_ports(cport: u16, sport: u16) -> Talk {
            Talk {
                zeek: ZeekObserver::new(),
                ends: [
                    (Addr::V4([10, 0, 0, 1]), cport),
                    (Addr::V4([10, 0, 0, 2]), sport),
                ],
                nxt: [1000, 5000],
                isn: [1000, 5000],
                frame: 0,
            }
        }
        /// Wire: a Talk whose server is on port 5000, for direct seq/ack sends.
        fn wire() -> Talk {
            Talk::with_ports(40000, 5000)
        }

        #[allow(clippy::too_many_arguments)]
        fn send_full(
            &mut self,
            side: usize,
            flags: &str,
            length: u32,
            seq: Option<i64>,
            ack: Option<i64>,
            window: u16,
            checksum_ok: Option<bool>,
        ) {
            let f = flags_of(flags);
            let other = 1 - side;
            let seq = seq.unwrap_or(if f & SYN != 0 {
                self.isn[side]
            } else {
                self.nxt[side]
            });
            let ack = ack.unwrap_or(if f & ACK != 0 { self.nxt[other] } else { 0 });
            self.frame += 1;
            let (src, dst) = (self.ends[side], self.ends[other]);
            let seg = Segment {
                ts: self.frame as f64,
                frame: self.frame,
                src: src.0,
                sport: src.1,
                dst: dst.0,
                dport: dst.1,
                seq: seq.rem_euclid(1 << 32) as u32,
                ack: ack.rem_euclid(1 << 32) as u32,
                flags: f,
                window,
                payload_len: length,
                options: TcpOptions::default(),
                ip_version: 4,
                checksum_ok,
                tunnels: None,
            };
            let end = seq + i64::from(length) + i64::from(f & SYN != 0) + i64::from(f & FIN != 0);
            if (end - self.nxt[side]).rem_euclid(1 << 32) < (1 << 31) {
                self.nxt[side] = end;
            }
            let mut notes = Vec::new();
            self.zeek.on_segment(&seg, side == C, false, &mut notes);
            assert!(notes.is_empty(), "the observer is quiet on the hot path");
        }
        fn c(&mut self, flags: &str) {
            self.send_full(C, flags, 0, None, None, 65535, None);
        }
        fn s(&mut self, flags: &str) {
            self.send_full(S, flags, 0, None, None, 65535, None);
        }
        fn c_len(&mut self, flags: &str, length: u32) {
            self.send_full(C, flags, length, None, None, 65535, None);
        }
        fn s_len(&mut self, flags: &str, length: u32) {
            self.send_full(S, flags, length, None, None, 65535, None);
        }
        fn c_seq(&mut self, flags: &str, length: u32, seq: i64) {
            self.send_full(C, flags, length, Some(seq), None, 65535, None);
        }
        /// Wire.send: explicit seq and ack
        fn send(&mut self, side: usize, flags: &str, seq: i64, ack: i64) {
            self.send_full(side, flags, 0, Some(seq), Some(ack), 65535, None);
        }
        fn handshake(&mut self) {
            self.c("S");
            self.s("SA");
            self.c("A");
        }
        fn verdict(&self) -> (&'static str, &str, &'static str) {
            let orig = if self.zeek.orig_is_client() {
                "client"
            } else {
                "server"
            };
            (self.zeek.conn_state(), self.zeek.history(), orig)
        }
        fn cs_hist(&self) -> (&'static str, &str) {
            (self.zeek.conn_state(), self.zeek.history())
        }
    }

    // ------------------------------------------------------------------ conn_state: Zeek's 13 values
    #[test]
    fn each_conn_state() {
        type Script = fn(&mut Talk);
        let cases: [(Script, &str, &str); 13] = [
            (|t| t.c("S"), "S0", "S"),
            (
                |t| {
                    t.handshake();
                    t.c_len("PA", 10);
                    t.s("A");
                },
                "S1",
                "ShADa",
            ),
            (
                |t| {
                    t.handshake();
                    t.c("FA");
                    t.s("FA");
                    t.c("A");
                },
                "SF",
                "ShAFf",
            ),
            (
                |t| {
                    t.c("S");
                    t.s("RA");
                },
                "REJ",
                "Sr",
            ),
            (
                |t| {
                    t.handshake();
                    t.c("FA");
                },
                "S2",
                "ShAF",
            ),
            (
                |t| {
                    t.handshake();
                    t.s("FA");
                },
                "S3",
                "ShAf",
            ),
            (
                |t| {
                    t.handshake();
                    t.c("RA");
                },
                "RSTO",
                "ShAR",
            ),
            (
                |t| {
                    t.handshake();
                    t.s("RA");
                },
                "RSTR",
                "ShAr",
            ),
            (
                |t| {
                    t.c("S");
                    t.c("R");
                },
                "RSTOS0",
                "SR",
            ),
            (
                // from port 80, a likely server port: Zeek flips at once ("^")
                |t| {
                    t.s("SA");
                    t.s("R");
                },
                "RSTRH",
                "^hr",
            ),
            (
                |t| {
                    t.c("S");
                    t.c("FA");
                },
                "SH",
                "SF",
            ),
            (
                |t| {
                    t.s("SA");
                    t.s("FA");
                },
                "SHR",
                "^hf",
            ),
            (
                // mid-stream: no SYN seen
                |t| {
                    t.c_len("PA", 10);
                    t.s("A");
                },
                "OTH",
                "Da",
            ),
        ];
        let mut seen = Vec::new();
        for (script, conn_state, history) in cases {
            let mut t = Talk::new();
            script(&mut t);
            assert_eq!(t.cs_hist(), (conn_state, history), "{conn_state}");
            seen.push(conn_state);
        }
        seen.sort_unstable();
        let mut all = CONN_STATES.to_vec();
        all.sort_unstable();
        assert_eq!(seen, all, "every conn_state value is covered");
    }

    #[test]
    fn rstos0_needs_a_history_of_syn_then_rst() {
        // main.zeek 209: /\^?S[^HAFGIQ]*R.*/ -- an originator FIN between them makes it OTH (Zeek's
        // own conn_state-RST-behavior baseline: "SaFR, OTH"), a responder ACK does not ("SaR, RSTOS0").
        let mut t = Talk::new();
        t.c("S");
        t.s("A");
        t.c("R");
        assert_eq!(t.cs_hist(), ("RSTOS0", "SaR"));
        let mut t = Talk::new();
        t.c("S");
        t.s("A");
        t.c("F");
        t.c("R");
        assert_eq!(t.cs_hist(), ("OTH", "SaFR"));
    }

    #[test]
    fn rstos0_matcher() {
        for yes in [
            "SR", "^SR", "SaR", "SrR", "SRF", "SRhAFGIQ", "StwcR", "SRR", "S^R", "ShR",
        ] {
            assert!(matches_rstos0(yes), "{yes}");
        }
        for no in [
            "", "S", "R", "^", "^R", "^^SR", "aSR", "SaFR", "SAR", "SGR", "SIR", "SQR", "SHR",
            "Sa", "sR", "^hr",
        ] {
            assert!(!matches_rstos0(no), "{no}");
        }
    }

    #[test]
    fn fin_then_rst_then_peer_fin_is_still_sf() {
        // UpdateEstablishedState: the peer's FIN turns an RST that followed our FIN back into CLOSED
        let mut t = Talk::new();
        t.handshake();
        t.c("FA");
        t.c("R");
        t.s("FA");
        assert_eq!(t.cs_hist(), ("SF", "ShAFRf"));
        assert_eq!(t.zeek.states(), (ZeekState::Closed, ZeekState::Closed));
    }

    // ------------------------------------------------------------------ history: letters and rules
    #[test]
    fn upper_case_is_the_originator_lower_case_the_responder() {
        let mut t = Talk::new();
        t.handshake();
        t.s_len("PA", 5);
        t.c_len("PA", 7);
        assert_eq!(t.verdict(), ("S1", "ShAdD", "client"));
    }

    #[test]
    fn a_d_once_per_direction() {
        let mut t = Talk::new();
        t.handshake();
        for _ in 0..5 {
            t.c_len("PA", 10);
            t.s("A");
        }
        assert_eq!(t.zeek.history(), "ShADa");
    }

    #[test]
    fn i_once_per_direction_for_fin_rst() {
        let mut t = Talk::new();
        t.handshake();
        t.c("FR");
        let seq = t.nxt[C] + 50;
        t.c_seq("FR", 0, seq);
        assert_eq!(t.zeek.history(), "ShAI");
    }

    #[test]
    fn q_once_per_direction_for_syn_fin_or_syn_rst() {
        let mut t = Talk::new();
        t.c("SF");
        t.c("SR");
        assert_eq!(t.zeek.history(), "Q");
    }

    #[test]
    fn f_again_only_when_its_sequence_number_changes() {
        let mut t = Talk::new();
        t.handshake();
        let seq = t.nxt[C];
        t.c_seq("FA", 0, seq);
        let seq = t.nxt[C] - 1;
        t.c_seq("FA", 0, seq); // retransmitted FIN: same sequence number, no letter
        let seq = t.nxt[C] + 100;
        t.c_seq("FA", 0, seq); // a FIN elsewhere in the sequence space: a second F
        assert_eq!(t.zeek.history(), "ShAFF");
    }

    #[test]
    fn r_again_only_when_its_sequence_number_changes() {
        let mut t = Talk::new();
        t.handshake();
        let seq = t.nxt[C];
        t.c_seq("R", 0, seq);
        t.c_seq("R", 0, seq);
        t.c_seq("R", 0, seq + 500);
        assert_eq!(t.zeek.history(), "ShARR");
    }

    #[test]
    fn s_and_h_again_only_when_their_sequence_numbers_change() {
        // A retransmission (same relative sequence number) adds nothing. A SYN with a new ISN
        // re-bases an INACTIVE/SYN_SENT/ESTABLISHED endpoint (init_endpoint), so it is relative 0
        // again: nothing either. Only a RESET or CLOSED endpoint is not re-based: the new SYN shows.
        let mut w = Talk::wire();
        w.send(C, "S", 1000, 0);
        w.send(C, "S", 1000, 0); // retransmitted SYN
        w.send(C, "S", 3000, 0); // SYN_SENT re-based on the new ISN: still relative 0
        w.send(C, "R", 3001, 0);
        w.send(C, "S", 7000, 0); // RESET is not re-based: a new sequence number, a new S
        w.send(C, "S", 7000, 0);
        assert_eq!(w.zeek.history(), "SRS");
        let mut w = Talk::wire();
        w.send(S, "SA", 5000, 1001); // from port 5000: not a likely server port, no flip
        w.send(S, "SA", 5000, 1001);
        w.send(S, "R", 5001, 0);
        w.send(S, "SA", 9000, 1001);
        assert_eq!(w.zeek.history(), "HRH");
    }

    #[test]
    fn t_on_a_log_scale() {
        for (times, history) in [
            (1, "ShADT"),
            (9, "ShADT"),
            (10, "ShADTT"),
            (99, "ShADTT"),
            (100, "ShADTTT"),
        ] {
            let mut t = Talk::new();
            t.handshake();
            let seq = t.nxt[C];
            t.c_seq("PA", 10, seq);
            for _ in 0..times {
                t.c_seq("PA", 10, seq);
            }
            assert_eq!(t.zeek.history(), history, "{times}");
        }
    }

    #[test]
    fn w_on_a_log_scale() {
        for (times, history) in [(1, "ShAaw"), (9, "ShAaw"), (10, "ShAaww"), (100, "ShAawww")] {
            let mut t = Talk::new();
            t.handshake();
            for _ in 0..times {
                t.send_full(S, "A", 0, None, None, 0, None);
            }
            assert_eq!(t.zeek.history(), history, "{times}");
        }
    }

    #[test]
    fn g_on_a_log_scale() {
        // Content gaps: the responder acknowledges bytes the capture never showed
        // (TCP_Reassembler Undelivered); the letter goes to the sender of the missing data.
        for (gaps, history) in [
            (1, "ShADaG"),
            (9, "ShADaG"),
            (10, "ShADaGG"),
            (100, "ShADaGGG"),
        ] {
            let mut t = Talk::new();
            t.handshake();
            for _ in 0..gaps {
                t.c_len("PA", 10);
                t.nxt[C] += 100; // 100 bytes the capture missed
                t.s("A");
            }
            assert_eq!(t.zeek.history(), history, "{gaps}");
        }
    }

    #[test]
    fn no_gap_when_the_missing_bytes_arrive_before_the_ack() {
        let mut t = Talk::new();
        t.handshake();
        let first = t.nxt[C];
        t.c_seq("PA", 10, first + 10); // out of order: a hole at [first, first+10)
        t.c_seq("PA", 10, first); // the hole is filled; Zeek counts it a retransmission
        t.send_full(S, "A", 0, None, Some(first + 20), 65535, None);
        assert_eq!(t.zeek.history(), "ShADTa");
    }

    #[test]
    fn gap_before_a_block_waiting_above_a_hole() {
        // Two holes, the second block buffered: an ACK past both is two gaps (one G, the log scale
        // shows the first), and the buffered block is trimmed away.
        let mut t = Talk::new();
        t.handshake();
        let first = t.nxt[C];
        t.c_seq("PA", 10, first + 20); // [first+20, first+30) waits above the hole
        t.send_full(S, "A", 0, None, Some(first + 40), 65535, None);
        assert_eq!(t.zeek.history(), "ShADaG");
        assert!(t.zeek.eps[C].r_blocks.is_empty());
        assert_eq!(t.zeek.eps[C].scaled_cnt[Scaled::Gap as usize], 2);
    }

    #[test]
    fn gives_up_on_a_stream_nobody_acknowledges_also_across_the_wrap() {
        // tcp_max_above_hole_without_any_acks: more than 16384 bytes above a hole while only the
        // SYN is acknowledged: the reassembler gives up, so the ACK past the hole is no gap. With
        // the ISN at 2**32 - 1 the ACK of the SYN is 0 after a wrap: NoDataAcked compares with
        // `start_seq + 1` unreduced, i.e. 2**32 (Python's result for the same sequence).
        for (isn, one_byte_acked, history) in [
            (0xFFFF_FFFFi64, false, "ShADa"),
            (0xFFFF_FFFE, false, "ShADa"),
            (1000, false, "ShADa"),
            (0xFFFF_FFFF, true, "ShADaG"),
            (1000, true, "ShADaG"),
        ] {
            let mut w = Talk::wire();
            w.send(C, "S", isn, 0);
            w.send(S, "SA", 5000, isn + 1);
            w.send(C, "A", isn + 1, 5001);
            let mut seq = isn + 1;
            if one_byte_acked {
                w.send_full(C, "PA", 1, Some(seq), Some(5001), 65535, None);
                seq += 1;
                w.send(S, "A", 5001, seq);
            }
            w.send_full(C, "PA", 20000, Some(seq + 100), Some(5001), 65535, None);
            w.send(S, "A", 5001, seq + 100 + 20000);
            assert_eq!(w.cs_hist(), ("S1", history), "{isn} {one_byte_acked}");
        }
    }

    #[test]
    fn c_on_a_log_scale_and_bad_checksum_packets_are_ignored() {
        for (bad, history) in [(1, "C"), (9, "C"), (10, "CC"), (100, "CCC")] {
            let mut w = Talk::wire();
            for i in 0..bad {
                w.send_full(C, "S", 0, Some(1000 + i), Some(0), 65535, Some(false));
            }
            assert_eq!(w.zeek.history(), history);
            // nothing was processed: both INACTIVE
            assert_eq!(w.zeek.conn_state(), "OTH");
        }
    }

    #[test]
    fn checksum_ok_none_or_true_is_zeek_with_checksums_ignored() {
        let mut w = Talk::wire();
        w.send_full(C, "S", 0, Some(1000), Some(0), 65535, None);
        w.send_full(S, "SA", 0, Some(5000), Some(1001), 65535, Some(true));
        // a SYN-ACK establishes both
        assert_eq!(w.cs_hist(), ("S1", "Sh"));
    }

    // ------------------------------------------------------------------ the originator, and '^'
    #[test]
    fn syn_ack_first_from_a_likely_server_port_flips_at_once() {
        assert!(is_likely_server_port(80));
        let mut t = Talk::new();
        t.s("SA");
        t.c("A");
        t.c_len("PA", 5);
        t.s_len("PA", 9);
        assert_eq!(t.verdict(), ("S1", "^hADd", "client"));
    }

    #[test]
    fn syn_ack_first_elsewhere_flips_on_the_first_ack_or_data() {
        // TE CheckHistory: history "H" then productive traffic: flip and rewrite it as "^h"
        let mut t = Talk::with_ports(2745, 1433);
        t.s("SA");
        assert_eq!(t.verdict(), ("OTH", "H", "server"));
        t.s("A");
        t.s("FA");
        assert_eq!(t.verdict(), ("SHR", "^haf", "client"));
    }

    #[test]
    fn syn_after_its_syn_ack_flips() {
        // UpdateInactiveState: a SYN from the responder while the originator is SYN_ACK_SENT is a
        // SYN/SYN-ACK reversal (two interfaces, interrupt coalescence): flip and establish.
        let mut w = Talk::wire();
        w.send(S, "SA", 5000, 1001);
        w.send(C, "S", 1000, 0);
        w.send(C, "A", 1001, 5001);
        assert_eq!(w.verdict(), ("S1", "Hs^A", "client"));
    }

    #[test]
    fn likely_server_port_heuristic() {
        for (sport, dport, flags, orig_is_sender) in [
            (80, 40000, "A", false), // from a likely server port to an unlikely one: flip
            (40000, 80, "A", true),  // towards the likely server port: keep
            (80, 443, "A", false),   // both likely: flip a non-SYN towards the higher port
            (443, 80, "A", true),    // both likely, towards the lower port: keep
            (80, 443, "SA", true),   // both likely but a SYN-ACK (stealth scans): keep
            (5000, 40000, "A", true), // neither likely: the first sender is the originator
        ] {
            let mut w = Talk::with_ports(sport, dport);
            let length = if flags.contains('S') { 0 } else { 5 };
            w.send_full(C, flags, length, Some(1000), Some(5000), 65535, None);
            assert_eq!(w.zeek.orig_is_client(), orig_is_sender, "{sport} {dport}");
            assert_eq!(w.zeek.history().starts_with('^'), !orig_is_sender);
        }
    }

    #[test]
    fn no_flip_towards_the_broadcast_address() {
        let mut w = Talk::with_ports(80, 40000);
        w.ends[S].0 = Addr::V4([255, 255, 255, 255]);
        w.send_full(C, "A", 5, Some(1000), Some(5000), 65535, None);
        assert!(w.zeek.orig_is_client());
        assert_eq!(w.zeek.history(), "D");
    }

    // ------------------------------------------------------------------ arithmetic and the record
    #[test]
    fn size_is_uint64_arithmetic() {
        // Start at 2**32 - 1 with last and ack 0 (no wrap recorded): Zeek's uint64_t
        // `last - start_seq` wraps around, Python's `% (1 << 64)` says the same.
        let mut ep = ZeekEndpoint::new(true);
        ep.init_seqs(u32::MAX, 0);
        ep.ack_seq = 0;
        let expect = ((0i128 - i128::from(u32::MAX)).rem_euclid(1 << 64) - 1) as u64;
        assert_eq!(ep.size(ZeekState::Inactive), expect);
        ep.fin_cnt = 1;
        assert_eq!(ep.size(ZeekState::Inactive), expect - 1);
    }

    #[test]
    fn relative_sequence_numbers_follow_wraps() {
        let mut ep = ZeekEndpoint::new(true);
        ep.init_seqs(0xFFFF_FF00, 0xFFFF_FFF0);
        // crossing 2**32 on this segment: one wrap more than recorded
        assert_eq!(
            ep.relative(0x10, 0xFFFF_FFF0, 0),
            ((1 << 32) + 0x10 - 0xFFFF_FF00, false)
        );
        // before the ISN: an underflow
        assert_eq!(ep.relative(0xFFFF_FE00, 0xFFFF_FFF0, 0), (-0x100, true));
        // an old segment from before the recorded wrap
        assert_eq!(ep.relative(0xFFFF_FFF0, 0x20, 1), (0xF0, false));
    }

    #[test]
    fn record_fields_in_order() {
        let mut t = Talk::new();
        t.handshake();
        let out = crate::observe::fields_of(&t.zeek);
        assert_eq!(
            out,
            vec![
                ("conn_state", Value::from("S1")),
                ("history", Value::from("ShA".to_string())),
                ("zeek_orig", Value::from("client")),
            ]
        );
    }

    #[test]
    fn any_sequence_gives_a_zeek_value_and_letters() {
        // tests/test_zeek.py's hypothesis test, with a small deterministic generator instead.
        const FLAGS: [&str; 10] = ["S", "SA", "A", "PA", "FA", "F", "R", "RA", "FR", "SF"];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..300 {
            let mut w = Talk::wire();
            let mut seqs = [1000i64, 5000];
            for _ in 0..next(26) {
                let side = next(2) as usize;
                let flags = FLAGS[next(10) as usize];
                let length = if flags.contains('P') {
                    next(4) as u32
                } else {
                    0
                };
                seqs[side] = (seqs[side] + next(7) as i64 - 3).rem_euclid(1 << 32);
                let window = if next(2) == 0 { 0 } else { 65535 };
                let (seq, ack) = (seqs[side], seqs[1 - side]);
                w.send_full(side, flags, length, Some(seq), Some(ack), window, None);
            }
            assert!(CONN_STATES.contains(&w.zeek.conn_state()));
            assert!(w
                .zeek
                .history()
                .chars()
                .all(|c| "shadfrcgtwiqSHADFRCGTWIQ^".contains(c)));
        }
    }
}
