//! Tunnels: the headers that carry a whole IP packet (or frame) inside another, so that the analyzer
//! finds the innermost TCP segment and can say what carried it.
//!
//! This module reads the tunnel headers themselves; src/decode.rs walks IP and link layers and calls
//! in here where an IP protocol number or a UDP port says a tunnel may follow. Every parser reads
//! `data[off..end]` only, where `end` is where the carrier's own length fields say its payload ends
//! (already bounded by the captured bytes), with `.get()`: no input can panic it, and every header
//! consumes bytes, so nesting ends with the data (and at `MAX_DEPTH`, counted by the caller).
//!
//! Kinds (the `kind` of a record's `tunnels` entries, `TUNNEL_KINDS`):
//! - `ip-in-ip`: IPv4 or IPv6 right after an IPv4 or IPv6 header (IP protocol 4, RFC 2003; 41,
//!   RFC 4213 §3.5 / RFC 2473): 4in4, 6in4, 4in6, 6in6.
//! - `gre`: GRE (IP protocol 47; RFC 2784, key and sequence RFC 2890; version 1 = PPTP's enhanced
//!   GRE, RFC 2637 §4.1, carrying PPP), with IPv4/IPv6, Ethernet (0x6558, transparent Ethernet
//!   bridging), MPLS or VLAN-tagged frames, and Aruba's 802.11 frames (0x8200-class types) inside.
//! - `erspan`: GRE carrying mirrored frames: 0x88BE type I (no header) or II (8 bytes, when the
//!   sequence bit is set), 0x22EB type III (12 bytes, + 8 with the O bit) (draft-foschiano-erspan).
//! - `gre-in-udp`: GRE inside UDP to port 4754 (RFC 8086).
//! - `vxlan`: UDP port 4789, 8-byte header with the I flag, then Ethernet (RFC 7348 §5).
//! - `geneve`: UDP port 6081, 8 bytes + options (RFC 8926 §3.4), then what its protocol type names.
//! - `gtp-u`: UDP port 2152, GTPv1-U G-PDU (3GPP TS 29.281 §5.1), optional fields and extension
//!   header chain, then IPv4/IPv6.
//! - `teredo`: UDP port 3544, or any port when the payload has Teredo's shape (Zeek finds it on
//!   32900): optional authentication and origin indication, then IPv6 (RFC 4380 §5.1.1).
//! - `ayiya`: UDP port 5072, AYIYA forward messages (draft-massar-v6ops-ayiya §5).
//! - `l2tp`: UDP port 1701, L2TPv2 data messages (RFC 2661 §3.1) carrying PPP.
//!
//! Zeek's and Wireshark's dissectors are the references for what is accepted (Zeek:
//! src/packet_analysis/protocol/{gre,vxlan,geneve,gtpv1,teredo,ayiya,ieee802_11}/; Wireshark:
//! packet-gre.c, packet-l2tp.c).

pub mod fragments;

use crate::record::Value;
use crate::segment::Addr;

/// Tunnels inside tunnels beyond this many are not followed (`tunnel-depth-exceeded`): a loop of
/// nested headers is cut here, never followed to the end of its bytes. Zeek's Tunnel::max_depth is
/// 2 by default; 8 leaves room for real stacks (IP-in-IP in GRE in VXLAN ...).
pub const MAX_DEPTH: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TunnelKind {
    IpInIp,
    Gre,
    Erspan,
    GreInUdp,
    Vxlan,
    Geneve,
    GtpU,
    Teredo,
    Ayiya,
    L2tp,
}

/// Every kind's name, in `TunnelKind` order (the vocabulary exported to Python).
pub const TUNNEL_KINDS: [&str; 10] = [
    "ip-in-ip",
    "gre",
    "erspan",
    "gre-in-udp",
    "vxlan",
    "geneve",
    "gtp-u",
    "teredo",
    "ayiya",
    "l2tp",
];

impl TunnelKind {
    pub fn name(self) -> &'static str {
        TUNNEL_KINDS[self as usize]
    }
    /// UDP-based kinds name their endpoints with ports.
    pub fn over_udp(self) -> bool {
        !matches!(
            self,
            TunnelKind::IpInIp | TunnelKind::Gre | TunnelKind::Erspan
        )
    }
}

/// One tunnel layer as one packet crossed it: the outer source and destination (ports 0 for the
/// kinds that are not over UDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tunnel {
    pub kind: TunnelKind,
    pub src: Addr,
    pub sport: u16,
    pub dst: Addr,
    pub dport: u16,
}

