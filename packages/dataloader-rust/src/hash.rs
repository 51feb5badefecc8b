//! Row hashing: `dataloader.normalize.keys.hash_rows` computed in Rust, bit for bit.
//!
//! The definitions (lanes per type, `mix`, `fmix`, records, lists) are the core's; see the
//! docstring of `dataloader.normalize.keys`. The named constants come from the caller (the
//! core's `_const`), so this module never recomputes them. A type not ported here is reported
//! as unsupported (`None` to Python) and the core's own path hashes the columns instead.

mod text;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowDictionaryKeyType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Decimal32Type,
    Decimal64Type, DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType,
    DurationSecondType, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, DictionaryArray, GenericByteArray, OffsetSizeTrait,
    PrimitiveArray,
};
use arrow_buffer::{ArrowNativeType, NullBuffer};
use arrow_schema::{DataType, TimeUnit};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyByteArray;
use pyo3_arrow::input::AnyArray;

type Pair = [u64; 2];

const M1: u64 = 0xFF51_AFD7_ED55_8CCD;
const M2: u64 = 0xC4CE_B9FE_1A85_EC53;
const CANONICAL_NAN: u64 = 0x7FF8_0000_0000_0000;
const MS_PER_DAY: i64 = 86_400_000;

/// Why a column cannot be hashed here.
enum Fail {
    /// A type (or a shape of data) this module does not hash: the core's path takes over.
    Unsupported(String),
    /// Malformed data: `index` is the slot of the array being hashed where it was found.
    Invalid { index: usize, message: String },
}

type Result<T> = std::result::Result<T, Fail>;

fn invalid(index: usize, message: impl Into<String>) -> Fail {
    Fail::Invalid {
        index,
        message: message.into(),
    }
}

/// The two lanes of every slot of an array.
struct Lanes {
    a: Vec<u64>,
    b: Vec<u64>,
}

impl Lanes {
    fn with_capacity(n: usize) -> Self {
        Lanes {
            a: Vec::with_capacity(n),
            b: Vec::with_capacity(n),
        }
    }

    #[inline]
    fn push(&mut self, (a, b): (u64, u64)) {
        self.a.push(a);
        self.b.push(b);
    }
}

/// murmur3's 64-bit finalizer.
#[inline]
fn fmix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(M1);
    x ^= x >> 33;
    x = x.wrapping_mul(M2);
    x ^ (x >> 33)
}

/// The constants of a `_mix` tag: the tag's and `tag + ":hi"`'s.
#[derive(Clone, Copy)]
struct Mix {
    a: Pair,
    b: Pair,
}

impl Mix {
    /// A value given as one 64-bit word.
    #[inline]
    fn one(&self, lo: u64) -> (u64, u64) {
        (
            fmix(lo.wrapping_mul(self.a[0]).wrapping_add(self.b[0])),
            fmix(lo.wrapping_mul(self.a[1]).wrapping_add(self.b[1])),
        )
    }

    /// A value given as a 128-bit word `(lo, hi)`.
    #[inline]
    fn two(&self, lo: u64, hi: u64) -> (u64, u64) {
        (
            fmix(
                lo.wrapping_mul(self.a[0])
                    .wrapping_add(hi.wrapping_mul(self.b[0]) ^ self.a[1]),
            ),
            fmix(
                lo.wrapping_mul(self.a[1])
                    .wrapping_add(hi.wrapping_mul(self.b[1]) ^ self.a[0]),
            ),
        )
    }
}

/// The named constants handed over by Python (`keys._const` of every name needed).
struct Consts {
    named: HashMap<String, Pair>,
    null: Pair,
}

impl Consts {
    fn new(named: HashMap<String, Pair>) -> Result<Self> {
        let null = lookup(&named, "null")?;
        Ok(Consts { named, null })
    }

    fn get(&self, name: &str) -> Result<Pair> {
        lookup(&self.named, name)
    }

    fn mix(&self, tag: &str) -> Result<Mix> {
        Ok(Mix {
            a: self.get(tag)?,
            b: self.get(&format!("{tag}:hi"))?,
        })
    }
}

fn lookup(named: &HashMap<String, Pair>, name: &str) -> Result<Pair> {
    named
        .get(name)
        .copied()
        .ok_or_else(|| Fail::Unsupported(format!("no constant was given for {name:?}")))
}

