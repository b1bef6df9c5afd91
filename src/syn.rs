//! What only SYN and SYN-ACK segments need: the full TCP option layout and the IP header fields that
//! the negotiation record (src/negotiation.rs) and p0f's fingerprint (src/p0f.rs) read.
//!
//! Read by the decoder only when the SYN bit is set (`#[cold]`), boxed into `TcpOptions::syn`: the
//! common path (data and ACKs) neither reads these bytes nor grows the Segment.
//!
//! The option walk here is p0f v3's (process.c, `parse_packet`), byte for byte, including where it
//! differs from RFC 9293 §3.2 and from the decoder's own walk: an MSS, WS, SACK-permitted or
//! timestamp option with the wrong length is read anyway and marked `bad`, a walk that cannot
//! finish is `bad`, at most 24 options are listed. The MSS/WS/TS values the record shows come from
//! the decoder's walk (Linux's rules); the p0f signature uses this one, as p0f does.

/// p0f's quirk bits (fp_tcp.h), in the order its raw_sig prints them.
pub const Q_DF: u32 = 1 << 0;
pub const Q_NZ_ID: u32 = 1 << 1;
pub const Q_ZERO_ID: u32 = 1 << 2;
pub const Q_ECN: u32 = 1 << 3;
pub const Q_NZ_MBZ: u32 = 1 << 4;
pub const Q_FLOW: u32 = 1 << 5;
pub const Q_ZERO_SEQ: u32 = 1 << 6;
pub const Q_NZ_ACK: u32 = 1 << 7;
pub const Q_ZERO_ACK: u32 = 1 << 8;
pub const Q_NZ_URG: u32 = 1 << 9;
pub const Q_URG: u32 = 1 << 10;
pub const Q_PUSH: u32 = 1 << 11;
pub const Q_OPT_ZERO_TS1: u32 = 1 << 12;
pub const Q_OPT_NZ_TS2: u32 = 1 << 13;
pub const Q_OPT_EOL_NZ: u32 = 1 << 14;
pub const Q_OPT_EXWS: u32 = 1 << 15;
pub const Q_OPT_BAD: u32 = 1 << 16;

/// Quirk names as p0f writes them, bit i named by QUIRK_NAMES[i].
pub const QUIRK_NAMES: [&str; 17] = [
    "df", "id+", "id-", "ecn", "0+", "flow", "seq-", "ack+", "ack-", "uptr+", "urgf+", "pushf+",
    "ts1-", "ts2+", "opt+", "exws", "bad",
];

/// p0f's MAX_TCP_OPT (config.h): it lists at most this many options.
pub const MAX_TCP_OPT: usize = 24;

/// TCP Fast Open option (RFC 7413 §4.1.1): kind 34, or the experimental kind 254 with ExID 0xF989.
const TFO_KIND: u8 = 34;
const EXP_KIND: u8 = 254;
const TFO_EXID: u16 = 0xF989;
/// MPTCP (RFC 8684 §3.1): kind 30; subtype 0 in the high nibble of the third byte is MP_CAPABLE.
const MPTCP_KIND: u8 = 30;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SynDetails {
    /// IPv4 TTL or IPv6 hop limit
    pub ttl: u8,
    /// IPv4 DF bit (RFC 791 §3.1); false for IPv6
    pub df: bool,
    /// IPv4 header option bytes (p0f's olen); 0 for IPv6
    pub ip_opt_len: u8,
    /// IP header (with options) plus TCP header bytes: p0f's tot_hdr
    pub tot_hdr: u16,
    /// p0f's quirks bitmask (Q_*)
    pub quirks: u32,
    /// option kinds in order, at most MAX_TCP_OPT (p0f's opt_layout): `layout()`. Inline, not a
    /// Vec: a SYN's details are one allocation.
    layout_kinds: [u8; MAX_TCP_OPT],
    layout_len: u8,
    /// bytes after an End-of-Option-List (p0f's eol+N)
    pub eol_pad: u8,
    /// MSS, window scale and TSval as p0f's walk reads them (0 when absent)
    pub p0f_mss: u16,
    pub p0f_wscale: u8,
    pub p0f_ts1: u32,
    /// TCP Fast Open: None without the option, Some(empty) for a cookie request, else the cookie
    pub tfo: Option<Vec<u8>>,
    /// MPTCP MP_CAPABLE present
    pub mptcp: bool,
    /// the IPv6 packet had extension headers before TCP (p0f does not follow them)
    pub ip6_ext: bool,
}