impl Tunnel {
    /// A placeholder for unused slots of a fixed-size stack.
    pub const NONE: Tunnel = Tunnel {
        kind: TunnelKind::IpInIp,
        src: Addr::V4([0; 4]),
        sport: 0,
        dst: Addr::V4([0; 4]),
        dport: 0,
    };

    /// The same tunnel, whichever way this packet crossed it.
    pub fn same(&self, other: &Tunnel) -> bool {
        self.kind == other.kind
            && ((self.src, self.sport, self.dst, self.dport)
                == (other.src, other.sport, other.dst, other.dport)
                || (self.src, self.sport, self.dst, self.dport)
                    == (other.dst, other.dport, other.src, other.sport))
    }

    /// `{kind, src, dst}`: the layer as this packet crossed it (a decoded segment's `tunnels`).
    pub fn value(&self) -> Value {
        Value::Obj(vec![
            ("kind", Value::Static(self.kind.name())),
            ("src", self.end_label(self.src, self.sport).into()),
            ("dst", self.end_label(self.dst, self.dport).into()),
        ])
    }

    /// `10.0.0.1` (no port) or `10.0.0.1:4789` / `[2001:db8::1]:3544`, the way records name endpoints.
    pub fn end_label(&self, addr: Addr, port: u16) -> String {
        if !self.kind.over_udp() {
            return addr.text();
        }
        match addr {
            Addr::V4(_) => format!("{}:{}", addr.text(), port),
            Addr::V6(_) => format!("[{}]:{}", addr.text(), port),
        }
    }
}

/// The tunnels one packet crossed, outermost first: at most `MAX_DEPTH`, kept inline so that a
/// segment's path is one allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct TunnelPath {
    len: u8,
    layers: [Tunnel; MAX_DEPTH],
}

impl TunnelPath {
    /// The first `MAX_DEPTH` layers of `layers`.
    pub fn new(layers: &[Tunnel]) -> TunnelPath {
        let mut path = TunnelPath {
            len: 0,
            layers: [Tunnel::NONE; MAX_DEPTH],
        };
        for (slot, layer) in path.layers.iter_mut().zip(layers) {
            *slot = *layer;
            path.len += 1;
        }
        path
    }
}

impl std::fmt::Debug for TunnelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl std::ops::Deref for TunnelPath {
    type Target = [Tunnel];
    fn deref(&self) -> &[Tunnel] {
        self.layers.get(..usize::from(self.len)).unwrap_or_default()
    }
}

/// What follows a tunnel header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// An IP packet: 4, 6, or 0 (read the version nibble).
    Ip(u8),
    /// What an EtherType names (IPv4, IPv6, VLAN, MPLS, PPPoE ...), right at `off`.
    EtherType(u16),
    /// An Ethernet frame.
    Ethernet,
    /// A PPP frame, with or without the HDLC address and control bytes.
    Ppp,
    /// An IEEE 802.11 data frame (Aruba's GRE).
    Wlan,
}

/// A tunnel header read: its kind, where its payload starts and ends, and what the payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    pub kind: TunnelKind,
    pub off: usize,
    pub end: usize,
    pub next: Next,
}

/// Why a header was not followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Not a tunnel we follow (another version, a control message, a port that was a guess): the
    /// packet is counted as non-TCP.
    Not,
    /// The header runs past `end`: `what` needs `need` bytes from `at`.
    Short {
        what: &'static str,
        at: usize,
        need: usize,
    },
}

type Parsed = Result<Hop, Stop>;

#[inline]
fn u8_at(data: &[u8], i: usize) -> Option<u8> {
    data.get(i).copied()
}

#[inline]
fn u16_at(data: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *data.get(i)?,
        *data.get(i.checked_add(1)?)?,
    ]))
}

/// `need` bytes from `at` within `end` (and the data), else `Short`.
#[inline]
fn have(data: &[u8], at: usize, need: usize, end: usize, what: &'static str) -> Result<(), Stop> {
    match at.checked_add(need) {
        Some(stop) if stop <= end && stop <= data.len() => Ok(()),
        _ => Err(Stop::Short { what, at, need }),
    }
}

