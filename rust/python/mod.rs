//! All the pyo3 glue, one module per kernel family: the `#[pymodule]` here, the classes in
//! `text.rs` (detokenizer, stop strings, repetition) and `grammar.rs` (token trie, grammar
//! matcher). Compiled only with the `python` feature; the kernels themselves know nothing of
//! Python, and each error type they return is mapped to a Python exception here.

mod grammar;
mod text;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::KernelError;

impl From<KernelError> for PyErr {
    fn from(err: KernelError) -> PyErr {
        PyValueError::new_err(err.0)
    }
}

/// The version of the compiled extension.
#[pyfunction]
fn version() -> &'static str {
    crate::version()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    text::register(m)?;
    grammar::register(m)?;
    Ok(())
}
