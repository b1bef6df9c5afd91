//! Tick counts to seconds, correctly rounded: the f64 nearest to the exact quotient (ties to even),
//! which is what Python's `int / int` gives for the reference's `(sec * divisor + frac) / divisor`
//! and `(ticks + offset_seconds * divisor) / divisor`.
//!
//! A plain `n as f64 / d as f64` is exact only while n and d fit 53 bits (microsecond pcap always
//! does); nanosecond ticks exceed 2**53, so the conversion of n rounds once and the division again.
//! So: a cheap division, then an exact check in u128 that the result is within half an ulp of
//! n / d, stepping to the neighbour it is not (about a quarter of nanosecond times are one ulp
//! off after the double rounding); the rare case the check cannot settle (a tie, an if_tsresol above
//! 10**19, a huge if_tsoffset) goes to a small fixed-width big-integer division that rounds by the
//! rules.

use std::cmp::Ordering;

/// A pcapng interface's time scale: if_tsresol (raw option byte) and if_tsoffset (seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scale {
    /// High bit set: ticks are 2**-(resol & 0x7F) s; otherwise 10**-(resol & 0x7F) s (pcapng §4.2).
    resol: u8,
    offset: i64,
    /// Ticks per second when that fits a u64 (every resolution a real capture uses).
    div: Option<u64>,
}

impl Scale {
    pub(crate) fn new(resol: u8, offset: i64) -> Scale {
        let exp = u32::from(resol & 0x7F);
        let div = if resol & 0x80 != 0 {
            1u64.checked_shl(exp)
        } else {
            10u64.checked_pow(exp)
        };
        Scale { resol, offset, div }
    }
}

/// A classic pcap record's time: (sec * divisor + frac) / divisor, divisor 10**6 or 10**9.
#[inline]
pub(crate) fn pcap_seconds(sec: u32, frac: u32, divisor: u64) -> f64 {
    if divisor == 1_000_000 {
        // sec * 10**6 + frac < 2**32 * (10**6 + 1) < 2**53: the numerator is exact in f64 and
        // so is each step that builds it, so one division rounds once. (Built from u32s: their
        // conversions are single instructions, a u64's is not.)
        return (f64::from(sec) * 1e6 + f64::from(frac)) / 1e6;
    }
    // sec < 2**32, divisor <= 10**9 < 2**30, frac < 2**32: below 2**63, so the signed
    // conversions (one instruction each) are exact-then-rounded like the unsigned ones.
    let n = u64::from(sec) * divisor + u64::from(frac);
    let q = (n as i64) as f64 / (divisor as i64) as f64;
    match nearest(n, divisor, q) {
        Some(q) => q,
        None => div_round(
            Big::from_u128(u128::from(n)),
            Big::from_u128(u128::from(divisor)),
        ),
    }
}

/// A pcapng packet block's time: (ticks + offset * divisor) / divisor.
#[inline]
pub(crate) fn seconds(ticks: u64, s: Scale) -> f64 {
    if let Some(d) = s.div {
        if s.offset == 0 {
            return ratio(ticks, d);
        }
        let n = i128::from(s.offset)
            .checked_mul(i128::from(d))
            .and_then(|x| x.checked_add(i128::from(ticks)));
        if let Some(n) = n {
            if let Ok(m) = u64::try_from(n.unsigned_abs()) {
                let q = ratio(m, d);
                return if n < 0 { -q } else { q };
            }
        }
    }
    exact(ticks, s)
}

const EXACT: u64 = 1 << 53;
const HIDDEN: u64 = 1 << 52;

/// n / d correctly rounded, for d >= 1.
#[inline]
fn ratio(n: u64, d: u64) -> f64 {
    let q = n as f64 / d as f64;
    // Both exact: one rounding. A power-of-two divisor: the conversion of n is correctly rounded
    // and dividing by 2**k is exact in the normal range (q >= 2**-64 here).
    if (n <= EXACT && d <= EXACT) || d.is_power_of_two() || n == 0 {
        return q;
    }
    if let Some(q) = nearest(n, d, q) {
        return q;
    }
    div_round(Big::from_u128(u128::from(n)), Big::from_u128(u128::from(d)))
}

/// Where n / d lies against q's rounding interval.
enum Place {
    Within,
    Above,
    Below,
    /// A tie, or a q this check cannot scale: the caller divides exactly.
    Unsure,
}

