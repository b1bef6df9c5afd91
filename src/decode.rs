//! Raw frame bytes -> `Segment`: the one decoding path shared by files, live capture and the prober.
//! Port of core/decode.py.
//!
//! Pure: no sockets, no clock, no allocation on the common path. Every header field is read with
//! `.get()` at an offset checked against the captured length, so no input can panic the decoder.
//!
//! Outcomes of `decode`:
//! - a `Segment` for a TCP segment whose 20-byte TCP header was captured, the innermost one when
//!   tunnels carry it (src/tunnel.rs: IP-in-IP, GRE, ERSPAN, GRE-in-UDP, VXLAN, Geneve, GTP-U, Teredo,
//!   AYIYA, L2TP, and PPP, Ethernet or 802.11 inside them), with the tunnels it crossed
//!   (`Segment::tunnels`);
//! - a `Skip` reason (`non-tcp`, `fragment`, `truncated`, `unknown-link`, `tunnel-depth-exceeded`)
//!   the caller counts;
//! - `DecodeError` for a frame whose headers contradict themselves or the frame's own length.
//!   "Cut short by snaplen" (captured length < wire length) is never an error: it is `Truncated`
//!   when the fixed TCP header is missing, and a `Segment` when only options or payload are missing.
//!
//! Payload length always comes from the IP length fields, never from the captured bytes, so that
//! snaplen-cut captures still give the sequence space a segment consumed (RFC 9293 §3.4).
//!
//! Ethernet + IPv4 (IHL 5) + TCP, the common case, is read on a fast path with Python's own
//! conditions; everything else takes the general path (`decode_general`), which gives the same
//! answer: the tests and the parity harness decode every frame both ways. Lengths are computed in
//! i64 on the general path: Python's ints go negative where a wire length is shorter than the
//! captured bytes, and the error texts show those values.

use std::fmt;

use crate::checksum::tcp_checksum_ok;
use crate::segment::{Addr, Segment, TcpOptions};
use crate::syn;
use crate::tunnel::fragments::{FragKey, Reassembler};
use crate::tunnel::{self, Hop, Next, Stop, Tunnel, TunnelKind, TunnelPath, MAX_DEPTH};

/// Why a frame produced no segment (the caller counts these).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// ARP, UDP, ICMP, LLC, ... counted and skipped.
    NotTcp,
    /// A non-first IP fragment (or a first one too short for the TCP header).
    Fragment,
    /// snaplen cut the frame before the end of the 20-byte TCP header.
    Truncated,
    /// A link type this decoder does not know.
    UnknownLink,
    /// Tunnels nested deeper than `tunnel::MAX_DEPTH`: not followed (a loop of headers ends here).
    TunnelDepth,
}

impl Skip {
    /// The Python spelling (decode.py's NOT_TCP, FRAGMENT, TRUNCATED, UNKNOWN_LINK).
    pub fn name(self) -> &'static str {
        match self {
            Skip::NotTcp => "non-tcp",
            Skip::Fragment => "fragment",
            Skip::Truncated => "truncated",
            Skip::UnknownLink => "unknown-link",
            Skip::TunnelDepth => "tunnel-depth-exceeded",
        }
    }
}

/// What one frame decoded to.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    Segment(Segment),
    Skip(Skip),
}

/// A malformed frame (not merely cut short by snaplen): `offset` is the byte offset inside the frame
/// of the field at fault, `reason` says what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub reason: String,
}

impl fmt::Display for DecodeError {
    /// "byte 14 of the frame: IPv4 header length 12 < 20", as Python's str(DecodeError).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {} of the frame: {}", self.offset, self.reason)
    }
}

impl std::error::Error for DecodeError {}

// --- link types (https://www.tcpdump.org/linktypes.html) ---------------------------------------
/// BSD loopback: 4-byte address family in the *capturing host's* byte order.
pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
/// DLT_RAW on most BSDs (LINKTYPE_RAW's value there); OpenBSD's DLT_LOOP.
pub const LINKTYPE_RAW_BSD_12: u32 = 12;
/// DLT_RAW on OpenBSD / BSD/OS.
pub const LINKTYPE_RAW_BSD_14: u32 = 14;
/// Raw IP, version from the first nibble.
pub const LINKTYPE_RAW: u32 = 101;
/// OpenBSD loopback: address family in network byte order.
pub const LINKTYPE_LOOP: u32 = 108;
/// Linux cooked v1: 16-byte header, protocol (EtherType) at byte 14.
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
/// Linux cooked v2: 20-byte header, protocol (EtherType) at byte 0.
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

// BSD address families seen in NULL/LOOP headers; AF_INET6 differs per OS (libpcap gencode.c):
// 24 NetBSD/OpenBSD/BSD/OS, 28 FreeBSD/DragonFly, 30 macOS/iOS.
const AF_INET: u32 = 2;
const AF_INET6: [u32; 3] = [24, 28, 30];

// --- EtherTypes (IEEE 802.3 / IANA ieee-802-numbers) -------------------------------------------
const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
/// 802.1Q, 802.1ad QinQ, legacy QinQ.
const ETH_VLAN_TAGS: [u16; 3] = [0x8100, 0x88A8, 0x9100];
/// Unicast, multicast (RFC 5332).
const ETH_MPLS: [u16; 2] = [0x8847, 0x8848];
/// RFC 2516 §4; discovery (0x8863) carries no IP.
const ETH_PPPOE_SESSION: u16 = 0x8864;
const PPP_IPV4: u16 = 0x0021; // RFC 1332
const PPP_IPV6: u16 = 0x0057; // RFC 5072

// --- IP protocol numbers (IANA) ----------------------------------------------------------------
const IPPROTO_TCP: u8 = 6;
// Protocols that may carry a tunnel: IPv4 (RFC 2003), UDP, IPv6 (RFC 2473, RFC 4213), GRE (RFC 2784).
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;

#[inline]
fn carrier(proto: u8) -> bool {
    matches!(
        proto,
        IPPROTO_IPIP | IPPROTO_UDP | IPPROTO_IPV6 | IPPROTO_GRE
    )
}
// RFC 8200 §4: extension headers we walk through, with how each states its own length.
const IPV6_HOPOPTS: u8 = 0; // §4.3, (len + 1) * 8
const IPV6_ROUTING: u8 = 43; // §4.4, (len + 1) * 8
const IPV6_FRAGMENT: u8 = 44; // §4.5, always 8 bytes
const IPV6_AH: u8 = 51; // RFC 4302 §2.2, (len + 2) * 4
const IPV6_DSTOPTS: u8 = 60; // §4.6, (len + 1) * 8

/// The largest IPv4 datagram (RFC 791 §3.1: Total Length is 16 bits).
const IPV4_MAX_TOTAL: i64 = 65535;

type Outcome = Result<Decoded, DecodeError>;

/// Where the network layer starts and which IP version it is (0 = guess from the version nibble),
/// or why there is nothing to decode.
enum Link {
    Ip(usize, u8),
    Done(Outcome),
}

#[inline]
fn u16_at(data: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *data.get(i)?,
        *data.get(i.checked_add(1)?)?,
    ]))
}

#[inline]
fn u32_at(data: &[u8], i: usize) -> Option<u32> {
    let b = data.get(i..i.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[inline]
fn byte(data: &[u8], i: usize) -> u8 {
    data.get(i).copied().unwrap_or(0)
}

#[cold]
fn err(offset: usize, reason: String) -> Outcome {
    Err(DecodeError { offset, reason })
}

/// A header that runs off the captured bytes: snaplen's doing when the frame was cut, else malformed.
#[cold]
fn short(cut: bool, offset: usize, what: &str, need: usize, have: i64) -> Outcome {
    if cut {
        return Ok(Decoded::Skip(Skip::Truncated));
    }
    err(
        offset,
        format!("{what} needs {need} bytes, the frame has {}", have.max(0)),
    )
}

/// `n - off` as Python computes it (may be negative).
#[inline]
fn left(n: usize, off: usize) -> i64 {
    n as i64 - off as i64
}

/// Return a Segment or a Skip reason; a DecodeError for a frame that is malformed (not merely cut
/// short by snaplen).
///
/// `wirelen` is the frame's length on the wire; `None` means "as captured" (nothing was cut).
/// `verify_checksum` also checks the TCP checksum (RFC 9293 §3.1, over the IPv4 or IPv6
/// pseudo-header) and sets `Segment::checksum_ok`; it stays None where the segment was not captured
/// whole (snaplen cut, IP fragment). Off by default in the callers: NIC offload leaves outgoing
/// checksums unfilled in many captures, and the check reads every payload byte.
pub fn decode(
    data: &[u8],
    linktype: u32,
    ts: f64,
    frame: u64,
    wirelen: Option<u32>,
    verify_checksum: bool,
) -> Result<Decoded, DecodeError> {
    if !verify_checksum && linktype == LINKTYPE_ETHERNET {
        if let Some(h) = fast(data) {
            return Ok(Decoded::Segment(fast_segment(h, data, ts, frame)));
        }
    }
    decode_general(data, linktype, ts, frame, wirelen, verify_checksum)
}

/// What decoding keeps from frame to frame: the fragments of tunnel packets until they are whole
/// (src/tunnel/fragments.rs), and the more segments a frame carried (an 802.11 A-MSDU in Aruba's
/// GRE holds several packets) until the caller takes them.
#[derive(Debug, Default)]
pub struct Decoder {
    verify: bool,
    extra: Vec<Segment>,
    frags: Reassembler,
}

impl Decoder {
    /// `verify_checksum` as for `decode`.
    pub fn new(verify_checksum: bool) -> Decoder {
        Decoder {
            verify: verify_checksum,
            extra: Vec::new(),
            frags: Reassembler::new(),
        }
    }

    /// `decode`, with the frame's further segments kept for `take_extra` (call it after every
    /// frame: a frame's segments are the outcome's, then these, in the frame's order).
    #[inline]
    pub fn decode(
        &mut self,
        data: &[u8],
        linktype: u32,
        ts: f64,
        frame: u64,
        wirelen: Option<u32>,
    ) -> Result<Decoded, DecodeError> {
        if !self.verify && linktype == LINKTYPE_ETHERNET {
            if let Some(h) = fast(data) {
                return Ok(Decoded::Segment(fast_segment(h, data, ts, frame)));
            }
        }
        let mut cx = Cx {
            extra: &mut self.extra,
            frags: Some(&mut self.frags),
        };
        general(data, linktype, ts, frame, wirelen, self.verify, &mut cx)
    }

    /// True when the last frame carried more segments than its outcome.
    #[inline]
    pub fn has_extra(&self) -> bool {
        !self.extra.is_empty()
    }

    /// The last frame's further segments, in order.
    pub fn take_extra(&mut self) -> std::vec::Drain<'_, Segment> {
        self.extra.drain(..)
    }

    /// The fragments waiting for the rest of their datagram.
    pub fn fragments(&self) -> &Reassembler {
        &self.frags
    }
}

/// What one frame's decoding writes besides its outcome.
struct Cx<'c> {
    /// segments after the first (802.11 A-MSDU subframes)
    extra: &'c mut Vec<Segment>,
    /// fragments of tunnel packets (None: a stateless decode, which counts them as fragments)
    frags: Option<&'c mut Reassembler>,
}

