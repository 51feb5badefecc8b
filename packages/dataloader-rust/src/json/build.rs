//! Arrow columns from parsed records, typed as `records_to_table` types them.
//!
//! Top level (a field of the records): all null → null; booleans → bool; integers within int64
//! → int64; numbers with a fraction, with or without integers beside them → the decimal of
//! `records._decimals`; strings → utf8; objects → struct; arrays → list. Nested (struct fields,
//! list items), Arrow's own inference: the same, except that integers beside fractions are
//! left to Python. Every other mix, a number with an exponent, an integer past int64, a decimal
//! past 38 digits and a struct without fields are left to Python (`None`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::types::{Decimal128Type, Int64Type};
use arrow_array::{
    ArrayRef, BooleanArray, ListArray, NullArray, PrimitiveArray, StringArray, StructArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{Field, FieldRef, Fields};

use super::parse::{NumKind, Parser, Val, NULL};

/// The fields of `values` (objects or nulls): names in first-appearance order and one value
/// per input per name (null where the object lacks the name or is null itself).
fn fields<'v, 'a>(values: &[&'v Val<'a>]) -> Option<(Vec<&'v str>, Vec<Vec<&'v Val<'a>>>)> {
    let mut names: Vec<&'v str> = Vec::new();
    let mut index: HashMap<&'v str, usize> = HashMap::new();
    let mut columns: Vec<Vec<&'v Val<'a>>> = Vec::new();
    for (row, value) in values.iter().enumerate() {
        match value {
            Val::Null => {}
            Val::Obj(members) => {
                for (key, member) in members {
                    let at = match index.get(key.as_ref()) {
                        Some(&at) => at,
                        None => {
                            index.insert(key.as_ref(), columns.len());
                            names.push(key.as_ref());
                            let mut column = Vec::with_capacity(values.len());
                            column.resize(row, &NULL);
                            columns.push(column);
                            columns.len() - 1
                        }
                    };
                    columns.get_mut(at)?.push(member);
                }
            }
            _ => return None,
        }
        for column in columns.iter_mut() {
            if column.len() <= row {
                column.push(&NULL);
            }
        }
    }
    Some((names, columns))
}

/// The validity of `values` (None when none is null).
fn validity(values: &[&Val<'_>]) -> Option<NullBuffer> {
    if values.iter().any(|v| matches!(v, Val::Null)) {
        Some(NullBuffer::from(
            values
                .iter()
                .map(|v| !matches!(v, Val::Null))
                .collect::<Vec<bool>>(),
        ))
    } else {
        None
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
}

impl Kinds {
    fn of(values: &[&Val<'_>]) -> Option<Kinds> {
        let mut kinds = Kinds::default();
        for value in values {
            match value {
                Val::Null => {}
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
fn column(values: &[&Val<'_>], top: bool) -> Option<ArrayRef> {
    let kinds = Kinds::of(values)?;
    let decimal = kinds.frac && (kinds.count() == 1 || (top && kinds.int && kinds.count() == 2));
    if kinds.count() == 0 {
        Some(Arc::new(NullArray::new(values.len())))
    } else if decimal {
        decimals(values)
    } else if kinds.count() != 1 {
        None
    } else if kinds.bool {
        let bits: BooleanBuffer = values
            .iter()
            .map(|v| matches!(v, Val::Bool(true)))
            .collect();
        Some(Arc::new(BooleanArray::new(bits, validity(values))))
    } else if kinds.int {
        let mut out = Vec::with_capacity(values.len());
        for value in values {
            out.push(match value {
                Val::Num(text, _) => std::str::from_utf8(text).ok()?.parse::<i64>().ok()?,
                _ => 0,
            });
        }
        let array = PrimitiveArray::<Int64Type>::new(ScalarBuffer::from(out), validity(values));
        Some(Arc::new(array))
    } else if kinds.str {
        strings(values)
    } else if kinds.obj {
        structs(values)
    } else {
        lists(values)
    }
}

fn strings(values: &[&Val<'_>]) -> Option<ArrayRef> {
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
        if let Val::Str(text) = value {
            data.extend_from_slice(text.as_bytes());
        }
        offsets.push(i32::try_from(data.len()).ok()?);
    }
    let array = StringArray::try_new(
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Buffer::from_vec(data),
        validity(values),
    )
    .ok()?;
    Some(Arc::new(array))
}

fn structs(values: &[&Val<'_>]) -> Option<ArrayRef> {
    let (names, columns) = fields(values)?;
    if names.is_empty() {
        return None;
    }
    let mut children = Vec::with_capacity(names.len());
    let mut schema = Vec::with_capacity(names.len());
    for (name, members) in names.iter().zip(&columns) {
        let child = column(members, false)?;
        schema.push(Field::new(*name, child.data_type().clone(), true));
        children.push(child);
    }
    let array = StructArray::try_new(Fields::from(schema), children, validity(values)).ok()?;
    Some(Arc::new(array))
}

fn lists(values: &[&Val<'_>]) -> Option<ArrayRef> {
    let mut offsets: Vec<i32> = Vec::with_capacity(values.len() + 1);
    let mut items: Vec<&Val<'_>> = Vec::new();
    offsets.push(0);
    for value in values {
        if let Val::Arr(list) = value {
            items.extend(list.iter());
        }
        offsets.push(i32::try_from(items.len()).ok()?);
    }
    let child = column(&items, false)?;
    let field = Arc::new(Field::new("item", child.data_type().clone(), true));
    let array = ListArray::try_new(
        field,
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        child,
        validity(values),
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
fn decimals(values: &[&Val<'_>]) -> Option<ArrayRef> {
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
    let mut out: Vec<i128> = Vec::with_capacity(values.len());
    for value in values {
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
    let array = PrimitiveArray::<Decimal128Type>::new(ScalarBuffer::from(out), validity(values))
        .with_precision_and_scale(u8::try_from(precision).ok()?, i8::try_from(scale).ok()?)
        .ok()?;
    Some(Arc::new(array))
}

/// See `json_records_to_arrow`: `(name, array, field)` per column.
pub fn records_to_arrow(content: &[u8]) -> Option<Vec<(String, ArrayRef, FieldRef)>> {
    let mut parser = Parser::new(content).ok()?;
    let document = parser.value(0).ok()?;
    parser.finish().ok()?;
    let Val::Arr(records) = &document else {
        return None;
    };
    let rows: Vec<&Val<'_>> = records.iter().collect();
    if rows.iter().any(|r| !matches!(r, Val::Obj(_))) {
        return None;
    }
    let (names, columns) = fields(&rows)?;
    let mut out = Vec::with_capacity(names.len());
    for (name, values) in names.iter().zip(&columns) {
        let array = column(values, true)?;
        let field: FieldRef = Arc::new(Field::new(*name, array.data_type().clone(), true));
        out.push((name.to_string(), array, field));
    }
    Some(out)
}
