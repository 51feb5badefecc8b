//! Arrow columns from parsed records, typed as `records_to_table` types them.
//!
//! Top level (a field of the records): all null → null; booleans → bool; integers within int64
//! → int64; numbers with a fraction, with or without integers beside them → the decimal of
//! `records._decimals`; strings → utf8; objects → struct; arrays → list. Nested (struct fields,
//! list items), Arrow's own inference: the same, except that integers beside fractions are
//! left to Python. Every other mix, a number with an exponent, an integer past int64, a decimal
//! past 38 digits and a struct without fields are left to Python (`None`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::types::{Decimal128Type, Int64Type};
use arrow_array::{
    ArrayRef, BooleanArray, ListArray, NullArray, PrimitiveArray, StringArray, StructArray,
};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{Field, FieldRef, Fields};

use super::parse::{NumKind, Outside, Parser, Res, Sink, Val};

/// Objects' members gathered into one column per name: names in first-appearance order, one
/// value per object per name (null where the object lacks the name or is null itself; the last
/// value of a name repeated in one object), each column's values contiguous for the passes
/// that type and build it.
struct Columns<'a> {
    rows: usize,
    names: Vec<Cow<'a, str>>,
    index: HashMap<Cow<'a, str>, usize>,
    columns: Vec<Vec<Val<'a>>>,
    /// The column of the member after the last one placed: records mostly repeat one order.
    guess: usize,
}

impl<'a> Columns<'a> {
    fn new(rows: usize) -> Self {
        Columns {
            rows,
            names: Vec::new(),
            index: HashMap::new(),
            columns: Vec::new(),
            guess: 0,
        }
    }
}

impl<'a> Sink<'a> for Columns<'a> {
    fn member(&mut self, row: usize, key: Cow<'a, str>, value: Val<'a>) -> Res<()> {
        let at = if self.names.get(self.guess).is_some_and(|name| *name == key) {
            self.guess
        } else if let Some(&at) = self.index.get(&key) {
            at
        } else {
            self.index.insert(key.clone(), self.columns.len());
            self.names.push(key);
            let mut column = Vec::with_capacity(self.rows.max(row + 1));
            column.resize_with(row, || Val::Null);
            self.columns.push(column);
            self.columns.len() - 1
        };
        let column = self.columns.get_mut(at).ok_or(Outside)?;
        if column.len() > row {
            // A key repeated in one object: its last value, at its first position.
            *column.last_mut().ok_or(Outside)? = value;
        } else {
            column.push(value);
        }
        self.guess = at + 1;
        Ok(())
    }

    fn end(&mut self, row: usize) {
        for column in self.columns.iter_mut() {
            if column.len() <= row {
                column.push(Val::Null);
            }
        }
        self.guess = 0;
    }
}

/// The fields of `values` (objects or nulls), moved out of them (see `Columns`).
#[allow(clippy::type_complexity)]
fn fields<'a>(values: Vec<Val<'a>>) -> Option<(Vec<Cow<'a, str>>, Vec<Vec<Val<'a>>>)> {
    let mut columns = Columns::new(values.len());
    for (row, value) in values.into_iter().enumerate() {
        match value {
            Val::Null => {}
            Val::Obj(members) => {
                for (key, member) in members {
                    columns.member(row, key, member).ok()?;
                }
            }
            _ => return None,
        }
        columns.end(row);
    }
    Some((columns.names, columns.columns))
}

/// The validity of a column being built, kept only when it has nulls.
struct Validity(Option<BooleanBufferBuilder>);

impl Validity {
    fn new(len: usize, nulls: bool) -> Self {
        Validity(nulls.then(|| BooleanBufferBuilder::new(len)))
    }

    #[inline]
    fn push(&mut self, value: &Val<'_>) {
        if let Some(bits) = self.0.as_mut() {
            bits.append(!matches!(value, Val::Null));
        }
    }

    fn finish(self) -> Option<NullBuffer> {
        self.0.map(|mut bits| NullBuffer::new(bits.finish()))
    }
}

/// What one column holds (nulls aside).
#[derive(Default)]
struct Kinds {
    bool: bool,
    int: bool,
    frac: bool,
    str: bool,
    obj: bool,
    arr: bool,
    null: bool,
}

