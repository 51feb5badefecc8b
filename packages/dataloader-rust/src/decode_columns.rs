//! One Arrow column built from the binary fields of one Postgres column: a `Column` per
//! (Postgres wire type, Arrow type) pair, and lists of them for one-dimensional arrays.

use std::sync::Arc;

use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, IntervalMonthDayNanoType, Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{
    ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, BinaryArray, BooleanArray, ListArray,
    PrimitiveArray, StringArray,
};
use arrow_buffer::{
    ArrowNativeType, BooleanBufferBuilder, Buffer, IntervalMonthDayNano, NullBufferBuilder,
    OffsetBuffer, ScalarBuffer,
};
use arrow_schema::{DataType, FieldRef, IntervalUnit, TimeUnit};

use super::text::{
    date_text, interval_text, numeric_text, time_text, timestamp_text, EPOCH_SHIFT_DAYS,
    EPOCH_SHIFT_USECS, NUMERIC_NAN, NUMERIC_NEG, NUMERIC_NINF, NUMERIC_PINF, NUMERIC_POS,
    USECS_PER_DAY,
};

/// Why one field could not become an Arrow value.
#[derive(Debug)]
pub enum FieldError {
    /// A valid Postgres value the Arrow type cannot hold; its text as Postgres prints it.
    Unreadable { value: String, element: bool },
    /// A valid Postgres value this reader does not take (a multi-dimensional array).
    Unsupported(String),
    /// Bytes that are not a value of the column's type.
    Malformed(String),
}

type Result<T> = std::result::Result<T, FieldError>;

fn malformed<T>(message: String) -> Result<T> {
    Err(FieldError::Malformed(message))
}

fn unreadable<T>(value: String) -> Result<T> {
    Err(FieldError::Unreadable {
        value,
        element: false,
    })
}

/// Builds one Arrow column, a field at a time.
pub trait Column: Send + Sync {
    /// Appends a field: `None` is SQL NULL.
    fn push(&mut self, field: Option<&[u8]>) -> Result<()>;
    /// The column so far, as an array; the builder starts over, with room for `capacity`.
    fn finish(&mut self, capacity: usize) -> Result<ArrayRef>;
}