/// Ethernet II, IPv4 without options, not a fragment, TCP header fully captured: Python's fast
/// path (decode.py, `_ETH_IP4_TCP`), the same conditions in the same order. Under them the general
/// path takes no branch that depends on the wire length and computes the same fields, so the two
/// agree (the tests and the parity harness check every frame both ways). Anything unusual (or
/// malformed) returns None and takes the general path.
#[inline]
fn fast(data: &[u8]) -> Option<&[u8; 54]> {
    let h: &[u8; 54] = data.get(..54)?.try_into().ok()?;
    // EtherType 0x0800, version 4 with IHL 5, protocol TCP, no MF and no fragment offset.
    if h[12] != 0x08 || h[13] != 0x00 || h[14] != 0x45 || h[23] != IPPROTO_TCP {
        return None;
    }
    if h[20] & 0x3F != 0 || h[21] != 0 {
        return None;
    }
    let tot = usize::from(u16::from_be_bytes([h[16], h[17]]));
    let thl = usize::from(h[46] >> 4) * 4;
    if (thl == 20 && tot >= 40) || (thl > 20 && thl + 20 <= tot && 34 + thl <= data.len()) {
        Some(h)
    } else {
        None
    }
}

/// No options: a constant, so that it is copied with wide moves (a value built field by field and
/// then moved costs a store-forwarding stall on the hot path).
const NO_OPTIONS: TcpOptions = TcpOptions {
    mss: None,
    wscale: None,
    sack_permitted: false,
    sack: None,
    ts_val: None,
    ts_ecr: None,
    syn: None,
};

/// The segment of a frame `fast` accepted.
#[inline(always)]
fn fast_segment(h: &[u8; 54], data: &[u8], ts: f64, frame: u64) -> Segment {
    let tot = usize::from(u16::from_be_bytes([h[16], h[17]]));
    let offb = h[46];
    let thl = usize::from(offb >> 4) * 4;
    let mut options = if thl > 20 {
        let mut o = NO_OPTIONS;
        options(&mut o, data, 54, 34 + thl);
        o
    } else {
        NO_OPTIONS
    };
    if h[47] & 0x02 != 0 {
        options.syn = Some(fast_syn(h, data, thl));
    }
    Segment {
        ts,
        frame,
        src: Addr::V4([h[26], h[27], h[28], h[29]]),
        sport: u16::from_be_bytes([h[34], h[35]]),
        dst: Addr::V4([h[30], h[31], h[32], h[33]]),
        dport: u16::from_be_bytes([h[36], h[37]]),
        seq: u32::from_be_bytes([h[38], h[39], h[40], h[41]]),
        ack: u32::from_be_bytes([h[42], h[43], h[44], h[45]]),
        flags: (u16::from(offb & 1) << 8) | u16::from(h[47]),
        window: u16::from_be_bytes([h[48], h[49]]),
        payload_len: (tot - 20 - thl) as u32,
        options,
        ip_version: 4,
        checksum_ok: None,
        tunnels: None,
    }
}

/// The SYN details of a frame `fast` accepted (IPv4 header at 14, TCP at 34).
#[cold]
#[inline(never)]
fn fast_syn(h: &[u8; 54], data: &[u8], thl: usize) -> Box<syn::SynDetails> {
    let ip = syn::IpFields {
        version: 4,
        ttl: h[22],
        tos: h[15],
        flags_off: u16::from_be_bytes([h[20], h[21]]),
        id: u16::from_be_bytes([h[18], h[19]]),
        flow_label: 0,
        hdr_len: 20,
        ip6_ext: false,
    };
    syn::read(ip, data.get(34..34 + thl).unwrap_or(&h[34..]))
}

/// Every link type and encapsulation, without the fast path: the reference the fast path must
/// agree with (public for the tests and the parity harness). The first segment of a frame that
/// carries several (see `Decoder`).
pub fn decode_general(
    data: &[u8],
    linktype: u32,
    ts: f64,
    frame: u64,
    wirelen: Option<u32>,
    verify_checksum: bool,
) -> Result<Decoded, DecodeError> {
    let mut extra = Vec::new();
    let mut cx = Cx {
        extra: &mut extra,
        frags: None,
    };
    general(data, linktype, ts, frame, wirelen, verify_checksum, &mut cx)
}

fn general(
    data: &[u8],
    linktype: u32,
    ts: f64,
    frame: u64,
    wirelen: Option<u32>,
    verify_checksum: bool,
    cx: &mut Cx<'_>,
) -> Result<Decoded, DecodeError> {
    let n = data.len();
    let cut = matches!(wirelen, Some(w) if (n as u64) < u64::from(w));
    let (off, version) = match link(data, n, linktype, cut) {
        Link::Ip(off, version) => (off, version),
        Link::Done(outcome) => return outcome,
    };
    let ip = Ip {
        data,
        n,
        off,
        cut,
        wire_end: wirelen.map_or(n as i64, i64::from),
        ts,
        frame,
        verify: verify_checksum,
        path: &[],
    };
    ip.ip(cx, version)
}

/// Strip the link layer: where the IP header starts and which version it is.
#[inline]
fn link(data: &[u8], n: usize, linktype: u32, cut: bool) -> Link {
    match linktype {
        LINKTYPE_ETHERNET => match u16_at(data, 12) {
            Some(etype) if n >= 14 => ethertype(data, n, 14, etype, cut),
            _ => Link::Done(short(cut, 0, "Ethernet header", 14, n as i64)),
        },
        LINKTYPE_RAW | LINKTYPE_RAW_BSD_12 | LINKTYPE_RAW_BSD_14 => Link::Ip(0, 0),
        LINKTYPE_IPV4 => Link::Ip(0, 4),
        LINKTYPE_IPV6 => Link::Ip(0, 6),
        LINKTYPE_LINUX_SLL => match u16_at(data, 14) {
            Some(etype) if n >= 16 => ethertype(data, n, 16, etype, cut),
            _ => Link::Done(short(cut, 0, "Linux cooked (SLL) header", 16, n as i64)),
        },
        LINKTYPE_LINUX_SLL2 => match u16_at(data, 0) {
            Some(etype) if n >= 20 => ethertype(data, n, 20, etype, cut),
            _ => Link::Done(short(cut, 0, "Linux cooked v2 (SLL2) header", 20, n as i64)),
        },
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            let raw = match data.get(..4) {
                Some(b) if n >= 4 => [b[0], b[1], b[2], b[3]],
                _ => return Link::Done(short(cut, 0, "loopback header", 4, n as i64)),
            };
            let family = if linktype == LINKTYPE_LOOP {
                u32::from_be_bytes(raw)
            } else {
                // NULL is in the byte order of the host that captured, which the file does not
                // record; address families are small, so a value above 0xFFFF was written big-endian.
                let le = u32::from_le_bytes(raw);
                if le > 0xFFFF {
                    u32::from_be_bytes(raw)
                } else {
                    le
                }
            };
            if family == AF_INET {
                Link::Ip(4, 4)
            } else if AF_INET6.contains(&family) {
                Link::Ip(4, 6)
            } else {
                Link::Done(Ok(Decoded::Skip(Skip::NotTcp)))
            }
        }
        _ => Link::Done(Ok(Decoded::Skip(Skip::UnknownLink))),
    }
}