/// Overwrites the lanes of null slots with the null marker.
fn apply_nulls(lanes: &mut Lanes, nulls: Option<&NullBuffer>, k: &Consts) {
    if let Some(nulls) = nulls {
        for i in nulls.iter().enumerate().filter(|(_, v)| !v).map(|(i, _)| i) {
            if let (Some(a), Some(b)) = (lanes.a.get_mut(i), lanes.b.get_mut(i)) {
                *a = k.null[0];
                *b = k.null[1];
            }
        }
    }
}

fn primitive<T: ArrowPrimitiveType>(array: &dyn Array) -> Result<&PrimitiveArray<T>> {
    array
        .as_primitive_opt::<T>()
        .ok_or_else(|| Fail::Unsupported(format!("{} read as a primitive", array.data_type())))
}

fn map_one<T: ArrowPrimitiveType>(
    array: &dyn Array,
    mix: Mix,
    word: impl Fn(T::Native) -> u64,
) -> Result<Lanes> {
    let values = primitive::<T>(array)?.values();
    let mut lanes = Lanes::with_capacity(values.len());
    for &v in values.iter() {
        lanes.push(mix.one(word(v)));
    }
    Ok(lanes)
}

fn map_two<T: ArrowPrimitiveType>(
    array: &dyn Array,
    mix: Mix,
    words: impl Fn(T::Native) -> (u64, u64),
) -> Result<Lanes> {
    let values = primitive::<T>(array)?.values();
    let mut lanes = Lanes::with_capacity(values.len());
    for &v in values.iter() {
        let (lo, hi) = words(v);
        lanes.push(mix.two(lo, hi));
    }
    Ok(lanes)
}

#[inline]
fn signed(v: i64) -> (u64, u64) {
    (v as u64, if v < 0 { u64::MAX } else { 0 })
}

#[inline]
fn float_word(v: f64) -> u64 {
    if v.is_nan() {
        CANONICAL_NAN
    } else if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

/// Seconds and the rest in nanoseconds, as floor division does.
#[inline]
fn instant(v: i64, per_second: i64, nanos: i64) -> (u64, u64) {
    let seconds = v.div_euclid(per_second);
    let rest = v.rem_euclid(per_second);
    (seconds as u64, rest.wrapping_mul(nanos) as u64)
}

fn unit_scale(unit: &TimeUnit) -> (i64, i64) {
    match unit {
        TimeUnit::Second => (1, 1_000_000_000),
        TimeUnit::Millisecond => (1_000, 1_000_000),
        TimeUnit::Microsecond => (1_000_000, 1_000),
        TimeUnit::Nanosecond => (1_000_000_000, 1),
    }
}

fn instant_lanes(array: &dyn Array, unit: &TimeUnit, mix: Mix) -> Result<Lanes> {
    let (per_second, nanos) = unit_scale(unit);
    let word = |v: i64| instant(v, per_second, nanos);
    match (array.data_type(), unit) {
        (DataType::Timestamp(..), TimeUnit::Second) => {
            map_two::<TimestampSecondType>(array, mix, word)
        }
        (DataType::Timestamp(..), TimeUnit::Millisecond) => {
            map_two::<TimestampMillisecondType>(array, mix, word)
        }
        (DataType::Timestamp(..), TimeUnit::Microsecond) => {
            map_two::<TimestampMicrosecondType>(array, mix, word)
        }
        (DataType::Timestamp(..), TimeUnit::Nanosecond) => {
            map_two::<TimestampNanosecondType>(array, mix, word)
        }
        (_, TimeUnit::Second) => map_two::<DurationSecondType>(array, mix, word),
        (_, TimeUnit::Millisecond) => map_two::<DurationMillisecondType>(array, mix, word),
        (_, TimeUnit::Microsecond) => map_two::<DurationMicrosecondType>(array, mix, word),
        (_, TimeUnit::Nanosecond) => map_two::<DurationNanosecondType>(array, mix, word),
    }
}

/// The lanes of one byte string of `tag`'s constants `c`.
#[inline]
fn bytes_lanes(bytes: &[u8], c: Pair) -> (u64, u64) {
    let (s64, sp) = text::byte_sums(bytes);
    let length = bytes.len() as u64;
    (
        fmix(
            s64.wrapping_mul(c[0])
                .wrapping_add(length.wrapping_mul(c[1]) ^ c[0]),
        ),
        fmix(
            (sp | length << 32)
                .wrapping_mul(c[1])
                .wrapping_add(s64 ^ c[0]),
        ),
    )
}

fn offset_bytes_lanes<T: arrow_array::types::ByteArrayType>(
    array: &GenericByteArray<T>,
    c: Pair,
) -> Result<Lanes> {
    let offsets = array.value_offsets();
    let data: &[u8] = array.value_data();
    let mut lanes = Lanes::with_capacity(array.len());
    for (i, pair) in offsets.windows(2).enumerate() {
        let bytes = pair[0]
            .to_usize()
            .zip(pair[1].to_usize())
            .and_then(|(start, end)| data.get(start..end))
            .ok_or_else(|| {
                invalid(
                    i,
                    format!(
                        "value offsets {:?}..{:?} are outside its {} bytes of data",
                        pair[0],
                        pair[1],
                        data.len()
                    ),
                )
            })?;
        lanes.push(bytes_lanes(bytes, c));
    }
    Ok(lanes)
}

fn view_bytes_lanes<T: arrow_array::types::ByteViewType + ?Sized>(
    array: &arrow_array::GenericByteViewArray<T>,
    c: Pair,
) -> Result<Lanes> {
    let buffers = array.data_buffers();
    let mut lanes = Lanes::with_capacity(array.len());
    for (i, &view) in array.views().iter().enumerate() {
        let length = view as u32 as usize;
        let inline = view.to_le_bytes();
        let bytes: &[u8] = if length <= 12 {
            inline.get(4..4 + length).unwrap_or_default()
        } else {
            let buffer = (view >> 64) as u32 as usize;
            let offset = (view >> 96) as u32 as usize;
            buffers
                .get(buffer)
                .and_then(|b| b.as_slice().get(offset..offset + length))
                .ok_or_else(|| invalid(i, "a view points outside its data buffers"))?
        };
        lanes.push(bytes_lanes(bytes, c));
    }
    Ok(lanes)
}

fn decimal_lanes<T: ArrowPrimitiveType>(array: &dyn Array, scale: i8, c: Pair) -> Result<Lanes>
where
    T::Native: std::fmt::Display,
{
    let values = primitive::<T>(array)?.values();
    let mut lanes = Lanes::with_capacity(values.len());
    let (mut digits, mut out) = (String::new(), String::new());
    for v in values.iter() {
        use std::fmt::Write;
        digits.clear();
        // writing into a String cannot fail
        let _ = write!(digits, "{v}");
        text::decimal_text(&digits, scale, &mut out);
        lanes.push(bytes_lanes(out.as_bytes(), c));
    }
    Ok(lanes)
}

/// Whether each slot counts as present in a record (the core's `is_valid`).
fn presence(array: &dyn Array) -> Presence<'_> {
    if array.data_type() == &DataType::Null {
        Presence::None
    } else {
        match array.nulls() {
            Some(nulls) if nulls.null_count() > 0 => Presence::Some(nulls),
            _ => Presence::All,
        }
    }
}

