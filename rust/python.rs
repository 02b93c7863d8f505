//! All pyo3 glue: `#[pymodule]`, classes and the mapping of `KernelError` to Python exceptions.

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
    Ok(())
}
