//! pyo3 glue for the grammar kernels: `pyengine._native.TokenTrie` and `GrammarMatcher`.
//!
//! Errors become `pyengine.structured.grammar.GrammarError` (or `GrammarLimitError` when a limit
//! was hit), both `ValueError`s, exactly as the Python twin raises them; plain argument errors
//! (a token id out of range, a bad bitmask) are `ValueError`.

use std::sync::Arc;

use numpy::PyReadwriteArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::{CompiledGrammar, GrammarMatcher, TokenTrie};
use crate::KernelError;

fn grammar_error(py: Python<'_>, err: KernelError) -> PyErr {
    let class = if err.0.contains("limit") { "GrammarLimitError" } else { "GrammarError" };
    let made = py
        .import("pyengine.structured.grammar")
        .and_then(|m| m.getattr(class))
        .and_then(|cls| cls.call1((err.0.clone(),)));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(_) => PyValueError::new_err(err.0),
    }
}

/// The vocabulary's byte trie: `token_bytes[i]` is token i's bytes, or None (never matches).
#[pyclass(name = "TokenTrie", module = "pyengine._native", frozen, subclass)]
pub struct PyTokenTrie {
    inner: Arc<TokenTrie>,
}

#[pymethods]
impl PyTokenTrie {
    #[new]
    fn new(token_bytes: Vec<Option<Bound<'_, PyBytes>>>) -> PyResult<Self> {
        let tokens = token_bytes.iter().map(|t| t.as_ref().map(|b| b.as_bytes().to_vec())).collect();
        Ok(Self { inner: Arc::new(TokenTrie::new(tokens)?) })
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

/// A grammar's token masks for one request; build with `(start, alternatives, byte_sets)` of
/// `Grammar.to_flat()` (the Python wrapper in pyengine/structured/matcher.py does it).
#[pyclass(name = "GrammarMatcher", module = "pyengine._native", subclass)]
pub struct PyGrammarMatcher {
    inner: GrammarMatcher,
}

#[pymethods]
impl PyGrammarMatcher {
    #[new]
    #[pyo3(signature = (start, alternatives, byte_sets, trie, eos_token_ids = Vec::new()))]
    fn new(
        py: Python<'_>,
        start: i64,
        alternatives: Vec<Vec<i64>>,
        byte_sets: Vec<Vec<(i64, i64)>>,
        trie: &Bound<'_, PyTokenTrie>,
        eos_token_ids: Vec<i64>,
    ) -> PyResult<Self> {
        // Building a large grammar's first Earley set takes seconds: let other Python threads run.
        let trie = trie.get().inner.clone();
        let built = py.detach(move || {
            let g = CompiledGrammar::new(start, alternatives, byte_sets)?;
            GrammarMatcher::new(Arc::new(g), trie, &eos_token_ids)
        });
        Ok(Self { inner: built.map_err(|e| grammar_error(py, e))? })
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    #[getter]
    fn num_accepted(&self) -> usize {
        self.inner.num_accepted()
    }

    fn is_accepting(&self) -> bool {
        self.inner.is_accepting()
    }

    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }

    /// Write the allowed ids into `out` ([ceil(V/32)] int32): bit i % 32 of word i // 32.
    fn fill_bitmask(&mut self, py: Python<'_>, mut out: PyReadwriteArray1<'_, i32>) -> PyResult<()> {
        let words = (self.inner.vocab_size() + 31) / 32;
        let Ok(slice) = out.as_slice_mut() else {
            return Err(PyValueError::new_err("bitmask must be a contiguous int32 array"));
        };
        if slice.len() != words {
            return Err(PyValueError::new_err(format!(
                "bitmask must be an int32 array of shape ({words},), got int32 ({},)",
                slice.len()
            )));
        }
        // i32 and u32 have the same size and alignment; the bits are what matter.
        let words_u32: &mut [u32] = bytemuck_cast(slice);
        self.inner.fill_bitmask(words_u32).map_err(|e| grammar_error(py, e))
    }

    fn allowed_token_ids(&mut self, py: Python<'_>) -> PyResult<Vec<u32>> {
        self.inner.allowed_token_ids().map_err(|e| grammar_error(py, e))
    }

    fn accept_token(&mut self, py: Python<'_>, token_id: i64) -> PyResult<bool> {
        match self.inner.accept_token(token_id) {
            Err(e) if e.0.starts_with("token id") => Err(PyValueError::new_err(e.0)),
            other => other.map_err(|e| grammar_error(py, e)),
        }
    }

    fn accept_bytes(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<bool> {
        self.inner.accept_bytes(data).map_err(|e| grammar_error(py, e))
    }

    fn rollback(&mut self, n_tokens: i64) -> PyResult<()> {
        if n_tokens < 0 {
            return Err(PyValueError::new_err(format!(
                "cannot roll back {n_tokens} tokens: {} accepted",
                self.inner.num_accepted()
            )));
        }
        Ok(self.inner.rollback(n_tokens as usize)?)
    }

    fn reset(&mut self) {
        self.inner.reset()
    }
}

fn bytemuck_cast(slice: &mut [i32]) -> &mut [u32] {
    // SAFETY: i32 and u32 have identical size, alignment and validity (every bit pattern is valid).
    unsafe { std::slice::from_raw_parts_mut(slice.as_mut_ptr() as *mut u32, slice.len()) }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTokenTrie>()?;
    m.add_class::<PyGrammarMatcher>()?;
    Ok(())
}