/// The Postgres type OIDs decoded natively.
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// The column builder for Postgres type `pg` (`element` for arrays: the elements' type, else
/// 0) read as Arrow `data_type`; `capacity` rows are reserved.
pub fn column_for(
    pg: u32,
    element: u32,
    data_type: &DataType,
    capacity: usize,
) -> std::result::Result<Box<dyn Column>, String> {
    if element != 0 {
        let DataType::List(item) = data_type else {
            return Err(format!(
                "a Postgres array is read as a list, not as {data_type}"
            ));
        };
        let child = column_for(element, 0, item.data_type(), capacity)?;
        return Ok(Box::new(List::new(item.clone(), element, child, capacity)));
    }
    let column: Box<dyn Column> = match (pg, data_type) {
        (oid::BOOL, DataType::Boolean) => Box::new(Bool::new(capacity)),
        (oid::INT2, DataType::Int16) => {
            fixed::<Int16Type, 2>(data_type, capacity, |b| Ok(i16::from_be_bytes(b)))
        }
        (oid::INT4, DataType::Int32) => {
            fixed::<Int32Type, 4>(data_type, capacity, |b| Ok(i32::from_be_bytes(b)))
        }
        (oid::INT8, DataType::Int64) => {
            fixed::<Int64Type, 8>(data_type, capacity, |b| Ok(i64::from_be_bytes(b)))
        }
        (oid::OID, DataType::Int64) => fixed::<Int64Type, 4>(data_type, capacity, |b| {
            Ok(i64::from(u32::from_be_bytes(b)))
        }),
        (oid::FLOAT4, DataType::Float32) => {
            fixed::<Float32Type, 4>(data_type, capacity, |b| Ok(f32::from_be_bytes(b)))
        }
        (oid::FLOAT8, DataType::Float64) => {
            fixed::<Float64Type, 8>(data_type, capacity, |b| Ok(f64::from_be_bytes(b)))
        }
        (oid::DATE, DataType::Date32) => fixed::<Date32Type, 4>(data_type, capacity, |b| {
            let days = i32::from_be_bytes(b);
            match days {
                i32::MAX | i32::MIN => unreadable(date_text(days)),
                _ => days
                    .checked_add(EPOCH_SHIFT_DAYS)
                    .map_or_else(|| unreadable(date_text(days)), Ok),
            }
        }),
        (oid::TIME, DataType::Time64(TimeUnit::Microsecond)) => {
            fixed::<Time64MicrosecondType, 8>(data_type, capacity, |b| {
                let usecs = i64::from_be_bytes(b);
                if (0..USECS_PER_DAY).contains(&usecs) {
                    Ok(usecs)
                } else {
                    unreadable(time_text(usecs))
                }
            })
        }
        (oid::TIMESTAMP, DataType::Timestamp(TimeUnit::Microsecond, None)) => {
            fixed::<TimestampMicrosecondType, 8>(data_type, capacity, |b| timestamp(b, false))
        }
        (oid::TIMESTAMPTZ, DataType::Timestamp(TimeUnit::Microsecond, Some(_))) => {
            fixed::<TimestampMicrosecondType, 8>(data_type, capacity, |b| timestamp(b, true))
        }
        (oid::INTERVAL, DataType::Interval(IntervalUnit::MonthDayNano)) => {
            fixed::<IntervalMonthDayNanoType, 16>(data_type, capacity, interval)
        }
        (oid::NUMERIC, DataType::Decimal128(precision, scale)) => {
            Box::new(Numeric::<Decimal128Type>::new(
                data_type, *precision, *scale, capacity,
            )?)
        }
        (oid::NUMERIC, DataType::Decimal256(precision, scale)) => {
            Box::new(Numeric::<Decimal256Type>::new(
                data_type, *precision, *scale, capacity,
            )?)
        }
        (oid::NUMERIC, DataType::Float64) => Box::new(NumericFloat::new(capacity)),
        (oid::BYTEA, DataType::Binary) => Box::new(Bytes::new(Form::Binary, capacity)),
        (oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::JSON, DataType::Utf8) => {
            Box::new(Bytes::new(Form::Utf8, capacity))
        }
        (oid::CHAR, DataType::Utf8) => Box::new(Bytes::new(Form::Char, capacity)),
        (oid::UUID, DataType::Utf8) => Box::new(Bytes::new(Form::Uuid, capacity)),
        (oid::JSONB, DataType::Utf8) => Box::new(Bytes::new(Form::Jsonb, capacity)),
        _ => {
            return Err(format!(
                "no binary decoding of Postgres type oid {pg} into Arrow {data_type}"
            ))
        }
    };
    Ok(column)
}

fn timestamp(bytes: [u8; 8], with_zone: bool) -> Result<i64> {
    let usecs = i64::from_be_bytes(bytes);
    match usecs {
        i64::MAX | i64::MIN => unreadable(timestamp_text(usecs, with_zone)),
        _ => usecs
            .checked_add(EPOCH_SHIFT_USECS)
            .map_or_else(|| unreadable(timestamp_text(usecs, with_zone)), Ok),
    }
}

fn interval(bytes: [u8; 16]) -> Result<IntervalMonthDayNano> {
    let [t0, t1, t2, t3, t4, t5, t6, t7, d0, d1, d2, d3, m0, m1, m2, m3] = bytes;
    let usecs = i64::from_be_bytes([t0, t1, t2, t3, t4, t5, t6, t7]);
    let days = i32::from_be_bytes([d0, d1, d2, d3]);
    let months = i32::from_be_bytes([m0, m1, m2, m3]);
    match usecs.checked_mul(1000) {
        Some(nanos) => Ok(IntervalMonthDayNano::new(months, days, nanos)),
        None => unreadable(interval_text(months, days, usecs)),
    }
}

// -- fixed-width values ------------------------------------------------------------------------

struct Fixed<T: ArrowPrimitiveType, const N: usize, F> {
    values: Vec<T::Native>,
    nulls: NullBufferBuilder,
    data_type: DataType,
    convert: F,
}

fn fixed<T, const N: usize>(
    data_type: &DataType,
    capacity: usize,
    convert: impl Fn([u8; N]) -> Result<T::Native> + Send + Sync + 'static,
) -> Box<dyn Column>
where
    T: ArrowPrimitiveType,
{
    Box::new(Fixed::<T, N, _> {
        values: Vec::with_capacity(capacity),
        nulls: NullBufferBuilder::new(capacity),
        data_type: data_type.clone(),
        convert,
    })
}

