//! Postgres `numeric` in its binary form: ndigits, weight, sign, dscale (each int16), then
//! `ndigits` base-10000 digits, most significant first; `weight` is the power of 10000 of the
//! first digit.

use std::fmt::Write;

const POSITIVE: u16 = 0x0000;
const NEGATIVE: u16 = 0x4000;
const NAN: u16 = 0xC000;
const PLUS_INFINITY: u16 = 0xD000;
const MINUS_INFINITY: u16 = 0xF000;

/// Write a special value (NaN, ±Infinity) with its length prefix.
fn write_special(out: &mut Vec<u8>, sign: u16) {
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
}

/// Write `±digits × 10^exponent` (digits: ASCII decimal digits) with display scale `dscale`,
/// length prefix included.
pub fn write_digits(
    out: &mut Vec<u8>,
    negative: bool,
    digits: &[u8],
    exponent: i32,
    dscale: i32,
) -> Result<(), String> {
    let dscale = u16::try_from(dscale.max(0))
        .ok()
        .filter(|scale| *scale <= 0x3FFF)
        .ok_or_else(|| format!("numeric display scale {dscale} is out of range"))?;
    let start = digits
        .iter()
        .position(|d| *d != b'0')
        .unwrap_or(digits.len());
    let digits = digits.get(start..).unwrap_or(&[]);
    let mut end = digits.len();
    let mut exponent = exponent;
    while end > 0 && digits.get(end - 1) == Some(&b'0') {
        end -= 1;
        exponent += 1;
    }
    let digits = digits.get(..end).unwrap_or(&[]);
    if digits.is_empty() {
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&POSITIVE.to_be_bytes());
        out.extend_from_slice(&dscale.to_be_bytes());
        return Ok(());
    }
    // Decimal power of the first and last digits; base-10000 groups are aligned on powers
    // that are multiples of 4.
    let count = i32::try_from(digits.len()).map_err(|_| "numeric has too many digits")?;
    let first_power = exponent + count - 1;
    let weight = first_power.div_euclid(4);
    let last_group = exponent.div_euclid(4);
    let groups = weight - last_group + 1;
    let weight16 = i16::try_from(weight).map_err(|_| "numeric value out of range".to_string())?;
    let groups16 = i16::try_from(groups).map_err(|_| "numeric value out of range".to_string())?;
    let length = 8 + 2 * i32::from(groups16);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&groups16.to_be_bytes());
    out.extend_from_slice(&weight16.to_be_bytes());
    out.extend_from_slice(&(if negative { NEGATIVE } else { POSITIVE }).to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    let mut group = weight;
    let mut value: u16 = 0;
    let mut power = first_power;
    for digit in digits {
        if !digit.is_ascii_digit() {
            return Err(format!("{:?} is not a decimal digit", char::from(*digit)));
        }
        let this_group = power.div_euclid(4);
        while group > this_group {
            out.extend_from_slice(&value.to_be_bytes());
            value = 0;
            group -= 1;
        }
        let place = match power.rem_euclid(4) {
            0 => 1,
            1 => 10,
            2 => 100,
            _ => 1000,
        };
        value += u16::from(digit - b'0') * place;
        power -= 1;
    }
    out.extend_from_slice(&value.to_be_bytes());
    // `group` is now the last group with digits: `last_group`, as the last digit sits there.
    Ok(())
}

/// A decimal integer (`unscaled × 10^-scale`) given as its text, e.g. an i128's `Display`.
pub fn write_scaled_text(out: &mut Vec<u8>, text: &str, scale: i32) -> Result<(), String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    write_digits(out, negative, digits.as_bytes(), -scale, scale)
}

/// A float as Postgres' `numeric_in` reads the shortest text that round-trips it (what the CSV
/// path sends): NaN and ±Infinity included.
pub fn write_float(out: &mut Vec<u8>, value: f64, scratch: &mut String) -> Result<(), String> {
    if value.is_nan() {
        write_special(out, NAN);
        return Ok(());
    }
    if value.is_infinite() {
        write_special(
            out,
            if value > 0.0 {
                PLUS_INFINITY
            } else {
                MINUS_INFINITY
            },
        );
        return Ok(());
    }
    scratch.clear();
    write!(scratch, "{:e}", value.abs()).map_err(|e| e.to_string())?;
    write_scientific(out, value < 0.0, scratch)
}

