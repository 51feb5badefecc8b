//! Arrow record batches into Postgres' binary COPY format (`COPY … FROM STDIN (FORMAT binary)`).
//!
//! Each column is encoded for the type of the column it lands in (the caller looks the target
//! types up in the catalog): an `int64` into `int4` is range checked and written in four bytes, a
//! `float64` into `numeric` becomes the base-10000 digits of its shortest decimal form, and so on.
//! A pair this module does not encode is reported before any work is done, so the caller can
//! take the CSV path for the whole batch instead.

mod numeric;
mod plan;

use std::panic::{catch_unwind, AssertUnwindSafe};

use arrow_array::RecordBatch;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3_arrow::PyRecordBatch;

use plan::{plan_column, Encoder, Target};

/// `PGCOPY\n\377\r\n\0`, then the flags field and the header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Why a batch could not be encoded.
enum Failure {
    /// A (column type, target type) pair this module does not encode: take the CSV path.
    Unsupported(String),
    /// A value the target type cannot hold, or malformed input.
    Value(String),
}

/// Encode `batch` as a complete binary COPY stream (header, rows, trailer).
///
/// `targets` holds, per column of `batch` and in its order, the target column's type oid, its
/// typmod, and its element type oid (0 unless an array). `session_utc` tells whether the
/// session's TimeZone is UTC (a timestamp without zone into `timestamptz` is encoded only then,
/// as the CSV path's text would be read in the session's zone).
///
/// Returns `None` when a column's (Arrow type, target type) pair is not encoded here.
///
/// :raises ValueError: for a value the target type cannot hold, or a `targets` list that does
///     not match the batch, naming the column and the row.
#[pyfunction]
#[pyo3(signature = (batch, targets, session_utc))]
fn encode_copy_binary<'py>(
    py: Python<'py>,
    batch: &Bound<'py, PyAny>,
    targets: Vec<(u32, i32, u32)>,
    session_utc: bool,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let Ok(batch) = import_batch(batch)? else {
        return Ok(None);
    };
    let outcome = py.detach(move || {
        catch_unwind(AssertUnwindSafe(|| {
            encode_batch(&batch, &targets, session_utc)
        }))
    });
    match outcome {
        Ok(Ok(bytes)) => Ok(Some(PyBytes::new(py, &bytes))),
        Ok(Err(Failure::Unsupported(_))) => Ok(None),
        Ok(Err(Failure::Value(message))) => Err(PyValueError::new_err(message)),
        Err(_) => Err(PyRuntimeError::new_err(
            "binary COPY encoding failed unexpectedly (a bug in dataloader_rust)",
        )),
    }
}

/// The reason a batch is not encoded natively, or None if it is: for diagnostics and tests.
#[pyfunction]
#[pyo3(signature = (batch, targets, session_utc))]
fn unsupported_reason(
    batch: &Bound<'_, PyAny>,
    targets: Vec<(u32, i32, u32)>,
    session_utc: bool,
) -> PyResult<Option<String>> {
    let batch = match import_batch(batch)? {
        Ok(batch) => batch,
        Err(reason) => return Ok(Some(reason)),
    };
    match plan_batch(&batch, &targets, session_utc) {
        Ok(_) => Ok(None),
        Err(Failure::Unsupported(reason)) => Ok(Some(reason)),
        Err(Failure::Value(message)) => Err(PyValueError::new_err(message)),
    }
}

/// `batch` (any object with `__arrow_c_array__`) imported into arrow-rs, or why it is not
/// encoded here: arrow-rs asserts (panics) on some layouts it misreads on import (a sliced
/// struct nested in a struct or a fixed-size list), and such a batch takes the CSV path.
///
/// :raises TypeError: (or the import's own error) when `batch` is not an Arrow record batch.
fn import_batch(batch: &Bound<'_, PyAny>) -> PyResult<Result<RecordBatch, String>> {
    match catch_unwind(AssertUnwindSafe(|| batch.extract::<PyRecordBatch>())) {
        Ok(Ok(batch)) => Ok(Ok(batch.into_inner())),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Ok(Err(
            "the batch does not import into arrow-rs (its import panicked)".to_owned(),
        )),
    }
}