impl<T, const N: usize, F> Column for Fixed<T, N, F>
where
    T: ArrowPrimitiveType,
    F: Fn([u8; N]) -> Result<T::Native> + Send + Sync,
{
    fn push(&mut self, field: Option<&[u8]>) -> Result<()> {
        match field {
            None => {
                self.values.push(T::Native::default());
                self.nulls.append_null();
            }
            Some(bytes) => {
                let Ok(array) = <[u8; N]>::try_from(bytes) else {
                    return malformed(format!(
                        "a field of {} bytes where {} holds {N}",
                        bytes.len(),
                        self.data_type
                    ));
                };
                self.values.push((self.convert)(array)?);
                self.nulls.append_non_null();
            }
        }
        Ok(())
    }

    fn finish(&mut self, capacity: usize) -> Result<ArrayRef> {
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(capacity));
        let array = PrimitiveArray::<T>::try_new(ScalarBuffer::from(values), self.nulls.finish())
            .map_err(|e| FieldError::Malformed(e.to_string()))?;
        self.nulls = NullBufferBuilder::new(capacity);
        Ok(Arc::new(array.with_data_type(self.data_type.clone())))
    }
}

struct Bool {
    values: BooleanBufferBuilder,
    nulls: NullBufferBuilder,
}

impl Bool {
    fn new(capacity: usize) -> Self {
        Self {
            values: BooleanBufferBuilder::new(capacity),
            nulls: NullBufferBuilder::new(capacity),
        }
    }
}

impl Column for Bool {
    fn push(&mut self, field: Option<&[u8]>) -> Result<()> {
        match field {
            None => {
                self.values.append(false);
                self.nulls.append_null();
            }
            Some([byte]) => {
                self.values.append(*byte != 0);
                self.nulls.append_non_null();
            }
            Some(bytes) => {
                return malformed(format!(
                    "a field of {} bytes where bool holds 1",
                    bytes.len()
                ))
            }
        }
        Ok(())
    }

    fn finish(&mut self, capacity: usize) -> Result<ArrayRef> {
        let values = self.values.finish();
        let array = BooleanArray::new(values, self.nulls.finish());
        self.values = BooleanBufferBuilder::new(capacity);
        self.nulls = NullBufferBuilder::new(capacity);
        Ok(Arc::new(array))
    }
}

// -- numeric -----------------------------------------------------------------------------------

/// A numeric field's header and base-10000 digits.
struct NumericParts<'a> {
    weight: i16,
    sign: u16,
    dscale: u16,
    digits: &'a [u8],
}

impl<'a> NumericParts<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self> {
        let (Some(header), Some(digits)) = (bytes.get(..8), bytes.get(8..)) else {
            return malformed(format!("a numeric field of {} bytes", bytes.len()));
        };
        let word = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
        let count = usize::from(word(0));
        let sign = word(4);
        if digits.len() != count * 2
            || !matches!(
                sign,
                NUMERIC_POS | NUMERIC_NEG | NUMERIC_NAN | NUMERIC_PINF | NUMERIC_NINF
            )
        {
            return malformed(format!(
                "a numeric field of {} bytes announcing {count} digits and sign {sign:#x}",
                bytes.len()
            ));
        }
        let parts = Self {
            weight: word(2) as i16,
            sign,
            dscale: word(6),
            digits,
        };
        if parts.digits().any(|d| d > 9999) {
            return malformed("a numeric digit above 9999".to_owned());
        }
        Ok(parts)
    }

    fn digits(&self) -> impl Iterator<Item = u16> + '_ {
        self.digits
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
    }

    fn text(&self, out: &mut String) {
        numeric_text(out, self.weight, self.sign, self.dscale, self.digits);
    }

    fn is_finite(&self) -> bool {
        matches!(self.sign, NUMERIC_POS | NUMERIC_NEG)
    }

    /// The magnitude times 10^scale as an integer, if exact and within the type's range.
    fn unscaled<T: ArrowNativeTypeOp>(&self, scale: i8, powers: &[T]) -> Option<T> {
        let ten_thousand = T::usize_as(10_000);
        let mut accumulated = T::ZERO;
        let mut exponent_of_last = 0i64;
        let mut split = T::ZERO;
        for (index, digit) in self.digits().enumerate() {
            // The power of ten this digit is multiplied by in the unscaled value.
            let exponent = 4 * (i64::from(self.weight) - index as i64) + i64::from(scale);
            let digit = T::usize_as(usize::from(digit));
            if exponent >= 0 {
                accumulated = accumulated
                    .mul_checked(ten_thousand)
                    .ok()?
                    .add_checked(digit)
                    .ok()?;
                exponent_of_last = exponent;
            } else if exponent > -4 {
                // Split by the scale: its low digits must be zeros.
                let divisor = *powers.get(usize::try_from(-exponent).ok()?)?;
                split = digit.div_checked(divisor).ok()?;
                if !digit
                    .sub_checked(split.mul_checked(divisor).ok()?)
                    .ok()?
                    .is_zero()
                {
                    return None;
                }
            } else if !digit.is_zero() {
                return None;
            }
        }
        for _ in 0..exponent_of_last {
            accumulated = accumulated.mul_checked(T::usize_as(10)).ok()?;
        }
        accumulated.add_checked(split).ok()
    }
}