/// Is n / d strictly within half an ulp of q (so that q is the nearest f64), or on which side?
/// With q = m * 2**e, scaled by 4 * d * 2**-e: compare |n * 2**(2-e) - 4md| with 2d (with d below
/// a power of two, where the gap under q is half as wide). All in u128: n < 2**64, 4md < 2**119.
#[inline(always)]
fn place(n: u64, d: u64, q: f64) -> Place {
    let bits = q.to_bits();
    let biased = ((bits >> 52) & 0x7FF) as i32;
    if biased == 0 || biased == 0x7FF || bits >> 63 != 0 {
        return Place::Unsure;
    }
    let m = (bits & (HIDDEN - 1)) | HIDDEN;
    let e = biased - 1075;
    let s = 2 - e;
    if !(0..=64).contains(&s) {
        return Place::Unsure;
    }
    let x = u128::from(n) << s;
    let y = u128::from(m) * u128::from(d) * 4;
    let d = u128::from(d);
    let (above, below) = (2 * d, if m == HIDDEN { d } else { 2 * d });
    match x.cmp(&y) {
        Ordering::Less if y - x < below => Place::Within,
        Ordering::Less if y - x > below => Place::Below,
        Ordering::Less => Place::Unsure,
        _ if x - y < above => Place::Within,
        _ if x - y > above => Place::Above,
        _ => Place::Unsure,
    }
}

/// The nearest f64 to n / d, starting from an estimate q within a couple of ulps (a double
/// rounding: n converted, then divided); None when unsure (a tie, an odd range).
#[inline(always)]
fn nearest(n: u64, d: u64, mut q: f64) -> Option<f64> {
    for _ in 0..4 {
        match place(n, d, q) {
            Place::Within => return Some(q),
            // q > 0 and normal here, so the neighbours are one step of the bit pattern away.
            Place::Above => q = f64::from_bits(q.to_bits() + 1),
            Place::Below => q = f64::from_bits(q.to_bits() - 1),
            Place::Unsure => return None,
        }
    }
    None
}

/// The slow, always-right way: the exact rational (ticks + offset * D) / D in big integers.
#[cold]
fn exact(ticks: u64, s: Scale) -> f64 {
    let exp = u32::from(s.resol & 0x7F);
    let d = if s.resol & 0x80 != 0 {
        Big::ONE.shl(exp)
    } else {
        (0..exp).fold(Big::ONE, |b, _| b.mul_small(10))
    };
    let od = d.mul_small(s.offset.unsigned_abs());
    let t = Big::from_u128(u128::from(ticks));
    let (negative, n) = if s.offset >= 0 {
        (false, od.add(&t))
    } else if od.cmp(&t) == Ordering::Greater {
        (true, od.sub(&t))
    } else {
        (false, t.sub(&od))
    };
    if n.is_zero() {
        return 0.0;
    }
    let q = div_round(n, d);
    if negative {
        -q
    } else {
        q
    }
}

/// 2**e for a normal exponent.
fn pow2(e: i32) -> f64 {
    f64::from_bits(((e.clamp(-1022, 1023) + 1023) as u64) << 52)
}

/// n / d (both > 0) rounded to nearest, ties to even. Takes a 55-56 bit quotient and a sticky bit:
/// with n / d in (2**(k-1), 2**(k+1)), floor(n * 2**(55-k) / d) lies in [2**54, 2**56).
fn div_round(n: Big, d: Big) -> f64 {
    if n.is_zero() || d.is_zero() {
        return 0.0;
    }
    let k = n.bits() as i32 - d.bits() as i32;
    let s = 55 - k;
    let (mut r, b) = if s >= 0 {
        (n.shl(s as u32), d)
    } else {
        (n, d.shl(s.unsigned_abs()))
    };
    let mut q: u64 = 0;
    for i in (0..=56).rev() {
        let t = b.shl(i);
        if r.cmp(&t) != Ordering::Less {
            r = r.sub(&t);
            q |= 1 << i;
        }
    }
    let sticky = !r.is_zero();
    let drop = (64 - q.leading_zeros()).saturating_sub(53).max(1);
    let mut mant = q >> drop;
    let rem = q & ((1 << drop) - 1);
    let half = 1 << (drop - 1);
    if rem > half || (rem == half && (sticky || mant & 1 == 1)) {
        mant += 1; // 2**53 at most: still exact
    }
    mant as f64 * pow2(drop as i32 - s)
}

/// Enough for the largest operand: offset (63 bits) * 10**127 (422 bits) + ticks, shifted by the
/// 57 quotient bits: under 550 bits.
const LIMBS: usize = 9;

/// A fixed-width unsigned integer, little-endian 64-bit limbs; bits shifted past the top are lost
/// (the sizes above never get there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Big([u64; LIMBS]);

impl Big {
    const ONE: Big = {
        let mut l = [0; LIMBS];
        l[0] = 1;
        Big(l)
    };

    fn from_u128(v: u128) -> Big {
        let mut l = [0; LIMBS];
        l[0] = v as u64;
        l[1] = (v >> 64) as u64;
        Big(l)
    }

    fn is_zero(&self) -> bool {
        self.0.iter().all(|&x| x == 0)
    }

    fn bits(&self) -> u32 {
        for (i, &x) in self.0.iter().enumerate().rev() {
            if x != 0 {
                return i as u32 * 64 + (64 - x.leading_zeros());
            }
        }
        0
    }