impl SynDetails {
    /// The option kinds in order (p0f's opt_layout).
    pub fn layout(&self) -> &[u8] {
        self.layout_kinds
            .get(..usize::from(self.layout_len))
            .unwrap_or(&[])
    }

    fn push_kind(&mut self, kind: u8) {
        if let Some(slot) = self.layout_kinds.get_mut(usize::from(self.layout_len)) {
            *slot = kind;
            self.layout_len += 1;
        }
    }
}

/// The IP header fields p0f's quirks read, gathered by the decoder (which has already checked them).
#[derive(Clone, Copy, Debug, Default)]
pub struct IpFields {
    pub version: u8,
    pub ttl: u8,
    /// IPv4 TOS byte or IPv6 traffic class (the ECN field is the low two bits, RFC 3168 §5)
    pub tos: u8,
    /// IPv4 flags and fragment offset word
    pub flags_off: u16,
    pub id: u16,
    pub flow_label: u32,
    /// IPv4 header length (with options); for IPv6 40
    pub hdr_len: u16,
    pub ip6_ext: bool,
}

fn be16(b: &[u8], i: usize) -> u16 {
    match (b.get(i), b.get(i + 1)) {
        (Some(x), Some(y)) => u16::from_be_bytes([*x, *y]),
        _ => 0,
    }
}

fn be32(b: &[u8], i: usize) -> u32 {
    u32::from(be16(b, i)) << 16 | u32::from(be16(b, i + 2))
}

/// The details of a SYN or SYN-ACK whose TCP header is `tcp` (20 bytes and the options captured).
#[cold]
#[inline(never)]
pub fn read(ip: IpFields, tcp: &[u8]) -> Box<SynDetails> {
    let mut d = SynDetails {
        ttl: ip.ttl,
        ip6_ext: ip.ip6_ext,
        ..SynDetails::default()
    };
    let mut q = 0u32;
    // IP quirks (process.c): ECN codepoint ECT or CE, and per version the DF/ID/MBZ or flow label.
    if ip.tos & 0x03 != 0 {
        q |= Q_ECN;
    }
    if ip.version == 4 {
        d.ip_opt_len = u8::try_from(ip.hdr_len.saturating_sub(20)).unwrap_or(u8::MAX);
        d.df = ip.flags_off & 0x4000 != 0;
        if ip.flags_off & 0x8000 != 0 {
            q |= Q_NZ_MBZ;
        }
        if d.df {
            q |= Q_DF;
            if ip.id != 0 {
                q |= Q_NZ_ID;
            }
        } else if ip.id == 0 {
            q |= Q_ZERO_ID;
        }
    } else if ip.flow_label != 0 {
        q |= Q_FLOW;
    }
    let doff = usize::from(tcp.get(12).copied().unwrap_or(0) >> 4) * 4;
    d.tot_hdr = ip.hdr_len.saturating_add(doff as u16);
    let flags = tcp.get(13).copied().unwrap_or(0);
    // TCP quirks.
    if flags & 0xC0 != 0 || tcp.get(12).copied().unwrap_or(0) & 0x01 != 0 {
        q |= Q_ECN; // ECE, CWR or NS/AE
    }
    if be32(tcp, 4) == 0 {
        q |= Q_ZERO_SEQ;
    }
    let ack = be32(tcp, 8);
    if flags & 0x10 != 0 {
        if ack == 0 {
            q |= Q_ZERO_ACK;
        }
    } else if (ack >> 24) & 1 != 0 && flags & 0x04 == 0 {
        // p0f tests `RD32(tcp->ack) & !(flags & TCP_RST)`: the raw word in host (little-endian)
        // order AND 1, i.e. the low bit of the ack field's first byte. Reproduced as p0f prints it.
        q |= Q_NZ_ACK;
    }
    if flags & 0x20 != 0 {
        q |= Q_URG;
    } else if be16(tcp, 18) != 0 {
        q |= Q_NZ_URG;
    }
    if flags & 0x08 != 0 {
        q |= Q_PUSH;
    }
    let end = doff.min(tcp.len());
    q |= p0f_options(&mut d, tcp, 20, end, flags & 0x17 == 0x02);
    d.quirks = q;
    rfc_options(&mut d, tcp, 20, end);
    Box::new(d)
}