struct Numeric<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    nulls: NullBufferBuilder,
    data_type: DataType,
    scale: i8,
    /// 10^0 ..= 10^4 in the decimal's integer type.
    powers: Vec<T::Native>,
    /// 10^precision: every value's magnitude is below it.
    bound: T::Native,
    text: String,
}

impl<T> Numeric<T>
where
    T: ArrowPrimitiveType,
    T::Native: ArrowNativeTypeOp + Ord,
{
    fn new(
        data_type: &DataType,
        precision: u8,
        scale: i8,
        capacity: usize,
    ) -> std::result::Result<Self, String> {
        let ten = T::Native::usize_as(10);
        let mut powers = vec![T::Native::ONE];
        for _ in 0..4 {
            let next = powers
                .last()
                .copied()
                .unwrap_or(T::Native::ONE)
                .mul_checked(ten)
                .map_err(|e| e.to_string())?;
            powers.push(next);
        }
        let mut bound = T::Native::ONE;
        for _ in 0..precision {
            bound = bound.mul_checked(ten).map_err(|e| e.to_string())?;
        }
        Ok(Self {
            values: Vec::with_capacity(capacity),
            nulls: NullBufferBuilder::new(capacity),
            data_type: data_type.clone(),
            scale,
            powers,
            bound,
            text: String::new(),
        })
    }
}

impl<T> Column for Numeric<T>
where
    T: ArrowPrimitiveType,
    T::Native: ArrowNativeTypeOp + Ord,
{
    fn push(&mut self, field: Option<&[u8]>) -> Result<()> {
        let Some(bytes) = field else {
            self.values.push(T::Native::default());
            self.nulls.append_null();
            return Ok(());
        };
        let parts = NumericParts::parse(bytes)?;
        let value = if parts.is_finite() {
            parts
                .unscaled(self.scale, &self.powers)
                .filter(|magnitude| *magnitude < self.bound)
        } else {
            None
        };
        let Some(value) = value else {
            parts.text(&mut self.text);
            return unreadable(self.text.clone());
        };
        let value = if parts.sign == NUMERIC_NEG {
            value
                .neg_checked()
                .map_err(|e| FieldError::Malformed(e.to_string()))?
        } else {
            value
        };
        self.values.push(value);
        self.nulls.append_non_null();
        Ok(())
    }

    fn finish(&mut self, capacity: usize) -> Result<ArrayRef> {
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(capacity));
        let array = PrimitiveArray::<T>::try_new(ScalarBuffer::from(values), self.nulls.finish())
            .map_err(|e| FieldError::Malformed(e.to_string()))?;
        self.nulls = NullBufferBuilder::new(capacity);
        Ok(Arc::new(array.with_data_type(self.data_type.clone())))
    }
}

/// numeric read as float64: the nearest double to the exact value (NaN and ±Infinity kept).
struct NumericFloat {
    values: Vec<f64>,
    nulls: NullBufferBuilder,
    text: String,
}

impl NumericFloat {
    fn new(capacity: usize) -> Self {
        Self {
            values: Vec::with_capacity(capacity),
            nulls: NullBufferBuilder::new(capacity),
            text: String::new(),
        }
    }
}

