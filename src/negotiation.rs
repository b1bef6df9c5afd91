//! What the handshake negotiated, from the SYN(s) and SYN-ACK(s) actually seen: each side's options
//! and header bits, what is in effect, p0f's fingerprint of each side, and what looks wrong.
//!
//! Kept per flow in a box that exists only once a SYN or SYN-ACK was seen (or a p0f database was
//! given): a flow without one pays one pointer. Fed from the flow's slow path (SYN segments never
//! take the fast path), so the per-packet cost of data and ACKs does not change.

use std::sync::Arc;

use crate::p0f::{write_raw_sig, Db, Packet};
use crate::record::Emit;
use crate::segment::{Segment, ACK, CWR, ECE, FIN, NS, RST, SYN};
use crate::syn::{write_layout, SynDetails};

/// The warnings a record's `negotiation.warnings` holds (each alone, or `kind:option` for the
/// last one, the option from NEGOTIATION_OPTIONS).
pub const NEGOTIATION_WARNINGS: [&str; 5] = [
    // a retransmitted SYN carried other options (or ECN bits) than the first one
    "syn_options_changed",
    // the same for the server's SYN-ACKs
    "synack_options_changed",
    // only one side offered window scaling: none is in effect (RFC 7323 §2.2)
    "window_scale_one_side",
    // an MSS larger than any IP datagram of that version can carry (see `mss_above_mtu`)
    "mss_above_mtu",
    // the SYN-ACK turned on an option the SYN did not offer (`synack_enables_unoffered:sack`)
    "synack_enables_unoffered",
];

/// Options and bits a SYN offers and a SYN-ACK may only accept (RFC 7323 §1.3, §2.2, §3.2;
/// RFC 2018 §2; RFC 3168 §6.1.1; RFC 7413 §4.1.1; RFC 8684 §3.1).
pub const NEGOTIATION_OPTIONS: [&str; 6] = ["ws", "sack", "ts", "ecn", "tfo", "mptcp"];

/// Every field of the `negotiation` object as a dotted path below it (`client.mss`,
/// `in_effect.window_scaling`): for `check`, which refuses a path that is none of these. The test
/// below holds this list to what `emit` writes.
pub const NEGOTIATION_FIELDS: [&str; 8] = [
    "syn_seen",
    "synack_seen",
    "client",
    "server",
    "in_effect",
    "warnings",
    "summary",
    "simultaneous_open",
];
/// The fields of a side (`client`, `server`, `simultaneous_open.server_syn`, ...).
pub const SIDE_FIELDS: [&str; 25] = [
    "isn",
    "window",
    "mss",
    "window_scale",
    "sack_permitted",
    "timestamps",
    "tsval",
    "tfo",
    "tfo.cookie_request",
    "tfo.cookie",
    "tfo.data",
    "tfo.data_acked",
    "mptcp",
    "ecn",
    "ecn.ece",
    "ecn.cwr",
    "ecn.ae",
    "ttl",
    "df",
    "options",
    "offer",
    "p0f",
    "os",
    // the side objects of `simultaneous_open`
    "server_syn",
    "client_synack",
];
/// The fields of `in_effect`.
pub const EFFECT_FIELDS: [&str; 9] = [
    "window_scaling",
    "client_window_scale",
    "server_window_scale",
    "sack",
    "timestamps",
    "ecn",
    "tfo",
    "mss_to_server",
    "mss_to_client",
];

const O_WS: u8 = 1;
const O_SACK: u8 = 2;
const O_TS: u8 = 4;
const O_ECN: u8 = 8;
const O_TFO: u8 = 16;
const O_MPTCP: u8 = 32;

/// RFC 9293 §3.7.1: without an MSS option a sender assumes 536 bytes (IPv4) or 1220 (IPv6).
pub const DEFAULT_MSS_V4: u16 = 536;
pub const DEFAULT_MSS_V6: u16 = 1220;

/// RFC 7323 §2.3: a shift count above 14 is used as 14.
const MAX_WSCALE: u8 = 14;