enum Presence<'a> {
    All,
    None,
    Some(&'a NullBuffer),
}

/// Adds each present field's mixed lanes, `(total_a, total_b)` from `start`.
fn add_field(totals: (&mut [u64], &mut [u64]), lanes: &Lanes, present: &Presence<'_>, c: Pair) {
    let (ta, tb) = totals;
    let rows = ta.iter_mut().zip(tb.iter_mut());
    for (i, ((ta, tb), (&a, &b))) in rows.zip(lanes.a.iter().zip(lanes.b.iter())).enumerate() {
        let counted = match present {
            Presence::All => true,
            Presence::None => false,
            Presence::Some(nulls) => nulls.is_valid(i),
        };
        if counted {
            *ta = ta.wrapping_add(fmix(a.wrapping_mul(c[0]).wrapping_add(c[1])));
            *tb = tb.wrapping_add(fmix(b.wrapping_mul(c[1]).wrapping_add(c[0])));
        }
    }
}

fn struct_lanes(array: &dyn Array, k: &Consts) -> Result<Lanes> {
    let array = array
        .as_struct_opt()
        .ok_or_else(|| Fail::Unsupported("struct layout".into()))?;
    let n = array.len();
    let (mut ta, mut tb) = (vec![0u64; n], vec![0u64; n]);
    for (field, child) in array.fields().iter().zip(array.columns()) {
        if child.len() != n {
            return Err(invalid(
                0,
                format!("field {:?} is not as long as its struct", field.name()),
            ));
        }
        let lanes = lanes(child.as_ref(), k).map_err(|e| within(e, field.name()))?;
        let c = k.get(&format!("field:{}", field.name()))?;
        add_field((&mut ta, &mut tb), &lanes, &presence(child.as_ref()), c);
    }
    let mix = k.mix("struct")?;
    let mut out = Lanes::with_capacity(n);
    for (&a, &b) in ta.iter().zip(tb.iter()) {
        out.push(mix.two(a, b));
    }
    Ok(out)
}

