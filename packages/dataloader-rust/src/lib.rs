//! The native half of `dataloader_rust`: Postgres binary COPY to and from Arrow, row
//! hashing, and JSON records to Arrow. Every entry point releases the GIL for its work and
//! reports failures as Python exceptions; a panic is caught at the boundary and raised as one.

use pyo3::prelude::*;

mod decode;
mod encode;
mod hash;
mod json;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    decode::register(m)?;
    encode::register(m)?;
    hash::register(m)?;
    json::register(m)?;
    Ok(())
}
