//! One side of a connection: its RFC 9293 state path and the sequence-space facts the machine needs.

use crate::states::State;

/// a >= b in 32-bit sequence-number arithmetic (RFC 9293 §3.4: comparisons are modulo 2**32).
#[inline]
pub fn seq_ge(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) < 0x8000_0000
}

/// start <= seq < start + size, modulo 2**32 (RFC 9293 §3.10.7.4 acceptability test).
#[inline]
pub fn seq_in_window(seq: u32, start: u32, size: u64) -> bool {
    u64::from(seq.wrapping_sub(start)) < size.max(1)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
        }
    }
}

/// What the capture tells about one endpoint. `state` is the current RFC 9293 state.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub role: Role,
    pub addr: crate::segment::Addr,
    pub port: u16,
    pub state: State,
    pub path: Vec<State>,
    /// sequence number of this side's SYN
    pub isn: Option<u32>,
    /// origin of relative sequence numbers (ISN, or first seq - 1)
    pub base: Option<u32>,
    /// highest sequence number sent + its length, i.e. the peer's RCV.NXT
    pub snd_nxt: Option<u32>,
    /// sequence number occupied by this side's FIN
    pub fin_seq: Option<u32>,
    /// last advertised window, unscaled
    pub window: u16,
    /// window-scale shift offered in the SYN (RFC 7323 §2)
    pub wscale: Option<u8>,
    /// reached SYN-RECEIVED from LISTEN (RFC 9293 §3.10.7.4 RST rule)
    pub passive: bool,
    pub packets: u64,
    pub payload_bytes: u64,
    pub time_wait_since: Option<f64>,
}

impl Endpoint {
    pub fn new(role: Role, addr: crate::segment::Addr, port: u16, state: State) -> Endpoint {
        Endpoint {
            role,
            addr,
            port,
            state,
            // room for a whole connection's states (CLOSED..TIME-WAIT..CLOSED is 7): one allocation,
            // where `vec![state]` would grow once
            path: {
                let mut path = Vec::with_capacity(8);
                path.push(state);
                path
            },
            isn: None,
            base: None,
            snd_nxt: None,
            fin_seq: None,
            window: 0,
            wscale: None,
            passive: false,
            packets: 0,
            payload_bytes: 0,
            time_wait_since: None,
        }
    }

    /// `ip:port`, with IPv6 addresses in brackets as URLs write them.
    pub fn label(&self) -> String {
        let mut out = String::with_capacity(24);
        self.write_label(&mut out);
        out
    }

    /// `label`, appended to `out` (the JSON writer's buffer: no string of its own).
    pub fn write_label(&self, out: &mut String) {
        let v6 = self.addr.is_v6();
        if v6 {
            out.push('[');
        }
        self.addr.write_text(out);
        out.push_str(if v6 { "]:" } else { ":" });
        out.push_str(itoa::Buffer::new().format(self.port));
    }

    /// Fix the state the endpoint had before the first segment that involves it.
    pub fn set_initial(&mut self, state: State) {
        self.state = state;
        self.path[0] = state;
    }

    /// Track this side's send sequence space from a segment it sent.
    pub fn note_sent(&mut self, seq: u32, seq_len: u32, syn: bool, fin: bool, payload_len: u32) {
        if syn && self.isn.is_none() {
            self.isn = Some(seq);
            self.base = Some(seq);
        } else if self.base.is_none() {
            // like Wireshark: the first unseen-SYN segment is relative 1
            self.base = Some(seq.wrapping_sub(1));
        }
        let end = seq.wrapping_add(seq_len);
        match self.snd_nxt {
            Some(n) if !seq_ge(end, n) => {}
            _ => self.snd_nxt = Some(end),
        }
        if fin {
            self.fin_seq = Some(seq.wrapping_add(payload_len).wrapping_add(u32::from(syn)));
        }
        self.packets += 1;
        self.payload_bytes += u64::from(payload_len);
    }

    /// Receive window in bytes; the scale applies only when both sides offered it (RFC 7323 §2.2).
    pub fn scaled_window(&self, peer_wscale: Option<u8>) -> u64 {
        match (self.wscale, peer_wscale) {
            (Some(ws), Some(_)) => u64::from(self.window) << ws.min(14),
            _ => u64::from(self.window),
        }
    }

    /// Does `ack` (sent by the peer) acknowledge this side's SYN?
    pub fn acks_syn(&self, ack: u32) -> bool {
        self.isn.is_some_and(|isn| seq_ge(ack, isn.wrapping_add(1)))
    }

    /// Does `ack` (sent by the peer) acknowledge this side's FIN?
    pub fn acks_fin(&self, ack: u32) -> bool {
        self.fin_seq.is_some_and(|f| seq_ge(ack, f.wrapping_add(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn wraparound() {
        assert!(seq_ge(5, 0xFFFF_FFF0));
        assert!(!seq_ge(0xFFFF_FFF0, 5));
        assert!(seq_in_window(2, 0xFFFF_FFFF, 10));
        assert!(seq_in_window(7, 7, 0));
        assert!(!seq_in_window(8, 7, 0));
    }
}
