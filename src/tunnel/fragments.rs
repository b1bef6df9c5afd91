//! IP fragment reassembly for tunnel carriers: an outer IPv4 or IPv6 datagram whose payload is a
//! tunnel (IP-in-IP, GRE, UDP) and that was fragmented on the way (zeek-erspan and the GTP-U trace
//! of the conformance corpus split their large outer datagrams; the inner TCP segment exists only
//! once the pieces are put together, as Zeek and Wireshark do).
//!
//! Bounded: at most `MAX_PENDING` datagrams and `MAX_BYTES` bytes wait for their missing pieces
//! (the oldest is dropped to make room), none longer than `TIMEOUT` seconds of capture time, none
//! larger than 65535 bytes. Overlapping fragments drop their datagram (RFC 5722 for IPv6; Linux does
//! the same for IPv4): an exact duplicate is ignored. TCP fragments are not reassembled (the decoder
//! reads a first fragment's TCP header, as before).

use crate::segment::Addr;

/// Datagrams waiting for pieces.
pub const MAX_PENDING: usize = 256;
/// Bytes held in all of them (Linux: ipfrag_high_thresh, 4 MiB).
pub const MAX_BYTES: usize = 4 << 20;
/// Seconds of capture time a datagram may wait (Linux: ipfrag_time, 30 s).
pub const TIMEOUT: f64 = 30.0;
/// The largest payload a fragment offset and length can describe (RFC 791 §3.1, RFC 8200 §4.5).
pub const MAX_DATAGRAM: usize = 65535;

/// Which datagram a fragment belongs to: source, destination, identification, protocol
/// (RFC 791 §3.2; RFC 8200 §4.5 keys on the first three).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: Addr,
    pub dst: Addr,
    pub id: u32,
    pub proto: u8,
}

#[derive(Debug)]
struct Datagram {
    key: FragKey,
    first_ts: f64,
    /// (offset, bytes), in arrival order, never overlapping
    parts: Vec<(usize, Vec<u8>)>,
    /// payload length, known once the last fragment (MF clear) arrived
    total: Option<usize>,
    bytes: usize,
}

/// The fragments waiting for their datagram to be whole.
#[derive(Debug, Default)]
pub struct Reassembler {
    pending: Vec<Datagram>,
    bytes: usize,
    /// datagrams given up: overlapping, inconsistent, too large, timed out or pushed out
    pub dropped: u64,
}