fn plan_batch<'a>(
    batch: &'a RecordBatch,
    targets: &[(u32, i32, u32)],
    session_utc: bool,
) -> Result<Vec<Encoder<'a>>, Failure> {
    let schema = batch.schema();
    if targets.len() != batch.num_columns() {
        return Err(Failure::Value(format!(
            "binary COPY: the batch has {} columns but {} target column types were given",
            batch.num_columns(),
            targets.len()
        )));
    }
    let mut encoders = Vec::with_capacity(targets.len());
    for ((field, column), &(oid, typmod, element)) in
        schema.fields().iter().zip(batch.columns()).zip(targets)
    {
        let target = Target {
            oid,
            typmod,
            element,
        };
        match plan_column(column.as_ref(), target, session_utc) {
            Some(encoder) => encoders.push(encoder),
            None => {
                return Err(Failure::Unsupported(format!(
                    "column '{}': {} into type oid {} is not encoded natively",
                    field.name(),
                    column.data_type(),
                    oid
                )))
            }
        }
    }
    Ok(encoders)
}

fn encode_batch(
    batch: &RecordBatch,
    targets: &[(u32, i32, u32)],
    session_utc: bool,
) -> Result<Vec<u8>, Failure> {
    let encoders = plan_batch(batch, targets, session_utc)?;
    let rows = batch.num_rows();
    let estimate = encoders
        .iter()
        .map(|encoder| encoder.size_hint(rows))
        .fold(HEADER.len() + 2 + rows * 2, usize::saturating_add);
    let mut out = Vec::with_capacity(estimate);
    out.extend_from_slice(HEADER);
    let mut scratch = String::with_capacity(64);
    encode_rows(
        batch,
        &encoders,
        0..rows,
        &mut out,
        usize::MAX,
        &mut scratch,
    )?;
    out.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(out)
}