impl Column for NumericFloat {
    fn push(&mut self, field: Option<&[u8]>) -> Result<()> {
        let Some(bytes) = field else {
            self.values.push(0.0);
            self.nulls.append_null();
            return Ok(());
        };
        let parts = NumericParts::parse(bytes)?;
        parts.text(&mut self.text);
        let value: f64 = self
            .text
            .parse()
            .map_err(|_| FieldError::Malformed(format!("numeric {:?}", self.text)))?;
        self.values.push(value);
        self.nulls.append_non_null();
        Ok(())
    }

    fn finish(&mut self, capacity: usize) -> Result<ArrayRef> {
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(capacity));
        let array = PrimitiveArray::<Float64Type>::try_new(values.into(), self.nulls.finish())
            .map_err(|e| FieldError::Malformed(e.to_string()))?;
        self.nulls = NullBufferBuilder::new(capacity);
        Ok(Arc::new(array))
    }
}

// -- variable-width values -----------------------------------------------------------------

#[derive(Clone, Copy)]
enum Form {
    Binary,
    Utf8,
    /// `"char"`: one byte, printed as Postgres' charout does.
    Char,
    /// 16 bytes, printed as the canonical 36-character text.
    Uuid,
    /// A version byte (1) and the document's text.
    Jsonb,
}

struct Bytes {
    form: Form,
    offsets: Vec<i32>,
    data: Vec<u8>,
    nulls: NullBufferBuilder,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Bytes {
    fn new(form: Form, capacity: usize) -> Self {
        let mut offsets = Vec::with_capacity(capacity.saturating_add(1));
        offsets.push(0);
        Self {
            form,
            offsets,
            data: Vec::with_capacity(capacity.saturating_mul(8)),
            nulls: NullBufferBuilder::new(capacity),
        }
    }

    fn text(&mut self, bytes: &[u8]) -> Result<()> {
        if std::str::from_utf8(bytes).is_err() {
            return malformed("text that is not UTF-8".to_owned());
        }
        self.data.extend_from_slice(bytes);
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        // An allocation the field's length makes impossible is an error, not an abort.
        let needed = match self.form {
            Form::Char => 4,
            Form::Uuid => 36,
            Form::Binary | Form::Utf8 | Form::Jsonb => bytes.len(),
        };
        if self.data.try_reserve(needed).is_err() {
            return malformed(format!(
                "no memory for a {}-byte value after {} bytes in this batch",
                bytes.len(),
                self.data.len()
            ));
        }
        match self.form {
            Form::Binary => self.data.extend_from_slice(bytes),
            Form::Utf8 => self.text(bytes)?,
            Form::Jsonb => match bytes.split_first() {
                Some((1, document)) => self.text(document)?,
                _ => return malformed("a jsonb field without version 1".to_owned()),
            },
            Form::Char => match bytes {
                [] | [0] => {}
                [byte] if *byte < 0x80 => self.data.push(*byte),
                [byte] => self.data.extend_from_slice(&[
                    b'\\',
                    b'0' + (byte >> 6),
                    b'0' + ((byte >> 3) & 7),
                    b'0' + (byte & 7),
                ]),
                _ => return malformed(format!("a \"char\" field of {} bytes", bytes.len())),
            },
            Form::Uuid => {
                if bytes.len() != 16 {
                    return malformed(format!("a uuid field of {} bytes", bytes.len()));
                }
                for (index, byte) in bytes.iter().enumerate() {
                    if matches!(index, 4 | 6 | 8 | 10) {
                        self.data.push(b'-');
                    }
                    self.data.push(HEX[usize::from(byte >> 4)]);
                    self.data.push(HEX[usize::from(byte & 15)]);
                }
            }
        }
        Ok(())
    }

    fn end_value(&mut self) -> Result<()> {
        let Ok(end) = i32::try_from(self.data.len()) else {
            return malformed("more than 2 GiB of values in one batch of one column".to_owned());
        };
        self.offsets.push(end);
        Ok(())
    }
}

impl Column for Bytes {
    fn push(&mut self, field: Option<&[u8]>) -> Result<()> {
        match field {
            None => self.nulls.append_null(),
            Some(bytes) => {
                self.append(bytes)?;
                self.nulls.append_non_null();
            }
        }
        self.end_value()
    }