/// A nested failure, with the field's name in its message.
fn within(fail: Fail, name: &str) -> Fail {
    match fail {
        Fail::Invalid { index, message } => Fail::Invalid {
            index,
            message: format!("field {name:?}: {message}"),
        },
        other => other,
    }
}

/// The lanes of lists given by the element ranges `ranges` (relative to `elements`'s start).
fn list_of(
    ranges: &[(usize, usize)],
    nulls: Option<&NullBuffer>,
    elements: &Lanes,
    k: &Consts,
) -> Result<Lanes> {
    let valid = |i: usize| nulls.is_none_or(|n| n.is_valid(i));
    let top = ranges
        .iter()
        .enumerate()
        .filter(|(i, _)| valid(*i))
        .map(|(_, (s, e))| e.saturating_sub(*s))
        .max()
        .unwrap_or(0);
    let position = k.get("position")?;
    let (pa, pb): (Vec<u64>, Vec<u64>) = (0..top as u64)
        .map(|p| {
            (
                fmix(p.wrapping_mul(position[0]).wrapping_add(position[0])),
                fmix(p.wrapping_mul(position[1]).wrapping_add(position[1])),
            )
        })
        .unzip();
    let list = k.mix("list")?;
    let elems = k.get("elements")?;
    let mut out = Lanes::with_capacity(ranges.len());
    for (i, &(start, end)) in ranges.iter().enumerate() {
        if !valid(i) {
            out.push((k.null[0], k.null[1]));
            continue;
        }
        let (ea, eb) = match (elements.a.get(start..end), elements.b.get(start..end)) {
            (Some(ea), Some(eb)) => (ea, eb),
            _ => {
                return Err(invalid(
                    i,
                    format!("list elements {start}..{end} are outside its values"),
                ))
            }
        };
        let (mut sa, mut sb) = (0u64, 0u64);
        for (((&a, &b), &qa), &qb) in ea.iter().zip(eb).zip(&pa).zip(&pb) {
            sa = sa.wrapping_add(fmix(a.wrapping_add(qa)));
            sb = sb.wrapping_add(fmix(b.wrapping_add(qb)));
        }
        let (la, lb) = list.one((end - start) as u64);
        out.push((
            fmix(la.wrapping_mul(elems[0]).wrapping_add(sa ^ elems[1])),
            fmix(lb.wrapping_mul(elems[1]).wrapping_add(sb ^ elems[0])),
        ));
    }
    Ok(out)
}

/// Element ranges of an offsets-based list, relative to `offsets[0]`, and the values they span.
fn offset_ranges<O: OffsetSizeTrait>(
    offsets: &[O],
    values: &ArrayRef,
    nulls: Option<&NullBuffer>,
) -> Result<(Vec<(usize, usize)>, ArrayRef)> {
    let first = offsets.first().map_or(0, |o| o.as_usize());
    let last = offsets.last().map_or(0, |o| o.as_usize());
    if first > last || last > values.len() {
        return Err(invalid(0, "list offsets are outside its values"));
    }
    let mut ranges = Vec::with_capacity(offsets.len().saturating_sub(1));
    for (i, pair) in offsets.windows(2).enumerate() {
        let (start, end) = (pair[0].as_usize(), pair[1].as_usize());
        if start > end || start < first || end > last {
            return Err(invalid(i, "list offsets are not ascending"));
        }
        // The core skips a null list's elements in one place and not in another: hashing one
        // that spans elements is left to it (it raises).
        if start != end && nulls.is_some_and(|n| n.is_null(i)) {
            return Err(Fail::Unsupported("a null list over elements".into()));
        }
        ranges.push((start - first, end - first));
    }
    Ok((ranges, values.slice(first, last - first)))
}