/// One SYN or SYN-ACK as the record shows it.
#[derive(Clone, Debug)]
struct Side {
    isn: u32,
    flags: u16,
    window: u16,
    payload_len: u32,
    ip_version: u8,
    mss: Option<u16>,
    wscale: Option<u8>,
    sack: bool,
    tsval: Option<u32>,
    d: Box<SynDetails>,
}

impl Side {
    fn of(seg: &Segment, details: Option<Box<SynDetails>>) -> Side {
        let o = &seg.options;
        Side {
            isn: seg.seq,
            flags: seg.flags,
            window: seg.window,
            payload_len: seg.payload_len,
            ip_version: seg.ip_version,
            mss: o.mss,
            wscale: o.wscale,
            sack: o.sack_permitted,
            tsval: o.ts_val,
            d: details.unwrap_or_default(),
        }
    }

    /// What this SYN offers or this SYN-ACK turns on.
    fn offers(&self, synack: bool) -> u8 {
        let mut bits = 0;
        if self.wscale.is_some() {
            bits |= O_WS;
        }
        if self.sack {
            bits |= O_SACK;
        }
        if self.tsval.is_some() {
            bits |= O_TS;
        }
        let ecn = if synack {
            self.flags & ECE != 0 // RFC 3168 §6.1.1 (and any AccECN answer sets one of these)
                || self.flags & (CWR | NS) != 0
        } else {
            self.flags & (ECE | CWR) == ECE | CWR
        };
        if ecn {
            bits |= O_ECN;
        }
        if self.d.tfo.is_some() {
            bits |= O_TFO;
        }
        if self.d.mptcp {
            bits |= O_MPTCP;
        }
        bits
    }

    /// What a retransmission must repeat: the option layout and values, and the ECN bits.
    fn same_offer(&self, other: &Side) -> bool {
        self.d.layout() == other.d.layout()
            && self.mss == other.mss
            && self.wscale == other.wscale
            && self.flags & (ECE | CWR | NS) == other.flags & (ECE | CWR | NS)
    }

    /// The offer in a few words (`offer_text`), without copying the details, appended to `out`.
    fn offer_into(&self, out: &mut String) {
        Offer {
            mss: self.mss,
            wscale: self.wscale,
            sack: self.sack,
            ts: self.tsval.is_some(),
            flags: self.flags,
            payload_len: self.payload_len,
            d: Some(&self.d),
        }
        .write(out)
    }

    fn default_mss(&self) -> u16 {
        if self.ip_version == 6 {
            DEFAULT_MSS_V6
        } else {
            DEFAULT_MSS_V4
        }
    }

    fn packet<'a>(&'a self, syn_mss: u16) -> Packet<'a> {
        Packet {
            d: &self.d,
            ip_version: self.ip_version,
            window: self.window,
            payload: self.payload_len > 0,
            syn_mss,
            synack: self.flags & (SYN | ACK | FIN | RST) == SYN | ACK,
        }
    }
}

/// A SYN's or SYN-ACK's offer in a few words, as the ladder's arrows show it: `mss 65495 ws 7 sack
/// ts`, then `ecn` (ECE+CWR on a SYN, ECE on a SYN-ACK), `accecn` (AE+CWR+ECE on a SYN, RFC 9768),
/// `tfo` (a cookie), `tfo-req` (a cookie request), `mptcp`, and `+N` for N bytes of data.
pub fn offer_text(o: &crate::segment::TcpOptions, flags: u16, payload_len: u32) -> String {
    let offer = Offer {
        mss: o.mss,
        wscale: o.wscale,
        sack: o.sack_permitted,
        ts: o.ts_val.is_some(),
        flags,
        payload_len,
        d: o.syn.as_deref(),
    };
    offer.text()
}

/// What `offer_text` reads, borrowed from a segment's options or from a recorded side.
struct Offer<'a> {
    mss: Option<u16>,
    wscale: Option<u8>,
    sack: bool,
    ts: bool,
    flags: u16,
    payload_len: u32,
    d: Option<&'a SynDetails>,
}