impl Reassembler {
    pub fn new() -> Reassembler {
        Reassembler::default()
    }

    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, i: usize) {
        if i < self.pending.len() {
            let d = self.pending.swap_remove(i);
            self.bytes = self.bytes.saturating_sub(d.bytes);
        }
    }

    fn drop_at(&mut self, i: usize) {
        self.remove(i);
        self.dropped += 1;
    }

    /// The oldest datagram, by the time of its first fragment.
    fn oldest(&self) -> Option<usize> {
        (0..self.pending.len()).min_by(|&a, &b| {
            let (x, y) = (&self.pending[a], &self.pending[b]);
            x.first_ts.total_cmp(&y.first_ts)
        })
    }

    /// One fragment: `payload` from byte `offset` of the datagram's payload, `more` when MF is set.
    /// Returns the whole payload when this fragment completes it.
    pub fn add(
        &mut self,
        key: FragKey,
        ts: f64,
        offset: usize,
        more: bool,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        // Time out what waited too long (capture time; a clock that goes back times out nothing).
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].first_ts + TIMEOUT < ts {
                self.drop_at(i);
            } else {
                i += 1;
            }
        }
        let at = self.pending.iter().position(|d| d.key == key);
        let end = offset.saturating_add(payload.len());
        // A fragment past 65535 bytes, or a middle one whose length is not a multiple of 8
        // (RFC 791 §3.2, RFC 8200 §4.5): the datagram is unusable.
        if end > MAX_DATAGRAM || (more && !payload.len().is_multiple_of(8)) || payload.is_empty() {
            if let Some(i) = at {
                self.drop_at(i);
            }
            return None;
        }
        let i = match at {
            Some(i) => i,
            None => {
                if self.pending.len() >= MAX_PENDING {
                    if let Some(o) = self.oldest() {
                        self.drop_at(o);
                    }
                }
                self.pending.push(Datagram {
                    key,
                    first_ts: ts,
                    parts: Vec::new(),
                    total: None,
                    bytes: 0,
                });
                self.pending.len() - 1
            }
        };
        let d = self.pending.get_mut(i)?;
        if !more {
            if d.total.is_some_and(|t| t != end) || d.parts.iter().any(|(o, b)| o + b.len() > end) {
                self.drop_at(i);
                return None;
            }
            d.total = Some(end);
        } else if d.total.is_some_and(|t| end > t) {
            self.drop_at(i);
            return None;
        }
        for (o, b) in &d.parts {
            if *o < end && offset < o + b.len() {
                if *o == offset && b.as_slice() == payload {
                    return None; // the same fragment again
                }
                self.drop_at(i);
                return None;
            }
        }
        d.parts.push((offset, payload.to_vec()));
        d.bytes += payload.len();
        self.bytes += payload.len();
        let done = d.total.filter(|&t| d.bytes == t);
        if let Some(total) = done {
            let mut parts = std::mem::take(&mut d.parts);
            self.remove(i);
            parts.sort_by_key(|(o, _)| *o);
            let mut whole = Vec::with_capacity(total);
            for (_, b) in parts {
                whole.extend_from_slice(&b);
            }
            return Some(whole);
        }
        // Over the byte budget: the oldest go first (possibly this one).
        while self.bytes > MAX_BYTES {
            match self.oldest() {
                Some(o) => self.drop_at(o),
                None => break,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> FragKey {
        FragKey {
            src: Addr::V4([10, 0, 0, 1]),
            dst: Addr::V4([10, 0, 0, 2]),
            id,
            proto: 47,
        }
    }

    #[test]
    fn pieces_in_any_order_make_the_datagram() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut r = Reassembler::new();
        assert_eq!(r.add(key(1), 0.0, 80, false, &data[80..]), None);
        assert_eq!(r.add(key(1), 0.0, 0, true, &data[..40]), None);
        assert_eq!(r.add(key(1), 0.0, 0, true, &data[..40]), None); // a duplicate
        assert_eq!(r.add(key(2), 0.0, 0, true, &data[..8]), None); // another datagram
        assert_eq!(
            r.add(key(1), 0.1, 40, true, &data[40..80]),
            Some(data.clone())
        );
        assert_eq!((r.len(), r.bytes(), r.dropped), (1, 8, 0));
    }

    #[test]
    fn overlaps_bad_lengths_and_timeouts_drop_the_datagram() {
        let data = [7u8; 64];
        let mut r = Reassembler::new();
        r.add(key(1), 0.0, 0, true, &data[..16]);
        assert_eq!(r.add(key(1), 0.0, 8, false, &data[..16]), None); // overlaps
        assert_eq!((r.len(), r.dropped), (0, 1));
        r.add(key(2), 0.0, 0, true, &data[..12]); // a middle piece not a multiple of 8
        assert_eq!((r.len(), r.dropped), (0, 1));
        r.add(key(3), 0.0, 65528, false, &data[..16]); // past 65535
        r.add(key(4), 0.0, 0, true, &data[..8]);
        assert_eq!(r.add(key(4), 31.0, 8, false, &data[..8]), None); // 31 s later: timed out
        assert_eq!(r.dropped, 2);
        // a last fragment that says the datagram is shorter than a piece already held
        r.add(key(5), 40.0, 16, true, &data[..8]);
        r.add(key(5), 40.0, 0, false, &data[..8]);
        assert_eq!((r.len(), r.dropped), (1, 3)); // key 4's late piece still waits
    }

    #[test]
    fn memory_is_bounded() {
        let big = vec![1u8; 65000 / 8 * 8];
        let mut r = Reassembler::new();
        for id in 0..2000 {
            r.add(key(id), f64::from(id) * 0.001, 0, true, &big);
            assert!(r.bytes() <= MAX_BYTES && r.len() <= MAX_PENDING);
        }
        assert!(r.dropped > 1900);
        let small = [1u8; 8];
        for id in 0..2000 {
            r.add(key(10_000 + id), 10.0, 0, true, &small);
            assert!(r.len() <= MAX_PENDING);
        }
    }
}