/// p0f's option walk (process.c), `tcp[i..end]`; returns the option quirks. `syn_only`: a SYN
/// without ACK/FIN/RST (ts2+ is a SYN quirk only).
fn p0f_options(d: &mut SynDetails, tcp: &[u8], mut i: usize, end: usize, syn_only: bool) -> u32 {
    let mut q = 0u32;
    let at = |j: usize| tcp.get(j).copied().unwrap_or(0);
    while i < end && usize::from(d.layout_len) < MAX_TCP_OPT {
        let kind = at(i);
        d.push_kind(kind);
        i += 1; // `data` now points at the length byte
        match kind {
            0 => {
                // EOL ends the walk; p0f notes how many bytes follow and whether one is not zero.
                d.eol_pad = u8::try_from(end - i).unwrap_or(u8::MAX);
                loop {
                    if i >= end {
                        break;
                    }
                    let b = at(i);
                    i += 1;
                    if b != 0 {
                        break;
                    }
                }
                if i != end {
                    q |= Q_OPT_EOL_NZ;
                    i = end;
                }
            }
            1 => {}
            2 => {
                if i + 3 > end {
                    return q | Q_OPT_BAD;
                }
                if at(i) != 4 {
                    q |= Q_OPT_BAD;
                }
                d.p0f_mss = be16(tcp, i + 1);
                i += 3;
            }
            3 => {
                if i + 2 > end {
                    return q | Q_OPT_BAD;
                }
                if at(i) != 3 {
                    q |= Q_OPT_BAD;
                }
                d.p0f_wscale = at(i + 1);
                if d.p0f_wscale > 14 {
                    q |= Q_OPT_EXWS;
                }
                i += 2;
            }
            4 => {
                if i + 1 > end {
                    return q | Q_OPT_BAD;
                }
                if at(i) != 2 {
                    q |= Q_OPT_BAD;
                }
                i += 1;
            }
            5 => {
                if i == end {
                    return q | Q_OPT_BAD;
                }
                let len = usize::from(at(i));
                if !(10..=34).contains(&len) || i - 1 + len > end {
                    return q | Q_OPT_BAD;
                }
                i += len - 1;
            }
            8 => {
                if i + 9 > end {
                    return q | Q_OPT_BAD;
                }
                if at(i) != 10 {
                    q |= Q_OPT_BAD;
                }
                d.p0f_ts1 = be32(tcp, i + 1);
                if d.p0f_ts1 == 0 {
                    q |= Q_OPT_ZERO_TS1;
                }
                if syn_only && be32(tcp, i + 5) != 0 {
                    q |= Q_OPT_NZ_TS2;
                }
                i += 9;
            }
            _ => {
                if i == end {
                    return q | Q_OPT_BAD;
                }
                let len = usize::from(at(i));
                if !(2..=40).contains(&len) || i - 1 + len > end {
                    return q | Q_OPT_BAD;
                }
                i += len - 1;
            }
        }
    }
    if i != end {
        q |= Q_OPT_BAD;
    }
    q
}

/// Fast Open and MPTCP, by the RFC 9293 §3.2 walk (kind, length, skip by length).
fn rfc_options(d: &mut SynDetails, tcp: &[u8], mut i: usize, end: usize) {
    while i < end {
        let kind = tcp.get(i).copied().unwrap_or(0);
        if kind == 0 {
            break;
        }
        if kind == 1 {
            i += 1;
            continue;
        }
        let len = usize::from(tcp.get(i + 1).copied().unwrap_or(0));
        if len < 2 || i + len > end {
            break;
        }
        let body = tcp.get(i + 2..i + len).unwrap_or(&[]);
        match kind {
            // RFC 7413 §4.1.1: length 2 is a cookie request, 6 to 18 carries a cookie.
            TFO_KIND => d.tfo = Some(body.to_vec()),
            EXP_KIND if body.len() >= 2 && be16(body, 0) == TFO_EXID => {
                d.tfo = Some(body.get(2..).unwrap_or(&[]).to_vec())
            }
            MPTCP_KIND if body.first().is_some_and(|b| b >> 4 == 0) => d.mptcp = true,
            _ => {}
        }
        i += len;
    }
}