fn list_lanes(array: &dyn Array, k: &Consts) -> Result<Lanes> {
    let nulls = array.nulls();
    let (ranges, values) = match array.data_type() {
        DataType::List(_) => {
            let a = array
                .as_list_opt::<i32>()
                .ok_or_else(|| Fail::Unsupported("list".into()))?;
            offset_ranges(a.value_offsets(), a.values(), nulls)?
        }
        DataType::LargeList(_) => {
            let a = array
                .as_list_opt::<i64>()
                .ok_or_else(|| Fail::Unsupported("list".into()))?;
            offset_ranges(a.value_offsets(), a.values(), nulls)?
        }
        DataType::Map(..) => {
            let a = array
                .as_map_opt()
                .ok_or_else(|| Fail::Unsupported("map".into()))?;
            let entries: ArrayRef = std::sync::Arc::new(a.entries().clone());
            offset_ranges(a.value_offsets(), &entries, nulls)?
        }
        DataType::FixedSizeList(_, size) => {
            let a = array
                .as_fixed_size_list_opt()
                .ok_or_else(|| Fail::Unsupported("fixed-size list".into()))?;
            let size = usize::try_from(*size).map_err(|_| invalid(0, "negative list size"))?;
            let ranges: Vec<(usize, usize)> =
                (0..a.len()).map(|i| (i * size, i * size + size)).collect();
            (ranges, a.values().clone())
        }
        other => return Err(Fail::Unsupported(format!("{other}"))),
    };
    let elements = lanes(values.as_ref(), k).map_err(|e| match e {
        Fail::Invalid { index, message } => {
            let row = ranges
                .iter()
                .position(|&(s, e)| s <= index && index < e)
                .unwrap_or(0);
            invalid(row, format!("list element {}: {message}", index))
        }
        other => other,
    })?;
    list_of(&ranges, nulls, &elements, k)
}

fn dictionary_lanes<K: ArrowDictionaryKeyType>(array: &dyn Array, k: &Consts) -> Result<Lanes> {
    let array: &DictionaryArray<K> = array
        .as_dictionary_opt::<K>()
        .ok_or_else(|| Fail::Unsupported("dictionary".into()))?;
    let values = array.values();
    // pyarrow counts a null of the dictionary as valid in one place and not in another: such
    // dictionaries are left to the core.
    if values.data_type() == &DataType::Null || values.null_count() > 0 {
        return Err(Fail::Unsupported("a dictionary with null values".into()));
    }
    let dictionary = lanes(values.as_ref(), k)?;
    let nulls = array.nulls();
    let mut out = Lanes::with_capacity(array.len());
    for (i, key) in array.keys().values().iter().enumerate() {
        if nulls.is_some_and(|n| n.is_null(i)) {
            out.push((k.null[0], k.null[1]));
            continue;
        }
        let index = key.to_usize();
        match index.and_then(|j| Some((*dictionary.a.get(j)?, *dictionary.b.get(j)?))) {
            Some(pair) => out.push(pair),
            None => {
                return Err(invalid(
                    i,
                    format!(
                        "dictionary index {key:?} is outside its {} values",
                        values.len()
                    ),
                ))
            }
        }
    }
    Ok(out)
}