    fn finish(&mut self, capacity: usize) -> Result<ArrayRef> {
        let mut offsets = Vec::with_capacity(capacity.saturating_add(1));
        offsets.push(0);
        let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(
            &mut self.offsets,
            offsets,
        )));
        let data = Buffer::from_vec(std::mem::replace(
            &mut self.data,
            Vec::with_capacity(capacity.saturating_mul(8)),
        ));
        let nulls = self.nulls.finish();
        self.nulls = NullBufferBuilder::new(capacity);
        Ok(match self.form {
            Form::Binary => Arc::new(
                BinaryArray::try_new(offsets, data, nulls)
                    .map_err(|e| FieldError::Malformed(e.to_string()))?,
            ),
            // SAFETY: every value appended was checked to be UTF-8 or written as ASCII, and the
            // offsets are the running lengths of the data, so each slice is a whole value.
            _ => Arc::new(unsafe { StringArray::new_unchecked(offsets, data, nulls) }),
        })
    }
}

// -- arrays --------------------------------------------------------------------------------

struct List {
    item: FieldRef,
    element: u32,
    child: Box<dyn Column>,
    offsets: Vec<i32>,
    length: i32,
    nulls: NullBufferBuilder,
}

impl List {
    fn new(item: FieldRef, element: u32, child: Box<dyn Column>, capacity: usize) -> Self {
        let mut offsets = Vec::with_capacity(capacity.saturating_add(1));
        offsets.push(0);
        Self {
            item,
            element,
            child,
            offsets,
            length: 0,
            nulls: NullBufferBuilder::new(capacity),
        }
    }

    fn elements(&mut self, bytes: &[u8]) -> Result<()> {
        let mut reader = Reader { bytes, at: 0 };
        let dimensions = reader.int()?;
        let _has_nulls = reader.int()?;
        let element = reader.int()? as u32;
        if dimensions == 0 {
            return Ok(());
        }
        if dimensions < 0 {
            return malformed(format!("an array of {dimensions} dimensions"));
        }
        if dimensions > 1 {
            return Err(FieldError::Unsupported(format!(
                "a {dimensions}-dimensional array (only one-dimensional arrays are read as lists)"
            )));
        }
        if element != self.element {
            return malformed(format!(
                "array elements of type oid {element} where oid {} was expected",
                self.element
            ));
        }
        let count = reader.int()?;
        let _lower_bound = reader.int()?;
        if count < 0 {
            return malformed(format!("an array of {count} elements"));
        }
        for _ in 0..count {
            let length = reader.int()?;
            let value = match length {
                -1 => None,
                _ if length < 0 => return malformed(format!("an array element of {length} bytes")),
                _ => Some(reader.take(length as usize)?),
            };
            self.child.push(value).map_err(|error| match error {
                FieldError::Unreadable { value, .. } => FieldError::Unreadable {
                    value,
                    element: true,
                },
                other => other,
            })?;
            self.length = self.length.checked_add(1).ok_or_else(|| {
                FieldError::Malformed("more than 2^31 array elements in one batch".to_owned())
            })?;
        }
        if reader.at != bytes.len() {
            return malformed(format!(
                "{} bytes after the last array element",
                bytes.len() - reader.at
            ));
        }
        Ok(())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(count);
        match end.and_then(|end| self.bytes.get(self.at..end)) {
            Some(slice) => {
                self.at += count;
                Ok(slice)
            }
            None => malformed(format!(
                "an array value running past its field ({} bytes at offset {} of {})",
                count,
                self.at,
                self.bytes.len()
            )),
        }
    }

    fn int(&mut self) -> Result<i32> {
        let slice = self.take(4)?;
        let mut word = [0u8; 4];
        word.copy_from_slice(slice);
        Ok(i32::from_be_bytes(word))
    }
}

impl Column for List {
    fn push(&mut self, field: Option<&[u8]>) -> Result<()> {
        match field {
            None => self.nulls.append_null(),
            Some(bytes) => {
                self.elements(bytes)?;
                self.nulls.append_non_null();
            }
        }
        self.offsets.push(self.length);
        Ok(())
    }

    fn finish(&mut self, capacity: usize) -> Result<ArrayRef> {
        let mut offsets = Vec::with_capacity(capacity.saturating_add(1));
        offsets.push(0);
        let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(
            &mut self.offsets,
            offsets,
        )));
        let values = self.child.finish(capacity)?;
        self.length = 0;
        let nulls = self.nulls.finish();
        self.nulls = NullBufferBuilder::new(capacity);
        let array = ListArray::try_new(self.item.clone(), offsets, values, nulls)
            .map_err(|e| FieldError::Malformed(e.to_string()))?;
        Ok(Arc::new(array))
    }
}