impl Offer<'_> {
    fn text(&self) -> String {
        let mut out = String::with_capacity(40);
        self.write(&mut out);
        out
    }

    /// The words, appended to `out` (the JSON writer's buffer: no string of their own).
    fn write(&self, out: &mut String) {
        let start = out.len();
        let word = |out: &mut String, w: &str| {
            if out.len() > start {
                out.push(' ');
            }
            out.push_str(w);
        };
        if let Some(m) = self.mss {
            word(out, "mss ");
            out.push_str(itoa::Buffer::new().format(m));
        }
        if let Some(w) = self.wscale {
            word(out, "ws ");
            out.push_str(itoa::Buffer::new().format(w));
        }
        if self.sack {
            word(out, "sack");
        }
        if self.ts {
            word(out, "ts");
        }
        let (flags, synack) = (self.flags, self.flags & ACK != 0);
        if !synack && flags & (ECE | CWR | NS) == ECE | CWR | NS {
            word(out, "accecn");
        } else if (!synack && flags & (ECE | CWR) == ECE | CWR) || (synack && flags & ECE != 0) {
            word(out, "ecn");
        }
        if let Some(d) = self.d {
            match &d.tfo {
                Some(c) if c.is_empty() => word(out, "tfo-req"),
                Some(_) => word(out, "tfo"),
                None => {}
            }
            if d.mptcp {
                word(out, "mptcp");
            }
        }
        if self.payload_len > 0 {
            word(out, "+");
            out.push_str(itoa::Buffer::new().format(self.payload_len));
        }
    }
}

/// Is `mss` above what the path can carry? What a capture can know of the path's MTU is the largest
/// datagram the IP version allows (decided here; a link's MTU is not in pcap or pcapng, and the
/// largest packet seen is not a bound): IPv4 65535 bytes with 40 of headers (RFC 791 §3.1; the
/// loopback's 65495 is exactly that), IPv6 a 65535-byte payload with 20 of TCP header, where 65535
/// itself means "jumbograms welcome" (RFC 2675 §5.2).
fn mss_above_mtu(mss: u16, ip_version: u8) -> bool {
    if ip_version == 6 {
        mss > 65515 && mss != 65535
    } else {
        mss > 65495
    }
}

#[derive(Clone, Debug, Default)]
pub struct Negotiation {
    client: Option<Side>,
    server: Option<Side>,
    /// what the latest client SYN offered before the first SYN-ACK (the one it answers)
    offered: u8,
    syn_changed: bool,
    synack_changed: bool,
    /// did the first SYN-ACK acknowledge the data on the client's first SYN (Fast Open)
    data_acked: Option<bool>,
    /// simultaneous open (RFC 9293 §3.5 figure 8): the server's own first SYN and the client's
    /// first SYN-ACK, the answer to it
    server_syn: Option<Side>,
    client_synack: Option<Side>,
    /// what the latest server SYN offered before the client's first SYN-ACK
    server_offered: u8,
    db: Option<Arc<Db>>,
}

impl Negotiation {
    pub fn with_db(db: Arc<Db>) -> Negotiation {
        Negotiation {
            db: Some(db),
            ..Negotiation::default()
        }
    }

    /// A segment with SYN set, in capture order.
    #[cold]
    /// `details`: the segment's `options.syn`, moved out of it (or a copy).
    pub fn note(&mut self, seg: &Segment, details: Option<Box<SynDetails>>, from_client: bool) {
        let synack = seg.flags & ACK != 0;
        match (from_client, synack) {
            (true, false) => {
                let side = Side::of(seg, details);
                if self.server.is_none() {
                    self.offered = side.offers(false);
                }
                match &self.client {
                    None => self.client = Some(side),
                    Some(first) => self.syn_changed |= !first.same_offer(&side),
                }
            }
            (false, true) => {
                let side = Side::of(seg, details);
                match &self.server {
                    None => {
                        if let Some(c) = &self.client {
                            if c.payload_len > 0 {
                                let want = c.isn.wrapping_add(1).wrapping_add(c.payload_len);
                                self.data_acked = Some(seg.ack == want);
                            }
                        }
                        self.server = Some(side);
                    }
                    Some(first) => self.synack_changed |= !first.same_offer(&side),
                }
            }
            // A SYN from the server or a SYN-ACK from the client: simultaneous open (RFC 9293 §3.5
            // figure 8). The sides stay the client's SYN and the server's SYN-ACK; these two are
            // kept beside them (`simultaneous_open`).
            (false, false) => {
                let side = Side::of(seg, details);
                if self.client_synack.is_none() {
                    self.server_offered = side.offers(false);
                }
                if self.server_syn.is_none() {
                    self.server_syn = Some(side);
                }
            }
            (true, true) => {
                if self.client_synack.is_none() {
                    self.client_synack = Some(Side::of(seg, details));
                }
            }
        }
    }