/// The lanes of every slot of `array`, nulls as the null marker.
fn lanes(array: &dyn Array, k: &Consts) -> Result<Lanes> {
    let n = array.len();
    let mut out = match array.data_type() {
        DataType::Null => {
            return Ok(Lanes {
                a: vec![k.null[0]; n],
                b: vec![k.null[1]; n],
            })
        }
        DataType::Dictionary(key, _) => {
            return match key.as_ref() {
                DataType::Int8 => dictionary_lanes::<Int8Type>(array, k),
                DataType::Int16 => dictionary_lanes::<Int16Type>(array, k),
                DataType::Int32 => dictionary_lanes::<Int32Type>(array, k),
                DataType::Int64 => dictionary_lanes::<Int64Type>(array, k),
                DataType::UInt8 => dictionary_lanes::<UInt8Type>(array, k),
                DataType::UInt16 => dictionary_lanes::<UInt16Type>(array, k),
                DataType::UInt32 => dictionary_lanes::<UInt32Type>(array, k),
                DataType::UInt64 => dictionary_lanes::<UInt64Type>(array, k),
                other => Err(Fail::Unsupported(format!("dictionary keys of {other}"))),
            }
        }
        DataType::Boolean => {
            let mix = k.mix("bool")?;
            let values = array
                .as_boolean_opt()
                .ok_or_else(|| Fail::Unsupported("boolean".into()))?
                .values();
            let mut lanes = Lanes::with_capacity(n);
            for v in values.iter() {
                lanes.push(mix.one(v as u64));
            }
            lanes
        }
        DataType::Int8 => map_two::<Int8Type>(array, k.mix("int")?, |v| signed(v.into()))?,
        DataType::Int16 => map_two::<Int16Type>(array, k.mix("int")?, |v| signed(v.into()))?,
        DataType::Int32 => map_two::<Int32Type>(array, k.mix("int")?, |v| signed(v.into()))?,
        DataType::Int64 => map_two::<Int64Type>(array, k.mix("int")?, signed)?,
        DataType::UInt8 => map_two::<UInt8Type>(array, k.mix("int")?, |v| (v.into(), 0))?,
        DataType::UInt16 => map_two::<UInt16Type>(array, k.mix("int")?, |v| (v.into(), 0))?,
        DataType::UInt32 => map_two::<UInt32Type>(array, k.mix("int")?, |v| (v.into(), 0))?,
        DataType::UInt64 => map_two::<UInt64Type>(array, k.mix("int")?, |v| (v, 0))?,
        DataType::Float16 => {
            map_one::<Float16Type>(array, k.mix("float")?, |v| float_word(v.to_f64()))?
        }
        DataType::Float32 => {
            map_one::<Float32Type>(array, k.mix("float")?, |v| float_word(v.into()))?
        }
        DataType::Float64 => map_one::<Float64Type>(array, k.mix("float")?, float_word)?,
        DataType::Decimal32(_, s) => decimal_lanes::<Decimal32Type>(array, *s, k.get("decimal")?)?,
        DataType::Decimal64(_, s) => decimal_lanes::<Decimal64Type>(array, *s, k.get("decimal")?)?,
        DataType::Decimal128(_, s) => {
            decimal_lanes::<Decimal128Type>(array, *s, k.get("decimal")?)?
        }
        DataType::Decimal256(_, s) => {
            decimal_lanes::<Decimal256Type>(array, *s, k.get("decimal")?)?
        }
        DataType::Utf8 => offset_bytes_lanes(array.as_string::<i32>(), k.get("string")?)?,
        DataType::LargeUtf8 => offset_bytes_lanes(array.as_string::<i64>(), k.get("string")?)?,
        DataType::Utf8View => view_bytes_lanes(array.as_string_view(), k.get("string")?)?,
        DataType::Binary => offset_bytes_lanes(array.as_binary::<i32>(), k.get("binary")?)?,
        DataType::LargeBinary => offset_bytes_lanes(array.as_binary::<i64>(), k.get("binary")?)?,
        DataType::BinaryView => view_bytes_lanes(array.as_binary_view(), k.get("binary")?)?,
        DataType::FixedSizeBinary(_) => {
            let c = k.get("binary")?;
            let a = array
                .as_fixed_size_binary_opt()
                .ok_or_else(|| Fail::Unsupported("fixed-size binary".into()))?;
            let size =
                usize::try_from(a.value_length()).map_err(|_| invalid(0, "negative size"))?;
            let data = a.values().as_slice();
            let mut lanes = Lanes::with_capacity(n);
            for i in 0..n {
                let bytes = data
                    .get(i * size..(i + 1) * size)
                    .ok_or_else(|| invalid(i, "value bytes are outside its data"))?;
                lanes.push(bytes_lanes(bytes, c));
            }
            lanes
        }
        DataType::Date32 => map_one::<Date32Type>(array, k.mix("date")?, |v| i64::from(v) as u64)?,
        DataType::Date64 => {
            // the core casts to date32, which refuses a date64 that is not whole days
            let values = primitive::<Date64Type>(array)?;
            let whole = values
                .iter()
                .all(|v| v.is_none_or(|ms| ms.rem_euclid(MS_PER_DAY) == 0));
            if !whole {
                return Err(Fail::Unsupported(
                    "date64 values that are not whole days".into(),
                ));
            }
            map_one::<Date64Type>(array, k.mix("date")?, |v| v.div_euclid(MS_PER_DAY) as u64)?
        }
        DataType::Time32(TimeUnit::Second) => {
            map_one::<Time32SecondType>(array, k.mix("time")?, |v| {
                (i64::from(v) * 1_000_000_000) as u64
            })?
        }
        DataType::Time32(TimeUnit::Millisecond) => {
            map_one::<Time32MillisecondType>(array, k.mix("time")?, |v| {
                (i64::from(v) * 1_000_000) as u64
            })?
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            map_one::<Time64MicrosecondType>(array, k.mix("time")?, |v| {
                v.wrapping_mul(1_000) as u64
            })?
        }
        DataType::Time64(TimeUnit::Nanosecond) => {
            map_one::<Time64NanosecondType>(array, k.mix("time")?, |v| v as u64)?
        }
        DataType::Timestamp(unit, _) => instant_lanes(array, unit, k.mix("timestamp")?)?,
        DataType::Duration(unit) => instant_lanes(array, unit, k.mix("duration")?)?,
        DataType::Struct(_) => struct_lanes(array, k)?,
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::Map(..) => list_lanes(array, k)?,
        other => return Err(Fail::Unsupported(format!("{other}"))),
    };
    if out.a.len() != n || out.b.len() != n {
        return Err(invalid(0, "its buffers are shorter than its length"));
    }
    apply_nulls(&mut out, array.nulls(), k);
    Ok(out)
}