// --- UDP ports (IANA service names) -----------------------------------------------------------
pub const PORT_GRE_IN_UDP: u16 = 4754;
pub const PORT_VXLAN: u16 = 4789;
pub const PORT_GENEVE: u16 = 6081;
pub const PORT_GTP_U: u16 = 2152;
pub const PORT_TEREDO: u16 = 3544;
pub const PORT_AYIYA: u16 = 5072;
pub const PORT_L2TP: u16 = 1701;

/// The tunnel in a UDP payload `data[off..end]` between `sport` and `dport`: by the destination port,
/// then the source port (replies come from the tunnel port), then Teredo's shape on any port.
pub fn udp(data: &[u8], off: usize, end: usize, sport: u16, dport: u16) -> Parsed {
    let mut short = None;
    for port in [dport, sport] {
        let parsed = match port {
            PORT_GRE_IN_UDP => gre(data, off, end).map(|h| Hop {
                kind: TunnelKind::GreInUdp,
                ..h
            }),
            PORT_VXLAN => vxlan(data, off, end),
            PORT_GENEVE => geneve(data, off, end),
            PORT_GTP_U => gtp_u(data, off, end),
            PORT_TEREDO => teredo(data, off, end, false),
            PORT_AYIYA => ayiya(data, off, end),
            PORT_L2TP => l2tp(data, off, end),
            _ => continue,
        };
        match parsed {
            Ok(hop) => return Ok(hop),
            Err(s @ Stop::Short { .. }) => short = short.or(Some(s)),
            Err(Stop::Not) => {}
        }
    }
    match teredo(data, off, end, true) {
        Ok(hop) => Ok(hop),
        // A port guess that ran out of bytes says so (a snaplen cut shows as truncated).
        Err(_) => Err(short.unwrap_or(Stop::Not)),
    }
}

/// GRE (RFC 2784 §2.1, RFC 2890 §2, RFC 2637 §4.1), as Zeek's GRE analyzer accepts it.
pub fn gre(data: &[u8], off: usize, end: usize) -> Parsed {
    have(data, off, 4, end, "GRE header")?;
    let flags = u16_at(data, off).unwrap_or(0);
    let proto = u16_at(data, off + 2).unwrap_or(0);
    let version = flags & 0x0007;
    if version > 1 || flags & 0x4000 != 0 || flags & 0x0078 != 0 {
        // another version; RFC 1701's source routing (deprecated by RFC 2784); reserved bits
        return Err(Stop::Not);
    }
    let mut len = 4;
    for bit in [0x8000, 0x2000, 0x1000, 0x0080] {
        // checksum (+reserved), key, sequence number, acknowledgment (version 1)
        if flags & bit != 0 {
            len += 4;
        }
    }
    have(data, off, len, end, "GRE header")?;
    let at = off + len;
    let hop = |kind, at, next| {
        Ok(Hop {
            kind,
            off: at,
            end,
            next,
        })
    };
    if version == 1 {
        // PPTP: PPP inside; an acknowledgment-only packet (no sequence number) carries nothing.
        if proto != 0x880B || flags & 0x1000 == 0 || at >= end {
            return Err(Stop::Not);
        }
        return hop(TunnelKind::Gre, at, Next::Ppp);
    }
    match proto {
        0x6558 => hop(TunnelKind::Gre, at, Next::Ethernet),
        0x88BE => {
            // ERSPAN type II has the sequence bit and an 8-byte header; type I has neither.
            let skip = if flags & 0x1000 != 0 { 8 } else { 0 };
            have(data, at, skip, end, "ERSPAN header")?;
            hop(TunnelKind::Erspan, at + skip, Next::Ethernet)
        }
        0x22EB => {
            // ERSPAN type III: 12 bytes; the O bit (the last one) adds an 8-byte platform header;
            // the frame type (FT) says Ethernet (0) or IP (2).
            have(data, at, 12, end, "ERSPAN type III header")?;
            let word = u16_at(data, at + 10).unwrap_or(0);
            let skip = if word & 1 != 0 { 20 } else { 12 };
            have(data, at, skip, end, "ERSPAN type III header")?;
            match (word >> 10) & 0x1F {
                0 => hop(TunnelKind::Erspan, at + skip, Next::Ethernet),
                2 => hop(TunnelKind::Erspan, at + skip, Next::Ip(0)),
                _ => Err(Stop::Not),
            }
        }
        // Aruba's WLAN tunnels (Zeek GRE.cc, the same test): an 802.11 frame.
        p if (p & 0x8200 == 0x8200 && p & 0x0F == 0)
            || (p & 0x8300 == 0x8300 && p & 0x0F == 0 && p <= 0x8370)
            || p == 0x9000 =>
        {
            hop(TunnelKind::Gre, at, Next::Wlan)
        }
        p => hop(TunnelKind::Gre, at, Next::EtherType(p)),
    }
}

