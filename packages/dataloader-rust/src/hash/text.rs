//! The byte-level parts of the row hash: the two polynomial hashes of a byte string, and the
//! text of a decimal exactly as Arrow's cast to string writes it.

use std::fmt::Write;

/// The base of the hash mod 2**64 (odd, so invertible).
const B64: u64 = 0x0100_0000_01B3;
/// The Mersenne prime 2**31 - 1 and the base of the hash modulo it.
const PRIME: u64 = (1 << 31) - 1;
const BP: u64 = 1_000_003;

const B64_2: u64 = B64.wrapping_mul(B64);
const B64_3: u64 = B64_2.wrapping_mul(B64);
const B64_4: u64 = B64_3.wrapping_mul(B64);
const BP_2: u64 = BP * BP % PRIME;
const BP_3: u64 = BP_2 * BP % PRIME;
const BP_4: u64 = BP_3 * BP % PRIME;

/// `x mod PRIME` for any `x < 2**63`.
#[inline]
fn reduce(x: u64) -> u64 {
    let r = (x & PRIME) + (x >> 31);
    let r = (r & PRIME) + (r >> 31);
    if r >= PRIME {
        r - PRIME
    } else {
        r
    }
}

/// `(sum of b[k] * B64**k mod 2**64, sum of b[k] * BP**k mod PRIME)` over the bytes `b`.
#[inline]
pub(super) fn byte_sums(bytes: &[u8]) -> (u64, u64) {
    let mut h64: u64 = 0;
    let mut hp: u64 = 0;
    // Horner's rule from the last byte, four bytes a step where possible.
    for chunk in bytes.rchunks(4) {
        if let [c0, c1, c2, c3] = *chunk {
            let (c0, c1, c2, c3) = (c0 as u64, c1 as u64, c2 as u64, c3 as u64);
            h64 = h64
                .wrapping_mul(B64_4)
                .wrapping_add(c0)
                .wrapping_add(c1.wrapping_mul(B64))
                .wrapping_add(c2.wrapping_mul(B64_2))
                .wrapping_add(c3.wrapping_mul(B64_3));
            // hp < 2**31 and every power < 2**31: the sum stays below 2**63
            hp = reduce(hp * BP_4 + c0 + c1 * BP + c2 * BP_2 + c3 * BP_3);
        } else {
            for &c in chunk.iter().rev() {
                h64 = h64.wrapping_mul(B64).wrapping_add(c as u64);
                hp = reduce(hp * BP + c as u64);
            }
        }
    }
    (h64, hp)
}

/// Writes the text of the unscaled decimal `digits` (an integer's text, maybe with a leading
/// `-`) at `scale` into `out`, the way Arrow formats decimals: plain notation, unless the scale
/// is negative or the adjusted exponent is below -6, which take scientific notation.
pub(super) fn decimal_text(digits: &str, scale: i8, out: &mut String) {
    out.clear();
    let scale = i32::from(scale);
    if scale == 0 {
        out.push_str(digits);
        return;
    }
    let (sign, body) = match digits.strip_prefix('-') {
        Some(body) => ("-", body),
        None => ("", digits),
    };
    let num_digits = body.len() as i32;
    let exponent = num_digits - 1 - scale;
    out.push_str(sign);
    if scale < 0 || exponent < -6 {
        let (first, rest) = body.split_at(body.len().min(1));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('E');
        if exponent >= 0 {
            out.push('+');
        }
        // writing into a String cannot fail
        let _ = write!(out, "{exponent}");
    } else if num_digits > scale {
        let (whole, fraction) = body.split_at((num_digits - scale) as usize);
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    } else {
        out.push_str("0.");
        for _ in 0..(scale - num_digits) {
            out.push('0');
        }
        out.push_str(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(digits: &str, scale: i8) -> String {
        let mut out = String::new();
        decimal_text(digits, scale, &mut out);
        out
    }

    #[test]
    fn decimal_text_matches_arrow() {
        assert_eq!(text("150", 2), "1.50");
        assert_eq!(text("-1", 2), "-0.01");
        assert_eq!(text("0", 3), "0.000");
        assert_eq!(text("0", 7), "0E-7");
        assert_eq!(text("12", 7), "0.0000012");
        assert_eq!(text("123", -2), "1.23E+4");
        assert_eq!(text("0", -2), "0E+2");
        assert_eq!(text("-1", 30), "-1E-30");
    }

    #[test]
    fn byte_sums_are_polynomials() {
        let bytes: Vec<u8> = (0..23u8).map(|i| i.wrapping_mul(37)).collect();
        let (mut h64, mut hp, mut p64, mut pp) = (0u64, 0u64, 1u64, 1u64);
        for &b in &bytes {
            h64 = h64.wrapping_add((b as u64).wrapping_mul(p64));
            hp = (hp + b as u64 * pp) % PRIME;
            p64 = p64.wrapping_mul(B64);
            pp = pp * BP % PRIME;
        }
        assert_eq!(byte_sums(&bytes), (h64, hp));
        assert_eq!(byte_sums(&[]), (0, 0));
    }
}