/// One column of the row record: its name and chunks.
struct Column {
    name: String,
    chunks: Vec<ArrayRef>,
}

/// How hashing stopped short.
enum Stop {
    /// A column's type or data is not hashed here: why.
    Unsupported(String),
    /// Malformed input, with its message.
    Invalid(String),
    /// A panic, caught.
    Panic,
}

fn stop_at(fail: Fail, column: &str, row_base: usize) -> Stop {
    match fail {
        Fail::Unsupported(why) => Stop::Unsupported(why),
        Fail::Invalid { index, message } => Stop::Invalid(format!(
            "hash_rows: column '{column}', row {}: {message}",
            row_base + index
        )),
    }
}

/// Rows hashed a block at a time, so that every column's lanes of a block stay in cache.
const BLOCK_ROWS: usize = 1 << 14;
/// Fewer blocks than this a thread are hashed on the calling thread alone.
const MIN_BLOCKS_PER_THREAD: usize = 4;

/// Whether `t` holds a dictionary, whose values' lanes are better computed once than per block.
fn has_dictionary(t: &DataType) -> bool {
    match t {
        DataType::Dictionary(..) => true,
        DataType::Struct(fields) => fields.iter().any(|f| has_dictionary(f.data_type())),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::Map(f, _) => has_dictionary(f.data_type()),
        _ => false,
    }
}

/// A chunk of a column, from row `start` of the whole column.
struct Piece<'a> {
    chunk: &'a ArrayRef,
    start: usize,
    /// The lanes of the whole chunk, when computed up front.
    whole: Option<Lanes>,
}

