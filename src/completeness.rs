//! tshark's TCP conversation completeness (`tcp.completeness`) for one flow.
//!
//! Wireshark does not track TCP states: it ORs one bit per kind of segment it has seen into the
//! conversation. The rules are in `epan/dissectors/packet-tcp.c`, `dissect_tcp()`, in the block
//! "initialize or move forward the conversation completeness" (wireshark/wireshark, Wireshark 3.6-4.0
//! era, as packaged in Debian 12's tshark 4.0.17; the bit values are the `TCP_COMPLETENESS_*` defines
//! near the top of that file):
//!
//! - only in a **new** conversation (the packet that created it): a pure SYN (SYN without ACK) sets
//!   SYN (1), and DATA (8) too when it carries payload (TCP Fast Open). Nothing else counts on that
//!   packet.
//! - on every later packet: SYN+ACK sets SYN-ACK (2); ACK without SYN sets DATA (8) when the segment
//!   carries payload, else ACK (4) -- so a FIN+ACK or RST+ACK without payload also sets ACK; FIN *with*
//!   ACK sets FIN (16) (a FIN without ACK does not); any RST sets RST (32).
//!
//! The conformance summaries were made with a two-pass read (`tshark -2`), which is what users see in
//! Wireshark's GUI as well. On the second pass the conversation already exists, so its first packet is
//! processed again with the "later packet" rules (a SYN-ACK that opened the capture now sets SYN-ACK),
//! and the value shown on a packet is the one *before* that packet's own contribution. A stream's
//! summary (its last packet's value) is therefore: every packet's contribution from the first pass,
//! plus the first packet's "later packet" contribution when the stream has more than one packet.
//!
//! Not emulated: Wireshark's FTP dissector creates the conversation of a passive-mode data connection
//! when it reads the PASV/EPSV reply, so that connection's SYN does not arrive in a new conversation
//! and SYN (1) is not set. A Segment has no payload bytes, so we cannot know; we report SYN for it.

use crate::observe::Observer;
use crate::record::Emit;
use crate::segment::{Segment, ACK as ACK_FLAG, FIN as FIN_FLAG, RST as RST_FLAG, SYN as SYN_FLAG};

// packet-tcp.c TCP_COMPLETENESS_*
pub const SYNSENT: i64 = 0x01;
pub const SYNACK: i64 = 0x02;
pub const ACK: i64 = 0x04;
pub const DATA: i64 = 0x08;
pub const FIN: i64 = 0x10;
pub const RST: i64 = 0x20;

/// Names as the conformance summaries spell them, in bit order.
pub const COMPLETENESS_BITS: [(i64, &str); 6] = [
    (SYNSENT, "SYN"),
    (SYNACK, "SYN-ACK"),
    (ACK, "ACK"),
    (DATA, "DATA"),
    (FIN, "FIN"),
    (RST, "RST"),
];

/// What a packet adds to an existing conversation (packet-tcp.c, the `else` branch).
pub fn later_packet_bits(flags: u16, payload_len: u32) -> i64 {
    let mut bits = 0;
    let syn_ack = flags & (SYN_FLAG | ACK_FLAG);
    if syn_ack == SYN_FLAG | ACK_FLAG {
        bits |= SYNACK;
    } else if syn_ack == ACK_FLAG {
        bits |= if payload_len > 0 { DATA } else { ACK };
    }
    if flags & (FIN_FLAG | ACK_FLAG) == FIN_FLAG | ACK_FLAG {
        bits |= FIN;
    }
    if flags & RST_FLAG != 0 {
        bits |= RST;
    }
    bits
}

/// What the packet that creates the conversation adds: only a pure SYN counts.
pub fn first_packet_bits(flags: u16, payload_len: u32) -> i64 {
    if flags & (SYN_FLAG | ACK_FLAG) == SYN_FLAG {
        return SYNSENT | if payload_len > 0 { DATA } else { 0 };
    }
    0
}

/// `SYN|SYN-ACK|ACK|DATA|FIN` as the tshark summaries spell it; `-` for nothing (as they do).
pub fn completeness_flags(value: i64) -> String {
    let mut out = String::new();
    write_completeness_flags(value, &mut out);
    out
}