    /// The warnings, in NEGOTIATION_WARNINGS order, as list items (written in place: no string of
    /// their own in JSON).
    fn emit_warnings<E: Emit>(&self, e: &mut E) {
        if self.syn_changed {
            e.str(NEGOTIATION_WARNINGS[0]);
        }
        if self.synack_changed {
            e.str(NEGOTIATION_WARNINGS[1]);
        }
        if let (Some(c), Some(s)) = (&self.client, &self.server) {
            if c.wscale.is_some() != s.wscale.is_some() {
                e.str(NEGOTIATION_WARNINGS[2]);
            }
        }
        let too_big = [&self.client, &self.server]
            .iter()
            .filter_map(|s| s.as_ref())
            .any(|s| s.mss.is_some_and(|m| mss_above_mtu(m, s.ip_version)));
        if too_big {
            e.str(NEGOTIATION_WARNINGS[3]);
        }
        let mut unoffered = 0u8;
        if let (Some(_), Some(s)) = (&self.client, &self.server) {
            unoffered |= s.offers(true) & !self.offered;
        }
        if let (Some(_), Some(c)) = (&self.server_syn, &self.client_synack) {
            // Linux answers a simultaneous open's SYN with its own options whatever that SYN offered
            unoffered |= c.offers(true) & !self.server_offered;
        }
        for (i, name) in NEGOTIATION_OPTIONS.iter().enumerate() {
            if unoffered & (1 << i) != 0 {
                e.str_with(&mut |out| {
                    out.push_str(NEGOTIATION_WARNINGS[4]);
                    out.push(':');
                    out.push_str(name);
                });
            }
        }
    }

    /// The window scale in effect for segments sent by the client (or the server): None unless
    /// both SYN and SYN-ACK were seen and both offered scaling (RFC 7323 §2.2).
    pub fn scale_of(&self, client: bool) -> Option<u8> {
        let (c, s) = (self.client.as_ref()?, self.server.as_ref()?);
        let (cw, sw) = (c.wscale?, s.wscale?);
        Some(if client { cw } else { sw }.min(MAX_WSCALE))
    }

    /// Both SYN and SYN-ACK were seen and the scaling decision is known.
    pub fn scaling_known(&self) -> bool {
        self.client.is_some() && self.server.is_some()
    }
}