/// The `(n, 2)` little-endian uint64 row hashes of `columns` written into `out`.
fn hash_into(
    columns: &[Column],
    n: usize,
    k: &Consts,
    out: &mut [u8],
) -> std::result::Result<(), Stop> {
    let mut plan = Vec::with_capacity(columns.len());
    for column in columns {
        let c = k
            .get(&format!("field:{}", column.name))
            .map_err(|e| stop_at(e, &column.name, 0))?;
        let mut pieces = Vec::with_capacity(column.chunks.len());
        let mut start = 0usize;
        for chunk in &column.chunks {
            let whole = if has_dictionary(chunk.data_type()) {
                Some(lanes(chunk.as_ref(), k).map_err(|e| stop_at(e, &column.name, start))?)
            } else {
                None
            };
            pieces.push(Piece {
                chunk,
                start,
                whole,
            });
            start += chunk.len();
        }
        if start != n {
            return Err(Stop::Invalid(format!(
                "hash_rows: column '{}' has {start} rows, expected {n}",
                column.name
            )));
        }
        plan.push((column.name.as_str(), c, pieces));
    }
    let row = k.mix("row").map_err(|e| stop_at(e, "", 0))?;
    let blocks = n.div_ceil(BLOCK_ROWS);
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(blocks / MIN_BLOCKS_PER_THREAD)
        .max(1);
    if threads == 1 {
        return hash_blocks(&plan, k, row, 0, out);
    }
    let per_thread = blocks.div_ceil(threads) * BLOCK_ROWS * 16;
    std::thread::scope(|scope| {
        let workers: Vec<_> = out
            .chunks_mut(per_thread)
            .enumerate()
            .map(|(i, part)| {
                let plan = &plan;
                scope.spawn(move || hash_blocks(plan, k, row, i * per_thread / 16, part))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or(Err(Stop::Panic)))
            .collect::<std::result::Result<Vec<()>, Stop>>()
            .map(|_| ())
    })
}

/// A column's name, its field constants and its chunks.
type PlannedColumn<'a> = (&'a str, Pair, Vec<Piece<'a>>);

/// Writes the hashes of rows `first..` (as many as `out` holds, 16 bytes each).
fn hash_blocks(
    plan: &[PlannedColumn<'_>],
    k: &Consts,
    row: Mix,
    first: usize,
    out: &mut [u8],
) -> std::result::Result<(), Stop> {
    let (mut ta, mut tb) = (vec![0u64; BLOCK_ROWS], vec![0u64; BLOCK_ROWS]);
    for (block, words) in out.chunks_mut(BLOCK_ROWS * 16).enumerate() {
        let first = first + block * BLOCK_ROWS;
        let rows = words.len() / 16;
        ta.fill(0);
        tb.fill(0);
        for (name, c, pieces) in plan {
            for piece in pieces {
                let end = piece.start + piece.chunk.len();
                let (from, to) = (first.max(piece.start), (first + rows).min(end));
                if from >= to {
                    continue;
                }
                let (local, len) = (from - piece.start, to - from);
                let part = piece.chunk.slice(local, len);
                let computed;
                let lanes = match &piece.whole {
                    Some(whole) => {
                        computed = Lanes {
                            a: whole.a.get(local..local + len).unwrap_or_default().to_vec(),
                            b: whole.b.get(local..local + len).unwrap_or_default().to_vec(),
                        };
                        &computed
                    }
                    None => {
                        computed = lanes(part.as_ref(), k).map_err(|e| stop_at(e, name, from))?;
                        &computed
                    }
                };
                let at = from - first;
                let (Some(ca), Some(cb)) = (ta.get_mut(at..at + len), tb.get_mut(at..at + len))
                else {
                    return Err(Stop::Panic);
                };
                add_field((ca, cb), lanes, &presence(part.as_ref()), *c);
            }
        }
        for ((word, &a), &b) in words.chunks_exact_mut(16).zip(&ta).zip(&tb) {
            let (a, b) = row.two(a, b);
            word[..8].copy_from_slice(&a.to_le_bytes());
            word[8..].copy_from_slice(&b.to_le_bytes());
        }
    }
    Ok(())
}

/// The hashes, or why the columns are not hashed here.
#[derive(IntoPyObject)]
enum HashOutcome<'py> {
    Hashes(Bound<'py, PyByteArray>),
    Unsupported(String),
}

/// Hashes the rows of `columns` (pyarrow Arrays or ChunkedArrays of one length), named by
/// `names`, with the named constants `constants` (`keys._const` of each name the columns
/// need). Returns a bytearray of n * 16 bytes (the (n, 2) little-endian uint64 hashes), or a
/// str saying why when a column's type (or a shape of its data) is not ported here.
#[pyfunction]
fn hash_rows<'py>(
    py: Python<'py>,
    columns: Vec<Bound<'py, PyAny>>,
    names: Vec<String>,
    constants: HashMap<String, (u64, u64)>,
) -> PyResult<HashOutcome<'py>> {
    if columns.len() != names.len() {
        return Err(PyValueError::new_err(format!(
            "hash_rows: {} columns but {} names",
            columns.len(),
            names.len()
        )));
    }
    let mut imported = Vec::with_capacity(columns.len());
    for (column, name) in columns.iter().zip(names) {
        // A type arrow-rs cannot import is one this module does not hash either.
        // arrow-rs's import asserts on layouts it misreads: a panic there is a column left
        // to the core, like an import error
        let imported_column = catch_unwind(AssertUnwindSafe(|| {
            column
                .extract::<AnyArray>()
                .and_then(|any| any.into_chunked_array().map_err(PyErr::from))
        }));
        let chunked = match imported_column {
            Ok(Ok(chunked)) => chunked,
            Ok(Err(e)) => {
                return Ok(HashOutcome::Unsupported(format!(
                    "column '{name}' does not import into arrow-rs: {e}"
                )))
            }
            Err(_) => {
                return Ok(HashOutcome::Unsupported(format!(
                    "column '{name}' does not import into arrow-rs (it panicked)"
                )))
            }
        };
        let (chunks, _) = chunked.into_inner();
        imported.push(Column { name, chunks });
    }
    let n = imported
        .first()
        .map_or(0, |c| c.chunks.iter().map(|a| a.len()).sum());
    let named = constants
        .into_iter()
        .map(|(k, v)| (k, [v.0, v.1]))
        .collect();
    let Ok(consts) = Consts::new(named) else {
        return Err(PyValueError::new_err(
            "hash_rows: the constants lack \"null\"",
        ));
    };
    let Some(size) = n.checked_mul(16) else {
        return Err(PyValueError::new_err("hash_rows: too many rows"));
    };
    let mut outcome = Ok(());
    let buffer = PyByteArray::new_with(py, size, |out| {
        outcome = py.detach(|| {
            catch_unwind(AssertUnwindSafe(|| hash_into(&imported, n, &consts, out)))
                .unwrap_or(Err(Stop::Panic))
        });
        Ok(())
    })?;
    match outcome {
        Ok(()) => Ok(HashOutcome::Hashes(buffer)),
        Err(Stop::Unsupported(why)) => Ok(HashOutcome::Unsupported(why)),
        Err(Stop::Invalid(message)) => Err(PyValueError::new_err(message)),
        Err(Stop::Panic) => Err(PyRuntimeError::new_err(
            "hash_rows: internal error (a panic) while hashing rows",
        )),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(hash_rows, m)?)?;
    Ok(())
}