impl Kinds {
    fn of(values: &[Val<'_>]) -> Option<Kinds> {
        let mut kinds = Kinds::default();
        for value in values {
            match value {
                Val::Null => kinds.null = true,
                Val::Bool(_) => kinds.bool = true,
                Val::Num(_, NumKind::Int) => kinds.int = true,
                Val::Num(_, NumKind::Frac) => kinds.frac = true,
                Val::Num(_, NumKind::Exp) => return None,
                Val::Str(_) => kinds.str = true,
                Val::Obj(_) => kinds.obj = true,
                Val::Arr(_) => kinds.arr = true,
            }
        }
        Some(kinds)
    }

    fn count(&self) -> usize {
        [self.bool, self.int, self.frac, self.str, self.obj, self.arr]
            .iter()
            .filter(|k| **k)
            .count()
    }
}

/// One column of `values`; `top` for a field of the records themselves.
fn column(values: Vec<Val<'_>>, top: bool) -> Option<ArrayRef> {
    let kinds = Kinds::of(&values)?;
    let decimal = kinds.frac && (kinds.count() == 1 || (top && kinds.int && kinds.count() == 2));
    if kinds.count() == 0 {
        Some(Arc::new(NullArray::new(values.len())))
    } else if decimal {
        decimals(&values, kinds.null)
    } else if kinds.count() != 1 {
        None
    } else if kinds.bool {
        let mut valid = Validity::new(values.len(), kinds.null);
        let mut bits = BooleanBufferBuilder::new(values.len());
        for value in &values {
            valid.push(value);
            bits.append(matches!(value, Val::Bool(true)));
        }
        Some(Arc::new(BooleanArray::new(bits.finish(), valid.finish())))
    } else if kinds.int {
        let mut valid = Validity::new(values.len(), kinds.null);
        let mut out = Vec::with_capacity(values.len());
        for value in &values {
            valid.push(value);
            out.push(match value {
                Val::Num(text, _) => int64(text)?,
                _ => 0,
            });
        }
        let array = PrimitiveArray::<Int64Type>::new(ScalarBuffer::from(out), valid.finish());
        Some(Arc::new(array))
    } else if kinds.str {
        strings(&values, kinds.null)
    } else if kinds.obj {
        structs(values, kinds.null)
    } else {
        lists(values, kinds.null)
    }
}

/// An integer's text as an i64 (None past its range).
#[inline]
fn int64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    // Accumulated negative: i64::MIN has no positive counterpart.
    let mut value: i64 = 0;
    for &digit in digits {
        value = value
            .checked_mul(10)?
            .checked_sub(i64::from(digit.wrapping_sub(b'0')))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

fn strings(values: &[Val<'_>], nulls: bool) -> Option<ArrayRef> {
    let mut valid = Validity::new(values.len(), nulls);
    let mut offsets: Vec<i32> = Vec::with_capacity(values.len() + 1);
    let total: usize = values
        .iter()
        .map(|v| match v {
            Val::Str(text) => text.len(),
            _ => 0,
        })
        .sum();
    let mut data: Vec<u8> = Vec::with_capacity(total);
    offsets.push(0);
    for value in values {
        valid.push(value);
        if let Val::Str(text) = value {
            data.extend_from_slice(text.as_bytes());
        }
        offsets.push(i32::try_from(data.len()).ok()?);
    }
    let array = StringArray::try_new(
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Buffer::from_vec(data),
        valid.finish(),
    )
    .ok()?;
    Some(Arc::new(array))
}

fn structs(values: Vec<Val<'_>>, nulls: bool) -> Option<ArrayRef> {
    let mut valid = Validity::new(values.len(), nulls);
    for value in &values {
        valid.push(value);
    }
    let (names, columns) = fields(values)?;
    if names.is_empty() {
        return None;
    }
    let mut children = Vec::with_capacity(names.len());
    let mut schema = Vec::with_capacity(names.len());
    for (name, members) in names.into_iter().zip(columns) {
        let child = column(members, false)?;
        schema.push(Field::new(name, child.data_type().clone(), true));
        children.push(child);
    }
    let array = StructArray::try_new(Fields::from(schema), children, valid.finish()).ok()?;
    Some(Arc::new(array))
}

fn lists(values: Vec<Val<'_>>, nulls: bool) -> Option<ArrayRef> {
    let mut valid = Validity::new(values.len(), nulls);
    let mut offsets: Vec<i32> = Vec::with_capacity(values.len() + 1);
    let mut items: Vec<Val<'_>> = Vec::new();
    offsets.push(0);
    for value in values {
        valid.push(&value);
        if let Val::Arr(list) = value {
            items.extend(list);
        }
        offsets.push(i32::try_from(items.len()).ok()?);
    }
    let child = column(items, false)?;
    let field = Arc::new(Field::new("item", child.data_type().clone(), true));
    let array = ListArray::try_new(
        field,
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        child,
        valid.finish(),
    )
    .ok()?;
    Some(Arc::new(array))
}

/// A number's text split: negative, digits before the point, digits after it.
fn split(text: &[u8]) -> (bool, &[u8], &[u8]) {
    let (negative, unsigned) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    match unsigned.iter().position(|&b| b == b'.') {
        Some(at) => (
            negative,
            unsigned.get(..at).unwrap_or_default(),
            unsigned.get(at + 1..).unwrap_or_default(),
        ),
        None => (negative, unsigned, &[]),
    }
}

/// Integers and fractions (and nulls) as the decimal that holds them all: scale the most
/// fraction digits, precision the most whole digits plus that (at least 1), whole digits
/// counted as `Decimal.as_tuple` gives them (`len(digits) + exponent`; an integer's own
/// digits). None past 38 digits.
fn decimals(values: &[Val<'_>], nulls: bool) -> Option<ArrayRef> {
    let mut whole: i64 = 0;
    let mut scale: usize = 0;
    for value in values {
        let Val::Num(text, kind) = value else {
            continue;
        };
        let (_, int, frac) = split(text);
        if *kind == NumKind::Int {
            whole = whole.max(int.len() as i64);
            continue;
        }
        let significant = int
            .iter()
            .chain(frac.iter())
            .skip_while(|&&d| d == b'0')
            .count()
            .max(1);
        scale = scale.max(frac.len());
        whole = whole.max(significant as i64 - frac.len() as i64);
    }
    let precision = (whole + scale as i64).max(1);
    if precision > 38 {
        return None;
    }
    let mut valid = Validity::new(values.len(), nulls);
    let mut out: Vec<i128> = Vec::with_capacity(values.len());
    for value in values {
        valid.push(value);
        let Val::Num(text, _) = value else {
            out.push(0);
            continue;
        };
        let (negative, int, frac) = split(text);
        let mut unscaled: i128 = 0;
        for &digit in int.iter().chain(frac.iter()) {
            unscaled = unscaled
                .checked_mul(10)?
                .checked_add(i128::from(digit.checked_sub(b'0')?))?;
        }
        for _ in frac.len()..scale {
            unscaled = unscaled.checked_mul(10)?;
        }
        out.push(if negative { -unscaled } else { unscaled });
    }
    let array = PrimitiveArray::<Decimal128Type>::new(ScalarBuffer::from(out), valid.finish())
        .with_precision_and_scale(u8::try_from(precision).ok()?, i8::try_from(scale).ok()?)
        .ok()?;
    Some(Arc::new(array))
}

/// See `json_records_to_arrow`: `(name, array, field)` per column.
pub fn records_to_arrow(content: &[u8]) -> Option<Vec<(String, ArrayRef, FieldRef)>> {
    let mut parser = Parser::new(content).ok()?;
    let mut columns = Columns::new(0);
    parser.records(&mut columns).ok()?;
    parser.finish().ok()?;
    let mut out = Vec::with_capacity(columns.names.len());
    for (name, values) in columns.names.into_iter().zip(columns.columns) {
        let array = column(values, true)?;
        let field: FieldRef = Arc::new(Field::new(name.as_ref(), array.data_type().clone(), true));
        out.push((name.into_owned(), array, field));
    }
    Some(out)
}