/// VXLAN (RFC 7348 §5): flags with I (0x08) set, 24 reserved bits, the VNI, 8 reserved bits.
pub fn vxlan(data: &[u8], off: usize, end: usize) -> Parsed {
    have(data, off, 8, end, "VXLAN header")?;
    if u8_at(data, off).unwrap_or(0) & 0x08 == 0 {
        return Err(Stop::Not);
    }
    Ok(Hop {
        kind: TunnelKind::Vxlan,
        off: off + 8,
        end,
        next: Next::Ethernet,
    })
}

/// Geneve (RFC 8926 §3.4): version 0, options of `opt_len` 4-byte words, then the protocol type's
/// payload (0x6558: Ethernet).
pub fn geneve(data: &[u8], off: usize, end: usize) -> Parsed {
    have(data, off, 8, end, "Geneve header")?;
    let first = u8_at(data, off).unwrap_or(0);
    if first >> 6 != 0 {
        return Err(Stop::Not);
    }
    let len = 8 + usize::from(first & 0x3F) * 4;
    have(data, off, len, end, "Geneve options")?;
    let next = match u16_at(data, off + 2).unwrap_or(0) {
        0x6558 => Next::Ethernet,
        p => Next::EtherType(p),
    };
    Ok(Hop {
        kind: TunnelKind::Geneve,
        off: off + len,
        end,
        next,
    })
}

/// GTPv1-U (3GPP TS 29.281 §5.1-5.2): version 1, protocol type GTP, a G-PDU (type 255); the length
/// field bounds the payload; sequence number, N-PDU number and next extension type are there when
/// any of E, S, PN is set; extension headers are chained by their last byte, sized in 4-byte units.
pub fn gtp_u(data: &[u8], off: usize, end: usize) -> Parsed {
    have(data, off, 8, end, "GTP-U header")?;
    let flags = u8_at(data, off).unwrap_or(0);
    if flags >> 5 != 1 || flags & 0x10 == 0 || u8_at(data, off + 1) != Some(0xFF) {
        return Err(Stop::Not); // GTPv2, GTP', or a signalling message (echo, error indication)
    }
    let length = usize::from(u16_at(data, off + 2).unwrap_or(0));
    let end = end.min(off + 8 + length);
    let mut at = off + 8;
    if flags & 0x07 != 0 {
        have(data, at, 4, end, "GTP-U optional fields")?;
        let mut next_ext = u8_at(data, at + 3).unwrap_or(0);
        at += 4;
        if flags & 0x04 == 0 {
            next_ext = 0; // only meaningful with E (§5.1)
        }
        while next_ext != 0 {
            have(data, at, 1, end, "GTP-U extension header")?;
            let units = usize::from(u8_at(data, at).unwrap_or(0));
            if units == 0 {
                return Err(Stop::Not); // a zero-length extension header cannot be skipped
            }
            have(data, at, units * 4, end, "GTP-U extension header")?;
            next_ext = u8_at(data, at + units * 4 - 1).unwrap_or(0);
            at += units * 4;
        }
    }
    Ok(Hop {
        kind: TunnelKind::GtpU,
        off: at,
        end,
        next: Next::Ip(0),
    })
}

/// The IPv6 Teredo prefix 2001:0000::/32 (RFC 4380 §2.6).
fn teredo_addr(data: &[u8], at: usize) -> bool {
    data.get(at..at + 4) == Some(&[0x20, 0x01, 0x00, 0x00][..])
}

