//! Per column: which encoder writes an Arrow column into a target column type, and the
//! encoders themselves (each writes one value, length prefix included).

use std::fmt::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Decimal256Type, DurationMicrosecondType,
    DurationMillisecondType, DurationNanosecondType, DurationSecondType, Float32Type, Float64Type,
    Int16Type, Int32Type, Int64Type, Int8Type, IntervalMonthDayNanoType, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrowPrimitiveType, BooleanArray};
use arrow_buffer::{i256, IntervalMonthDayNano, NullBuffer};
use arrow_schema::{DataType, IntervalUnit, TimeUnit};

use super::numeric;

const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const JSON: u32 = 114;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const BPCHAR: u32 = 1042;
const VARCHAR: u32 = 1043;
const DATE: u32 = 1082;
const TIME: u32 = 1083;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;
const INTERVAL: u32 = 1186;
const NUMERIC: u32 = 1700;
const UUID: u32 = 2950;
const JSONB: u32 = 3802;

/// Days and microseconds between the Unix epoch and Postgres' (2000-01-01).
const EPOCH_DAYS: i64 = 10_957;
const EPOCH_MICROS: i64 = 946_684_800_000_000;
const DAY_MILLIS: i64 = 86_400_000;

/// The type of the column a value lands in.
#[derive(Clone, Copy)]
pub struct Target {
    pub oid: u32,
    pub typmod: i32,
    /// The element type of an array type, else 0.
    pub element: u32,
}

/// A primitive column's values and validity.
pub struct Col<'a, T> {
    values: &'a [T],
    nulls: Option<&'a NullBuffer>,
}

impl<T: Copy> Col<'_, T> {
    fn get(&self, row: usize) -> Result<Option<T>, String> {
        if self.nulls.is_some_and(|nulls| nulls.is_null(row)) {
            return Ok(None);
        }
        self.values
            .get(row)
            .copied()
            .map(Some)
            .ok_or_else(|| format!("the column has only {} values", self.values.len()))
    }
}

fn col<T: ArrowPrimitiveType>(array: &dyn Array) -> Option<Col<'_, T::Native>> {
    let primitive = array.as_primitive_opt::<T>()?;
    Some(Col {
        values: primitive.values().as_ref(),
        nulls: primitive.nulls(),
    })
}

