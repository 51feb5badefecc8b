//! Values as Postgres prints them (`value::text` with DateStyle ISO, IntervalStyle postgres,
//! TimeZone UTC), for the values the decoder refuses and for numeric → float64.

use std::fmt::Write;

pub const USECS_PER_DAY: i64 = 86_400_000_000;
const USECS_PER_HOUR: i64 = 3_600_000_000;
const USECS_PER_MINUTE: i64 = 60_000_000;
const USECS_PER_SEC: i64 = 1_000_000;
/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (Postgres').
pub const EPOCH_SHIFT_DAYS: i32 = 10_957;
pub const EPOCH_SHIFT_USECS: i64 = 946_684_800_000_000;

pub const NUMERIC_POS: u16 = 0x0000;
pub const NUMERIC_NEG: u16 = 0x4000;
pub const NUMERIC_NAN: u16 = 0xC000;
pub const NUMERIC_PINF: u16 = 0xD000;
pub const NUMERIC_NINF: u16 = 0xF000;

/// (year, month, day) of `days` after 2000-01-01 in the proleptic Gregorian calendar; year 0
/// is 1 BC.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // Shift to 0000-03-01 so that leap days end each 400-year era.
    let z = days + i64::from(EPOCH_SHIFT_DAYS) + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn push_date(out: &mut String, days: i64) -> bool {
    let (year, month, day) = civil_from_days(days);
    let bc = year <= 0;
    let shown = if bc { 1 - year } else { year };
    let _ = write!(out, "{shown:04}-{month:02}-{day:02}");
    bc
}

fn push_clock(out: &mut String, usecs: i64) {
    let hours = usecs / USECS_PER_HOUR;
    let minutes = (usecs % USECS_PER_HOUR) / USECS_PER_MINUTE;
    let seconds = (usecs % USECS_PER_MINUTE) / USECS_PER_SEC;
    let _ = write!(out, "{hours:02}:{minutes:02}:{seconds:02}");
    push_fraction(out, usecs % USECS_PER_SEC);
}

/// `.ffffff` without trailing zeros; nothing for zero.
fn push_fraction(out: &mut String, fraction: i64) {
    if fraction != 0 {
        let text = format!("{:06}", fraction.unsigned_abs());
        let _ = write!(out, ".{}", text.trim_end_matches('0'));
    }
}

/// A `date` (days since 2000-01-01) as Postgres prints it.
pub fn date_text(days: i32) -> String {
    match days {
        i32::MAX => "infinity".to_owned(),
        i32::MIN => "-infinity".to_owned(),
        _ => {
            let mut out = String::new();
            if push_date(&mut out, i64::from(days)) {
                out.push_str(" BC");
            }
            out
        }
    }
}

/// A `time` (microseconds since midnight) as Postgres prints it (`24:00:00` included).
pub fn time_text(usecs: i64) -> String {
    let mut out = String::new();
    push_clock(&mut out, usecs);
    out
}

/// A `timestamp` or `timestamptz` (microseconds since 2000-01-01, UTC) as Postgres prints it.
pub fn timestamp_text(usecs: i64, with_zone: bool) -> String {
    match usecs {
        i64::MAX => "infinity".to_owned(),
        i64::MIN => "-infinity".to_owned(),
        _ => {
            let mut out = String::new();
            let bc = push_date(&mut out, usecs.div_euclid(USECS_PER_DAY));
            out.push(' ');
            push_clock(&mut out, usecs.rem_euclid(USECS_PER_DAY));
            if with_zone {
                out.push_str("+00");
            }
            if bc {
                out.push_str(" BC");
            }
            out
        }
    }
}

/// An `interval` as Postgres prints it with IntervalStyle postgres (`1 year 2 mons -3 days
/// +04:05:06.7`).
pub fn interval_text(months: i32, days: i32, usecs: i64) -> String {
    let mut out = String::new();
    let mut before_negative = false;
    let mut empty = true;
    for (value, unit) in [(months / 12, "year"), (months % 12, "mon"), (days, "day")] {
        if value == 0 {
            continue;
        }
        let space = if empty { "" } else { " " };
        let plus = if before_negative && value > 0 {
            "+"
        } else {
            ""
        };
        let plural = if value != 1 { "s" } else { "" };
        let _ = write!(out, "{space}{plus}{value} {unit}{plural}");
        before_negative = value < 0;
        empty = false;
    }
    if empty || usecs != 0 {
        let space = if empty { "" } else { " " };
        let sign = if usecs < 0 {
            "-"
        } else if before_negative {
            "+"
        } else {
            ""
        };
        let hours = (usecs / USECS_PER_HOUR).unsigned_abs();
        let minutes = ((usecs % USECS_PER_HOUR) / USECS_PER_MINUTE).unsigned_abs();
        let seconds = ((usecs % USECS_PER_MINUTE) / USECS_PER_SEC).unsigned_abs();
        let _ = write!(out, "{space}{sign}{hours:02}:{minutes:02}:{seconds:02}");
        push_fraction(&mut out, usecs % USECS_PER_SEC);
    }
    out
}

/// A `numeric` as Postgres prints it, from its binary parts (base-10000 `digits` as big-endian
/// 16-bit words, `weight` of the first, `sign`, `dscale` digits after the point), into `out`
/// (cleared first).
pub fn numeric_text(out: &mut String, weight: i16, sign: u16, dscale: u16, digits: &[u8]) {
    out.clear();
    match sign {
        NUMERIC_NAN => return out.push_str("NaN"),
        NUMERIC_PINF => return out.push_str("Infinity"),
        NUMERIC_NINF => return out.push_str("-Infinity"),
        NUMERIC_NEG => out.push('-'),
        _ => {}
    }
    let digit_at = |index: i64| -> u16 {
        usize::try_from(index)
            .ok()
            .and_then(|i| digits.get(2 * i..2 * i + 2))
            .map_or(0, |word| u16::from_be_bytes([word[0], word[1]]))
    };
    let weight = i64::from(weight);
    let mut index: i64;
    if weight < 0 {
        out.push('0');
        index = weight + 1;
    } else {
        index = 0;
        while index <= weight {
            let digit = digit_at(index);
            if index == 0 {
                let _ = write!(out, "{digit}");
            } else {
                let _ = write!(out, "{digit:04}");
            }
            index += 1;
        }
    }
    if dscale > 0 {
        out.push('.');
        let end = out.len() + usize::from(dscale);
        while out.len() < end {
            let _ = write!(out, "{:04}", digit_at(index));
            index += 1;
        }
        out.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_text(0), "2000-01-01");
        assert_eq!(date_text(-EPOCH_SHIFT_DAYS), "1970-01-01");
        assert_eq!(date_text(-730_119), "0001-01-01");
        assert_eq!(date_text(-730_120), "0001-12-31 BC");
        assert_eq!(date_text(i32::MAX), "infinity");
    }

    #[test]
    fn times_and_stamps() {
        assert_eq!(time_text(USECS_PER_DAY), "24:00:00");
        assert_eq!(time_text(3_723_000_500), "01:02:03.0005");
        assert_eq!(
            timestamp_text(USECS_PER_DAY + 1, true),
            "2000-01-02 00:00:00.000001+00"
        );
        assert_eq!(timestamp_text(-1, false), "1999-12-31 23:59:59.999999");
    }

    #[test]
    fn intervals() {
        assert_eq!(interval_text(0, 0, 0), "00:00:00");
        assert_eq!(
            interval_text(14, 3, 14_706_000_000),
            "1 year 2 mons 3 days 04:05:06"
        );
        assert_eq!(interval_text(0, -1, 7_200_000_000), "-1 days +02:00:00");
        assert_eq!(interval_text(-1, 0, -1), "-1 mons -00:00:00.000001");
    }

    #[test]
    fn numerics() {
        let mut out = String::new();
        numeric_text(&mut out, 0, NUMERIC_NEG, 2, &[0, 12, 0x0d, 0x48]);
        assert_eq!(out, "-12.34");
        numeric_text(&mut out, -9, NUMERIC_POS, 36, &[0, 1]);
        assert_eq!(out, format!("0.{}1", "0".repeat(35)));
        numeric_text(&mut out, 7, NUMERIC_POS, 0, &[0, 1]);
        assert_eq!(out, format!("1{}", "0".repeat(28)));
        numeric_text(&mut out, 0, NUMERIC_POS, 0, &[]);
        assert_eq!(out, "0");
    }
}