fn emit_side<E: Emit>(e: &mut E, s: &Side, client: bool, n: &Negotiation, syn_mss: u16) {
    e.begin_obj();
    e.key("isn");
    e.int(i64::from(s.isn));
    e.key("window");
    e.int(i64::from(s.window));
    e.key("mss");
    e.opt_int(s.mss.map(i64::from));
    e.key("window_scale");
    e.opt_int(s.wscale.map(i64::from));
    e.key("sack_permitted");
    e.bool(s.sack);
    e.key("timestamps");
    e.bool(s.tsval.is_some());
    e.key("tsval");
    e.opt_int(s.tsval.map(i64::from));
    e.key("tfo");
    e.begin_obj();
    e.key("cookie_request");
    e.bool(s.d.tfo.as_ref().is_some_and(Vec::is_empty));
    e.key("cookie");
    match s.d.tfo.as_ref().filter(|c| !c.is_empty()) {
        Some(c) => e.str_with(&mut |out| {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for b in c {
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }),
        None => e.null(),
    }
    e.key("data");
    e.int(i64::from(s.payload_len));
    e.key("data_acked");
    match (client, n.data_acked) {
        (true, Some(b)) => e.bool(b),
        _ => e.null(),
    }
    e.end_obj();
    e.key("mptcp");
    e.bool(s.d.mptcp);
    e.key("ecn");
    e.begin_obj();
    e.key("ece");
    e.bool(s.flags & ECE != 0);
    e.key("cwr");
    e.bool(s.flags & CWR != 0);
    e.key("ae");
    e.bool(s.flags & NS != 0);
    e.end_obj();
    e.key("ttl");
    e.int(i64::from(s.d.ttl));
    e.key("df");
    e.bool(s.d.df);
    e.key("options");
    e.str_with(&mut |out| write_layout(&s.d, out));
    e.key("offer");
    e.str_with(&mut |out| s.offer_into(out));
    let packet = s.packet(syn_mss);
    e.key("p0f");
    e.str_with(&mut |out| write_raw_sig(&packet, out));
    e.key("os");
    match &n.db {
        Some(db) => match db.find(&packet) {
            Some(label) => e.str(&label.text),
            None => e.vocab("???"), // what p0f prints for no match
        },
        None => e.null(),
    }
    e.end_obj();
}

/// One line for tables and CSV (`negotiated`): what is in effect, `ws 7/7 sack ts ecn tfo mss
/// 65495/1460` (MSS client/server, `-` where a side sent none), or what the one side seen offered.
pub fn summary(n: &Negotiation) -> String {
    let mut out = String::new();
    write_summary(n, &mut out);
    out
}

/// `summary`, appended to `out`.
fn write_summary(n: &Negotiation, out: &mut String) {
    let num = |out: &mut String, v: u16| out.push_str(itoa::Buffer::new().format(v));
    match (&n.client, &n.server) {
        (Some(c), Some(s)) => {
            match (n.scale_of(true), n.scale_of(false)) {
                (Some(a), Some(b)) => {
                    out.push_str("ws ");
                    num(out, u16::from(a));
                    out.push('/');
                    num(out, u16::from(b));
                }
                _ => out.push_str("no ws"),
            }
            if c.sack && s.sack {
                out.push_str(" sack");
            }
            if c.tsval.is_some() && s.tsval.is_some() {
                out.push_str(" ts");
            }
            if c.flags & (ECE | CWR) == ECE | CWR && s.flags & (ECE | CWR) == ECE {
                out.push_str(" ecn");
            }
            if c.payload_len > 0 && n.data_acked == Some(true) {
                out.push_str(" tfo");
            }
            if c.d.mptcp && s.d.mptcp {
                out.push_str(" mptcp");
            }
            out.push_str(" mss ");
            for (i, m) in [c.mss, s.mss].into_iter().enumerate() {
                if i > 0 {
                    out.push('/');
                }
                match m {
                    Some(v) => num(out, v),
                    None => out.push('-'),
                }
            }
        }
        (Some(one), None) | (None, Some(one)) => {
            out.push_str(if n.client.is_some() {
                "SYN only: "
            } else {
                "SYN-ACK only: "
            });
            let at = out.len();
            one.offer_into(out);
            if out.len() == at {
                out.pop(); // nothing offered: no trailing space
            }
        }
        (None, None) => out.push_str("no SYN seen"),
    }
}

/// The record's `negotiation` object (the contract: add, never rename).
pub fn emit<E: Emit>(e: &mut E, n: Option<&Negotiation>) {
    let empty = Negotiation::default();
    let n = n.unwrap_or(&empty);
    e.begin_obj();
    e.key("syn_seen");
    e.bool(n.client.is_some());
    e.key("synack_seen");
    e.bool(n.server.is_some());
    // p0f fingerprints a SYN-ACK against the SYN's MSS as p0f read it (f->syn_mss)
    let syn_mss = n.client.as_ref().map_or(0, |c| c.d.p0f_mss);
    e.key("client");
    match &n.client {
        Some(c) => emit_side(e, c, true, n, 0),
        None => e.null(),
    }
    e.key("server");
    match &n.server {
        Some(s) => emit_side(e, s, false, n, syn_mss),
        None => e.null(),
    }
    e.key("in_effect");
    match (&n.client, &n.server) {
        (Some(c), Some(s)) => {
            let scaling = c.wscale.is_some() && s.wscale.is_some();
            e.begin_obj();
            e.key("window_scaling");
            e.bool(scaling);
            e.key("client_window_scale");
            e.opt_int(n.scale_of(true).map(i64::from));
            e.key("server_window_scale");
            e.opt_int(n.scale_of(false).map(i64::from));
            e.key("sack");
            e.bool(c.sack && s.sack);
            e.key("timestamps");
            e.bool(c.tsval.is_some() && s.tsval.is_some());
            e.key("ecn");
            // RFC 3168 §6.1.1: an ECN-setup SYN (ECE and CWR) answered by an ECN-setup SYN-ACK
            // (ECE without CWR).
            e.bool(c.flags & (ECE | CWR) == ECE | CWR && s.flags & (ECE | CWR) == ECE);
            e.key("tfo");
            e.bool(c.payload_len > 0 && n.data_acked == Some(true));
            e.key("mss_to_server");
            e.int(i64::from(s.mss.unwrap_or_else(|| s.default_mss())));
            e.key("mss_to_client");
            e.int(i64::from(c.mss.unwrap_or_else(|| c.default_mss())));
            e.end_obj();
        }
        _ => e.null(),
    }
    e.key("warnings");
    e.begin_list();
    n.emit_warnings(e);
    e.end_list();
    // Added beside the contract's fields: the one-line summary (tables, CSV), and a simultaneous
    // open's other SYN and SYN-ACK (p0f
    // fingerprints the SYN-ACK against that SYN's MSS, as it does on its reversed flow).
    e.key("summary");
    e.str_with(&mut |out| write_summary(n, out));
    e.key("simultaneous_open");
    match (&n.server_syn, &n.client_synack) {
        (None, None) => e.null(),
        (ssyn, csynack) => {
            e.begin_obj();
            e.key("server_syn");
            match ssyn {
                Some(s) => emit_side(e, s, false, n, 0),
                None => e.null(),
            }
            e.key("client_synack");
            match csynack {
                Some(c) => {
                    let mss = ssyn.as_ref().map_or(0, |s| s.d.p0f_mss);
                    emit_side(e, c, false, n, mss)
                }
                None => e.null(),
            }
            e.end_obj();
        }
    }
    e.end_obj();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Value, ValueBuilder};
    use crate::segment::{Addr, TcpOptions};

    fn seg(flags: u16, seq: u32, ack: u32, options: TcpOptions, len: u32) -> Segment {
        Segment {
            ts: 0.0,
            frame: 1,
            src: Addr::V4([10, 0, 0, 1]),
            sport: 1,
            dst: Addr::V4([10, 0, 0, 2]),
            dport: 2,
            seq,
            ack,
            flags,
            window: 1000,
            payload_len: len,
            options,
            ip_version: 4,
            checksum_ok: None,
            tunnels: None,
        }
    }

    fn record(n: &Negotiation) -> Value {
        let mut b = ValueBuilder::new();
        emit(&mut b, Some(n));
        b.finish()
    }

    fn keys(v: &Value) -> Vec<&'static str> {
        match v {
            Value::Obj(f) => f.iter().map(|(k, _)| *k).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn field_lists_are_what_emit_writes() {
        let mut n = Negotiation::default();
        let ws = TcpOptions {
            wscale: Some(7),
            ..TcpOptions::default()
        };
        n.note(&seg(SYN, 1, 0, ws.clone(), 0), None, true);
        n.note(&seg(SYN, 9, 0, TcpOptions::default(), 0), None, false);
        n.note(&seg(SYN | ACK, 1, 10, ws.clone(), 0), None, true);
        n.note(&seg(SYN | ACK, 9, 2, ws, 0), None, false);
        let rec = record(&n);
        assert_eq!(keys(&rec), NEGOTIATION_FIELDS);
        let side = rec.get("client").expect("client");
        let mut paths: Vec<String> = Vec::new();
        for k in keys(side) {
            paths.push(k.to_string());
            for sub in keys(side.get(k).expect("field")) {
                paths.push(format!("{k}.{sub}"));
            }
        }
        let mut want: Vec<String> = SIDE_FIELDS.iter().map(|s| s.to_string()).collect();
        want.retain(|f| f != "server_syn" && f != "client_synack");
        assert_eq!(paths, want);
        assert_eq!(keys(rec.get("in_effect").expect("effect")), EFFECT_FIELDS);
        let crossed = rec.get("simultaneous_open").expect("crossed");
        assert_eq!(keys(crossed), ["server_syn", "client_synack"]);
        // the client's SYN-ACK turned scaling on for a server SYN that had not offered it
        let warnings = rec.get("warnings").expect("warnings");
        assert_eq!(
            warnings,
            &Value::List(vec![Value::Str("synack_enables_unoffered:ws".into())])
        );
    }

    #[test]
    fn in_effect_follows_the_rfcs() {
        let mut n = Negotiation::default();
        let c = TcpOptions {
            mss: Some(1460),
            wscale: Some(20),
            sack_permitted: true,
            ..TcpOptions::default()
        };
        n.note(&seg(SYN | ECE | CWR, 100, 0, c.clone(), 5), None, true);
        let mut retry = c.clone();
        retry.wscale = None;
        n.note(&seg(SYN | ECE | CWR, 100, 0, retry, 5), None, true);
        let s = TcpOptions {
            wscale: Some(3),
            ts_val: Some(1),
            ..TcpOptions::default()
        };
        n.note(&seg(SYN | ACK | ECE, 7, 106, s, 0), None, false);
        let rec = record(&n);
        let eff = rec.get("in_effect").expect("effect");
        let get = |k: &str| eff.get(k).cloned().expect(k);
        assert_eq!(get("window_scaling"), Value::Bool(true));
        assert_eq!(get("client_window_scale"), Value::Int(14)); // RFC 7323 §2.3
        assert_eq!(get("server_window_scale"), Value::Int(3));
        assert_eq!(get("sack"), Value::Bool(false));
        assert_eq!(get("timestamps"), Value::Bool(false));
        assert_eq!(get("ecn"), Value::Bool(true));
        assert_eq!(get("tfo"), Value::Bool(true)); // 5 bytes on the SYN, acked: 100 + 1 + 5
        assert_eq!(get("mss_to_server"), Value::Int(536)); // no MSS option: RFC 9293 §3.7.1
        assert_eq!(get("mss_to_client"), Value::Int(1460));
        let warnings = rec.get("warnings").expect("warnings");
        assert_eq!(
            warnings,
            &Value::List(vec![
                Value::Str("syn_options_changed".into()),
                // the retransmitted SYN (the one answered) did not offer scaling; the SYN-ACK did
                Value::Str("synack_enables_unoffered:ws".into()),
                Value::Str("synack_enables_unoffered:ts".into()),
            ])
        );
    }

    #[test]
    fn summary_of_one_side() {
        let mut n = Negotiation::default();
        assert_eq!(summary(&n), "no SYN seen");
        n.note(&seg(SYN, 1, 0, TcpOptions::default(), 0), None, true);
        assert_eq!(summary(&n), "SYN only:"); // nothing offered: no trailing space
        let mut n = Negotiation::default();
        let mss = TcpOptions {
            mss: Some(1460),
            ..TcpOptions::default()
        };
        n.note(&seg(SYN | ACK | ECE, 9, 2, mss, 3), None, false);
        assert_eq!(summary(&n), "SYN-ACK only: mss 1460 ecn +3");
    }

    #[test]
    fn a_missing_side_is_null_and_nothing_is_in_effect() {
        let mut n = Negotiation::default();
        n.note(&seg(SYN, 1, 0, TcpOptions::default(), 0), None, true);
        let rec = record(&n);
        assert_eq!(rec.get("server"), Some(&Value::Null));
        assert_eq!(rec.get("in_effect"), Some(&Value::Null));
        assert_eq!(rec.get("synack_seen"), Some(&Value::Bool(false)));
        assert!(mss_above_mtu(65535, 4) && !mss_above_mtu(65495, 4));
        assert!(!mss_above_mtu(65535, 6) && mss_above_mtu(65534, 6));
    }
}