/// The option layout in p0f's names: `mss,sok,ts,nop,ws`, `eol+N`, `?K` for other kinds.
pub fn layout_text(d: &SynDetails) -> String {
    let mut out = String::with_capacity(4 * d.layout().len());
    write_layout(d, &mut out);
    out
}

/// `layout_text`, appended to `out`.
pub fn write_layout(d: &SynDetails, out: &mut String) {
    for (i, kind) in d.layout().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match kind {
            0 => {
                out.push_str("eol+");
                out.push_str(itoa::Buffer::new().format(d.eol_pad));
            }
            1 => out.push_str("nop"),
            2 => out.push_str("mss"),
            3 => out.push_str("ws"),
            4 => out.push_str("sok"),
            5 => out.push_str("sack"),
            8 => out.push_str("ts"),
            k => {
                out.push('?');
                out.push_str(itoa::Buffer::new().format(*k));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(flags: u8, opts: &[u8]) -> Vec<u8> {
        let doff = (20 + opts.len()) / 4;
        let mut h = vec![0u8; 20];
        h[4..8].copy_from_slice(&1u32.to_be_bytes());
        h[12] = (doff as u8) << 4;
        h[13] = flags;
        h.extend_from_slice(opts);
        h
    }
    fn v4() -> IpFields {
        IpFields {
            version: 4,
            ttl: 64,
            flags_off: 0x4000,
            id: 0,
            hdr_len: 20,
            ..IpFields::default()
        }
    }

    #[test]
    fn linux_syn_layout() {
        let opts = [
            2, 4, 0xff, 0xd7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let d = read(v4(), &tcp(0x02, &opts));
        assert_eq!(layout_text(&d), "mss,sok,ts,nop,ws");
        assert_eq!((d.p0f_mss, d.p0f_wscale, d.p0f_ts1), (65495, 7, 1));
        assert_eq!(d.quirks, Q_DF);
        assert_eq!(d.tot_hdr, 60);
    }

    #[test]
    fn eol_padding_and_bad_lengths() {
        // EOL then two zero bytes and a non-zero one that is the last byte: p0f's loop steps past
        // it and ends at the end, so no opt+ (as p0f does).
        let d = read(v4(), &tcp(0x02, &[1, 0, 0, 5]));
        assert_eq!(layout_text(&d), "nop,eol+2");
        assert_eq!(d.quirks & Q_OPT_EOL_NZ, 0);
        let d = read(v4(), &tcp(0x02, &[0, 5, 0, 0]));
        assert_eq!(d.quirks & Q_OPT_EOL_NZ, Q_OPT_EOL_NZ);
        // MSS with length 3: read anyway, marked bad
        let d = read(v4(), &tcp(0x02, &[2, 3, 5, 0xb4]));
        assert_eq!(d.p0f_mss, 1460);
        assert_ne!(d.quirks & Q_OPT_BAD, 0);
        // a window scale of 15: exws
        let d = read(v4(), &tcp(0x02, &[3, 3, 15, 0]));
        assert_ne!(d.quirks & Q_OPT_EXWS, 0);
    }

    #[test]
    fn fast_open_and_mptcp() {
        let d = read(v4(), &tcp(0x02, &[34, 2, 1, 1]));
        assert_eq!(d.tfo, Some(vec![]));
        let d = read(v4(), &tcp(0x02, &[34, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1]));
        assert_eq!(d.tfo, Some(vec![1, 2, 3, 4, 5, 6, 7, 8]));
        let d = read(v4(), &tcp(0x02, &[254, 4, 0xf9, 0x89]));
        assert_eq!(d.tfo, Some(vec![]));
        let d = read(v4(), &tcp(0x02, &[30, 4, 0x01, 0x81]));
        assert!(d.mptcp);
        assert_eq!(layout_text(&d), "?30");
    }

    #[test]
    fn header_quirks() {
        let mut ip = v4();
        ip.flags_off = 0;
        ip.tos = 0x02;
        let mut h = tcp(0x02 | 0x40 | 0x80 | 0x08, &[]);
        h[4..8].copy_from_slice(&[0; 4]); // seq 0
        h[8] = 1; // ack field's first byte odd, no ACK flag
        h[19] = 1; // urgent pointer without URG
        let d = read(ip, &h);
        let want = Q_ZERO_ID | Q_ECN | Q_ZERO_SEQ | Q_NZ_ACK | Q_NZ_URG | Q_PUSH;
        assert_eq!(d.quirks, want);
    }
}