    fn shl(&self, k: u32) -> Big {
        let (limbs, bits) = ((k / 64) as usize, k % 64);
        let mut out = [0u64; LIMBS];
        for i in (limbs..LIMBS).rev() {
            let src = i - limbs;
            let mut v = self.0[src] << bits;
            if bits > 0 && src > 0 {
                v |= self.0[src - 1] >> (64 - bits);
            }
            out[i] = v;
        }
        Big(out)
    }

    fn cmp(&self, o: &Big) -> Ordering {
        self.0.iter().rev().cmp(o.0.iter().rev())
    }

    fn add(&self, o: &Big) -> Big {
        let mut out = [0u64; LIMBS];
        let mut carry = false;
        for (i, slot) in out.iter_mut().enumerate() {
            let (a, c1) = self.0[i].overflowing_add(o.0[i]);
            let (b, c2) = a.overflowing_add(u64::from(carry));
            *slot = b;
            carry = c1 || c2;
        }
        Big(out)
    }

    /// self - o, for self >= o.
    fn sub(&self, o: &Big) -> Big {
        let mut out = [0u64; LIMBS];
        let mut borrow = false;
        for (i, slot) in out.iter_mut().enumerate() {
            let (a, b1) = self.0[i].overflowing_sub(o.0[i]);
            let (b, b2) = a.overflowing_sub(u64::from(borrow));
            *slot = b;
            borrow = b1 || b2;
        }
        Big(out)
    }

    fn mul_small(&self, m: u64) -> Big {
        let mut out = [0u64; LIMBS];
        let mut carry: u128 = 0;
        for (i, slot) in out.iter_mut().enumerate() {
            let v = u128::from(self.0[i]) * u128::from(m) + carry;
            *slot = v as u64;
            carry = v >> 64;
        }
        Big(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected bits computed by CPython's int / int (correctly rounded).
    #[test]
    fn python_vectors() {
        // (sec, frac, divisor, float.hex bits)
        for &(sec, frac, div, bits) in PCAP_VECTORS {
            let got = pcap_seconds(sec, frac, div);
            assert_eq!(got.to_bits(), bits, "{sec}.{frac} / {div}");
        }
        // (ticks, resol byte, offset seconds, bits)
        for &(ticks, resol, offset, bits) in NG_VECTORS {
            let got = seconds(ticks, Scale::new(resol, offset));
            assert_eq!(
                got.to_bits(),
                bits,
                "{ticks} resol {resol:#x} offset {offset}"
            );
            // The slow path agrees with whatever path was taken.
            assert_eq!(exact(ticks, Scale::new(resol, offset)).to_bits(), bits);
        }
    }

    #[test]
    fn quick_check_agrees_with_exact_division() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let divisors = [
            1_000_000_000u64,
            1_000,
            10_000_000_000_000_000_000,
            3,
            7,
            1 << 40,
        ];
        let rounds = if cfg!(debug_assertions) {
            50_000
        } else {
            500_000
        };
        for i in 0..rounds {
            let d = divisors[i % divisors.len()];
            let n = match i % 3 {
                0 => next(),
                1 => next() >> (next() % 64),
                _ => 1_700_000_000 * 1_000_000_000 + (next() % 1_000_000_000),
            };
            let want = if n == 0 {
                0.0
            } else {
                div_round(Big::from_u128(u128::from(n)), Big::from_u128(u128::from(d)))
            };
            assert_eq!(ratio(n, d).to_bits(), want.to_bits(), "{n} / {d}");
        }
    }

    #[test]
    fn nanosecond_times_settle_without_the_slow_path() {
        // The u128 check settles every nanosecond pcap time (no ties exist there: 10**9 has 2**9
        // as its only power of two, and a tie at these magnitudes would need 2**21).
        let d = 1_000_000_000u64;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..100_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x >> 32) * d + (x & 0xFFFF_FFFF) % (d + i % 2 * (1 << 31));
            let q = n as f64 / d as f64;
            let want = div_round(Big::from_u128(u128::from(n)), Big::from_u128(u128::from(d)));
            assert_eq!(
                nearest(n, d, q).map(f64::to_bits),
                Some(want.to_bits()),
                "{n}"
            );
        }
    }

    #[test]
    fn ties_round_to_even() {
        // 2**53 + 1 is a tie between 2**53 and 2**53 + 2: even wins, so 2**53.
        let n = (1u64 << 53) + 1;
        assert_eq!(ratio(n * 3, 3), 9007199254740992.0);
        // 2**53 + 3 ties between 2**53 + 2 and 2**53 + 4: 2**53 + 4 has the even mantissa.
        assert_eq!(ratio(((1u64 << 53) + 3) * 5, 5), 9007199254740996.0);
        // Just above the tie rounds up.
        let big = Big::from_u128(u128::from((1u64 << 53) + 1) * 1000 + 1);
        assert_eq!(div_round(big, Big::from_u128(1000)), 9007199254740994.0);
    }

    include!("ticks_vectors.rs");
}
