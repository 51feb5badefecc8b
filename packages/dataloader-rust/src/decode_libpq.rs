//! A binary `COPY … TO STDOUT` read straight from libpq, on a connection psycopg2 opened.
//!
//! The functions come from the libpq already loaded in the process (`dlopen` with
//! `RTLD_NOLOAD`, never a second copy): the caller names the shared object whose dependencies
//! hold psycopg2's libpq (psycopg2's extension module), so `PGconn` and the functions agree.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io::{Error, Read};

/// The dynamic loader's functions (in libc, and in libdl for glibc before 2.34).
mod dl {
    use std::ffi::{c_char, c_int, c_void};

    pub const RTLD_NOW: c_int = 2;
    /// Only a library already loaded is opened (where the platform's value is known).
    #[cfg(target_os = "linux")]
    pub const RTLD_NOLOAD: Option<c_int> = Some(4);
    #[cfg(target_os = "macos")]
    pub const RTLD_NOLOAD: Option<c_int> = Some(0x10);
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    pub const RTLD_NOLOAD: Option<c_int> = None;

    #[cfg_attr(all(target_os = "linux", target_env = "gnu"), link(name = "dl"))]
    extern "C" {
        pub fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
        pub fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
        pub fn dlclose(handle: *mut c_void) -> c_int;
        pub fn dlerror() -> *mut c_char;
    }
}

const PGRES_COMMAND_OK: c_int = 1;
const PGRES_COPY_OUT: c_int = 3;
const PGRES_COPY_IN: c_int = 4;
const PGRES_COPY_BOTH: c_int = 8;
const CONNECTION_BAD: c_int = 1;
const PG_DIAG_SQLSTATE: c_int = b'C' as c_int;
/// More results than any COPY produces: a drain never loops forever on a confused connection.
const MAX_RESULTS: usize = 64;

type Conn = *mut c_void;
type Res = *mut c_void;

/// The libpq functions a COPY read needs, resolved from the loaded library.
pub(super) struct Libpq {
    handle: *mut c_void,
    send_query: unsafe extern "C" fn(Conn, *const c_char) -> c_int,
    get_result: unsafe extern "C" fn(Conn) -> Res,
    result_status: unsafe extern "C" fn(Res) -> c_int,
    result_error_message: unsafe extern "C" fn(Res) -> *const c_char,
    result_error_field: unsafe extern "C" fn(Res, c_int) -> *const c_char,
    error_message: unsafe extern "C" fn(Conn) -> *const c_char,
    clear: unsafe extern "C" fn(Res),
    get_copy_data: unsafe extern "C" fn(Conn, *mut *mut c_char, c_int) -> c_int,
    freemem: unsafe extern "C" fn(*mut c_void),
    status: unsafe extern "C" fn(Conn) -> c_int,
}

// SAFETY: the handle and the function pointers are process-wide and immutable; libpq's
// functions are called on one connection from one thread at a time (see `LibpqSource`).
unsafe impl Send for Libpq {}
unsafe impl Sync for Libpq {}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl call.
    let text = unsafe { dl::dlerror() };
    if text.is_null() {
        "unknown error".to_owned()
    } else {
        // SAFETY: checked non-NULL above; dlerror's string is NUL-terminated.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    }
}

macro_rules! symbol {
    ($handle:expr, $name:literal) => {{
        let name = concat!($name, "\0");
        // SAFETY: `handle` is a live dlopen handle and `name` is NUL-terminated.
        let address = unsafe { dl::dlsym($handle, name.as_ptr().cast()) };
        if address.is_null() {
            // SAFETY: closing the reference this resolver took; the library stays loaded.
            unsafe { dl::dlclose($handle) };
            return Err(format!("libpq function {} not found", $name));
        }
        // SAFETY: the symbol is libpq's function of this name, whose C signature the field's
        // type spells out (libpq-fe.h).
        unsafe { std::mem::transmute::<*mut c_void, _>(address) }
    }};
}

impl Libpq {
    /// Resolves libpq's functions through `library`, which must already be loaded.
    pub(super) fn load(library: &str) -> Result<Self, String> {
        let Some(no_load) = dl::RTLD_NOLOAD else {
            return Err("no RTLD_NOLOAD on this platform".to_owned());
        };
        let path = CString::new(library).map_err(|_| format!("{library:?}: a NUL in the path"))?;
        // SAFETY: a NUL-terminated path; RTLD_NOLOAD only finds a library already loaded.
        let handle = unsafe { dl::dlopen(path.as_ptr(), dl::RTLD_NOW | no_load) };
        if handle.is_null() {
            return Err(format!("{library:?} is not loaded: {}", dl_error()));
        }
        Ok(Self {
            handle,
            send_query: symbol!(handle, "PQsendQuery"),
            get_result: symbol!(handle, "PQgetResult"),
            result_status: symbol!(handle, "PQresultStatus"),
            result_error_message: symbol!(handle, "PQresultErrorMessage"),
            result_error_field: symbol!(handle, "PQresultErrorField"),
            error_message: symbol!(handle, "PQerrorMessage"),
            clear: symbol!(handle, "PQclear"),
            get_copy_data: symbol!(handle, "PQgetCopyData"),
            freemem: symbol!(handle, "PQfreemem"),
            status: symbol!(handle, "PQstatus"),
        })
    }
}

