//! Postgres binary COPY (`COPY … TO STDOUT (FORMAT binary)`) decoded into Arrow record batches.
//!
//! `CopyDecoder` reads the stream straight from libpq on psycopg2's connection (`from_libpq`,
//! see decode_libpq.rs), from a file descriptor (the read end of the pipe psycopg2's
//! `copy_expert` writes into) or from bytes, in large chunks, and builds one record batch of at
//! most `max_rows` rows per `read_batch` call with the GIL released. A malformed or truncated
//! stream raises `CopyDecodeError` naming the column and the row; a value the Arrow type cannot
//! hold raises `UnreadableValueError` with the value as Postgres prints it.

#[path = "decode_columns.rs"]
mod columns;
#[path = "decode_libpq.rs"]
mod libpq;
#[path = "decode_text.rs"]
mod text;

use std::fs::File;
use std::io::{Cursor, ErrorKind, Read};
use std::os::fd::FromRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};

use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_schema::SchemaRef;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3_arrow::{PyRecordBatch, PySchema};

use columns::{column_for, Column, FieldError};
use libpq::{Libpq, LibpqSource, ServerFailure};

create_exception!(
    _native,
    CopyDecodeError,
    PyValueError,
    "Binary COPY data that cannot be decoded: malformed, truncated, or a value its column's \
     reader does not take. Attributes: column (name or None), row (1-based), truncated."
);
create_exception!(
    _native,
    UnreadableValueError,
    CopyDecodeError,
    "A Postgres value its Arrow type cannot hold. Attributes: column, row, value (as Postgres \
     prints it), element (True for an element of an array column)."
);
create_exception!(
    _native,
    CopyServerError,
    PyException,
    "A COPY read from libpq that the server or libpq ended with an error. Attributes: message \
     (the error result's message; libpq's when it failed to read the stream, \"\" if the \
     connection is lost), sqlstate (or None), connection_message (libpq's message for the \
     connection), connection_bad (the connection is lost)."
);
create_exception!(
    _native,
    LibpqUnavailableError,
    PyException,
    "libpq's functions cannot be resolved from the library named: nothing was sent."
);

/// Where the decoder's bytes come from.
trait Source: Read + Send + Sync {
    /// Called when the reader stops, before the source is dropped (with the GIL released).
    fn finish(&mut self) {}
}

impl Source for File {}
impl Source for Cursor<Vec<u8>> {}
impl Source for LibpqSource {
    /// Reads the rest of the COPY and its results so the connection can run its next statement.
    fn finish(&mut self) {
        self.drain();
    }
}

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
const CHUNK: usize = 4 << 20;
/// A batch ends before its variable-width data could pass Arrow's 32-bit offsets (each column's
/// output is at most twice its wire bytes: uuid 20 → 36, `"char"` 5 → 4).
const BATCH_BYTES: usize = (i32::MAX as usize) / 2;
/// Rows reserved per column up front (and again after each batch); columns grow past it as
/// rows arrive, so a huge `capacity` or `max_rows` never allocates before data justifies it.
const RESERVE_ROWS: usize = 1 << 16;

enum Failure {
    Format,
    Truncated,
    Unsupported,
    Unreadable { value: String, element: bool },
    Io(std::io::Error),
}

struct DecodeError {
    kind: Failure,
    column: Option<usize>,
    row: u64,
    message: String,
}

/// The stream decoder, free of Python: a source, a buffer and one builder per column.
struct Decoder {
    source: Box<dyn Source>,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    at_eof: bool,
    header_read: bool,
    finished: bool,
    failed: bool,
    schema: SchemaRef,
    columns: Vec<Box<dyn Column>>,
    /// The fields of the row being decoded: (offset in buffer, length) or None for NULL.
    fields: Vec<Option<(usize, usize)>>,
    /// Rows decoded so far.
    rows: u64,
}

enum Framed {
    Row(usize),
    End,
    /// The buffer ends inside the row, in this column's field (None: in the row's header).
    Incomplete(Option<usize>),
}

