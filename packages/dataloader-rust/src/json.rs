//! JSON records to Arrow: the REST source's pages go from the response bytes to Arrow columns
//! without becoming Python objects.
//!
//! A hand-written recursive-descent parser over the bytes keeps every number as its text, so
//! the column types follow `dataloader_rest.records.records_to_table` exactly (before its
//! instants step): `json.loads(content, parse_float=Decimal)` then Arrow's inference. Anything
//! outside the subset this module reproduces (see `json_records_to_arrow`) gives `None`, and
//! the caller then takes the Python path: `None` is always safe, a different result never is.

mod build;
mod parse;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3_arrow::PyArray;

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Parses `content` (one JSON value), follows `keys` through objects (the last occurrence of a
/// key repeated in one object) and returns `(start, end, count)`: the byte span of the array
/// found there and its number of items, all objects. `None` when the content is not JSON this
/// module reads as Python's `json.loads` does, the path is missing, or the value there is not
/// an array of objects.
#[pyfunction]
fn json_locate(
    py: Python<'_>,
    content: &Bound<'_, PyBytes>,
    keys: Vec<String>,
) -> PyResult<Option<(usize, usize, usize)>> {
    let bytes = content.as_bytes();
    py.detach(|| catch_unwind(AssertUnwindSafe(|| parse::locate(bytes, &keys))))
        .map_err(|payload| {
            PyRuntimeError::new_err(format!(
                "json_locate panicked: {}",
                panic_text(payload.as_ref())
            ))
        })
}

/// `content`, a JSON array of objects, as `(names, arrays)`: one Arrow array per field, the
/// columns `records_to_table(json.loads(content, parse_float=Decimal))` builds before its
/// instants step. `None` when the content is outside the subset reproduced here.
#[pyfunction]
fn json_records_to_arrow(
    py: Python<'_>,
    content: &Bound<'_, PyBytes>,
) -> PyResult<Option<(Vec<String>, Vec<PyArray>)>> {
    let bytes = content.as_bytes();
    let outcome = py
        .detach(|| catch_unwind(AssertUnwindSafe(|| build::records_to_arrow(bytes))))
        .map_err(|payload| {
            PyRuntimeError::new_err(format!(
                "json_records_to_arrow panicked: {}",
                panic_text(payload.as_ref())
            ))
        })?;
    Ok(outcome.map(|columns| {
        columns
            .into_iter()
            .map(|(name, array, field)| (name, PyArray::new(array, field)))
            .unzip()
    }))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(json_locate, m)?)?;
    m.add_function(wrap_pyfunction!(json_records_to_arrow, m)?)?;
    Ok(())
}