/// Append the rows `rows` of `batch` to `out`, each as its field count and its values.
fn encode_rows(
    batch: &RecordBatch,
    encoders: &[Encoder<'_>],
    rows: std::ops::Range<usize>,
    out: &mut Vec<u8>,
    until: usize,
    scratch: &mut String,
) -> Result<usize, Failure> {
    let field_count = i16::try_from(encoders.len()).map_err(|_| {
        Failure::Value(format!(
            "binary COPY: {} columns exceed Postgres' limit",
            encoders.len()
        ))
    })?;
    for row in rows.clone() {
        out.extend_from_slice(&field_count.to_be_bytes());
        for (index, encoder) in encoders.iter().enumerate() {
            encoder
                .write(row, out, scratch)
                .map_err(|message| value_error(batch, index, row, &message))?;
        }
        if out.len() >= until {
            return Ok(row + 1);
        }
    }
    Ok(rows.end)
}

fn value_error(batch: &RecordBatch, index: usize, row: usize, message: &str) -> Failure {
    let schema = batch.schema();
    let name = schema
        .fields()
        .get(index)
        .map(|field| field.name().as_str())
        .unwrap_or("?");
    // Rows are counted from 1, as the decoder and the CSV codec count them.
    let row = row.saturating_add(1);
    Failure::Value(format!("column '{name}', row {row}: {message}"))
}

/// Check every value of the columns whose values may be refused (see `Encoder::fallible`).
fn check_values(batch: &RecordBatch, encoders: &[Encoder<'_>]) -> Result<(), Failure> {
    let mut sink = Vec::with_capacity(64);
    let mut scratch = String::with_capacity(64);
    for (index, encoder) in encoders.iter().enumerate() {
        if !encoder.fallible() {
            continue;
        }
        for row in 0..batch.num_rows() {
            sink.clear();
            encoder
                .write(row, &mut sink, &mut scratch)
                .map_err(|message| value_error(batch, index, row, &message))?;
        }
    }
    Ok(())
}

/// A batch's binary COPY stream, produced a chunk at a time by `read` (a file for psycopg2's
/// `copy_expert`), so the server works on one chunk while the next is encoded. Made by
/// `copy_encoder`, which has checked every value that could be refused.
#[pyclass(module = "dataloader_rust._native")]
struct CopyEncoder {
    batch: RecordBatch,
    targets: Vec<(u32, i32, u32)>,
    session_utc: bool,
    next_row: usize,
    started: bool,
    finished: bool,
    buffer: Vec<u8>,
}

#[pymethods]
impl CopyEncoder {
    /// The next chunk of the stream: about `size` bytes (whole rows; all of it if negative),
    /// `b""` once the trailer has been handed out.
    #[pyo3(signature = (size = -1))]
    fn read<'py>(&mut self, py: Python<'py>, size: isize) -> PyResult<Bound<'py, PyBytes>> {
        if self.finished {
            return Ok(PyBytes::new(py, b""));
        }
        let until = usize::try_from(size).unwrap_or(usize::MAX);
        let outcome = py.detach(|| {
            catch_unwind(AssertUnwindSafe(|| {
                let encoders = plan_batch(&self.batch, &self.targets, self.session_utc)?;
                self.buffer.clear();
                if !self.started {
                    self.buffer.extend_from_slice(HEADER);
                    self.started = true;
                }
                let mut scratch = String::with_capacity(64);
                let rows = self.next_row..self.batch.num_rows();
                self.next_row = encode_rows(
                    &self.batch,
                    &encoders,
                    rows,
                    &mut self.buffer,
                    until,
                    &mut scratch,
                )?;
                if self.next_row >= self.batch.num_rows() {
                    self.buffer.extend_from_slice(&(-1i16).to_be_bytes());
                    self.finished = true;
                }
                Ok(())
            }))
        });
        match outcome {
            Ok(Ok(())) => Ok(PyBytes::new(py, &self.buffer)),
            Ok(Err(Failure::Value(message) | Failure::Unsupported(message))) => {
                self.finished = true;
                Err(PyValueError::new_err(message))
            }
            Err(_) => {
                self.finished = true;
                Err(PyRuntimeError::new_err(
                    "binary COPY encoding failed unexpectedly (a bug in dataloader_rust)",
                ))
            }
        }
    }
}

/// A `CopyEncoder` for `batch` (arguments as `encode_copy_binary`), or None when a column's
/// (Arrow type, target type) pair is not encoded here.
///
/// :raises ValueError: for a value the target type cannot hold, naming the column and the row
///     (every such value is found here, before any byte is sent).
#[pyfunction]
#[pyo3(signature = (batch, targets, session_utc))]
fn copy_encoder(
    py: Python<'_>,
    batch: &Bound<'_, PyAny>,
    targets: Vec<(u32, i32, u32)>,
    session_utc: bool,
) -> PyResult<Option<CopyEncoder>> {
    let Ok(batch) = import_batch(batch)? else {
        return Ok(None);
    };
    let checked = py.detach(|| {
        catch_unwind(AssertUnwindSafe(|| {
            let encoders = plan_batch(&batch, &targets, session_utc)?;
            check_values(&batch, &encoders)
        }))
    });
    match checked {
        Ok(Ok(())) => Ok(Some(CopyEncoder {
            batch,
            targets,
            session_utc,
            next_row: 0,
            started: false,
            finished: false,
            buffer: Vec::new(),
        })),
        Ok(Err(Failure::Unsupported(_))) => Ok(None),
        Ok(Err(Failure::Value(message))) => Err(PyValueError::new_err(message)),
        Err(_) => Err(PyRuntimeError::new_err(
            "binary COPY encoding failed unexpectedly (a bug in dataloader_rust)",
        )),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CopyEncoder>()?;
    m.add_function(wrap_pyfunction!(copy_encoder, m)?)?;
    m.add_function(wrap_pyfunction!(encode_copy_binary, m)?)?;
    m.add_function(wrap_pyfunction!(unsupported_reason, m)?)?;
    Ok(())
}