/// Teredo (RFC 4380 §5.1.1): an optional authentication header (indicator 0x0001), an optional origin
/// indication (0x0000, 8 bytes), then an IPv6 packet whose payload length fills the UDP payload
/// exactly (a bubble may carry trailing bytes). `guess`: the port was not Teredo's, so, as Zeek's
/// Teredo detection, an origin/authentication header or a Teredo address (source or destination)
/// must say so too.
pub fn teredo(data: &[u8], off: usize, end: usize, guess: bool) -> Parsed {
    let mut at = off;
    let mut marked = false;
    if u16_at(data, at) == Some(0x0001) {
        // authentication: indicator, ID length, AU length, ID, AU, nonce (8), confirmation (1)
        have(data, at, 4, end, "Teredo authentication header")?;
        let len = 13
            + usize::from(u8_at(data, at + 2).unwrap_or(0))
            + usize::from(u8_at(data, at + 3).unwrap_or(0));
        have(data, at, len, end, "Teredo authentication header")?;
        at += len;
        marked = true;
    }
    if u16_at(data, at) == Some(0x0000) {
        have(data, at, 8, end, "Teredo origin indication")?;
        at += 8;
        marked = true;
    }
    if u8_at(data, at).map(|b| b >> 4) != Some(6) {
        return Err(Stop::Not);
    }
    have(data, at, 40, end, "IPv6 header in Teredo")?;
    let payload = usize::from(u16_at(data, at + 4).unwrap_or(0));
    let bubble = u8_at(data, at + 6) == Some(59) && payload == 0;
    if at + 40 + payload != end && !(bubble && at + 40 <= end) {
        return Err(Stop::Not);
    }
    if guess && !marked && !teredo_addr(data, at + 8) && !teredo_addr(data, at + 24) {
        return Err(Stop::Not);
    }
    Ok(Hop {
        kind: TunnelKind::Teredo,
        off: at,
        end,
        next: Next::Ip(6),
    })
}

/// AYIYA (draft-massar-v6ops-ayiya §5): identity of 2^idlen bytes and a signature of siglen 4-byte
/// words after the 8-byte header; only forward messages (opcode 1) carry a packet, of the IP
/// protocol in the next-header byte.
pub fn ayiya(data: &[u8], off: usize, end: usize) -> Parsed {
    have(data, off, 8, end, "AYIYA header")?;
    let b = |i| usize::from(u8_at(data, off + i).unwrap_or(0));
    let len = 8 + (1usize << (b(0) >> 4)) + (b(1) >> 4) * 4;
    have(data, off, len, end, "AYIYA header")?;
    if b(2) & 0x0F != 1 {
        return Err(Stop::Not);
    }
    let next = match b(3) {
        4 => Next::Ip(4),
        41 => Next::Ip(6),
        _ => return Err(Stop::Not),
    };
    Ok(Hop {
        kind: TunnelKind::Ayiya,
        off: off + len,
        end,
        next,
    })
}

/// L2TPv2 (RFC 2661 §3.1): a data message (T clear) of version 2; length, sequence numbers and an
/// offset pad are there when their bits (L, S, O) say so; PPP follows.
pub fn l2tp(data: &[u8], off: usize, end: usize) -> Parsed {
    have(data, off, 6, end, "L2TP header")?;
    let flags = u16_at(data, off).unwrap_or(0);
    if flags & 0x8000 != 0 || flags & 0x000F != 2 {
        return Err(Stop::Not); // a control message, or L2TPv3 / L2F
    }
    let mut end = end;
    let mut at = off + 2;
    if flags & 0x4000 != 0 {
        let length = usize::from(u16_at(data, at).unwrap_or(0));
        end = end.min(off + length);
        at += 2;
    }
    at += 4; // tunnel ID, session ID
    if flags & 0x0800 != 0 {
        at += 4; // Ns, Nr
    }
    if flags & 0x0200 != 0 {
        have(data, at, 2, end, "L2TP offset size")?;
        at += 2 + usize::from(u16_at(data, at).unwrap_or(0));
    }
    if at >= end {
        return Err(Stop::Not);
    }
    Ok(Hop {
        kind: TunnelKind::L2tp,
        off: at,
        end,
        next: Next::Ppp,
    })
}

/// PPP (RFC 1661 §2): the HDLC-like address and control bytes 0xFF 0x03 when present (RFC 1662
/// §3.1), then the protocol, one byte when compressed (an odd first byte, RFC 1661 §6.5). IPv4
/// (0x0021, RFC 1332) or IPv6 (0x0057, RFC 5072): where the packet starts and its version.
pub fn ppp(data: &[u8], off: usize, end: usize) -> Option<(usize, u8)> {
    let mut at = off;
    if u16_at(data, at) == Some(0xFF03) {
        at += 2;
    }
    let first = u8_at(data, at)?;
    let (proto, len) = if first & 1 != 0 {
        (u16::from(first), 1)
    } else {
        (u16_at(data, at)?, 2)
    };
    if at + len > end {
        return None;
    }
    match proto {
        0x0021 => Some((at + len, 4)),
        0x0057 => Some((at + len, 6)),
        _ => None,
    }
}