/// Follow an EtherType through VLAN tags, MPLS labels and PPPoE to IPv4/IPv6; `off` is just past it.
#[inline]
fn ethertype(data: &[u8], n: usize, mut off: usize, mut etype: u16, cut: bool) -> Link {
    loop {
        if etype == ETH_IPV4 {
            return Link::Ip(off, 4);
        }
        if etype == ETH_IPV6 {
            return Link::Ip(off, 6);
        }
        if ETH_VLAN_TAGS.contains(&etype) {
            // IEEE 802.1Q §9.6: 2-byte TCI, then the inner EtherType; tags may be stacked (802.1ad).
            match u16_at(data, off + 2) {
                Some(inner) if n >= off + 4 => {
                    etype = inner;
                    off += 4;
                    continue;
                }
                _ => return Link::Done(short(cut, off, "VLAN tag", 4, left(n, off))),
            }
        }
        if ETH_MPLS.contains(&etype) {
            // RFC 3032 §2.1: 4-byte label stack entries; the S bit (0x100) marks the bottom of the
            // stack. No field names the payload, so the caller guesses IPv4/IPv6 from its version nibble.
            loop {
                let Some(entry) = u32_at(data, off) else {
                    let outcome = short(cut, off, "MPLS label stack entry", 4, left(n, off));
                    return Link::Done(outcome);
                };
                off += 4;
                if entry & 0x100 != 0 {
                    return Link::Ip(off, 0);
                }
            }
        }
        if etype == ETH_PPPOE_SESSION {
            // RFC 2516 §4: ver/type, code, session id, length (6 bytes), then the PPP protocol
            // (RFC 1661 §2).
            let protocol = match u16_at(data, off + 6) {
                Some(p) if n >= off + 8 => p,
                _ => {
                    let outcome = short(cut, off, "PPPoE session header", 8, left(n, off));
                    return Link::Done(outcome);
                }
            };
            return match protocol {
                PPP_IPV4 => Link::Ip(off + 8, 4),
                PPP_IPV6 => Link::Ip(off + 8, 6),
                _ => Link::Done(Ok(Decoded::Skip(Skip::NotTcp))),
            };
        }
        // A value <= 1500 is an 802.3 length and LLC follows (IEEE 802.3 §3.2.6); other
        // EtherTypes (ARP, LLDP, ...) carry no TCP either.
        return Link::Done(Ok(Decoded::Skip(Skip::NotTcp)));
    }
}

/// The network layer of one frame, or of one packet inside a tunnel: what the IPv4/IPv6 and TCP
/// steps share.
///
/// Inside a tunnel, `data` is the frame cut where the tunnel's payload ends (so that nothing reads
/// past it), offsets stay the frame's, `cut` says the payload ran past the captured bytes, and
/// `path` lists the tunnels crossed, outermost first.
#[derive(Clone, Copy)]
struct Ip<'a> {
    data: &'a [u8],
    n: usize,
    off: usize,
    cut: bool,
    /// where the wire length ends these bytes: the frame's wire length (the captured length when the
    /// caller gave none), or the end of the tunnel payload by its carrier's length fields
    wire_end: i64,
    ts: f64,
    frame: u64,
    verify: bool,
    path: &'a [Tunnel],
}

impl<'a> Ip<'a> {
    /// The wire length as the IP length fields fall back to it (TSO, jumbograms).
    fn wire(&self) -> i64 {
        self.wire_end
    }