impl Decoder {
    fn new(
        source: Box<dyn Source>,
        schema: SchemaRef,
        types: &[(u32, u32)],
        capacity: usize,
    ) -> Result<Self, String> {
        if types.len() != schema.fields().len() {
            return Err(format!(
                "{} Postgres types for {} columns",
                types.len(),
                schema.fields().len()
            ));
        }
        let columns = schema
            .fields()
            .iter()
            .zip(types)
            .map(|(field, (pg, element))| {
                column_for(*pg, *element, field.data_type(), capacity.min(RESERVE_ROWS))
                    .map_err(|message| format!("column {:?}: {message}", field.name()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            source,
            buffer: vec![0; CHUNK],
            start: 0,
            end: 0,
            at_eof: false,
            header_read: false,
            finished: false,
            failed: false,
            fields: Vec::with_capacity(columns.len()),
            schema,
            columns,
            rows: 0,
        })
    }

    fn error(&self, kind: Failure, column: Option<usize>, message: String) -> DecodeError {
        DecodeError {
            kind,
            column,
            row: self.rows + 1,
            message,
        }
    }

    /// Reads more of the source after what is buffered; false at its end.
    fn fill(&mut self) -> Result<bool, DecodeError> {
        if self.at_eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buffer.len() {
            let more = self.buffer.len();
            if self.buffer.try_reserve_exact(more).is_err() {
                let message = format!(
                    "cannot grow the read buffer past {} bytes for one row (out of memory)",
                    self.buffer.len()
                );
                return Err(self.error(Failure::Format, None, message));
            }
            self.buffer.resize(self.buffer.len() + more, 0);
        }
        loop {
            let spare = self.buffer.get_mut(self.end..).unwrap_or_default();
            match self.source.read(spare) {
                Ok(0) => {
                    self.at_eof = true;
                    return Ok(false);
                }
                Ok(count) => {
                    self.end += count;
                    return Ok(true);
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => {
                    let message = error.to_string();
                    return Err(self.error(Failure::Io(error), None, message));
                }
            }
        }
    }

    fn buffered(&self) -> &[u8] {
        self.buffer.get(self.start..self.end).unwrap_or_default()
    }

    fn read_header(&mut self) -> Result<(), DecodeError> {
        loop {
            let data = self.buffered();
            if data.len() >= 19 {
                let (signature, rest) = data.split_at(11);
                if signature != SIGNATURE {
                    return Err(self.error(
                        Failure::Format,
                        None,
                        "not binary COPY data (no PGCOPY signature)".to_owned(),
                    ));
                }
                let flags = be_u32(rest, 0);
                let extension = be_u32(rest, 4) as usize;
                // Bits 16-31 are critical: OIDs (bit 16) or a format newer than this reader.
                if flags & 0xFFFF_0000 != 0 {
                    return Err(self.error(
                        Failure::Format,
                        None,
                        format!("binary COPY header flags {flags:#x} (OIDs or a newer format)"),
                    ));
                }
                if data.len() >= 19 + extension {
                    self.start += 19 + extension;
                    self.header_read = true;
                    return Ok(());
                }
            }
            if !self.fill()? {
                return Err(self.error(
                    Failure::Truncated,
                    None,
                    format!(
                        "the data ends inside the binary COPY header ({} bytes)",
                        self.buffered().len()
                    ),
                ));
            }
        }
    }

    /// Locates the fields of the next row in the buffer.
    fn frame(&mut self) -> Result<Framed, DecodeError> {
        self.fields.clear();
        let data = self.buffer.get(self.start..self.end).unwrap_or_default();
        let Some(count) = data.get(..2) else {
            return Ok(Framed::Incomplete(None));
        };
        let count = i16::from_be_bytes([count[0], count[1]]);
        if count == -1 {
            return Ok(Framed::End);
        }
        if count as usize != self.columns.len() || count < 0 {
            return Err(self.error(
                Failure::Format,
                None,
                format!(
                    "a row of {count} fields where the query has {} columns",
                    self.columns.len()
                ),
            ));
        }
        let mut at = 2usize;
        for column in 0..self.columns.len() {
            let Some(length) = data.get(at..at + 4) else {
                return Ok(Framed::Incomplete(Some(column)));
            };
            let length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
            at += 4;
            if length == -1 {
                self.fields.push(None);
                continue;
            }
            if length < 0 {
                return Err(self.error(
                    Failure::Format,
                    Some(column),
                    format!("a field length of {length}"),
                ));
            }
            let length = length as usize;
            if data.len() - at < length {
                return Ok(Framed::Incomplete(Some(column)));
            }
            self.fields.push(Some((self.start + at, length)));
            at += length;
        }
        Ok(Framed::Row(at))
    }

    /// The next record batch of at most `max_rows` rows; None once the stream has ended.
    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>, DecodeError> {
        if self.failed {
            return Err(self.error(
                Failure::Format,
                None,
                "the decoder failed earlier".to_owned(),
            ));
        }
        let result = self.decode(max_rows.max(1));
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn decode(&mut self, max_rows: usize) -> Result<Option<RecordBatch>, DecodeError> {
        if self.finished {
            return Ok(None);
        }
        if !self.header_read {
            self.read_header()?;
        }
        let mut rows = 0usize;
        let mut bytes = 0usize;
        while rows < max_rows {
            let length = match self.frame()? {
                Framed::Row(length) => length,
                Framed::End => {
                    self.start += 2;
                    self.finish_stream()?;
                    break;
                }
                Framed::Incomplete(column) => {
                    if !self.fill()? {
                        let message = match (column, self.buffered().is_empty()) {
                            (None, true) => "the data ends without the end-of-data marker",
                            (None, false) => "the data ends inside a row's field count",
                            (Some(_), _) => "the data ends inside this field",
                        };
                        return Err(self.error(Failure::Truncated, column, message.to_owned()));
                    }
                    continue;
                }
            };
            if rows > 0 && bytes + length > BATCH_BYTES {
                break;
            }
            for index in 0..self.columns.len() {
                let field = match self.fields.get(index).copied().flatten() {
                    None => None,
                    Some((offset, length)) => self.buffer.get(offset..offset + length),
                };
                let outcome = match self.columns.get_mut(index) {
                    Some(column) => column.push(field),
                    None => Ok(()),
                };
                if let Err(error) = outcome {
                    return Err(self.field_error(error, index));
                }
            }
            self.start += length;
            self.rows += 1;
            rows += 1;
            bytes += length;
        }
        if rows == 0 {
            return Ok(None);
        }
        let mut arrays = Vec::with_capacity(self.columns.len());
        for index in 0..self.columns.len() {
            let finished = match self.columns.get_mut(index) {
                Some(column) => column.finish(max_rows.min(RESERVE_ROWS)),
                None => continue,
            };
            match finished {
                Ok(array) => arrays.push(array),
                Err(error) => return Err(self.field_error(error, index)),
            }
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .map(Some)
            .map_err(|e| self.error(Failure::Format, None, e.to_string()))
    }

    fn field_error(&self, error: FieldError, column: usize) -> DecodeError {
        let (kind, message) = match error {
            FieldError::Malformed(message) => (Failure::Format, message),
            FieldError::Unsupported(message) => (Failure::Unsupported, message),
            FieldError::Unreadable { value, element } => (
                Failure::Unreadable {
                    value: value.clone(),
                    element,
                },
                format!("{value:?} does not fit the column's Arrow type"),
            ),
        };
        self.error(kind, Some(column), message)
    }

    /// After the end-of-data marker: nothing may follow.
    fn finish_stream(&mut self) -> Result<(), DecodeError> {
        while self.buffered().is_empty() && self.fill()? {}
        if !self.buffered().is_empty() {
            return Err(self.error(
                Failure::Format,
                None,
                format!(
                    "{} bytes after the end-of-data marker",
                    self.buffered().len()
                ),
            ));
        }
        self.finished = true;
        Ok(())
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(slice) = bytes.get(at..at + 4) {
        word.copy_from_slice(slice);
    }
    u32::from_be_bytes(word)
}

fn server_error(py: Python<'_>, failure: &ServerFailure) -> PyErr {
    let error = CopyServerError::new_err(failure.to_string());
    let instance = error.value(py);
    let _ = instance.setattr("message", failure.message.as_str());
    let _ = instance.setattr("sqlstate", failure.sqlstate.as_deref());
    let _ = instance.setattr("connection_message", failure.connection_message.as_str());
    let _ = instance.setattr("connection_bad", failure.connection_bad);
    error
}

/// `CopyServerError` for an I/O error that holds a libpq `ServerFailure`, else `other(io)`.
fn io_error(
    py: Python<'_>,
    io: std::io::Error,
    other: impl FnOnce(std::io::Error) -> PyErr,
) -> PyErr {
    match io.get_ref().and_then(|e| e.downcast_ref::<ServerFailure>()) {
        Some(failure) => server_error(py, failure),
        None => other(io),
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// Decodes Postgres binary COPY data into Arrow record batches of a given schema.
///
/// `CopyDecoder(fd, schema, types)` takes ownership of the file descriptor `fd` (closed by
/// `close()` or when the decoder is collected; left open if the constructor raises).
/// `types` holds one `(oid, element_oid)` pair per field of `schema`: the Postgres type each
/// column arrives as, and for arrays the elements' type (0 for scalars).
#[pyclass(module = "dataloader_rust._native")]
pub struct CopyDecoder {
    decoder: Option<Decoder>,
    names: Vec<String>,
}

impl CopyDecoder {
    fn build(
        source: impl FnOnce() -> Box<dyn Source>,
        schema: PySchema,
        types: Vec<(u32, u32)>,
        capacity: usize,
    ) -> PyResult<Self> {
        let schema = schema.into_inner();
        let names = schema.fields().iter().map(|f| f.name().clone()).collect();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            Decoder::new(Box::new(Cursor::new(Vec::new())), schema, &types, capacity)
        }));
        let mut decoder = match outcome {
            Ok(Ok(decoder)) => decoder,
            Ok(Err(message)) => return Err(PyValueError::new_err(message)),
            Err(payload) => return Err(PyRuntimeError::new_err(panic_text(payload.as_ref()))),
        };
        decoder.source = source();
        Ok(Self {
            decoder: Some(decoder),
            names,
        })
    }

    fn raise(&self, py: Python<'_>, error: DecodeError) -> PyErr {
        let name = error.column.and_then(|i| self.names.get(i)).cloned();
        let place = match &name {
            Some(name) => format!("column {name:?}, row {}", error.row),
            None => format!("row {}", error.row),
        };
        let message = format!("binary COPY data, {place}: {}", error.message);
        let (exception, value, element, truncated) = match error.kind {
            Failure::Unreadable { value, element } => (
                UnreadableValueError::new_err(message),
                Some(value),
                element,
                false,
            ),
            Failure::Io(io) => return io_error(py, io, PyErr::from),
            Failure::Truncated => (CopyDecodeError::new_err(message), None, false, true),
            Failure::Format | Failure::Unsupported => {
                (CopyDecodeError::new_err(message), None, false, false)
            }
        };
        let instance = exception.value(py);
        let _ = instance.setattr("column", name);
        let _ = instance.setattr("row", error.row);
        let _ = instance.setattr("value", value);
        let _ = instance.setattr("element", element);
        let _ = instance.setattr("truncated", truncated);
        exception
    }
}

#[pymethods]
impl CopyDecoder {
    #[new]
    #[pyo3(signature = (fd, schema, types, capacity = 65536))]
    fn new(fd: i32, schema: PySchema, types: Vec<(u32, u32)>, capacity: usize) -> PyResult<Self> {
        if fd < 0 {
            return Err(PyValueError::new_err(format!(
                "invalid file descriptor {fd}"
            )));
        }
        // SAFETY: the caller hands over an open descriptor it no longer uses (documented above).
        let source = move || -> Box<dyn Source> { Box::new(unsafe { File::from_raw_fd(fd) }) };
        Self::build(source, schema, types, capacity)
    }

    /// A decoder over `data`, the whole binary COPY stream.
    #[staticmethod]
    #[pyo3(signature = (data, schema, types, capacity = 65536))]
    fn from_bytes(
        data: Vec<u8>,
        schema: PySchema,
        types: Vec<(u32, u32)>,
        capacity: usize,
    ) -> PyResult<Self> {
        let source = move || -> Box<dyn Source> { Box::new(Cursor::new(data)) };
        Self::build(source, schema, types, capacity)
    }

    /// A decoder over `COPY … TO STDOUT (FORMAT binary)` run by libpq on psycopg2's connection.
    ///
    /// `library` is a loaded shared object whose dependencies hold the libpq psycopg2 uses
    /// (psycopg2's extension module): its functions are resolved there, never loaded anew;
    /// `LibpqUnavailableError` says they cannot be, before anything is sent. `pgconn` is the
    /// connection's `PGconn*` (`connection.pgconn_ptr`), idle; `sql` is sent on it and the
    /// server's start of the COPY awaited with the GIL released (`CopyServerError` if the
    /// server refuses it). From then until `close()` (or the end of the data) the decoder owns
    /// the connection: nothing else may use it, from any thread, and it must stay open.
    /// `close()` reads the rest of the COPY (cancel it first to cut it short) and its results,
    /// so the connection can run its next statement; a decoder dropped without `close()` never
    /// touches the connection again. Not thread-safe: one thread reads.
    #[staticmethod]
    #[pyo3(signature = (library, pgconn, sql, schema, types, capacity = 65536))]
    fn from_libpq(
        py: Python<'_>,
        library: &str,
        pgconn: usize,
        sql: &str,
        schema: PySchema,
        types: Vec<(u32, u32)>,
        capacity: usize,
    ) -> PyResult<Self> {
        if pgconn == 0 {
            return Err(PyValueError::new_err("no connection (PGconn* is NULL)"));
        }
        let libpq = Libpq::load(library).map_err(LibpqUnavailableError::new_err)?;
        let empty = || -> Box<dyn Source> { Box::new(Cursor::new(Vec::new())) };
        let mut reader = Self::build(empty, schema, types, capacity)?;
        let started = py.detach(|| {
            catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: the caller hands over psycopg2's live, idle connection (documented).
                unsafe { LibpqSource::start(libpq, pgconn, sql) }
            }))
        });
        let source = match started {
            Ok(Ok(source)) => source,
            Ok(Err(io)) => {
                return Err(io_error(py, io, |io| PyValueError::new_err(io.to_string())));
            }
            Err(payload) => {
                return Err(PyRuntimeError::new_err(format!(
                    "binary COPY reader panicked: {}",
                    panic_text(payload.as_ref())
                )))
            }
        };
        if let Some(decoder) = reader.decoder.as_mut() {
            decoder.source = Box::new(source);
        }
        Ok(reader)
    }

    /// The next `pyarrow.RecordBatch` of at most `max_rows` rows, or None at the end of the data.
    fn read_batch(&mut self, py: Python<'_>, max_rows: usize) -> PyResult<Option<Py<PyAny>>> {
        let Some(decoder) = self.decoder.as_mut() else {
            return Err(PyValueError::new_err("the decoder is closed"));
        };
        let outcome = py.detach(|| {
            catch_unwind(AssertUnwindSafe(|| decoder.next_batch(max_rows))).map_err(|payload| {
                decoder.failed = true;
                panic_text(payload.as_ref())
            })
        });
        match outcome {
            Ok(Ok(Some(batch))) => Ok(Some(PyRecordBatch::new(batch).into_pyarrow(py)?.unbind())),
            Ok(Ok(None)) => Ok(None),
            Ok(Err(error)) => Err(self.raise(py, error)),
            Err(panic) => Err(PyRuntimeError::new_err(format!(
                "binary COPY decoder panicked: {panic}"
            ))),
        }
    }

    /// Rows decoded so far.
    #[getter]
    fn rows(&self) -> u64 {
        self.decoder.as_ref().map_or(0, |d| d.rows)
    }

    /// Closes the source (the file descriptor); further reads raise. A libpq COPY is read to its
    /// end with the GIL released, or with `drain=False` left alone, for a connection that is
    /// closed or no longer this reader's: one still open is then left in the middle of the COPY
    /// (`PQsendQuery` refuses to run on it; `PQexec` reads past the rest).
    #[pyo3(signature = (drain = true))]
    fn close(&mut self, py: Python<'_>, drain: bool) -> PyResult<()> {
        let Some(mut decoder) = self.decoder.take() else {
            return Ok(());
        };
        py.detach(move || {
            catch_unwind(AssertUnwindSafe(move || {
                if drain {
                    decoder.source.finish();
                }
                drop(decoder);
            }))
        })
        .map_err(|payload| {
            PyRuntimeError::new_err(format!(
                "binary COPY reader panicked while closing: {}",
                panic_text(payload.as_ref())
            ))
        })
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CopyDecoder>()?;
    m.add("CopyDecodeError", m.py().get_type::<CopyDecodeError>())?;
    m.add(
        "UnreadableValueError",
        m.py().get_type::<UnreadableValueError>(),
    )?;
    m.add("CopyServerError", m.py().get_type::<CopyServerError>())?;
    m.add(
        "LibpqUnavailableError",
        m.py().get_type::<LibpqUnavailableError>(),
    )?;
    Ok(())
}