/// Any integer column, read as i128.
pub enum Ints<'a> {
    I8(Col<'a, i8>),
    I16(Col<'a, i16>),
    I32(Col<'a, i32>),
    I64(Col<'a, i64>),
    U8(Col<'a, u8>),
    U16(Col<'a, u16>),
    U32(Col<'a, u32>),
    U64(Col<'a, u64>),
}

impl Ints<'_> {
    fn get(&self, row: usize) -> Result<Option<i128>, String> {
        Ok(match self {
            Ints::I8(c) => c.get(row)?.map(i128::from),
            Ints::I16(c) => c.get(row)?.map(i128::from),
            Ints::I32(c) => c.get(row)?.map(i128::from),
            Ints::I64(c) => c.get(row)?.map(i128::from),
            Ints::U8(c) => c.get(row)?.map(i128::from),
            Ints::U16(c) => c.get(row)?.map(i128::from),
            Ints::U32(c) => c.get(row)?.map(i128::from),
            Ints::U64(c) => c.get(row)?.map(i128::from),
        })
    }

    /// Whether every value of this column fits `target` (no range check needed).
    fn fits(&self, target: Numbers) -> bool {
        match target {
            Numbers::Int2 => matches!(self, Ints::I8(_) | Ints::I16(_) | Ints::U8(_)),
            Numbers::Int4 => matches!(
                self,
                Ints::I8(_) | Ints::I16(_) | Ints::I32(_) | Ints::U8(_) | Ints::U16(_)
            ),
            Numbers::Int8 => !matches!(self, Ints::U64(_)),
            Numbers::Float4 | Numbers::Float8 | Numbers::Numeric => true,
        }
    }

    fn of(array: &dyn Array) -> Option<Ints<'_>> {
        Some(match array.data_type() {
            DataType::Int8 => Ints::I8(col::<Int8Type>(array)?),
            DataType::Int16 => Ints::I16(col::<Int16Type>(array)?),
            DataType::Int32 => Ints::I32(col::<Int32Type>(array)?),
            DataType::Int64 => Ints::I64(col::<Int64Type>(array)?),
            DataType::UInt8 => Ints::U8(col::<UInt8Type>(array)?),
            DataType::UInt16 => Ints::U16(col::<UInt16Type>(array)?),
            DataType::UInt32 => Ints::U32(col::<UInt32Type>(array)?),
            DataType::UInt64 => Ints::U64(col::<UInt64Type>(array)?),
            _ => return None,
        })
    }
}

/// Variable-width byte values: strings and binaries of every layout.
pub enum Bytes<'a> {
    Small(Varlen<'a, i32>),
    Large(Varlen<'a, i64>),
    View(&'a dyn Array),
    Fixed {
        data: &'a [u8],
        width: usize,
        nulls: Option<&'a NullBuffer>,
    },
}

/// Offsets into a data buffer, as strings and binaries keep them.
pub struct Varlen<'a, O> {
    offsets: &'a [O],
    data: &'a [u8],
    nulls: Option<&'a NullBuffer>,
}

impl<'a, O: Copy + TryInto<usize>> Varlen<'a, O> {
    fn get(&self, row: usize) -> Result<Option<&'a [u8]>, String> {
        if self.nulls.is_some_and(|nulls| nulls.is_null(row)) {
            return Ok(None);
        }
        let bound = |index: usize| -> Option<usize> { (*self.offsets.get(index)?).try_into().ok() };
        bound(row)
            .zip(bound(row + 1))
            .and_then(|(start, end)| self.data.get(start..end))
            .map(Some)
            .ok_or_else(|| format!("malformed offsets at row {row}"))
    }
}

impl<'a> Bytes<'a> {
    fn of(array: &'a dyn Array) -> Option<Bytes<'a>> {
        Some(match array.data_type() {
            DataType::Utf8 => {
                let a = array.as_string_opt::<i32>()?;
                Bytes::Small(Varlen {
                    offsets: a.offsets().as_ref(),
                    data: a.values().as_slice(),
                    nulls: a.nulls(),
                })
            }
            DataType::LargeUtf8 => {
                let a = array.as_string_opt::<i64>()?;
                Bytes::Large(Varlen {
                    offsets: a.offsets().as_ref(),
                    data: a.values().as_slice(),
                    nulls: a.nulls(),
                })
            }
            DataType::Binary => {
                let a = array.as_binary_opt::<i32>()?;
                Bytes::Small(Varlen {
                    offsets: a.offsets().as_ref(),
                    data: a.values().as_slice(),
                    nulls: a.nulls(),
                })
            }
            DataType::LargeBinary => {
                let a = array.as_binary_opt::<i64>()?;
                Bytes::Large(Varlen {
                    offsets: a.offsets().as_ref(),
                    data: a.values().as_slice(),
                    nulls: a.nulls(),
                })
            }
            DataType::Utf8View | DataType::BinaryView => Bytes::View(array),
            DataType::FixedSizeBinary(width) => {
                let a = array.as_fixed_size_binary_opt()?;
                Bytes::Fixed {
                    data: a.value_data(),
                    width: usize::try_from(*width).ok()?,
                    nulls: a.nulls(),
                }
            }
            _ => return None,
        })
    }

    fn get(&self, row: usize) -> Result<Option<&'a [u8]>, String> {
        match self {
            Bytes::Small(varlen) => varlen.get(row),
            Bytes::Large(varlen) => varlen.get(row),
            Bytes::Fixed { data, width, nulls } => {
                if nulls.is_some_and(|nulls| nulls.is_null(row)) {
                    return Ok(None);
                }
                let start = row.saturating_mul(*width);
                data.get(start..start.saturating_add(*width))
                    .map(Some)
                    .ok_or_else(|| format!("row {row} is beyond the column's values"))
            }
            Bytes::View(array) => {
                if row >= array.len() {
                    return Err(format!("row {row} is beyond the column's values"));
                }
                if array.is_null(row) {
                    return Ok(None);
                }
                let value = match array.data_type() {
                    DataType::Utf8View => {
                        array.as_string_view_opt().map(|a| a.value(row).as_bytes())
                    }
                    _ => array.as_binary_view_opt().map(|a| a.value(row)),
                };
                value.map(Some).ok_or_else(|| {
                    format!("{} is not a string or binary column", array.data_type())
                })
            }
        }
    }

    fn data_len(&self) -> usize {
        match self {
            Bytes::Small(varlen) => varlen.data.len(),
            Bytes::Large(varlen) => varlen.data.len(),
            Bytes::Fixed { data, .. } => data.len(),
            Bytes::View(array) => array.len().saturating_mul(16),
        }
    }
}

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn is_binary(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    )
}

#[derive(Clone, Copy)]
pub enum Numbers {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
}

#[derive(Clone, Copy)]
pub enum Texts {
    Text,
    Jsonb,
    Uuid,
}

/// How an i64-backed temporal value becomes Postgres microseconds.
#[derive(Clone, Copy)]
pub enum Scale {
    Multiply(i64),
    /// Nanoseconds: exact division only (sub-microsecond digits are refused).
    Nanos,
}

impl Scale {
    fn of(unit: &TimeUnit) -> Scale {
        match unit {
            TimeUnit::Second => Scale::Multiply(1_000_000),
            TimeUnit::Millisecond => Scale::Multiply(1_000),
            TimeUnit::Microsecond => Scale::Multiply(1),
            TimeUnit::Nanosecond => Scale::Nanos,
        }
    }

    fn micros(self, value: i64) -> Result<i64, String> {
        match self {
            Scale::Multiply(factor) => value
                .checked_mul(factor)
                .ok_or_else(|| format!("{value} overflows 64-bit microseconds")),
            Scale::Nanos if value % 1000 == 0 => Ok(value / 1000),
            Scale::Nanos => Err(format!(
                "{value} ns has sub-microsecond digits, which Postgres cannot store"
            )),
        }
    }
}

pub enum Offsets<'a> {
    Small(&'a [i32]),
    Large(&'a [i64]),
}

impl Offsets<'_> {
    fn range(&self, row: usize) -> Result<(usize, usize), String> {
        let pair = match self {
            Offsets::Small(o) => o
                .get(row)
                .zip(o.get(row + 1))
                .map(|(a, b)| (i64::from(*a), i64::from(*b))),
            Offsets::Large(o) => o.get(row).zip(o.get(row + 1)).map(|(a, b)| (*a, *b)),
        };
        let (start, end) = pair.ok_or_else(|| format!("list offsets end before row {row}"))?;
        match (usize::try_from(start), usize::try_from(end)) {
            (Ok(start), Ok(end)) if start <= end => Ok((start, end)),
            _ => Err(format!("malformed list offsets {start}..{end}")),
        }
    }
}

/// Writes one column's values.
pub enum Encoder<'a> {
    Null,
    Bool(&'a BooleanArray),
    Int(Ints<'a>, Numbers),
    Float32(Col<'a, f32>, Numbers),
    Float64(Col<'a, f64>, Numbers),
    Decimal128(Col<'a, i128>, i32),
    Decimal256(Col<'a, i256>, i32),
    Text(Bytes<'a>, Texts),
    Bytea(Bytes<'a>),
    Date32(Col<'a, i32>),
    Date64(Col<'a, i64>),
    Time32(Col<'a, i32>, i64),
    /// timestamp, timestamptz, time (no epoch shift), interval from a duration.
    Timestamp(Col<'a, i64>, Scale),
    Time64(Col<'a, i64>, Scale),
    Duration(Col<'a, i64>, Scale),
    MonthDayNano(Col<'a, IntervalMonthDayNano>),
    List {
        offsets: Offsets<'a>,
        nulls: Option<&'a NullBuffer>,
        values: &'a dyn Array,
        element: Box<Encoder<'a>>,
        element_oid: u32,
    },
}

/// The encoder of `array` into `target`, or None if this pair is not encoded natively.
pub fn plan_column(array: &dyn Array, target: Target, session_utc: bool) -> Option<Encoder<'_>> {
    let oid = target.oid;
    let data_type = array.data_type();
    if matches!(data_type, DataType::Null) {
        return Some(Encoder::Null);
    }
    if target.element != 0 {
        return plan_list(array, target, session_utc);
    }
    let numbers = match oid {
        INT2 => Some(Numbers::Int2),
        INT4 => Some(Numbers::Int4),
        INT8 => Some(Numbers::Int8),
        FLOAT4 => Some(Numbers::Float4),
        FLOAT8 => Some(Numbers::Float8),
        NUMERIC => Some(Numbers::Numeric),
        _ => None,
    };
    Some(match data_type {
        DataType::Boolean if oid == BOOL => Encoder::Bool(array.as_boolean_opt()?),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Encoder::Int(Ints::of(array)?, numbers?),
        DataType::Float32 => match numbers? {
            Numbers::Float4 | Numbers::Float8 | Numbers::Numeric => {
                Encoder::Float32(col::<Float32Type>(array)?, numbers?)
            }
            _ => return None,
        },
        DataType::Float64 => match numbers? {
            Numbers::Float4 | Numbers::Float8 | Numbers::Numeric => {
                Encoder::Float64(col::<Float64Type>(array)?, numbers?)
            }
            _ => return None,
        },
        DataType::Decimal128(_, scale) if oid == NUMERIC => {
            Encoder::Decimal128(col::<Decimal128Type>(array)?, i32::from(*scale))
        }
        DataType::Decimal256(_, scale) if oid == NUMERIC => {
            Encoder::Decimal256(col::<Decimal256Type>(array)?, i32::from(*scale))
        }
        kind if is_string(kind) => {
            let texts = match oid {
                TEXT | VARCHAR | BPCHAR | JSON => Texts::Text,
                JSONB => Texts::Jsonb,
                UUID => Texts::Uuid,
                _ => return None,
            };
            Encoder::Text(Bytes::of(array)?, texts)
        }
        kind if is_binary(kind) && oid == BYTEA => Encoder::Bytea(Bytes::of(array)?),
        DataType::Date32 if oid == DATE => Encoder::Date32(col::<Date32Type>(array)?),
        DataType::Date64 if oid == DATE => Encoder::Date64(col::<Date64Type>(array)?),
        DataType::Time32(unit) if oid == TIME => match unit {
            TimeUnit::Second => Encoder::Time32(col::<Time32SecondType>(array)?, 1_000_000),
            TimeUnit::Millisecond => Encoder::Time32(col::<Time32MillisecondType>(array)?, 1_000),
            _ => return None,
        },
        DataType::Time64(unit) if oid == TIME => match unit {
            TimeUnit::Microsecond => {
                Encoder::Time64(col::<Time64MicrosecondType>(array)?, Scale::of(unit))
            }
            TimeUnit::Nanosecond => {
                Encoder::Time64(col::<Time64NanosecondType>(array)?, Scale::of(unit))
            }
            _ => return None,
        },
        DataType::Timestamp(unit, zone) if oid == TIMESTAMP || oid == TIMESTAMPTZ => {
            // A timestamp without zone is sent as text the server reads in the session's zone.
            if oid == TIMESTAMPTZ && zone.is_none() && !session_utc {
                return None;
            }
            let values = match unit {
                TimeUnit::Second => col::<TimestampSecondType>(array)?,
                TimeUnit::Millisecond => col::<TimestampMillisecondType>(array)?,
                TimeUnit::Microsecond => col::<TimestampMicrosecondType>(array)?,
                TimeUnit::Nanosecond => col::<TimestampNanosecondType>(array)?,
            };
            Encoder::Timestamp(values, Scale::of(unit))
        }
        DataType::Duration(unit) if oid == INTERVAL => {
            let values = match unit {
                TimeUnit::Second => col::<DurationSecondType>(array)?,
                TimeUnit::Millisecond => col::<DurationMillisecondType>(array)?,
                TimeUnit::Microsecond => col::<DurationMicrosecondType>(array)?,
                TimeUnit::Nanosecond => col::<DurationNanosecondType>(array)?,
            };
            Encoder::Duration(values, Scale::of(unit))
        }
        DataType::Interval(IntervalUnit::MonthDayNano) if oid == INTERVAL => {
            Encoder::MonthDayNano(col::<IntervalMonthDayNanoType>(array)?)
        }
        _ => return None,
    })
}

fn plan_list(array: &dyn Array, target: Target, session_utc: bool) -> Option<Encoder<'_>> {
    let element_target = Target {
        oid: target.element,
        typmod: target.typmod,
        element: 0,
    };
    let (offsets, nulls, values) = match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list_opt::<i32>()?;
            (
                Offsets::Small(list.offsets().as_ref()),
                list.nulls(),
                list.values().as_ref(),
            )
        }
        DataType::LargeList(_) => {
            let list = array.as_list_opt::<i64>()?;
            (
                Offsets::Large(list.offsets().as_ref()),
                list.nulls(),
                list.values().as_ref(),
            )
        }
        _ => return None,
    };
    // Nested lists would be multi-dimensional arrays: left to the CSV path.
    if matches!(
        values.data_type(),
        DataType::List(_) | DataType::LargeList(_)
    ) {
        return None;
    }
    let element = plan_column(values, element_target, session_utc)?;
    Some(Encoder::List {
        offsets,
        nulls,
        values,
        element: Box::new(element),
        element_oid: target.element,
    })
}

fn put_null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

fn put_fixed(out: &mut Vec<u8>, bytes: &[u8]) {
    // Fixed-width values are at most 16 bytes.
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_var(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), String> {
    let length = i32::try_from(bytes.len())
        .map_err(|_| format!("a value of {} bytes exceeds COPY's limit", bytes.len()))?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Reserve a length prefix; `close_length` fills it in.
fn open_length(out: &mut Vec<u8>) -> usize {
    out.extend_from_slice(&[0; 4]);
    out.len()
}

fn close_length(out: &mut [u8], start: usize) -> Result<(), String> {
    let length = i32::try_from(out.len().saturating_sub(start))
        .map_err(|_| "a value exceeds COPY's 1 GB limit".to_string())?;
    let slot = out
        .get_mut(start.saturating_sub(4)..start)
        .ok_or_else(|| "length prefix lost".to_string())?;
    slot.copy_from_slice(&length.to_be_bytes());
    Ok(())
}

fn int_into(
    out: &mut Vec<u8>,
    value: i128,
    target: Numbers,
    scratch: &mut String,
) -> Result<(), String> {
    match target {
        Numbers::Int2 => {
            let v = i16::try_from(value)
                .map_err(|_| format!("{value} is out of range for type smallint"))?;
            put_fixed(out, &v.to_be_bytes());
        }
        Numbers::Int4 => {
            let v = i32::try_from(value)
                .map_err(|_| format!("{value} is out of range for type integer"))?;
            put_fixed(out, &v.to_be_bytes());
        }
        Numbers::Int8 => {
            let v = i64::try_from(value)
                .map_err(|_| format!("{value} is out of range for type bigint"))?;
            put_fixed(out, &v.to_be_bytes());
        }
        // Correctly rounded, as the server's strtof/strtod reads the integer's text.
        Numbers::Float4 => put_fixed(out, &(value as f32).to_be_bytes()),
        Numbers::Float8 => put_fixed(out, &(value as f64).to_be_bytes()),
        Numbers::Numeric => numeric::write_decimal128(out, value, 0, scratch)?,
    }
    Ok(())
}

/// A float64 as float4: what `float4in` makes of its shortest text.
fn f64_to_f32(value: f64, scratch: &mut String) -> Result<f32, String> {
    if !value.is_finite() {
        return Ok(value as f32);
    }
    scratch.clear();
    write!(scratch, "{value:e}").map_err(|e| e.to_string())?;
    let narrow: f32 = scratch
        .parse()
        .map_err(|_| format!("unexpected float text {scratch:?}"))?;
    if narrow.is_infinite() || (narrow == 0.0 && value != 0.0) {
        return Err(format!("{scratch} is out of range for type real"));
    }
    Ok(narrow)
}

/// A float32 as float8: what `float8in` makes of its shortest text.
fn f32_to_f64(value: f32, scratch: &mut String) -> Result<f64, String> {
    if !value.is_finite() {
        return Ok(f64::from(value));
    }
    scratch.clear();
    write!(scratch, "{value:e}").map_err(|e| e.to_string())?;
    scratch
        .parse()
        .map_err(|_| format!("unexpected float text {scratch:?}"))
}

fn canonical(value: f64) -> f64 {
    if value.is_nan() {
        f64::NAN
    } else {
        value
    }
}

/// Postgres' `uuid_in`: optional braces, 32 hex digits, a hyphen allowed after any group of 4.
fn parse_uuid(text: &[u8]) -> Option<[u8; 16]> {
    if let Some(uuid) = parse_uuid_canonical(text) {
        return Some(uuid);
    }
    let mut rest = text;
    let braces = rest.first() == Some(&b'{');
    if braces {
        rest = rest.get(1..)?;
    }
    let mut uuid = [0u8; 16];
    for (i, byte) in uuid.iter_mut().enumerate() {
        let high = hex(*rest.first()?)?;
        let low = hex(*rest.get(1)?)?;
        *byte = (high << 4) | low;
        rest = rest.get(2..)?;
        if rest.first() == Some(&b'-') && i % 2 == 1 && i < 15 {
            rest = rest.get(1..)?;
        }
    }
    if braces {
        if rest.first() != Some(&b'}') {
            return None;
        }
        rest = rest.get(1..)?;
    }
    rest.is_empty().then_some(uuid)
}

/// The common forms: 36 characters with hyphens at 8, 13, 18, 23, or 32 hex digits.
fn parse_uuid_canonical(text: &[u8]) -> Option<[u8; 16]> {
    let mut digits = [0u8; 32];
    match text.len() {
        32 => digits.copy_from_slice(text),
        36 if text.get(8) == Some(&b'-')
            && text.get(13) == Some(&b'-')
            && text.get(18) == Some(&b'-')
            && text.get(23) == Some(&b'-') =>
        {
            let mut at = 0;
            for (i, byte) in text.iter().enumerate() {
                if !matches!(i, 8 | 13 | 18 | 23) {
                    *digits.get_mut(at)? = *byte;
                    at += 1;
                }
            }
        }
        _ => return None,
    }
    let mut uuid = [0u8; 16];
    let mut bad = 0u8;
    for (byte, pair) in uuid.iter_mut().zip(digits.chunks_exact(2)) {
        let high = HEX[usize::from(*pair.first()?)];
        let low = HEX[usize::from(*pair.get(1)?)];
        bad |= high | low;
        *byte = (high << 4) | (low & 0x0F);
    }
    (bad & 0xF0 == 0).then_some(uuid)
}

/// Hex digit values; 0xFF for anything else.
static HEX: [u8; 256] = {
    let mut table = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// `days` since 2000-01-01, unless it is the value Postgres reads as `-infinity` or `infinity`
/// (`DATEVAL_NOBEGIN`, `DATEVAL_NOEND`): the CSV path's text for that date is refused.
fn finite_date(days: i32) -> Option<i32> {
    (days != i32::MIN && days != i32::MAX).then_some(days)
}

/// `micros` since 2000-01-01, unless it is Postgres' `-infinity` or `infinity` (`DT_NOBEGIN`,
/// `DT_NOEND`), as `finite_date`.
fn finite_timestamp(micros: i64) -> Option<i64> {
    (micros != i64::MIN && micros != i64::MAX).then_some(micros)
}

fn interval(out: &mut Vec<u8>, micros: i64, days: i32, months: i32) {
    out.extend_from_slice(&16i32.to_be_bytes());
    out.extend_from_slice(&micros.to_be_bytes());
    out.extend_from_slice(&days.to_be_bytes());
    out.extend_from_slice(&months.to_be_bytes());
}

impl Encoder<'_> {
    /// Whether a value may be refused (out of the target's range, not a uuid, …): such columns
    /// are checked in full before a streamed COPY starts.
    pub fn fallible(&self) -> bool {
        match self {
            Encoder::Int(ints, target) => !ints.fits(*target),
            Encoder::Float64(_, Numbers::Float4) | Encoder::Text(_, Texts::Uuid) => true,
            Encoder::Time64(_, scale) | Encoder::Duration(_, scale) => {
                !matches!(scale, Scale::Multiply(1))
            }
            // Postgres' infinities (see `finite_date`, `finite_timestamp`) are refused.
            Encoder::Date32(_) | Encoder::Date64(_) | Encoder::Timestamp(_, _) => true,
            Encoder::List { element, .. } => element.fallible(),
            _ => false,
        }
    }

    /// Bytes the column will take for `rows` rows, roughly: the output buffer's initial size.
    pub fn size_hint(&self, rows: usize) -> usize {
        let fixed = |width: usize| rows.saturating_mul(4 + width);
        match self {
            Encoder::Null => fixed(0),
            Encoder::Bool(_) => fixed(1),
            Encoder::Int(_, Numbers::Int2) => fixed(2),
            Encoder::Int(_, Numbers::Int4 | Numbers::Float4) => fixed(4),
            Encoder::Float32(_, Numbers::Float4) | Encoder::Float64(_, Numbers::Float4) => fixed(4),
            Encoder::Int(_, _) | Encoder::Float32(_, _) | Encoder::Float64(_, _) => fixed(8),
            Encoder::Decimal128(_, _) | Encoder::Decimal256(_, _) => fixed(18),
            Encoder::Text(bytes, _) | Encoder::Bytea(bytes) => {
                fixed(1).saturating_add(bytes.data_len())
            }
            Encoder::Date32(_) | Encoder::Date64(_) => fixed(4),
            Encoder::Time32(_, _) | Encoder::Timestamp(_, _) | Encoder::Time64(_, _) => fixed(8),
            Encoder::Duration(_, _) | Encoder::MonthDayNano(_) => fixed(16),
            Encoder::List {
                values, element, ..
            } => fixed(20).saturating_add(element.size_hint(values.len())),
        }
    }

    /// Append the value at `row`, length prefix included (-1 for NULL).
    pub fn write(&self, row: usize, out: &mut Vec<u8>, scratch: &mut String) -> Result<(), String> {
        macro_rules! value_or_null {
            ($col:expr) => {
                match $col.get(row)? {
                    Some(value) => value,
                    None => {
                        put_null(out);
                        return Ok(());
                    }
                }
            };
        }
        match self {
            Encoder::Null => put_null(out),
            Encoder::Bool(array) => {
                if row >= array.len() {
                    return Err(format!("row {row} is beyond the column's values"));
                }
                if array.is_null(row) {
                    put_null(out);
                } else {
                    put_fixed(out, &[u8::from(array.value(row))]);
                }
            }
            Encoder::Int(ints, target) => {
                let value = value_or_null!(ints);
                int_into(out, value, *target, scratch)?;
            }
            Encoder::Float32(values, target) => {
                let value = value_or_null!(values);
                match target {
                    Numbers::Float4 => put_fixed(out, &value.to_be_bytes()),
                    Numbers::Float8 => {
                        put_fixed(out, &canonical(f32_to_f64(value, scratch)?).to_be_bytes())
                    }
                    _ => numeric::write_float32(out, value, scratch)?,
                }
            }
            Encoder::Float64(values, target) => {
                let value = value_or_null!(values);
                match target {
                    Numbers::Float4 => put_fixed(out, &f64_to_f32(value, scratch)?.to_be_bytes()),
                    Numbers::Float8 => put_fixed(out, &canonical(value).to_be_bytes()),
                    _ => numeric::write_float(out, value, scratch)?,
                }
            }
            Encoder::Decimal128(values, scale) => {
                let value = value_or_null!(values);
                numeric::write_decimal128(out, value, *scale, scratch)?;
            }
            Encoder::Decimal256(values, scale) => {
                let value = value_or_null!(values);
                scratch.clear();
                write!(scratch, "{value}").map_err(|e| e.to_string())?;
                numeric::write_scaled_text(out, scratch, *scale)?;
            }
            Encoder::Text(bytes, kind) => {
                let value = value_or_null!(bytes);
                match kind {
                    Texts::Text => put_var(out, value)?,
                    Texts::Jsonb => {
                        let start = open_length(out);
                        out.push(1);
                        out.extend_from_slice(value);
                        close_length(out, start)?;
                    }
                    Texts::Uuid => {
                        let uuid = parse_uuid(value).ok_or_else(|| {
                            format!(
                                "invalid input syntax for type uuid: {:?}",
                                String::from_utf8_lossy(value)
                            )
                        })?;
                        put_fixed(out, &uuid);
                    }
                }
            }
            Encoder::Bytea(bytes) => {
                let value = value_or_null!(bytes);
                put_var(out, value)?;
            }
            Encoder::Date32(values) => {
                let days = value_or_null!(values);
                let shifted = i32::try_from(i64::from(days) - EPOCH_DAYS)
                    .ok()
                    .and_then(finite_date)
                    .ok_or_else(|| format!("date {days} days after 1970-01-01 is out of range"))?;
                put_fixed(out, &shifted.to_be_bytes());
            }
            Encoder::Date64(values) => {
                let millis = value_or_null!(values);
                let days = millis.div_euclid(DAY_MILLIS) - EPOCH_DAYS;
                let days = i32::try_from(days)
                    .ok()
                    .and_then(finite_date)
                    .ok_or_else(|| format!("date {millis} ms after 1970-01-01 is out of range"))?;
                put_fixed(out, &days.to_be_bytes());
            }
            Encoder::Time32(values, factor) => {
                let value = value_or_null!(values);
                put_fixed(out, &(i64::from(value) * factor).to_be_bytes());
            }
            Encoder::Time64(values, scale) => {
                let value = value_or_null!(values);
                put_fixed(out, &scale.micros(value)?.to_be_bytes());
            }
            Encoder::Timestamp(values, scale) => {
                let value = value_or_null!(values);
                let micros = scale
                    .micros(value)?
                    .checked_sub(EPOCH_MICROS)
                    .and_then(finite_timestamp)
                    .ok_or_else(|| format!("timestamp {value} is out of range"))?;
                put_fixed(out, &micros.to_be_bytes());
            }
            Encoder::Duration(values, scale) => {
                let value = value_or_null!(values);
                interval(out, scale.micros(value)?, 0, 0);
            }
            Encoder::MonthDayNano(values) => {
                let value = value_or_null!(values);
                // The CSV path floors nanoseconds to microseconds.
                interval(
                    out,
                    value.nanoseconds.div_euclid(1000),
                    value.days,
                    value.months,
                );
            }
            Encoder::List {
                offsets,
                nulls,
                values,
                element,
                element_oid,
            } => {
                if nulls.is_some_and(|nulls| nulls.is_null(row)) {
                    put_null(out);
                    return Ok(());
                }
                let (start, end) = offsets.range(row)?;
                if end > values.len() {
                    return Err(format!(
                        "list offsets {start}..{end} run past the {} values",
                        values.len()
                    ));
                }
                let prefix = open_length(out);
                if start == end {
                    out.extend_from_slice(&0i32.to_be_bytes());
                    out.extend_from_slice(&0i32.to_be_bytes());
                    out.extend_from_slice(&element_oid.to_be_bytes());
                } else {
                    let count = i32::try_from(end - start)
                        .map_err(|_| format!("a list of {} elements is too long", end - start))?;
                    let has_null = matches!(**element, Encoder::Null)
                        || (start..end).any(|j| values.is_null(j));
                    out.extend_from_slice(&1i32.to_be_bytes());
                    out.extend_from_slice(&i32::from(has_null).to_be_bytes());
                    out.extend_from_slice(&element_oid.to_be_bytes());
                    out.extend_from_slice(&count.to_be_bytes());
                    out.extend_from_slice(&1i32.to_be_bytes());
                    for (position, j) in (start..end).enumerate() {
                        element
                            .write(j, out, scratch)
                            .map_err(|message| format!("element {position}: {message}"))?;
                    }
                }
                close_length(out, prefix)?;
            }
        }
        Ok(())
    }
}