    /// The same bytes from `off` on.
    fn at(&self, off: usize) -> Ip<'a> {
        Ip { off, ..*self }
    }

    /// An IP packet at `off`: `version` 4 or 6, or 0 when no type field said which (RAW, MPLS,
    /// GTP-U): then the version nibble does (RFC 791, RFC 8200).
    fn ip(&self, cx: &mut Cx<'_>, version: u8) -> Outcome {
        let version = if version == 0 {
            if self.off >= self.n {
                return short(self.cut, self.off, "IP header", 20, 0);
            }
            byte(self.data, self.off) >> 4
        } else {
            version
        };
        match version {
            4 => self.ipv4(cx),
            6 => self.ipv6(cx),
            _ => Ok(Decoded::Skip(Skip::NotTcp)),
        }
    }

    /// A tunnel carrier (IP protocol `proto`) whose payload is `data[off..end]`, `end` by the IP
    /// length fields: the tunnel's header, then what it carries.
    #[cold]
    fn carrier(&self, cx: &mut Cx<'_>, proto: u8, end: i64, src: Addr, dst: Addr) -> Outcome {
        if self.path.len() >= MAX_DEPTH {
            return Ok(Decoded::Skip(Skip::TunnelDepth));
        }
        let (data, off) = (self.data, self.off);
        // end >= off: the callers checked the IP lengths against the headers before it.
        let end = usize::try_from(end).unwrap_or(off).max(off);
        let kind_ip = |next| Hop {
            kind: TunnelKind::IpInIp,
            off,
            end,
            next,
        };
        let (hop, sport, dport) = match proto {
            IPPROTO_IPIP => (kind_ip(Next::Ip(4)), 0, 0),
            IPPROTO_IPV6 => (kind_ip(Next::Ip(6)), 0, 0),
            IPPROTO_GRE => match tunnel::gre(data, off, end) {
                Ok(hop) => (hop, 0, 0),
                Err(stop) => return self.stopped(stop, end, false),
            },
            _ => {
                // UDP (RFC 768): ports, length (0 in a jumbogram, RFC 2675: the IP length rules).
                let (Some(sport), Some(dport), Some(length)) = (
                    u16_at(data, off),
                    u16_at(data, off + 2),
                    u16_at(data, off + 4),
                ) else {
                    return Ok(Decoded::Skip(if self.cut && off + 8 > self.n {
                        Skip::Truncated
                    } else {
                        Skip::NotTcp
                    }));
                };
                let length = usize::from(length);
                let end = if length >= 8 {
                    end.min(off + length)
                } else {
                    end
                };
                match tunnel::udp(data, off + 8, end, sport, dport) {
                    Ok(hop) => (hop, sport, dport),
                    Err(stop) => return self.stopped(stop, end, true),
                }
            }
        };
        let layer = Tunnel {
            kind: hop.kind,
            src,
            sport,
            dst,
            dport,
        };
        let mut path = [Tunnel::NONE; MAX_DEPTH];
        let depth = self.path.len();
        path[..depth].copy_from_slice(self.path);
        path[depth] = layer;
        let n = hop.end.min(self.n);
        let inner = Ip {
            data: data.get(..n).unwrap_or(data),
            n,
            off: hop.off,
            cut: hop.end > self.n,
            wire_end: hop.end as i64,
            path: &path[..=depth],
            ..*self
        };
        inner.next(cx, hop.next)
    }

    /// A fragment of a tunnel carrier, its bytes `data[off..end]`, `piece` = (offset, more): to the
    /// reassembler; the fragment that completes its datagram gives the datagram's outcome, the others
    /// are counted as fragments. A fragment cut by the snaplen cannot complete anything.
    #[cold]
    fn fragment(&self, cx: &mut Cx<'_>, key: FragKey, piece: (usize, bool), end: i64) -> Outcome {
        let bytes = usize::try_from(end)
            .ok()
            .and_then(|end| self.data.get(self.off..end));
        let (Some(frags), Some(bytes)) = (cx.frags.as_deref_mut(), bytes) else {
            return Ok(Decoded::Skip(Skip::Fragment));
        };
        let Some(whole) = frags.add(key, self.ts, piece.0, piece.1, bytes) else {
            return Ok(Decoded::Skip(Skip::Fragment));
        };
        let ip = Ip {
            data: &whole,
            n: whole.len(),
            off: 0,
            cut: false,
            wire_end: whole.len() as i64,
            ..*self
        };
        ip.carrier(cx, key.proto, whole.len() as i64, key.src, key.dst)
            .map_err(|e| DecodeError {
                offset: e.offset,
                reason: format!(
                    "{} (in the datagram reassembled from fragments; the byte counts from its payload)",
                    e.reason
                ),
            })
    }

    /// A tunnel header that could not be followed: a header cut by the snaplen is `truncated`; one
    /// that runs past its carrier's payload is malformed where the IP protocol said a tunnel
    /// follows, and not a tunnel at all where only a UDP port guessed one (`guess`).
    #[cold]
    fn stopped(&self, stop: Stop, end: usize, guess: bool) -> Outcome {
        match stop {
            Stop::Not => Ok(Decoded::Skip(Skip::NotTcp)),
            Stop::Short { what, at, need } => {
                if at.saturating_add(need) > self.n && (self.cut || end > self.n) {
                    Ok(Decoded::Skip(Skip::Truncated))
                } else if guess {
                    Ok(Decoded::Skip(Skip::NotTcp))
                } else {
                    err(
                        at,
                        format!(
                            "{what} needs {need} bytes, the tunnel payload has {}",
                            end.saturating_sub(at)
                        ),
                    )
                }
            }
        }
    }

    /// What a tunnel header said follows it, at `self.off`.
    fn next(&self, cx: &mut Cx<'_>, next: Next) -> Outcome {
        let (data, n, off, cut) = (self.data, self.n, self.off, self.cut);
        let link = match next {
            Next::Ip(version) => return self.ip(cx, version),
            Next::EtherType(etype) => ethertype(data, n, off, etype, cut),
            Next::Ethernet => match u16_at(data, off + 12) {
                Some(etype) if n >= off + 14 => ethertype(data, n, off + 14, etype, cut),
                _ => Link::Done(short(cut, off, "Ethernet header", 14, left(n, off))),
            },
            Next::Ppp => match tunnel::ppp(data, off, n) {
                Some((at, version)) => Link::Ip(at, version),
                None => Link::Done(Ok(Decoded::Skip(Skip::NotTcp))),
            },
            Next::Wlan => return self.wlan(cx),
        };
        match link {
            Link::Ip(at, version) => self.at(at).ip(cx, version),
            Link::Done(outcome) => outcome,
        }
    }

    /// An 802.11 data frame (Aruba's GRE): its MSDU, or each subframe of an A-MSDU (IEEE 802.11-2020
    /// §9.3.2.2.2: destination, source, length, the MSDU, padding to a multiple of 4 but after the
    /// last). The first segment is the outcome; the others go to `cx.extra`, in order.
    fn wlan(&self, cx: &mut Cx<'_>) -> Outcome {
        let (data, n) = (self.data, self.n);
        let Some((mut at, amsdu)) = tunnel::wlan(data, self.off, n) else {
            return Ok(Decoded::Skip(Skip::NotTcp));
        };
        let msdu = |ip: Ip<'_>, cx: &mut Cx<'_>, start: usize, stop: usize| match tunnel::llc_snap(
            data, start, stop,
        ) {
            Some((o, etype)) => ip.at(o).next(cx, Next::EtherType(etype)),
            None => Ok(Decoded::Skip(Skip::NotTcp)),
        };
        if !amsdu {
            return msdu(*self, cx, at, n);
        }
        let mut outcome: Option<Outcome> = None;
        while let Some(len) = u16_at(data, at + 12) {
            let start = at + 14;
            let stop = start + usize::from(len);
            if stop > n {
                break;
            }
            let sub = Ip {
                data: data.get(..stop).unwrap_or(data),
                n: stop,
                cut: false,
                wire_end: stop as i64,
                ..*self
            };
            match (msdu(sub, cx, start, stop), &outcome) {
                (Ok(Decoded::Segment(seg)), Some(Ok(Decoded::Segment(_)))) => cx.extra.push(seg),
                (Ok(Decoded::Segment(seg)), _) => outcome = Some(Ok(Decoded::Segment(seg))),
                (other, None) => outcome = Some(other),
                _ => {}
            }
            at = stop + (4 - (14 + usize::from(len)) % 4) % 4;
        }
        outcome.unwrap_or(Ok(Decoded::Skip(Skip::NotTcp)))
    }

    /// RFC 791 §3.1: check the header against itself, then hand the TCP part on.
    #[inline]
    fn ipv4(&self, cx: &mut Cx<'_>) -> Outcome {
        let (data, n, off) = (self.data, self.n, self.off);
        let h = match data.get(off..off + 20) {
            Some(h) => h,
            None => return short(self.cut, off, "IPv4 header", 20, left(n, off)),
        };
        let vihl = h[0];
        let mut total = i64::from(u16::from_be_bytes([h[2], h[3]]));
        let frag = u16::from_be_bytes([h[6], h[7]]);
        let proto = h[9];
        let src = [h[12], h[13], h[14], h[15]];
        let dst = [h[16], h[17], h[18], h[19]];
        if vihl >> 4 != 4 {
            return err(
                off,
                format!("IP version {} where IPv4 was expected", vihl >> 4),
            );
        }
        let ihl = usize::from(vihl & 0x0F) * 4;
        if ihl < 20 {
            return err(off, format!("IPv4 header length {ihl} < 20"));
        }
        if total == 0 {
            // TCP segmentation offload: the NIC fills in the total length after the capture point,
            // so the wire length of the frame is the best account of the datagram's size.
            // Fix against the Python reference (decode.py trusts a wire length up to 0xFFFFFFFF):
            // an IPv4 datagram is at most 65535 bytes (RFC 791 §3.1), so the wire length is bounded
            // by that, unless more than that was captured (Linux BIG TCP sends IPv4 GSO packets
            // over 64 KiB with total length 0), where the captured bytes are the bound.
            // Below the bound the value is Python's, negative ones included.
            let bound = IPV4_MAX_TOTAL.max(left(n, off));
            total = (self.wire() - off as i64).min(bound);
        }
        if total < ihl as i64 {
            return err(
                off + 2,
                format!("IPv4 total length {total} < header length {ihl}"),
            );
        }
        if proto != IPPROTO_TCP {
            if !carrier(proto) {
                return Ok(Decoded::Skip(Skip::NotTcp));
            }
            if n < off + ihl {
                return short(self.cut, off, "IPv4 header with options", ihl, left(n, off));
            }
            let end = off as i64 + total;
            if frag & 0x3FFF != 0 {
                // MF or an offset: a piece of a tunnel packet (RFC 791 §3.2)
                let key = FragKey {
                    src: Addr::V4(src),
                    dst: Addr::V4(dst),
                    id: u32::from(u16::from_be_bytes([h[4], h[5]])),
                    proto,
                };
                let piece = (usize::from(frag & 0x1FFF) * 8, frag & 0x2000 != 0);
                return self.at(off + ihl).fragment(cx, key, piece, end);
            }
            return self
                .at(off + ihl)
                .carrier(cx, proto, end, Addr::V4(src), Addr::V4(dst));
        }
        if frag & 0x1FFF != 0 {
            // RFC 791: a non-zero fragment offset means the TCP header is in another fragment.
            return Ok(Decoded::Skip(Skip::Fragment));
        }
        if n < off + ihl {
            return short(self.cut, off, "IPv4 header with options", ihl, left(n, off));
        }
        // MF set at offset 0: decode it if the TCP header is there.
        let first_fragment = frag & 0x2000 != 0;
        let tcp_len = total - ihl as i64;
        let seg = self.tcp(
            off + ihl,
            tcp_len,
            first_fragment,
            Addr::V4(src),
            Addr::V4(dst),
            4,
        );
        self.checked(seg, off + ihl, tcp_len, first_fragment, &src, &dst)
    }

    /// RFC 8200 §3-4: walk the extension header chain to TCP (or to a tunnel).
    #[inline]
    fn ipv6(&self, cx: &mut Cx<'_>) -> Outcome {
        let (data, n, off, cut) = (self.data, self.n, self.off, self.cut);
        let h = match data.get(off..off + 40) {
            Some(h) => h,
            None => return short(cut, off, "IPv6 header", 40, left(n, off)),
        };
        let first_word = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let mut payload_len = i64::from(u16::from_be_bytes([h[4], h[5]]));
        let mut nh = h[6];
        let mut src = [0u8; 16];
        src.copy_from_slice(&h[8..24]);
        let mut dst = [0u8; 16];
        dst.copy_from_slice(&h[24..40]);
        if first_word >> 28 != 6 {
            return err(
                off,
                format!("IP version {} where IPv6 was expected", first_word >> 28),
            );
        }
        if payload_len == 0 {
            // A jumbogram (RFC 2675: real length in a hop-by-hop option) or a GSO/TSO capture: like
            // IPv4's TSO case, take the size from the frame's wire length instead of parsing the option.
            payload_len = self.wire() - off as i64 - 40;
        }
        let start = off + 40;
        // The chain walk adds at most (255 + 2) * 4 or (255 + 1) * 8 per step and stops once past
        // the frame, so `cur` stays below n + 2048 + 8: no overflow.
        let mut cur = start;
        let mut first_fragment = false;
        while nh != IPPROTO_TCP {
            if matches!(
                nh,
                IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS | IPV6_AH | IPV6_FRAGMENT
            ) {
                // Every header in the chain is at least 8 bytes long, so 8 bytes must be there to read it.
                if n < cur + 8 {
                    let what = format!("IPv6 extension header {nh}");
                    return short(cut, cur, &what, 8, left(n, cur));
                }
                let next_nh = byte(data, cur);
                let hdr_len = usize::from(byte(data, cur + 1));
                if nh == IPV6_FRAGMENT {
                    let offset_flags = u16_at(data, cur + 2).unwrap_or(0);
                    if carrier(next_nh) && offset_flags & 0xFFF9 != 0 {
                        // An offset or M: a piece of a tunnel packet (RFC 8200 §4.5).
                        let key = FragKey {
                            src: Addr::V6(src),
                            dst: Addr::V6(dst),
                            id: u32_at(data, cur + 4).unwrap_or(0),
                            proto: next_nh,
                        };
                        let piece = (usize::from(offset_flags >> 3) * 8, offset_flags & 1 != 0);
                        let end = start as i64 + payload_len;
                        return self.at(cur + 8).fragment(cx, key, piece, end);
                    }
                    if offset_flags >> 3 != 0 {
                        // RFC 8200 §4.5: offset != 0, the TCP header is in the first fragment.
                        return Ok(Decoded::Skip(Skip::Fragment));
                    }
                    first_fragment = offset_flags & 1 != 0;
                    cur += 8;
                } else if nh == IPV6_AH {
                    cur += (hdr_len + 2) * 4;
                } else {
                    cur += (hdr_len + 1) * 8;
                }
                nh = next_nh;
            } else if carrier(nh) {
                break;
            } else {
                // 59 No Next Header (RFC 8200 §4.7), ESP, ICMPv6, ...
                return Ok(Decoded::Skip(Skip::NotTcp));
            }
        }
        let ext_len = (cur - start) as i64;
        if ext_len > payload_len {
            return err(
                off + 4,
                format!(
                    "IPv6 extension headers ({ext_len} bytes) run past the payload length {payload_len}"
                ),
            );
        }
        if cur > n && !cut {
            // A header's own length field points past a frame that was captured whole.
            return err(
                start,
                format!(
                    "IPv6 extension headers ({ext_len} bytes) run past the end of the frame ({n} bytes)"
                ),
            );
        }
        if nh != IPPROTO_TCP {
            if first_fragment {
                return Ok(Decoded::Skip(Skip::Fragment)); // a piece of a tunnel packet
            }
            let end = start as i64 + payload_len;
            return self
                .at(cur)
                .carrier(cx, nh, end, Addr::V6(src), Addr::V6(dst));
        }
        // With verification this differs from RFC 8200 §8.1 with a Routing header, where the
        // pseudo-header takes the final destination from that header: we use the IPv6 destination
        // field (source routing is deprecated, RFC 5095, and such a segment would show as a bad
        // checksum, never be silently accepted).
        let tcp_len = payload_len - ext_len;
        let seg = self.tcp(
            cur,
            tcp_len,
            first_fragment,
            Addr::V6(src),
            Addr::V6(dst),
            6,
        );
        self.checked(seg, cur, tcp_len, first_fragment, &src, &dst)
    }

    /// `seg` with `checksum_ok` set when verifying and the whole TCP segment (data[off..off + tcp_len])
    /// was captured.
    ///
    /// Like Wireshark, no verdict for a frame cut by snaplen or an IP fragment: the bytes the checksum
    /// covers are not all here. A frame whose IP length was rebuilt from the wire length (TSO, total
    /// length 0) is checked anyway and usually fails: that is offload's doing, which is why the
    /// check is opt-in.
    #[inline]
    fn checked(
        &self,
        seg: Outcome,
        off: usize,
        tcp_len: i64,
        fragment: bool,
        src: &[u8],
        dst: &[u8],
    ) -> Outcome {
        if !self.verify || self.cut || fragment {
            return seg;
        }
        let mut seg = seg?;
        if let Decoded::Segment(s) = &mut seg {
            // A Segment means tcp_len >= 20, so the conversion cannot fail.
            let whole = usize::try_from(tcp_len)
                .ok()
                .and_then(|len| self.data.get(off..off.checked_add(len)?));
            if let Some(bytes) = whole {
                s.checksum_ok = Some(tcp_checksum_ok(src, dst, bytes));
            }
        }
        Ok(seg)
    }

    /// The IP header at `self.off` (already checked by `ipv4`/`ipv6`), for a SYN whose TCP
    /// header starts at `tcp_off`.
    #[cold]
    fn ip_fields(&self, version: u8, tcp_off: usize) -> syn::IpFields {
        let h = self.data.get(self.off..).unwrap_or(&[]);
        let at = |i: usize| h.get(i).copied().unwrap_or(0);
        let hdr_len = tcp_off.saturating_sub(self.off) as u16;
        if version == 4 {
            syn::IpFields {
                version,
                ttl: at(8),
                tos: at(1),
                flags_off: u16::from_be_bytes([at(6), at(7)]),
                id: u16::from_be_bytes([at(4), at(5)]),
                flow_label: 0,
                hdr_len,
                ip6_ext: false,
            }
        } else {
            let word = u32::from_be_bytes([at(0), at(1), at(2), at(3)]);
            syn::IpFields {
                version,
                ttl: at(7),
                tos: (word >> 20) as u8,
                flags_off: 0,
                id: 0,
                flow_label: word & 0xF_FFFF,
                hdr_len: 40, // p0f counts the fixed header only (it does not walk extensions)
                ip6_ext: hdr_len != 40,
            }
        }
    }

    /// RFC 9293 §3.1: the TCP header at `off`, inside an IP payload of `ip_payload` bytes.
    #[inline]
    fn tcp(
        &self,
        off: usize,
        ip_payload: i64,
        first_fragment: bool,
        src: Addr,
        dst: Addr,
        version: u8,
    ) -> Outcome {
        let (data, n) = (self.data, self.n);
        if ip_payload < 20 {
            if first_fragment {
                return Ok(Decoded::Skip(Skip::Fragment)); // the rest of the TCP header is in the next fragment
            }
            return err(
                off,
                format!("IP payload of {ip_payload} bytes cannot hold the 20-byte TCP header"),
            );
        }
        let h = match data.get(off..off.saturating_add(20)) {
            Some(h) => h,
            None => return short(self.cut, off, "TCP header", 20, left(n, off)),
        };
        let sport = u16::from_be_bytes([h[0], h[1]]);
        let dport = u16::from_be_bytes([h[2], h[3]]);
        let seq = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let ack = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        let (offb, flagb) = (h[12], h[13]);
        let window = u16::from_be_bytes([h[14], h[15]]);
        let thl = usize::from(offb >> 4) * 4;
        if thl < 20 {
            return err(off + 12, format!("TCP data offset {thl} < 20"));
        }
        if thl as i64 > ip_payload {
            if first_fragment {
                return Ok(Decoded::Skip(Skip::Fragment));
            }
            return err(
                off + 12,
                format!("TCP data offset {thl} runs past the IP payload of {ip_payload} bytes"),
            );
        }
        let mut end = off + thl;
        if end > n {
            if !self.cut {
                return err(
                    off + 12,
                    format!("TCP header of {thl} bytes runs past the end of the frame ({n} bytes)"),
                );
            }
            end = n; // snaplen cut into the options: read what was captured
        }
        // ip_payload - thl: at most 65535 for IPv4 (bounded above) and 0xFFFFFFFF - 40 for IPv6
        // (a u32 wire length minus the header), so it fits a u32.
        let payload_len = u32::try_from(ip_payload - thl as i64).unwrap_or(u32::MAX);
        let mut options = if thl > 20 {
            let mut o = NO_OPTIONS;
            options(&mut o, data, off + 20, end);
            o
        } else {
            NO_OPTIONS
        };
        if flagb & 0x02 != 0 {
            // SYN or SYN-ACK: the negotiation's details, off the common path (src/syn.rs)
            let tcp_bytes = data.get(off..end).unwrap_or(&[]);
            options.syn = Some(syn::read(self.ip_fields(version, off), tcp_bytes));
        }
        Ok(Decoded::Segment(Segment {
            ts: self.ts,
            frame: self.frame,
            src,
            sport,
            dst,
            dport,
            seq,
            ack,
            // NS is the low bit of byte 12 (RFC 3540 §9), the other eight flags are byte 13
            // (RFC 9293 §3.1).
            flags: (u16::from(offb & 1) << 8) | u16::from(flagb),
            window,
            payload_len,
            options,
            ip_version: version,
            checksum_ok: None,
            tunnels: if self.path.is_empty() {
                None
            } else {
                Some(Box::new(TunnelPath::new(self.path)))
            },
        }))
    }
}