/// `completeness_flags`, appended to `out`.
fn write_completeness_flags(value: i64, out: &mut String) {
    let start = out.len();
    for (bit, name) in COMPLETENESS_BITS.iter() {
        if value & bit != 0 {
            if out.len() > start {
                out.push('|');
            }
            out.push_str(name);
        }
    }
    if out.len() == start {
        out.push('-');
    }
}

/// Per-flow observer: record fields `completeness` (int bitmask) and `completeness_flags` (str).
#[derive(Clone, Debug, Default)]
pub struct Completeness {
    bits: i64,
    /// the first packet's contribution on tshark's second pass
    first_again: i64,
    packets: u64,
}

impl Completeness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn value(&self) -> i64 {
        self.bits
            | if self.packets > 1 {
                self.first_again
            } else {
                0
            }
    }
}

impl Observer for Completeness {
    fn on_segment(
        &mut self,
        seg: &Segment,
        _from_client: bool,
        _reused: bool,
        _: &mut Vec<String>,
    ) {
        let (flags, plen) = (seg.flags, seg.payload_len);
        if self.packets != 0 {
            self.bits |= later_packet_bits(flags, plen);
        } else {
            self.bits = first_packet_bits(flags, plen);
            self.first_again = later_packet_bits(flags, plen);
        }
        self.packets = self.packets.saturating_add(1);
    }

    fn record(&self, out: &mut dyn Emit) {
        let value = self.value();
        out.key("completeness");
        out.int(value);
        out.key("completeness_flags");
        out.str_with(&mut |text| write_completeness_flags(value, text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Value;
    use crate::segment::{Addr, TcpOptions, PSH};

    fn seg(flags: u16, payload_len: u32) -> Segment {
        Segment {
            ts: 1.0,
            frame: 1,
            src: Addr::V4([10, 0, 0, 1]),
            sport: 40000,
            dst: Addr::V4([10, 0, 0, 2]),
            dport: 80,
            seq: 1,
            ack: 0,
            flags,
            window: 65535,
            payload_len,
            options: TcpOptions::default(),
            ip_version: 4,
            checksum_ok: None,
            tunnels: None,
        }
    }

    fn run(steps: &[(u16, u32)]) -> (i64, String) {
        let mut c = Completeness::new();
        let mut notes = Vec::new();
        for &(flags, len) in steps {
            c.on_segment(&seg(flags, len), true, false, &mut notes);
        }
        assert!(notes.is_empty());
        let out = crate::observe::fields_of(&c);
        match (&out[0], &out[1]) {
            (("completeness", Value::Int(v)), ("completeness_flags", Value::Str(s))) => {
                (*v, s.clone())
            }
            other => panic!("unexpected record {other:?}"),
        }
    }

    #[test]
    fn full_conversation_is_31() {
        let got = run(&[
            (SYN_FLAG, 0),
            (SYN_FLAG | ACK_FLAG, 0),
            (ACK_FLAG, 0),
            (PSH | ACK_FLAG, 5),
            (FIN_FLAG | ACK_FLAG, 0),
        ]);
        assert_eq!(got, (31, "SYN|SYN-ACK|ACK|DATA|FIN".to_string()));
    }

    #[test]
    fn first_packet_counts_again_only_with_a_second_packet() {
        // A SYN-ACK opening the capture: nothing on the first pass, SYN-ACK on the second.
        assert_eq!(run(&[(SYN_FLAG | ACK_FLAG, 0)]), (0, "-".to_string()));
        assert_eq!(
            run(&[(SYN_FLAG | ACK_FLAG, 0), (RST_FLAG, 0)]),
            (SYNACK | RST, "SYN-ACK|RST".to_string())
        );
        // TCP Fast Open: a SYN with data sets SYN and DATA.
        assert_eq!(
            run(&[(SYN_FLAG, 10)]),
            (SYNSENT | DATA, "SYN|DATA".to_string())
        );
    }

    #[test]
    fn fin_without_ack_does_not_set_fin() {
        assert_eq!(later_packet_bits(FIN_FLAG, 0), 0);
        assert_eq!(later_packet_bits(FIN_FLAG | ACK_FLAG, 0), FIN | ACK);
        assert_eq!(later_packet_bits(RST_FLAG | ACK_FLAG, 3), RST | DATA);
        assert_eq!(completeness_flags(0x3f), "SYN|SYN-ACK|ACK|DATA|FIN|RST");
    }
}