/// As `write_float`, for a float32 (whose shortest text is its own, not its float64's).
pub fn write_float32(out: &mut Vec<u8>, value: f32, scratch: &mut String) -> Result<(), String> {
    if value.is_nan() || value.is_infinite() {
        return write_float(out, f64::from(value), scratch);
    }
    scratch.clear();
    write!(scratch, "{:e}", value.abs()).map_err(|e| e.to_string())?;
    write_scientific(out, value < 0.0, scratch)
}

/// `d.ddde±x` as Rust's `{:e}` prints it.
fn write_scientific(out: &mut Vec<u8>, negative: bool, text: &str) -> Result<(), String> {
    let (mantissa, exponent) = text
        .split_once('e')
        .ok_or_else(|| format!("unexpected float text {text:?}"))?;
    let exponent: i32 = exponent
        .parse()
        .map_err(|_| format!("unexpected float text {text:?}"))?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits = [0u8; 48];
    let total = whole.len() + fraction.len();
    let slot = digits
        .get_mut(..total)
        .ok_or_else(|| format!("unexpected float text {text:?}"))?;
    let (head, tail) = slot.split_at_mut(whole.len());
    head.copy_from_slice(whole.as_bytes());
    tail.copy_from_slice(fraction.as_bytes());
    let fraction_len = i32::try_from(fraction.len()).unwrap_or(0);
    let digit_exponent = exponent - fraction_len;
    write_digits(
        out,
        negative,
        slot,
        digit_exponent,
        (-digit_exponent).max(0),
    )
}

/// `value × 10^-scale` (a decimal128's unscaled value, or an integer with scale 0), with display
/// scale `max(scale, 0)`: base-10000 digits by integer division, no text in between.
pub fn write_decimal128(
    out: &mut Vec<u8>,
    value: i128,
    scale: i32,
    scratch: &mut String,
) -> Result<(), String> {
    // Shift the value so that the point falls between base-10000 digits.
    let (shift, fraction_groups) = if scale >= 0 {
        let pad = (4 - scale % 4) % 4;
        (pad, (scale + pad) / 4)
    } else {
        (-scale, 0)
    };
    let shifted = u32::try_from(shift)
        .ok()
        .and_then(|shift| 10u128.checked_pow(shift))
        .and_then(|factor| value.unsigned_abs().checked_mul(factor));
    let Some(mut magnitude) = shifted else {
        scratch.clear();
        write!(scratch, "{value}").map_err(|e| e.to_string())?;
        return write_scaled_text(out, scratch, scale);
    };
    let mut groups = [0u16; 12];
    let mut count = 0usize;
    while magnitude > u128::from(u64::MAX) {
        let slot = groups.get_mut(count).ok_or("numeric has too many digits")?;
        *slot = (magnitude % 10_000) as u16;
        magnitude /= 10_000;
        count += 1;
    }
    let mut small = magnitude as u64;
    while small > 0 {
        let slot = groups.get_mut(count).ok_or("numeric has too many digits")?;
        *slot = (small % 10_000) as u16;
        small /= 10_000;
        count += 1;
    }
    let dscale = u16::try_from(scale.max(0))
        .ok()
        .filter(|scale| *scale <= 0x3FFF)
        .ok_or_else(|| format!("numeric display scale {scale} is out of range"))?;
    let low = groups
        .iter()
        .take(count)
        .position(|group| *group != 0)
        .unwrap_or(count);
    let digits = groups.get(low..count).unwrap_or(&[]);
    let weight = if digits.is_empty() {
        0
    } else {
        i16::try_from(count)
            .ok()
            .and_then(|count| i16::try_from(fraction_groups).ok().map(|f| count - 1 - f))
            .ok_or("numeric value out of range")?
    };
    let ndigits = digits.len() as i16;
    let sign = if value < 0 && !digits.is_empty() {
        NEGATIVE
    } else {
        POSITIVE
    };
    out.extend_from_slice(&(8 + 2 * i32::from(ndigits)).to_be_bytes());
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for group in digits.iter().rev() {
        out.extend_from_slice(&group.to_be_bytes());
    }
    Ok(())
}