/// An IEEE 802.11 data frame (IEEE 802.11-2020 §9.2.4, §9.3.2.1), as Zeek reads Aruba's: where the
/// MSDU (or the first A-MSDU subframe) starts and whether it is an A-MSDU. None: a management or
/// control frame, a frame without data, or an encrypted one.
pub fn wlan(data: &[u8], off: usize, end: usize) -> Option<(usize, bool)> {
    let fc = u8_at(data, off)?;
    let flags = u8_at(data, off + 1)?;
    if (fc >> 2) & 0x02 == 0 || (fc >> 4) & 0x04 != 0 || flags & 0x40 != 0 {
        return None; // not data; a subtype without data (null, CF-only); protected
    }
    let mut len = 24;
    if flags & 0x03 == 0x03 {
        len += 6; // to DS and from DS: the fourth address
    }
    let mut amsdu = false;
    if (fc >> 4) & 0x08 != 0 {
        amsdu = u8_at(data, off + len)? & 0x80 != 0; // QoS Control, A-MSDU present
        len += 2;
        if flags & 0x80 != 0 {
            len += 4; // +HTC: an HT Control field in a QoS data frame with the Order bit
        }
    }
    if off + len >= end {
        return None;
    }
    Some((off + len, amsdu))
}

/// LLC with SNAP and the Ethernet OUI (IEEE 802.2, RFC 1042): AA AA 03 00 00 00, then an EtherType.
pub fn llc_snap(data: &[u8], off: usize, end: usize) -> Option<(usize, u16)> {
    if off + 8 > end || data.get(off..off + 6) != Some(&[0xAA, 0xAA, 0x03, 0, 0, 0][..]) {
        return None;
    }
    Some((off + 8, u16_at(data, off + 6)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let t: String = text.split_whitespace().collect();
        (0..t.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&t[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn gre_lengths_follow_the_flag_bits() {
        let plain = hex("0000 0800");
        assert_eq!(
            gre(&plain, 0, 4),
            Ok(Hop {
                kind: TunnelKind::Gre,
                off: 4,
                end: 4,
                next: Next::EtherType(0x0800)
            })
        );
        let keyed = hex("2000 6558 0000 0001");
        assert_eq!(
            gre(&keyed, 0, 8).map(|h| (h.off, h.next)),
            Ok((8, Next::Ethernet))
        );
        let all = hex("b000 86dd 0000 0000 0000 0001 0000 0002 ff");
        assert_eq!(gre(&all, 0, 17).map(|h| h.off), Ok(16));
        // routing bit, version 2, reserved bits: not followed
        for bad in ["4000 0800", "0002 0800", "0008 0800"] {
            assert_eq!(gre(&hex(bad), 0, 4), Err(Stop::Not), "{bad}");
        }
        // a key announced but not there
        assert!(matches!(
            gre(&hex("2000 0800"), 0, 4),
            Err(Stop::Short { need: 8, .. })
        ));
        // PPTP: version 1, 0x880B, key (length + call ID), sequence: PPP follows
        let pptp = hex("3001 880b 0004 0001 0000 0007 ff03 0021");
        assert_eq!(
            gre(&pptp, 0, 16).map(|h| (h.off, h.next)),
            Ok((12, Next::Ppp))
        );
        assert_eq!(ppp(&pptp, 12, 16), Some((16, 4)));
        // an acknowledgment-only PPTP packet carries nothing
        assert_eq!(
            gre(&hex("2081 880b 0000 0001 0000 0007"), 0, 12),
            Err(Stop::Not)
        );
    }

    #[test]
    fn erspan_types() {
        // type I: no sequence bit, Ethernet right away; type II: 8-byte header
        assert_eq!(
            gre(&hex("0000 88be"), 0, 4).map(|h| (h.kind, h.off)),
            Ok((TunnelKind::Erspan, 4))
        );
        let two = hex("1000 88be 0000 0001 1000 0001 0000 0000");
        assert_eq!(
            gre(&two, 0, 16).map(|h| (h.off, h.next)),
            Ok((16, Next::Ethernet))
        );
        // type III with the O bit: 12 + 8; with frame type 2: IP
        let mut three = hex("1000 22eb 0000 0001");
        three.extend(hex("2000 0001 0000 0000 0000 0001"));
        three.extend([0; 8]);
        assert_eq!(gre(&three, 0, 28).map(|h| h.off), Ok(28));
        three[18] = 0x08; // FT = 2
        three[19] = 0x00;
        assert_eq!(
            gre(&three, 0, 28).map(|h| (h.off, h.next)),
            Ok((20, Next::Ip(0)))
        );
    }

    #[test]
    fn aruba_types_carry_802_11() {
        for p in ["8200", "8210", "8300", "8370", "9000"] {
            let h = gre(&hex(&format!("0000 {p}")), 0, 5).map(|h| h.next);
            assert_eq!(h, Ok(Next::Wlan), "{p}");
        }
        assert_eq!(gre(&hex("0000 8380"), 0, 5).map(|h| h.next), Ok(Next::Wlan)); // 0x8200-class
        assert_eq!(
            gre(&hex("0000 8371"), 0, 5).map(|h| h.next),
            Ok(Next::EtherType(0x8371))
        );
    }

    #[test]
    fn udp_tunnels_by_port() {
        let vx = hex("0800 0000 0000 0100");
        assert_eq!(
            udp(&vx, 0, 8, 50000, 4789).map(|h| (h.kind, h.off)),
            Ok((TunnelKind::Vxlan, 8))
        );
        // the I flag is required
        assert_eq!(
            udp(&hex("0000 0000 0000 0100"), 0, 8, 50000, 4789),
            Err(Stop::Not)
        );
        // replies: the tunnel port is the source
        assert_eq!(
            udp(&vx, 0, 8, 4789, 50000).map(|h| h.kind),
            Ok(TunnelKind::Vxlan)
        );
        // Geneve with 2 words of options, protocol 0x0800
        let gen = hex("0200 0800 0000 2a00 0000 0000 0000 0000");
        assert_eq!(
            udp(&gen, 0, 16, 1234, 6081).map(|h| (h.kind, h.off, h.next)),
            Ok((TunnelKind::Geneve, 16, Next::EtherType(0x0800)))
        );
        assert!(matches!(
            udp(&gen, 0, 12, 1234, 6081),
            Err(Stop::Short { .. })
        ));
        // GRE in UDP
        assert_eq!(
            udp(&hex("0000 0800"), 0, 4, 40987, 4754).map(|h| h.kind),
            Ok(TunnelKind::GreInUdp)
        );
        // DNS is not a tunnel
        assert_eq!(
            udp(&hex("1234 0100 0001 0000"), 0, 8, 5353, 53),
            Err(Stop::Not)
        );
    }

    #[test]
    fn gtp_u_optional_fields_and_extension_headers() {
        // E set: seq, N-PDU, next type 0x85 (PDU session container, 1 unit), then IPv4
        let mut g = hex("34ff 0010 0000 0001 0000 0085 0110 0000 45");
        g.extend([0; 7]);
        assert_eq!(
            gtp_u(&g, 0, g.len()).map(|h| (h.off, h.end, h.next)),
            Ok((16, 24, Next::Ip(0)))
        );
        // the length field bounds the payload even when the datagram has more
        let mut longer = g.clone();
        longer.extend([0xEE; 10]);
        assert_eq!(gtp_u(&longer, 0, longer.len()).map(|h| h.end), Ok(24));
        // echo request (type 1), GTPv2 (version 2): not followed
        assert_eq!(
            gtp_u(&hex("3201 0004 0000 0000 0000 0000"), 0, 12),
            Err(Stop::Not)
        );
        assert_eq!(gtp_u(&hex("48ff 0000 0000 0000"), 0, 8), Err(Stop::Not));
        // a zero-length extension header
        assert_eq!(
            gtp_u(&hex("34ff 0008 0000 0001 0000 0085 0000 0000"), 0, 16),
            Err(Stop::Not)
        );
    }

    fn ipv6(payload: usize, src_teredo: bool) -> Vec<u8> {
        let mut h = hex("6000 0000");
        h.extend((payload as u16).to_be_bytes());
        h.extend([6, 64]);
        let mut src = [0u8; 16];
        if src_teredo {
            src[..4].copy_from_slice(&[0x20, 0x01, 0, 0]);
        }
        h.extend(src);
        h.extend([0x20, 0x01, 0x48, 0x60]);
        h.extend([0u8; 12]);
        h.extend(vec![0u8; payload]);
        h
    }

    #[test]
    fn teredo_needs_its_shape_off_its_port() {
        let p = ipv6(20, true);
        assert_eq!(teredo(&p, 0, p.len(), true).map(|h| h.off), Ok(0));
        // on another port, an IPv6 packet between two non-Teredo addresses is not Teredo
        let q = ipv6(20, false);
        assert_eq!(udp(&q, 0, q.len(), 40000, 32900), Err(Stop::Not));
        assert_eq!(
            udp(&q, 0, q.len(), 40000, 3544).map(|h| h.kind),
            Ok(TunnelKind::Teredo)
        );
        // unless an origin indication says so
        let mut o = hex("0000 f227 bec8 61af");
        o.extend(&q);
        assert_eq!(udp(&o, 0, o.len(), 40000, 32900).map(|h| h.off), Ok(8));
        // the payload length must fill the datagram
        assert_eq!(teredo(&p, 0, p.len() - 1, false), Err(Stop::Not));
        // authentication header (ID length 1, AU length 2), then origin indication
        let mut a = hex("0001 0102 aa bbbb 0102030405060708 00");
        a.extend(hex("0000 f227 bec8 61af"));
        a.extend(&q);
        assert_eq!(teredo(&a, 0, a.len(), true).map(|h| h.off), Ok(24));
    }

    #[test]
    fn ayiya_and_l2tp() {
        // identity 2^4 = 16 bytes, signature 5 words = 20 bytes, forward, IPv6
        let mut a = hex("4152 1129 0000 0000");
        a.extend([0; 36]);
        a.push(0x60);
        assert_eq!(
            ayiya(&a, 0, a.len()).map(|h| (h.off, h.next)),
            Ok((44, Next::Ip(6)))
        );
        a[2] = 0x12; // opcode 2: echo request
        assert_eq!(ayiya(&a, 0, a.len()), Err(Stop::Not));
        // identity length 15: 2^15 bytes the packet does not have
        assert!(matches!(
            ayiya(&hex("f000 0129 0000 0000"), 0, 8),
            Err(Stop::Short { .. })
        ));
        // L2TP data with length and sequence numbers, then PPP (address/control, IPv6)
        let l = hex("4802 0014 0001 0002 0000 0000 ff03 0057 6000 0000");
        let hop = l2tp(&l, 0, l.len()).expect("l2tp");
        assert_eq!((hop.off, hop.end), (12, 20));
        assert_eq!(ppp(&l, hop.off, hop.end), Some((16, 6)));
        // control message; L2TPv3
        assert_eq!(l2tp(&hex("c802 0014 0001 0002"), 0, 8), Err(Stop::Not));
        assert_eq!(l2tp(&hex("0003 0001 0002 21"), 0, 7), Err(Stop::Not));
        // compressed PPP protocol (one byte)
        assert_eq!(ppp(&hex("21 45"), 0, 2), Some((1, 4)));
        assert_eq!(ppp(&hex("c021 01"), 0, 3), None); // LCP
    }

    #[test]
    fn wlan_frames() {
        // QoS data (subtype 8), from DS, A-MSDU bit in the QoS control
        let mut f = hex("8802 0000");
        f.extend([0; 20]);
        f.extend(hex("8000"));
        f.extend(hex("aaaa 0300 0000 0800"));
        assert_eq!(wlan(&f, 0, f.len()), Some((26, true)));
        f[24] = 0;
        assert_eq!(wlan(&f, 0, f.len()), Some((26, false)));
        assert_eq!(llc_snap(&f, 26, f.len()), Some((34, 0x0800)));
        f[1] = 0x42; // protected
        assert_eq!(wlan(&f, 0, f.len()), None);
        assert_eq!(wlan(&hex("8000 0000"), 0, 4), None); // a beacon
    }

    #[test]
    fn same_tunnel_either_way() {
        let a = Tunnel {
            kind: TunnelKind::Gre,
            src: Addr::V4([1, 1, 1, 1]),
            sport: 0,
            dst: Addr::V4([2, 2, 2, 2]),
            dport: 0,
        };
        let b = Tunnel {
            src: a.dst,
            dst: a.src,
            ..a
        };
        assert!(
            a.same(&b)
                && !a.same(&Tunnel {
                    kind: TunnelKind::Vxlan,
                    ..a
                })
        );
        assert_eq!(a.end_label(a.src, 0), "1.1.1.1");
        let v = Tunnel {
            kind: TunnelKind::Teredo,
            src: Addr::V6([0; 16]),
            sport: 3544,
            ..a
        };
        assert_eq!(v.end_label(v.src, 3544), "[::]:3544");
        assert_eq!(TunnelKind::GtpU.name(), "gtp-u");
    }
}
