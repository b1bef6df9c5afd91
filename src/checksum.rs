//! The TCP checksum (RFC 9293 §3.1): the Internet checksum (RFC 1071) over a pseudo-header and the
//! segment. Port of core/checksum.py.
//!
//! Pure: bytes in, a number or a verdict out. Used only when the user asks for checksum checks
//! (`decode(.., verify_checksum = true)`): NIC checksum offload leaves the checksum of outgoing
//! segments unfilled in many captures taken on the sending host, so a bad checksum there is normal.
//!
//! Why sums modulo 0xFFFF: the ones'-complement sum of 16-bit big-endian words is the sum of the
//! words modulo 2**16 - 1 (RFC 1071 §2 (B), "end-around carry"). Since 2**16 ≡ 1 (mod 2**16 - 1), a
//! big-endian 64-bit chunk is congruent to the sum of its four words, so the segment is summed eight
//! bytes at a time into a wide accumulator and reduced once.

const IPPROTO_TCP: u8 = 6;
const MOD: u64 = 0xFFFF;

/// The sum of `data` read as 16-bit big-endian words (an odd length padded with a zero byte after
/// the last byte, RFC 9293 §3.1), reduced modulo 0xFFFF (0 ..= 0xFFFE).
fn sum_mod(data: &[u8]) -> u64 {
    let mut acc: u128 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        acc += u128::from(u64::from_be_bytes(w));
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks(2);
    for p in &mut pairs {
        let hi = u128::from(p.first().copied().unwrap_or(0));
        let lo = u128::from(p.get(1).copied().unwrap_or(0)); // the pad byte of an odd length
        acc += (hi << 8) | lo;
    }
    // Chunks are at even offsets, so each word keeps its weight 2**(16k) ≡ 1.
    (acc % u128::from(MOD)) as u64
}

/// RFC 1071 ones'-complement sum of `data` as 16-bit big-endian words, folded to 16 bits. 0xFFFF
/// stands for "negative zero" (any non-zero input whose words cancel); 0 only for all-zero input.
pub fn ones_complement_sum(data: &[u8]) -> u16 {
    if data.iter().all(|&b| b == 0) {
        return 0;
    }
    match sum_mod(data) {
        0 => 0xFFFF, // a non-zero sum congruent to 0 is 0xFFFF in ones' complement
        v => v as u16,
    }
}

/// The pseudo-header the TCP checksum covers: RFC 9293 §3.1 for IPv4 (4-byte addresses),
/// RFC 8200 §8.1 for IPv6 (16-byte addresses; the upper-layer length is 32 bits there).
pub fn pseudo_header(src: &[u8], dst: &[u8], tcp_length: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    out.extend_from_slice(src);
    out.extend_from_slice(dst);
    if src.len() == 4 {
        out.extend_from_slice(&[0, IPPROTO_TCP]);
        out.extend_from_slice(&(tcp_length as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&tcp_length.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, IPPROTO_TCP]);
    }
    out
}

/// The checksum a sender puts in the header of `segment`, whose checksum field (bytes 16-17) must
/// be zero. For tests and crafting segments with a known-good or known-bad checksum.
pub fn tcp_checksum(src: &[u8], dst: &[u8], segment: &[u8]) -> u16 {
    let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    let total = u64::from(ones_complement_sum(&pseudo_header(src, dst, len)))
        + u64::from(ones_complement_sum(segment));
    let folded = match total % MOD {
        0 if total != 0 => MOD,
        v => v,
    };
    !(folded as u16)
}

/// Does `segment` (TCP header and payload, checksum field included, all of it captured) carry a
/// correct checksum for these raw IP addresses? Correct means the ones'-complement sum over
/// pseudo-header and segment is 0xFFFF, i.e. congruent to 0 modulo 0xFFFF (RFC 1071 §3 "checking").
///
/// Like a receiving stack (and unlike Wireshark, which flags 0xFFFF separately), a checksum field of
/// 0xFFFF and one of 0x0000 are the same value in ones' complement: both pass when either is right.
pub fn tcp_checksum_ok(src: &[u8], dst: &[u8], segment: &[u8]) -> bool {
    // Each pseudo-header field is a whole number of 16-bit words, so modulo 0xFFFF it contributes
    // its own value: the addresses, the length (16 bits for IPv4, 32 for IPv6) and the protocol.
    let len = segment.len() as u64 % MOD;
    (sum_mod(segment) + sum_mod(src) + sum_mod(dst) + len + u64::from(IPPROTO_TCP))
        .is_multiple_of(MOD)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A straightforward RFC 1071 sum with end-around carry, word by word: the reference.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for p in data.chunks(2) {
            let w = (u32::from(p[0]) << 8) | u32::from(*p.get(1).unwrap_or(&0));
            sum += w;
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn sum_matches_word_by_word_reference() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..80 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            assert_eq!(ones_complement_sum(&data), reference(&data), "len {len}");
        }
        assert_eq!(ones_complement_sum(&[0, 0, 0]), 0);
        assert_eq!(ones_complement_sum(&[0xFF, 0xFF]), 0xFFFF);
        assert_eq!(ones_complement_sum(&[0x12, 0x34, 0xED, 0xCB]), 0xFFFF); // words cancel
        assert_eq!(ones_complement_sum(&[0x01]), 0x0100); // the pad byte goes after
    }

    #[test]
    fn crafted_checksum_verifies_and_a_flipped_bit_fails() {
        let (src, dst) = ([192, 0, 2, 1], [192, 0, 2, 2]);
        let mut seg = vec![0u8; 25];
        seg[12] = 0x50;
        seg[13] = 0x18;
        seg[20..].copy_from_slice(b"hello");
        let ck = tcp_checksum(&src, &dst, &seg);
        seg[16..18].copy_from_slice(&ck.to_be_bytes());
        assert!(tcp_checksum_ok(&src, &dst, &seg));
        seg[22] ^= 1;
        assert!(!tcp_checksum_ok(&src, &dst, &seg));
        // IPv6: 32-bit length in the pseudo-header.
        let (s6, d6) = ([0x20u8; 16], [0x30u8; 16]);
        seg[22] ^= 1;
        seg[16] = 0;
        seg[17] = 0;
        let ck6 = tcp_checksum(&s6, &d6, &seg);
        seg[16..18].copy_from_slice(&ck6.to_be_bytes());
        assert!(tcp_checksum_ok(&s6, &d6, &seg));
        assert!(!tcp_checksum_ok(&s6, &[0x31u8; 16], &seg));
    }

    #[test]
    fn pseudo_header_layouts() {
        assert_eq!(
            pseudo_header(&[1, 2, 3, 4], &[5, 6, 7, 8], 0x1234),
            vec![1, 2, 3, 4, 5, 6, 7, 8, 0, 6, 0x12, 0x34]
        );
        let p6 = pseudo_header(&[0; 16], &[0; 16], 0x0001_0002);
        assert_eq!(&p6[32..], &[0, 1, 0, 2, 0, 0, 0, 6]);
    }
}