impl Drop for Libpq {
    fn drop(&mut self) {
        // SAFETY: the reference `load` took; psycopg2 keeps the library itself loaded.
        unsafe { dl::dlclose(self.handle) };
    }
}

fn text(pointer: *const c_char) -> Option<String> {
    if pointer.is_null() {
        return None;
    }
    // SAFETY: libpq's strings are NUL-terminated and live while their result/connection does.
    Some(
        unsafe { CStr::from_ptr(pointer) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// How the server or libpq ended a COPY, as psycopg2 would see it.
#[derive(Debug)]
pub(super) struct ServerFailure {
    /// The error result's message ("ERROR:  …"), or "" where psycopg2 has no result to read one
    /// from (libpq failed to read the stream).
    pub message: String,
    pub sqlstate: Option<String>,
    /// libpq's own message for the connection (`PQerrorMessage`).
    pub connection_message: String,
    /// The connection is lost (`PQstatus` is `CONNECTION_BAD`, which psycopg2 checks too).
    pub connection_bad: bool,
}

impl std::fmt::Display for ServerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = if self.message.is_empty() {
            &self.connection_message
        } else {
            &self.message
        };
        f.write_str(text.trim_end())
    }
}

impl std::error::Error for ServerFailure {}

/// One CopyData message from libpq, handed out in pieces.
struct Chunk {
    data: *mut c_char,
    length: usize,
    at: usize,
}

/// The COPY's bytes as libpq receives them: `Read` returns what libpq has buffered (blocking
/// only for the first message), `Ok(0)` once the COPY ended with `PGRES_COMMAND_OK`, and an
/// error holding a `ServerFailure` otherwise.
pub(super) struct LibpqSource {
    libpq: Libpq,
    conn: Conn,
    chunk: Option<Chunk>,
    ended: bool,
    /// A failure that came after bytes this read returned: the next read reports it, so the
    /// rows before a server error are decoded first (as they would be from a pipe).
    failed: Option<Error>,
}

// SAFETY: the source owns its position in the connection's COPY: only the thread holding the
// decoder (behind pyo3's borrow checking) calls into libpq with it, one call at a time.
unsafe impl Send for LibpqSource {}
unsafe impl Sync for LibpqSource {}

impl LibpqSource {
    /// Sends `sql` (a `COPY … TO STDOUT`) on `conn` and waits for the server to start the COPY.
    ///
    /// # Safety
    /// `conn` must be a live `PGconn*` of `libpq`'s library, idle, and used by nothing else until
    /// the source is finished or dropped.
    pub(super) unsafe fn start(libpq: Libpq, conn: usize, sql: &str) -> Result<Self, Error> {
        let mut source = Self {
            libpq,
            conn: conn as Conn,
            chunk: None,
            ended: true,
            failed: None,
        };
        let query = CString::new(sql).map_err(|_| Error::other("a NUL in the COPY statement"))?;
        // SAFETY: a live connection (caller's contract) and a NUL-terminated query.
        if unsafe { (source.libpq.send_query)(source.conn, query.as_ptr()) } == 0 {
            // Nothing was sent: any result still pending on the connection is not this read's.
            let mut failure = source.failure(None);
            failure.message = failure.connection_message.clone();
            return Err(Error::other(failure));
        }
        // SAFETY: as above.
        let result = unsafe { (source.libpq.get_result)(source.conn) };
        // SAFETY: a result from PQgetResult (NULL is taken by PQresultStatus as an error).
        let status = unsafe { (source.libpq.result_status)(result) };
        if status == PGRES_COPY_OUT {
            // SAFETY: the result is ours to free.
            unsafe { (source.libpq.clear)(result) };
            source.ended = false;
            return Ok(source);
        }
        let mut failure = source.failure(Some(result));
        if failure.message.is_empty() {
            failure.message = failure.connection_message.clone();
        }
        // SAFETY: the result is ours to free (PQclear takes NULL).
        unsafe { (source.libpq.clear)(result) };
        if status == PGRES_COPY_IN || status == PGRES_COPY_BOTH {
            return Err(Error::other("the statement is not a COPY TO STDOUT"));
        }
        source.drain_results();
        Err(Error::other(failure))
    }

    fn failure(&self, result: Option<Res>) -> ServerFailure {
        // SAFETY: the connection is live; the result, when given, is a live PGresult.
        unsafe {
            let connection_message =
                text((self.libpq.error_message)(self.conn)).unwrap_or_default();
            let (message, sqlstate) = match result {
                Some(result) if !result.is_null() => (
                    text((self.libpq.result_error_message)(result)).unwrap_or_default(),
                    text((self.libpq.result_error_field)(result, PG_DIAG_SQLSTATE)),
                ),
                _ => (String::new(), None),
            };
            ServerFailure {
                message,
                sqlstate,
                connection_message,
                connection_bad: (self.libpq.status)(self.conn) == CONNECTION_BAD,
            }
        }
    }

    /// Collects the results after the COPY data until libpq has none left; the last that is
    /// not `PGRES_COMMAND_OK` is the failure (psycopg2 raises each, the last one wins: after a
    /// FATAL error, "server closed the connection"). Stops at a COPY state it cannot leave.
    fn drain_results(&mut self) -> Option<ServerFailure> {
        let mut failure = None;
        for _ in 0..MAX_RESULTS {
            // SAFETY: a live connection owned by this source.
            let result = unsafe { (self.libpq.get_result)(self.conn) };
            if result.is_null() {
                break;
            }
            // SAFETY: a live result.
            let status = unsafe { (self.libpq.result_status)(result) };
            if status != PGRES_COMMAND_OK {
                failure = Some(self.failure(Some(result)));
            }
            // SAFETY: the result is ours to free.
            unsafe { (self.libpq.clear)(result) };
            if matches!(status, PGRES_COPY_OUT | PGRES_COPY_IN | PGRES_COPY_BOTH) {
                break;
            }
        }
        failure
    }

    fn release_chunk(&mut self) {
        if let Some(chunk) = self.chunk.take() {
            // SAFETY: a buffer PQgetCopyData allocated, freed once.
            unsafe { (self.libpq.freemem)(chunk.data.cast()) };
        }
    }

    /// The COPY ended (-1): its final result decides between end of data and failure.
    fn end(&mut self) -> Option<Error> {
        self.ended = true;
        self.drain_results().map(Error::other)
    }

    /// Reads and discards the rest of the COPY (after a cancel, its error) and every result, so
    /// the connection can run its next statement. A failure is not reported: the caller stopped.
    pub(super) fn drain(&mut self) {
        self.release_chunk();
        while !self.ended {
            let mut data: *mut c_char = std::ptr::null_mut();
            // SAFETY: a live connection in COPY OUT state; `data` receives a libpq buffer.
            let count = unsafe { (self.libpq.get_copy_data)(self.conn, &mut data, 0) };
            if count > 0 {
                // SAFETY: the buffer libpq just allocated.
                unsafe { (self.libpq.freemem)(data.cast()) };
                continue;
            }
            self.ended = true;
            self.drain_results();
        }
    }
}

impl Read for LibpqSource {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        let mut written = 0usize;
        while written < out.len() {
            if let Some(chunk) = self.chunk.as_mut() {
                let take = (chunk.length - chunk.at).min(out.len() - written);
                // SAFETY: `data` holds `length` bytes; `at + take <= length`.
                let piece = unsafe {
                    std::slice::from_raw_parts(chunk.data.cast::<u8>().add(chunk.at), take)
                };
                if let Some(target) = out.get_mut(written..written + take) {
                    target.copy_from_slice(piece);
                }
                chunk.at += take;
                written += take;
                if chunk.at == chunk.length {
                    self.release_chunk();
                }
                continue;
            }
            if self.ended {
                break;
            }
            let mut data: *mut c_char = std::ptr::null_mut();
            // Block for the first message only; then take what libpq already holds.
            let nonblocking = c_int::from(written > 0);
            // SAFETY: a live connection in COPY OUT state; `data` receives a libpq buffer.
            let count = unsafe { (self.libpq.get_copy_data)(self.conn, &mut data, nonblocking) };
            let failure = match count {
                0 => break,
                -1 => self.end(),
                count if count > 0 => {
                    self.chunk = Some(Chunk {
                        data,
                        length: count as usize,
                        at: 0,
                    });
                    None
                }
                _ => {
                    // libpq could not read the stream. A lost connection is worded as psycopg2
                    // words it (no result to read a message from); otherwise libpq's own
                    // message for the connection says what failed.
                    let mut failure = self.failure(None);
                    if !failure.connection_bad {
                        failure.message = failure.connection_message.clone();
                    }
                    self.ended = true;
                    self.drain_results();
                    Some(Error::other(failure))
                }
            };
            if let Some(error) = failure {
                if written == 0 {
                    return Err(error);
                }
                self.failed = Some(error);
                break;
            }
        }
        Ok(written)
    }
}

impl Drop for LibpqSource {
    /// Frees the buffered message only: the connection may be gone by now. A reader dropped
    /// without `drain` leaves the connection in the middle of the COPY: a query sent with
    /// `PQsendQuery` then fails, and only `PQexec` (psycopg2's) reads past the rest of it.
    fn drop(&mut self) {
        self.release_chunk();
    }
}