/// TCP options in data[i..end] into `o`, which starts empty (RFC 9293 §3.2). A malformed or cut
/// option ends the parse; it never fails.
///
/// An option with the wrong length for its kind is skipped, as Linux's tcp_parse_options does;
/// a repeated option overrides the earlier one, also as Linux does.
fn options(o: &mut TcpOptions, data: &[u8], mut i: usize, end: usize) {
    let end = end.min(data.len());
    while i < end {
        let kind = byte(data, i);
        if kind == 0 {
            break; // End of Option List
        }
        if kind == 1 {
            i += 1; // No-Operation
            continue;
        }
        if i + 1 >= end {
            break;
        }
        let length = usize::from(byte(data, i + 1));
        if length < 2 || i + length > end {
            break;
        }
        match (kind, length) {
            // Maximum Segment Size, RFC 9293 §3.2
            (2, 4) => o.mss = u16_at(data, i + 2),
            // Window Scale, RFC 7323 §2.2 (shift > 14 is the receiver's problem, §2.3)
            (3, 3) => o.wscale = data.get(i + 2).copied(),
            // SACK-Permitted, RFC 2018 §2
            (4, 2) => o.sack_permitted = true,
            // SACK, RFC 2018 §3: left/right edge pairs; 40 option bytes hold at most 4 blocks
            (5, _) => {
                let (blocks, rest) = ((length - 2) / 8, (length - 2) % 8);
                if blocks > 0 && rest == 0 && blocks <= 4 {
                    o.sack = Some(
                        (0..blocks)
                            .map(|b| {
                                let at = i + 2 + b * 8;
                                (
                                    u32_at(data, at).unwrap_or(0),
                                    u32_at(data, at + 4).unwrap_or(0),
                                )
                            })
                            .collect(),
                    );
                }
            }
            // Timestamps, RFC 7323 §3.2
            (8, 10) => {
                o.ts_val = u32_at(data, i + 2);
                o.ts_ecr = u32_at(data, i + 6);
            }
            _ => {}
        }
        i += length; // unknown kinds are skipped by their length (RFC 9293 §3.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{ACK, PSH, SYN};

    const ETH_V4: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];

    fn tcp_hdr(doff: u8, flags: u8, opts: &[u8]) -> Vec<u8> {
        let mut t = vec![
            0x9c,
            0x40,
            0,
            80,
            0,
            0,
            3,
            0xe8,
            0,
            0,
            0,
            0,
            doff << 4,
            flags,
            0xff,
            0xff,
        ];
        t.extend_from_slice(&[0, 0, 0, 0]);
        t.extend_from_slice(opts);
        t
    }

    fn ipv4(ihl: u8, total: Option<u16>, frag: u16, proto: u8, tcp: &[u8]) -> Vec<u8> {
        let len = total.unwrap_or((20 + tcp.len()) as u16);
        let mut ip = vec![0x40 | ihl, 0];
        ip.extend_from_slice(&len.to_be_bytes());
        ip.extend_from_slice(&[0, 1]);
        ip.extend_from_slice(&frag.to_be_bytes());
        ip.extend_from_slice(&[64, proto, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
        ip.extend_from_slice(tcp);
        ip
    }

    fn eth(ip: &[u8]) -> Vec<u8> {
        let mut f = ETH_V4.to_vec();
        f.extend_from_slice(ip);
        f
    }

    fn seg(out: Result<Decoded, DecodeError>) -> Segment {
        match out {
            Ok(Decoded::Segment(s)) => s,
            other => panic!("not a segment: {other:?}"),
        }
    }

    #[test]
    fn plain_syn_with_options() {
        let opts = [
            2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2,
        ];
        let f = eth(&ipv4(5, None, 0x4000, 6, &tcp_hdr(10, 0x02, &opts)));
        let s = seg(decode(&f, 1, 1.5, 7, None, false));
        assert_eq!((s.sport, s.dport, s.seq, s.flags), (40000, 80, 1000, SYN));
        assert_eq!((s.frame, s.ts, s.payload_len, s.ip_version), (7, 1.5, 0, 4));
        assert_eq!(s.src, Addr::V4([192, 0, 2, 1]));
        assert_eq!(s.options.mss, Some(1460));
        assert_eq!(s.options.wscale, Some(7));
        assert!(s.options.sack_permitted);
        assert_eq!((s.options.ts_val, s.options.ts_ecr), (Some(1), Some(2)));
        assert_eq!(s.checksum_ok, None);
        // a SYN carries its details (src/syn.rs), the same on the fast and the general path
        let d = s.options.syn.as_deref().expect("SYN details");
        assert_eq!(crate::syn::layout_text(d), "mss,nop,ws,sok,ts");
        assert_eq!((d.ttl, d.df, d.ip_opt_len, d.tot_hdr), (64, true, 0, 60));
        // DF with a non-zero IP ID, and a SYN's TSecr that is not zero (p0f's ts2+)
        let want = crate::syn::Q_DF | crate::syn::Q_NZ_ID | crate::syn::Q_OPT_NZ_TS2;
        assert_eq!(d.quirks, want);
        let general = seg(decode_general(&f, 1, 1.5, 7, None, false));
        assert_eq!(general.options.syn, s.options.syn);
        // with IP options (general path only): olen and tot_hdr count them
        let tcp = tcp_hdr(10, 0x02, &opts);
        let mut ip = ipv4(6, Some(24 + tcp.len() as u16), 0x4000, 6, &tcp);
        ip.splice(20..20, [1, 1, 1, 0]);
        let with_opts = seg(decode(&eth(&ip), 1, 1.5, 7, None, false));
        let d = with_opts.options.syn.as_deref().expect("SYN details");
        assert_eq!((d.ip_opt_len, d.tot_hdr), (4, 64));
        // an ACK carries none
        let ack = seg(decode(
            &eth(&ipv4(5, None, 0x4000, 6, &tcp_hdr(10, 0x10, &opts))),
            1,
            1.5,
            7,
            None,
            false,
        ));
        assert!(ack.options.syn.is_none());
    }

    #[test]
    fn sack_blocks_and_bad_lengths() {
        let opts = [
            1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 2, 3, 0, 0,
        ];
        let f = eth(&ipv4(5, None, 0, 6, &tcp_hdr(11, 0x10, &opts)));
        let s = seg(decode(&f, 1, 0.0, 1, None, false));
        assert_eq!(s.options.sack.as_deref(), Some(&[(1, 2), (3, 4)][..]));
        assert_eq!(s.options.mss, None); // length 3 for MSS: skipped, and it ends nothing
    }

    #[test]
    fn errors_have_python_texts() {
        let f = eth(&ipv4(3, None, 0, 6, &tcp_hdr(5, 0x18, b"hello")));
        let e = decode(&f, 1, 0.0, 1, None, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "byte 14 of the frame: IPv4 header length 12 < 20"
        );
        let f = eth(&ipv4(5, None, 0, 6, &tcp_hdr(4, 0x18, b"hello")));
        let e = decode(&f, 1, 0.0, 1, None, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "byte 46 of the frame: TCP data offset 16 < 20"
        );
        let f = eth(&ipv4(5, None, 0, 6, &tcp_hdr(15, 0x18, b"hello")));
        let e = decode(&f, 1, 0.0, 1, None, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "byte 46 of the frame: TCP data offset 60 runs past the IP payload of 25 bytes"
        );
        let f = eth(&ipv4(5, Some(100), 0, 6, &tcp_hdr(15, 0x18, b"hello")));
        let e = decode(&f, 1, 0.0, 1, None, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "byte 46 of the frame: TCP header of 60 bytes runs past the end of the frame (59 bytes)"
        );
        // The same frame cut by snaplen (wire length larger) is a segment with what was captured.
        let s = seg(decode(&f, 1, 0.0, 1, Some(200), false));
        assert_eq!(s.payload_len, 20);
        // Too short and not cut: an error with the have-count; cut: truncated.
        let e = decode(&f[..10], 1, 0.0, 1, None, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "byte 0 of the frame: Ethernet header needs 14 bytes, the frame has 10"
        );
        let out = decode(&f[..40], 1, 0.0, 1, Some(59), false);
        assert_eq!(out, Ok(Decoded::Skip(Skip::Truncated)));
    }

    #[test]
    fn skips() {
        let udp = eth(&ipv4(5, None, 0, 17, &[0; 8]));
        assert_eq!(
            decode(&udp, 1, 0.0, 1, None, false),
            Ok(Decoded::Skip(Skip::NotTcp))
        );
        let frag = eth(&ipv4(5, None, 0x0010, 6, &tcp_hdr(5, 0x10, b"")));
        assert_eq!(
            decode(&frag, 1, 0.0, 1, None, false),
            Ok(Decoded::Skip(Skip::Fragment))
        );
        assert_eq!(
            decode(&frag, 99, 0.0, 1, None, false),
            Ok(Decoded::Skip(Skip::UnknownLink))
        );
        assert_eq!(Skip::UnknownLink.name(), "unknown-link");
        // Raw IP with a version nibble of 5: not TCP; empty raw frame: IP header needed.
        assert_eq!(
            decode(&[0x50; 30], 101, 0.0, 1, None, false),
            Ok(Decoded::Skip(Skip::NotTcp))
        );
        let e = decode(&[], 101, 0.0, 1, None, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "byte 0 of the frame: IP header needs 20 bytes, the frame has 0"
        );
    }

    #[test]
    fn tso_total_zero_takes_the_wire_length_bounded_to_65535() {
        let f = eth(&ipv4(5, Some(0), 0, 6, &tcp_hdr(5, 0x18, b"hello")));
        // Python's rule below the bound: the wire length minus the link header.
        assert_eq!(
            seg(decode(&f, 1, 0.0, 1, Some(1514), false)).payload_len,
            1500 - 40
        );
        assert_eq!(seg(decode(&f, 1, 0.0, 1, None, false)).payload_len, 5);
        // The fix: a wire length of 4 GiB no longer makes a 4 GiB datagram.
        let s = seg(decode(&f, 1, 0.0, 1, Some(u32::MAX), false));
        assert_eq!(s.payload_len, 65535 - 40);
    }

    #[test]
    fn vlan_mpls_pppoe_sll_null() {
        let ip = ipv4(5, None, 0, 6, &tcp_hdr(5, (PSH | ACK) as u8, b"x"));
        let mut vlan = vec![0u8; 12];
        vlan.extend_from_slice(&[0x81, 0x00, 0, 5, 0x88, 0x47, 0, 0, 0x01, 0x40]);
        vlan.extend_from_slice(&ip);
        assert_eq!(seg(decode(&vlan, 1, 0.0, 1, None, false)).payload_len, 1);
        let mut pppoe = vec![0u8; 12];
        pppoe.extend_from_slice(&[0x88, 0x64, 0x11, 0, 0, 1, 0, 0, 0x00, 0x21]);
        pppoe.extend_from_slice(&ip);
        assert_eq!(seg(decode(&pppoe, 1, 0.0, 1, None, false)).flags, PSH | ACK);
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        assert_eq!(seg(decode(&sll, 113, 0.0, 1, None, false)).dport, 80);
        let mut null_be = vec![0, 0, 0, 2];
        null_be.extend_from_slice(&ip);
        assert_eq!(seg(decode(&null_be, 0, 0.0, 1, None, false)).sport, 40000);
        null_be[3] = 7;
        assert_eq!(
            decode(&null_be, 0, 0.0, 1, None, false),
            Ok(Decoded::Skip(Skip::NotTcp))
        );
    }

    #[test]
    fn ipv6_chain_runs_off_the_frame() {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0, 0, 0, 0x08, 0x14, 0, 64]);
        f.extend_from_slice(&[0x20; 32]);
        f.extend_from_slice(&[6, 255, 1, 4, 0, 0, 0, 0]);
        f.extend_from_slice(&[0; 72]);
        let e = decode(&f, 1, 0.0, 1, None, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "byte 54 of the frame: IPv6 extension headers (2048 bytes) run past the end of the frame (134 bytes)"
        );
    }

    #[test]
    fn fast_path_agrees_with_the_general_path() {
        let opts = [
            2, 4, 5, 0xb4, 1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 8, 10, 0, 0, 0, 1, 0, 0,
        ];
        let base = eth(&ipv4(5, None, 0x4000, 6, &tcp_hdr(11, 0x18, &opts)));
        let mut x: u64 = 0x1234_5678_9ABC_DEF1;
        let mut fast = 0;
        for i in 0..50_000 {
            let mut f = base.clone();
            for _ in 0..(i % 4) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly the header bytes the fast path tests.
                let at = [12, 13, 14, 16, 17, 20, 21, 23, 46, 47, 55, 56][(x % 12) as usize];
                let at = if x.is_multiple_of(5) {
                    (x >> 8) as usize % f.len()
                } else {
                    at
                };
                f[at] = (x >> 16) as u8;
            }
            f.truncate(f.len() - (x >> 24) as usize % 8);
            for wl in [
                None,
                Some(f.len() as u32),
                Some(f.len() as u32 + 9),
                Some(3),
            ] {
                let a = decode(&f, 1, 0.5, 3, wl, false);
                assert_eq!(
                    a,
                    decode_general(&f, 1, 0.5, 3, wl, false),
                    "{f:02x?} {wl:?}"
                );
                fast += usize::from(super::fast(&f).is_some());
            }
        }
        assert!(fast > 10_000, "the fast path was taken {fast} times");
    }

    #[test]
    fn checksum_verdicts() {
        let mut tcp = tcp_hdr(5, 0x18, b"hello");
        let ck = crate::checksum::tcp_checksum(&[192, 0, 2, 1], &[192, 0, 2, 2], &tcp);
        tcp[16..18].copy_from_slice(&ck.to_be_bytes());
        let f = eth(&ipv4(5, None, 0, 6, &tcp));
        assert_eq!(
            seg(decode(&f, 1, 0.0, 1, None, true)).checksum_ok,
            Some(true)
        );
        assert_eq!(seg(decode(&f, 1, 0.0, 1, None, false)).checksum_ok, None);
        let mut bad = f.clone();
        bad[56] ^= 0x40;
        assert_eq!(
            seg(decode(&bad, 1, 0.0, 1, None, true)).checksum_ok,
            Some(false)
        );
        // Cut by snaplen: no verdict.
        assert_eq!(
            seg(decode(&f, 1, 0.0, 1, Some(100), true)).checksum_ok,
            None
        );
    }

    // --- tunnels: frames written as hex, one header per piece -----------------------------------

    fn hx(text: &str) -> Vec<u8> {
        let t: String = text.split_whitespace().collect();
        (0..t.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&t[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// IPv4 header from 10.9.9.1 to 10.9.9.2 (outer) with `proto`, around `payload`.
    fn outer4(proto: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = hx("4500");
        h.extend(((20 + payload.len()) as u16).to_be_bytes());
        h.extend(hx("0001 0000 40"));
        h.push(proto);
        h.extend(hx("0000 0a090901 0a090902"));
        h.extend(payload);
        h
    }

    /// IPv6 header 2001:db8::1 -> 2001:db8::2 with next header `nh`, around `payload`.
    fn outer6(nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = hx("6000 0000");
        h.extend((payload.len() as u16).to_be_bytes());
        h.push(nh);
        h.push(64);
        h.extend(hx(
            "20010db8000000000000000000000001 20010db8000000000000000000000002",
        ));
        h.extend(payload);
        h
    }

    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut h = sport.to_be_bytes().to_vec();
        h.extend(dport.to_be_bytes());
        h.extend(((8 + payload.len()) as u16).to_be_bytes());
        h.extend(hx("0000"));
        h.extend(payload);
        h
    }

    /// The inner TCP SYN (192.0.2.1:40000 -> 192.0.2.2:80), as IPv4 and as IPv6.
    fn inner4() -> Vec<u8> {
        ipv4(5, None, 0, 6, &tcp_hdr(5, 0x02, &[]))
    }
    fn inner6() -> Vec<u8> {
        let mut h = hx("6000 0000 0014 06 40");
        h.extend(hx(
            "20010db8000000000000000000000a01 20010db8000000000000000000000a02",
        ));
        h.extend(tcp_hdr(5, 0x02, &[]));
        h
    }

    const ETH6: &str = "020000000002 020000000001 86dd";

    fn tunnelled(frame: &[u8], linktype: u32) -> Segment {
        let out = decode(frame, linktype, 1.0, 9, None, false);
        let s = seg(out);
        assert_eq!((s.sport, s.dport, s.seq, s.flags), (40000, 80, 1000, 0x02));
        assert!(s.tunnels.is_some(), "no tunnel in {s:?}");
        s
    }

    fn kinds(s: &Segment) -> Vec<&'static str> {
        s.tunnels
            .iter()
            .flat_map(|p| p.iter())
            .map(|t| t.kind.name())
            .collect()
    }

    #[test]
    fn ip_in_ip_every_way_and_nested() {
        let s = tunnelled(&eth(&outer4(4, &inner4())), 1); // 4in4
        assert_eq!(kinds(&s), ["ip-in-ip"]);
        let t = &s.tunnels.as_ref().expect("path")[0];
        assert_eq!(
            (t.src, t.dst),
            (Addr::V4([10, 9, 9, 1]), Addr::V4([10, 9, 9, 2]))
        );
        assert_eq!((t.sport, t.dport, s.src), (0, 0, Addr::V4([192, 0, 2, 1])));
        let s = tunnelled(&eth(&outer4(41, &inner6())), 1); // 6in4
        assert_eq!((kinds(&s), s.ip_version), (vec!["ip-in-ip"], 6));
        let f = cat(&[&hx(ETH6), &outer6(4, &inner4())]); // 4in6
        assert_eq!(tunnelled(&f, 1).ip_version, 4);
        let f = cat(&[&hx(ETH6), &outer6(41, &inner6())]); // 6in6
        assert_eq!(tunnelled(&f, 1).ip_version, 6);
        // 4in6 in GRE in 4in4: three layers, outermost first
        let gre = cat(&[&hx("0000 86dd"), &outer6(4, &inner4())]);
        let s = tunnelled(&eth(&outer4(4, &outer4(47, &gre))), 1);
        assert_eq!(kinds(&s), ["ip-in-ip", "gre", "ip-in-ip"]);
        // the fast path is not fooled: protocol 4 is not TCP
        assert!(super::fast(&eth(&outer4(4, &inner4()))).is_none());
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_counted_not_followed() {
        let mut p = inner4();
        for _ in 0..MAX_DEPTH {
            p = outer4(4, &p);
        }
        assert_eq!(kinds(&tunnelled(&eth(&p), 1)).len(), MAX_DEPTH);
        let p = outer4(4, &p);
        assert_eq!(
            decode(&eth(&p), 1, 0.0, 1, None, false),
            Ok(Decoded::Skip(Skip::TunnelDepth))
        );
        assert_eq!(Skip::TunnelDepth.name(), "tunnel-depth-exceeded");
    }

    #[test]
    fn gre_plain_keyed_teb_erspan() {
        let s = tunnelled(&eth(&outer4(47, &cat(&[&hx("0000 0800"), &inner4()]))), 1);
        assert_eq!(kinds(&s), ["gre"]);
        // key and sequence number (RFC 2890)
        let keyed = cat(&[&hx("3000 0800 0000 002a 0000 0001"), &inner4()]);
        assert_eq!(kinds(&tunnelled(&eth(&outer4(47, &keyed)), 1)), ["gre"]);
        // transparent Ethernet bridging with a key (zeek-erspan's shape): Ethernet inside
        let teb = cat(&[&hx("2000 6558 0000 0001"), &eth(&inner4())]);
        assert_eq!(kinds(&tunnelled(&eth(&outer4(47, &teb)), 1)), ["gre"]);
        // ERSPAN type II (sequence bit, 8-byte header), type III (12 bytes)
        let two = cat(&[
            &hx("1000 88be 0000 0007 1000 0001 0000 0000"),
            &eth(&inner4()),
        ]);
        assert_eq!(kinds(&tunnelled(&eth(&outer4(47, &two)), 1)), ["erspan"]);
        let three = cat(&[
            &hx("1000 22eb 0000 0007 2000 0001 0000 0000 0000 0000"),
            &eth(&inner4()),
        ]);
        assert_eq!(kinds(&tunnelled(&eth(&outer4(47, &three)), 1)), ["erspan"]);
        // GRE inside IPv6, VLAN-tagged Ethernet inside GRE
        let mut tagged = hx("020000000002 020000000001 8100 0005 0800");
        tagged.extend(inner4());
        let f = cat(&[&hx(ETH6), &outer6(47, &cat(&[&hx("0000 6558"), &tagged]))]);
        assert_eq!(kinds(&tunnelled(&f, 1)), ["gre"]);
    }

    #[test]
    fn gre_header_running_past_its_packet_is_malformed_and_cut_is_truncated() {
        let f = eth(&outer4(47, &hx("2000 0800 0000")));
        let e = decode(&f, 1, 0.0, 1, None, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "byte 34 of the frame: GRE header needs 8 bytes, the tunnel payload has 6"
        );
        // the same bytes cut by the snaplen
        let whole = eth(&outer4(47, &cat(&[&hx("2000 0800 0000 0001"), &inner4()])));
        let out = decode(&whole[..38], 1, 0.0, 1, Some(whole.len() as u32), false);
        assert_eq!(out, Ok(Decoded::Skip(Skip::Truncated)));
        // an inner header that contradicts itself: located at its byte in the frame
        let mut bad = inner4();
        bad[0] = 0x43;
        let e = decode(
            &eth(&outer4(47, &cat(&[&hx("0000 0800"), &bad]))),
            1,
            0.0,
            1,
            None,
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "byte 38 of the frame: IPv4 header length 12 < 20"
        );
        // GRE version 2, source routing: not followed, not TCP
        for head in ["0002 0800", "4000 0800"] {
            let f = eth(&outer4(47, &cat(&[&hx(head), &inner4()])));
            assert_eq!(
                decode(&f, 1, 0.0, 1, None, false),
                Ok(Decoded::Skip(Skip::NotTcp))
            );
        }
    }

    #[test]
    fn udp_tunnels() {
        let port = |p: u16, head: &str, inner: &[u8]| {
            eth(&outer4(17, &udp(40987, p, &cat(&[&hx(head), inner]))))
        };
        let s = tunnelled(&port(4754, "0000 0800", &inner4()), 1);
        assert_eq!(kinds(&s), ["gre-in-udp"]);
        let t = &s.tunnels.as_ref().expect("path")[0];
        assert_eq!((t.sport, t.dport), (40987, 4754));
        let vx = port(4789, "0800 0000 0000 0100", &eth(&inner4()));
        assert_eq!(kinds(&tunnelled(&vx, 1)), ["vxlan"]);
        let gen = port(
            6081,
            "0200 6558 0000 2a00 0102 0304 0506 0708",
            &eth(&inner4()),
        );
        assert_eq!(kinds(&tunnelled(&gen, 1)), ["geneve"]);
        // GTP-U with the sequence number (S), 8 + 4 bytes, length covering the rest
        let len = (4 + inner4().len()) as u16;
        let gtp = port(
            2152,
            &format!("32ff {len:04x} 0000 0001 0001 0000"),
            &inner4(),
        );
        assert_eq!(kinds(&tunnelled(&gtp, 1)), ["gtp-u"]);
        // 1-byte identity, no signature, forward (opcode 1), IPv6 (41)
        let ay = port(5072, "0100 1129 0000 0000 aa", &inner6());
        assert_eq!(kinds(&tunnelled(&ay, 1)), ["ayiya"]);
        // Teredo on its port, and on another when its origin indication says so
        assert_eq!(kinds(&tunnelled(&port(3544, "", &inner6()), 1)), ["teredo"]);
        let od = port(32900, "0000 f227 bec8 61af", &inner6());
        assert_eq!(kinds(&tunnelled(&od, 1)), ["teredo"]);
        // an IPv6-looking payload on another port without Teredo's marks is just UDP
        let plain = port(32900, "", &inner6());
        assert_eq!(
            decode(&plain, 1, 0.0, 1, None, false),
            Ok(Decoded::Skip(Skip::NotTcp))
        );
        // a VXLAN port whose header lacks the I flag: not a tunnel
        let nov = port(4789, "0000 0000 0000 0100", &eth(&inner4()));
        assert_eq!(
            decode(&nov, 1, 0.0, 1, None, false),
            Ok(Decoded::Skip(Skip::NotTcp))
        );
        // and a guessed tunnel that runs past its datagram is not an error either
        let short = port(6081, "0f00 6558", &[]);
        assert_eq!(
            decode(&short, 1, 0.0, 1, None, false),
            Ok(Decoded::Skip(Skip::NotTcp))
        );
    }

    #[test]
    fn ipv6_in_l2tp_in_udp_in_pppoe() {
        // The frame: PPPoE session (PPP IPv4), UDP 1701, L2TPv2 data with length, PPP with
        // address/control, IPv6, TCP.
        let ppp_v6 = cat(&[&hx("ff03 0057"), &inner6()]);
        let l2tp_len = (8 + ppp_v6.len()) as u16;
        let l2tp = cat(&[&hx(&format!("4002 {l2tp_len:04x} 0001 0002")), &ppp_v6]);
        let ip = outer4(17, &udp(1701, 1701, &l2tp));
        let pppoe_len = (2 + ip.len()) as u16;
        let f = cat(&[
            &hx("020000000002 020000000001 8864"),
            &hx(&format!("1100 0001 {pppoe_len:04x} 0021")),
            &ip,
        ]);
        let s = tunnelled(&f, 1);
        assert_eq!((kinds(&s), s.ip_version), (vec!["l2tp"], 6));
        // PPTP: GRE version 1 with PPP inside
        let pptp = cat(&[&hx("3001 880b 0028 0001 0000 0001 ff03 0021"), &inner4()]);
        assert_eq!(kinds(&tunnelled(&eth(&outer4(47, &pptp)), 1)), ["gre"]);
    }

    #[test]
    fn aruba_amsdu_frame_carries_two_segments() {
        // GRE 0x8240, 802.11 QoS data with the A-MSDU bit, two subframes of LLC/SNAP + IPv4 + TCP
        let msdu = cat(&[&hx("aaaa 0300 0000 0800"), &inner4()]);
        let mut second = msdu.clone();
        second[8 + 20 + 4] = 7; // another sequence number
        let sub = |m: &[u8]| {
            let mut h = hx("000000000001 000000000002");
            h.extend((m.len() as u16).to_be_bytes());
            h.extend(m);
            h
        };
        let first = sub(&msdu);
        let pad = vec![0u8; (4 - first.len() % 4) % 4];
        let wlan = cat(&[
            &hx("8802 0000"),
            &[0; 20],
            &hx("8000"),
            &first,
            &pad,
            &sub(&second),
        ]);
        let f = eth(&outer4(47, &cat(&[&hx("0000 8240"), &wlan])));
        let mut d = Decoder::new(false);
        let s = seg(d.decode(&f, 1, 0.0, 1, None));
        assert_eq!((kinds(&s), s.seq), (vec!["gre"], 1000));
        let more: Vec<Segment> = d.take_extra().collect();
        assert_eq!(more.len(), 1);
        assert_eq!((kinds(&more[0]), more[0].seq), (vec!["gre"], 0x0700_03e8));
        assert!(!d.has_extra());
        // stateless decode: the first segment
        assert_eq!(seg(decode(&f, 1, 0.0, 1, None, false)).seq, 1000);
    }

    #[test]
    fn checksums_are_checked_inside_tunnels() {
        let mut tcp = tcp_hdr(5, 0x02, &[]);
        let ck = crate::checksum::tcp_checksum(&[192, 0, 2, 1], &[192, 0, 2, 2], &tcp);
        tcp[16..18].copy_from_slice(&ck.to_be_bytes());
        let good = ipv4(5, None, 0, 6, &tcp);
        let f = eth(&outer4(
            17,
            &udp(1, 4789, &cat(&[&hx("0800 0000 0000 0100"), &eth(&good)])),
        ));
        assert_eq!(
            seg(decode(&f, 1, 0.0, 1, None, true)).checksum_ok,
            Some(true)
        );
        let mut bad = f.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            seg(decode(&bad, 1, 0.0, 1, None, true)).checksum_ok,
            Some(false)
        );
    }

    #[test]
    fn tunnel_frames_mangled_never_panic() {
        // Every tunnel frame above, with bytes changed and the end cut: any outcome but a panic.
        let gre = cat(&[&hx("3000 0800 0000 002a 0000 0001"), &inner4()]);
        let bases = [
            eth(&outer4(4, &outer4(47, &gre))),
            eth(&outer4(
                17,
                &udp(
                    1,
                    2152,
                    &cat(&[&hx("36ff 0020 0000 0001 0001 0085 0100 0000"), &inner4()]),
                ),
            )),
            eth(&outer4(
                17,
                &udp(
                    1,
                    3544,
                    &cat(&[&hx("0001 0102 aa bbbb 0102030405060708 00"), &inner6()]),
                ),
            )),
            eth(&outer4(
                17,
                &udp(
                    1,
                    1701,
                    &cat(&[&hx("4a02 0040 0001 0002 0000 0000 0200 0000"), &inner6()]),
                ),
            )),
            eth(&outer4(
                47,
                &cat(&[
                    &hx("0000 8240 8802 0000"),
                    &[0; 20],
                    &hx("8000 0000"),
                    &inner4(),
                ]),
            )),
        ];
        let mut x: u64 = 0xDEAD_BEEF_1234_5678;
        for i in 0..40_000 {
            let mut f = bases[i % bases.len()].clone();
            for _ in 0..(1 + i % 3) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = 14 + (x >> 8) as usize % (f.len() - 14);
                f[at] = (x >> 32) as u8;
            }
            f.truncate(f.len() - (x >> 40) as usize % 24);
            let mut d = Decoder::new(i % 2 == 0);
            for wl in [None, Some(f.len() as u32 + 40)] {
                let _ = d.decode(&f, 1, 0.0, 1, wl);
                let _ = d.take_extra().count();
            }
        }
    }

    /// `outer4` split into fragments of `size` payload bytes (a multiple of 8), in `order`.
    fn fragments4(proto: u8, payload: &[u8], size: usize, order: &[usize]) -> Vec<Vec<u8>> {
        let pieces: Vec<&[u8]> = payload.chunks(size).collect();
        order
            .iter()
            .map(|&i| {
                let mut ip = outer4(proto, pieces[i]);
                let more = if i + 1 < pieces.len() { 0x2000u16 } else { 0 };
                ip[4..6].copy_from_slice(&[0x12, 0x34]);
                ip[6..8].copy_from_slice(&(more | (i * size / 8) as u16).to_be_bytes());
                eth(&ip)
            })
            .collect()
    }

    #[test]
    fn fragmented_tunnel_packets_are_reassembled() {
        // GRE with Ethernet inside, in 3 fragments arriving out of order
        let gre = cat(&[
            &hx("2000 6558 0000 0001"),
            &eth(&ipv4(5, None, 0, 6, &tcp_hdr(5, 0x18, &[7; 100]))),
        ]);
        let mut d = Decoder::new(false);
        let frames = fragments4(47, &gre, 64, &[2, 0, 1]);
        for f in &frames[..2] {
            assert_eq!(
                d.decode(f, 1, 0.0, 1, None),
                Ok(Decoded::Skip(Skip::Fragment))
            );
        }
        let s = seg(d.decode(&frames[2], 1, 0.5, 7, None));
        assert_eq!(
            (kinds(&s), s.payload_len, s.frame, s.ts),
            (vec!["gre"], 100, 7, 0.5)
        );
        assert!(d.fragments().is_empty());
        // stateless decode cannot: every piece is a fragment
        for f in &frames {
            assert_eq!(
                decode(f, 1, 0.0, 1, None, false),
                Ok(Decoded::Skip(Skip::Fragment))
            );
        }
        // UDP (GTP-U): the ports are in the first fragment only
        let len = (4 + inner4().len()) as u16;
        let gtp = udp(
            2152,
            2152,
            &cat(&[
                &hx(&format!("32ff {len:04x} 0000 0001 0001 0000")),
                &inner4(),
            ]),
        );
        let frames = fragments4(17, &gtp, 24, &[1, 0, 2]);
        let outcomes: Vec<_> = frames
            .iter()
            .map(|f| d.decode(f, 1, 0.0, 1, None))
            .collect();
        assert_eq!(kinds(&seg(outcomes[2].clone())), ["gtp-u"]);
        // IPv6 carrying GRE, in two fragments (fragment header, next header 47)
        let gre6 = cat(&[&hx("0000 0800"), &inner4()]);
        let (a, b) = gre6.split_at(24);
        let frag6 = |off: u16, more: u16, part: &[u8]| {
            let mut fh = vec![47u8, 0];
            fh.extend(((off / 8) << 3 | more).to_be_bytes());
            fh.extend(hx("0000beef"));
            cat(&[&hx(ETH6), &outer6(44, &cat(&[&fh, part]))])
        };
        assert_eq!(
            d.decode(&frag6(0, 1, a), 1, 0.0, 1, None),
            Ok(Decoded::Skip(Skip::Fragment))
        );
        assert_eq!(
            kinds(&seg(d.decode(&frag6(24, 0, b), 1, 0.0, 2, None))),
            ["gre"]
        );
        // an inner fault in a reassembled datagram says where it was found
        let mut bad = gre.clone();
        bad[8 + 14] = 0x43; // the inner IPv4 header length
        let frames = fragments4(47, &bad, 64, &[0, 1, 2]);
        let _ = d.decode(&frames[0], 1, 0.0, 1, None);
        let _ = d.decode(&frames[1], 1, 0.0, 1, None);
        let e = d.decode(&frames[2], 1, 0.0, 1, None).unwrap_err();
        assert_eq!(e.offset, 22);
        assert!(e.reason.contains("reassembled"), "{e}");
        // TCP fragments are not reassembled: the first piece's header is read, as before
        let tcp_first = fragments4(6, &tcp_hdr(5, 0x18, &[1; 60]), 40, &[0]);
        assert_eq!(
            seg(d.decode(&tcp_first[0], 1, 0.0, 1, None)).payload_len,
            20
        );
    }
}
