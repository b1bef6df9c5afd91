//! The decoded TCP segment: the one record every edge (file, live capture, prober) produces, and the
//! flag vocabulary (RFC 9293 §3.1; NS from RFC 3540, ECE/CWR from RFC 3168).

/// Flag bits, as the 9 low bits of the TCP header's data-offset/flags word.
pub const FIN: u16 = 0x001;
pub const SYN: u16 = 0x002;
pub const RST: u16 = 0x004;
pub const PSH: u16 = 0x008;
pub const ACK: u16 = 0x010;
pub const URG: u16 = 0x020;
pub const ECE: u16 = 0x040;
pub const CWR: u16 = 0x080;
pub const NS: u16 = 0x100;

/// Every flag bit with its name, in the order people say them (SYN|ACK, PSH|ACK, FIN|ACK, RST|ACK).
pub const FLAG_NAMES: [(u16, &str); 9] = [
    (SYN, "SYN"),
    (FIN, "FIN"),
    (RST, "RST"),
    (PSH, "PSH"),
    (ACK, "ACK"),
    (URG, "URG"),
    (ECE, "ECE"),
    (CWR, "CWR"),
    (NS, "NS"),
];

/// tcpdump's letters in tcpdump's order; "." stands for ACK and comes last.
const TCPDUMP_LETTERS: [(u16, char); 8] = [
    (SYN, 'S'),
    (FIN, 'F'),
    (PSH, 'P'),
    (RST, 'R'),
    (URG, 'U'),
    (ECE, 'E'),
    (CWR, 'W'),
    (NS, 'N'),
];

/// `S`, `S.`, `.`, `P.`, `F.`, `R.` as tcpdump prints them; `none` for no bit set.
pub fn tcpdump_flags(flags: u16) -> String {
    let mut text: String = TCPDUMP_LETTERS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, c)| *c)
        .collect();
    if flags & ACK != 0 {
        text.push('.');
    }
    if text.is_empty() {
        "none".into()
    } else {
        text
    }
}

/// Flags by name, e.g. `SYN|ACK`; `none` for no bit set.
pub fn flag_names(flags: u16) -> String {
    let names: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join("|")
    }
}

/// The TCP options the analyzer reads (RFC 9293 §3.2, RFC 7323, RFC 2018).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// SACK blocks (RFC 2018 §3); a boxed slice, not a Vec, so that `syn` fits in the same bytes.
    pub sack: Option<Box<[(u32, u32)]>>,
    pub ts_val: Option<u32>,
    pub ts_ecr: Option<u32>,
    /// On SYN and SYN-ACK segments only (decoded off the common path): the full option layout and
    /// the IP header fields that the negotiation record and p0f's fingerprint read (src/syn.rs).
    pub syn: Option<Box<crate::syn::SynDetails>>,
}

/// An IP address as it came off the wire; text only when a record is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Addr {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl Addr {
    /// `10.0.0.1` / `fe80::1` (RFC 5952 compressed form, as inet_ntop prints it).
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    /// `text`, appended to `out`.
    pub fn write_text(&self, out: &mut String) {
        use std::fmt::Write as _;
        let dotted = |out: &mut String, b: &[u8]| {
            for (i, octet) in b.iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(itoa::Buffer::new().format(*octet));
            }
        };
        match self {
            Addr::V4(b) => dotted(out, b),
            // glibc's inet_ntop writes an IPv4-compatible address (RFC 4291 §2.5.5.1: 96 zero bits,
            // then a 32-bit value whose high 16 bits are not zero) as ::a.b.c.d; Rust would
            // write ::a0b:c0d. Python prints what glibc prints, and so do tcpdump and tshark.
            Addr::V6(b) if b[..12] == [0; 12] && (b[12] != 0 || b[13] != 0) => {
                out.push_str("::");
                dotted(out, &b[12..]);
            }
            Addr::V6(b) => {
                let _ = write!(out, "{}", std::net::Ipv6Addr::from(*b));
            }
        }
    }
    pub fn is_v6(&self) -> bool {
        matches!(self, Addr::V6(_))
    }
}

/// One TCP segment as seen on the wire.
///
/// `payload_len` comes from the IP length field, not from the captured bytes, so that snaplen-cut
/// captures still give the true sequence space consumed (RFC 9293 §3.4).
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub ts: f64,
    pub frame: u64,
    pub src: Addr,
    pub sport: u16,
    pub dst: Addr,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u16,
    pub window: u16,
    pub payload_len: u32,
    pub options: TcpOptions,
    pub ip_version: u8,
    /// Some(true/false) only when checksums were verified and the segment was captured whole.
    pub checksum_ok: Option<bool>,
    /// The tunnels the segment crossed, outermost first (src/tunnel.rs); None when it came bare.
    /// The addresses and ports above are the innermost packet's: flows are keyed by them. A thin
    /// box: a Segment stays 128 bytes, which moves without a memcpy call on the hot path.
    pub tunnels: Option<Box<crate::tunnel::TunnelPath>>,
}

impl Segment {
    /// Sequence space this segment occupies: payload plus one each for SYN and FIN (RFC 9293 §3.4).
    pub fn seq_len(&self) -> u32 {
        self.payload_len
            .wrapping_add(u32::from(self.flags & SYN != 0))
            .wrapping_add(u32::from(self.flags & FIN != 0))
    }
    pub fn has(&self, bit: u16) -> bool {
        self.flags & bit != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_segment_is_128_bytes() {
        // Moved by value from the decoder into the flow table for every packet: at 128 bytes and
        // below the compiler copies it inline; a field more is a memcpy call per move.
        assert!(std::mem::size_of::<Segment>() <= 128);
    }
    #[test]
    fn letters_and_names() {
        assert_eq!(tcpdump_flags(SYN | ACK), "S.");
        assert_eq!(tcpdump_flags(ACK), ".");
        assert_eq!(tcpdump_flags(0), "none");
        assert_eq!(flag_names(SYN | ACK), "SYN|ACK");
        assert_eq!(flag_names(FIN | ACK | PSH), "FIN|PSH|ACK");
    }
    #[test]
    fn ipv6_text_is_compressed() {
        let mut b = [0u8; 16];
        b[15] = 1;
        assert_eq!(Addr::V6(b).text(), "::1");
        // as Python's socket.inet_ntop (glibc) prints them
        let v6 = |hex: &str| {
            let mut a = [0u8; 16];
            for (i, byte) in a.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
            }
            Addr::V6(a).text()
        };
        assert_eq!(v6("00000000000000000000000004000001"), "::4.0.0.1");
        assert_eq!(v6("00000000000000000000000000000100"), "::100");
        assert_eq!(v6("00000000000000000000000000000000"), "::");
        assert_eq!(v6("00000000000000000000ffff01020304"), "::ffff:1.2.3.4");
    }
}
