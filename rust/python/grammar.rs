//! The grammar kernels' classes: `TokenTrie`, `CompiledGrammar` (a grammar's tables, shared by its
//! matchers) and `GrammarMatcher` (twins of
//! `pyengine/structured/trie.py` and `matcher.py`).
//!
//! A [`GrammarError`] becomes the exception the Python twin raises, chosen by its
//! [`ErrorKind`]: `pyengine.structured.grammar.GrammarError` or `GrammarLimitError` (both
//! `ValueError`s), `ValueError` for a bad argument, `GrammarInternalError` (a `RuntimeError`) for
//! a bug. The three Python classes are looked up once, when the first matcher is made, so raising one imports nothing.
//! A panic inside a kernel (a bug) is caught here ([`contained`]) and raised as a
//! `GrammarInternalError` like any internal error, never as PyO3's `PanicException`; a matcher that panicked refuses every
//! later call.
//! Masks are computed with the interpreter released (`Python::detach`), so other Python threads
//! (the server's event loop) run meanwhile; copying a mask computed before does not release it.

use std::sync::Arc;

use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyType};

use crate::grammar::{
    contained, CompiledGrammar, ErrorKind, GrammarError, GrammarMatcher, Symbol, TokenTrie,
};

/// The module that defines the Python twin's exceptions.
const ERRORS_MODULE: &str = "pyengine.structured.grammar";
static GRAMMAR_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GRAMMAR_LIMIT_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GRAMMAR_INTERNAL_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Look up the Python twin's exception classes (once per process; later calls are a read).
fn load_error_types(py: Python<'_>) -> PyResult<()> {
    GRAMMAR_ERROR.import(py, ERRORS_MODULE, "GrammarError")?;
    GRAMMAR_LIMIT_ERROR.import(py, ERRORS_MODULE, "GrammarLimitError")?;
    GRAMMAR_INTERNAL_ERROR.import(py, ERRORS_MODULE, "GrammarInternalError")?;
    Ok(())
}

/// The Python exception for `err` (see the module docs).
fn to_pyerr(py: Python<'_>, err: GrammarError) -> PyErr {
    let class = match err.kind() {
        ErrorKind::Argument => return PyValueError::new_err(err.to_string()),
        ErrorKind::Internal => GRAMMAR_INTERNAL_ERROR.get(py),
        ErrorKind::Grammar => GRAMMAR_ERROR.get(py),
        ErrorKind::Limit => GRAMMAR_LIMIT_ERROR.get(py),
    };
    match class {
        Some(class) => PyErr::from_type(class.bind(py).clone(), err.to_string()),
        // (the classes are loaded before any grammar exists; a trie alone raises none of them)
        None if err.kind() == ErrorKind::Internal => PyRuntimeError::new_err(err.to_string()),
        None => PyValueError::new_err(err.to_string()),
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
    fn new(py: Python<'_>, token_bytes: Vec<Option<Bound<'_, PyBytes>>>) -> PyResult<Self> {
        let tokens = token_bytes
            .iter()
            .map(|t| t.as_ref().map(|b| b.as_bytes().to_vec()))
            .collect();
        let trie = py
            .detach(|| contained(|| TokenTrie::new(tokens)))
            .map_err(|e| to_pyerr(py, e))?;
        Ok(Self {
            inner: Arc::new(trie),
        })
    }

    /// The number of tokens (masks have one bit per token).
    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size
    }

    /// The number of trie nodes.
    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

/// A grammar as the matcher's tables, built once from `Grammar.to_flat()`'s
/// `(start, alternatives, byte_sets, repeats)` and shared by every matcher of that grammar (the
/// wrapper in pyengine/structured/matcher.py keeps it with the grammar).
#[pyclass(name = "CompiledGrammar", module = "pyengine._native", frozen)]
pub struct PyCompiledGrammar {
    inner: Arc<CompiledGrammar>,
}

#[pymethods]
impl PyCompiledGrammar {
    #[new]
    fn new(
        py: Python<'_>,
        start: u32,
        alternatives: Vec<(u32, Vec<(u8, u32)>)>,
        byte_sets: Vec<Vec<(u8, u8)>>,
        repeats: Vec<(u32, u32, u32)>,
    ) -> PyResult<Self> {
        load_error_types(py)?;
        let alternatives = alternatives
            .into_iter()
            .map(|(lhs, symbols)| {
                let symbols = symbols
                    .into_iter()
                    .map(|(kind, index)| Symbol::from_flat(kind, index))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((lhs, symbols))
            })
            .collect::<Result<Vec<_>, GrammarError>>()
            .map_err(|e| to_pyerr(py, e))?;
        let g = py
            .detach(|| contained(|| CompiledGrammar::new(start, alternatives, byte_sets, repeats)))
            .map_err(|e| to_pyerr(py, e))?;
        Ok(Self { inner: Arc::new(g) })
    }
}

/// A grammar's token masks for one request, over a [`PyCompiledGrammar`] (the wrapper in
/// pyengine/structured/matcher.py builds that once per grammar).
#[pyclass(name = "GrammarMatcher", module = "pyengine._native", subclass)]
pub struct PyGrammarMatcher {
    inner: GrammarMatcher,
    /// Set when a call panicked: the matcher's state may be half-updated.
    broken: bool,
}

impl PyGrammarMatcher {
    /// Run `call` on the matcher, contained; after a caught panic every later call is refused.
    fn guarded<T>(
        &mut self,
        call: impl FnOnce(&mut GrammarMatcher) -> Result<T, GrammarError>,
    ) -> Result<T, GrammarError> {
        if self.broken {
            return Err(GrammarError::Internal(
                "this matcher panicked earlier and cannot be used",
            ));
        }
        let result = contained(|| call(&mut self.inner));
        self.broken = matches!(result, Err(GrammarError::Panicked(_)));
        result
    }
}

#[pymethods]
impl PyGrammarMatcher {
    #[new]
    #[pyo3(signature = (grammar, trie, eos_token_ids = Vec::new()))]
    fn new(
        py: Python<'_>,
        grammar: &Bound<'_, PyCompiledGrammar>,
        trie: &Bound<'_, PyTokenTrie>,
        eos_token_ids: Vec<i64>,
    ) -> PyResult<Self> {
        load_error_types(py)?;
        let g = grammar.get().inner.clone();
        let trie = trie.get().inner.clone();
        let inner = py
            .detach(|| contained(|| GrammarMatcher::new(g, trie, &eos_token_ids)))
            .map_err(|e| to_pyerr(py, e))?;
        Ok(Self {
            inner,
            broken: false,
        })
    }

    /// The number of tokens in the vocabulary.
    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    /// Tokens accepted so far (what `rollback` can undo).
    #[getter]
    fn num_accepted(&self) -> usize {
        self.inner.num_accepted()
    }

    /// Whether the text so far is a whole sentence of the grammar.
    fn is_accepting(&self) -> bool {
        self.inner.is_accepting()
    }

    /// Whether an EOS token was accepted.
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }

    /// Write the allowed ids into `out` ([ceil(V/32)] int32): bit i % 32 of word i // 32.
    fn fill_bitmask(&mut self, py: Python<'_>, out: &Bound<'_, PyAny>) -> PyResult<()> {
        let words = self.inner.vocab_size().div_ceil(32);
        let array = match out.cast::<PyArray1<i32>>() {
            Ok(array) if PyUntypedArrayMethods::len(array) == words => array,
            _ => return Err(bitmask_error(out, words)),
        };
        let mut array = array
            .try_readwrite()
            .map_err(|e| PyValueError::new_err(format!("bitmask is not writable: {e}")))?;
        let cached = self.inner.mask_is_cached(); // a copy: cheaper than releasing the interpreter
        if let Ok(slice) = array.as_slice_mut() {
            // the bits are what matter: the int32 words are read as u32
            let slice: &mut [u32] = bytemuck::cast_slice_mut(slice);
            let filled = if cached {
                self.guarded(|m| m.fill_bitmask(slice))
            } else {
                py.detach(|| self.guarded(|m| m.fill_bitmask(slice)))
            };
            return filled.map_err(|e| to_pyerr(py, e));
        }
        // a strided view: fill a contiguous copy, then write it through the view
        let mut mask = vec![0u32; words];
        py.detach(|| self.guarded(|m| m.fill_bitmask(&mut mask)))
            .map_err(|e| to_pyerr(py, e))?;
        for (word, bits) in array.as_array_mut().iter_mut().zip(mask) {
            *word = bits as i32;
        }
        Ok(())
    }

    /// The ids allowed next, ascending.
    fn allowed_token_ids(&mut self, py: Python<'_>) -> PyResult<Vec<u32>> {
        py.detach(|| self.guarded(|m| m.allowed_token_ids()))
            .map_err(|e| to_pyerr(py, e))
    }

    /// Advance by one token; False (state unchanged) if it is not allowed here.
    fn accept_token(&mut self, py: Python<'_>, token_id: i64) -> PyResult<bool> {
        self.guarded(|m| m.accept_token(token_id))
            .map_err(|e| to_pyerr(py, e))
    }

    /// Advance by raw bytes (one rollback step); False (state unchanged) if they do not fit.
    fn accept_bytes(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<bool> {
        self.guarded(|m| m.accept_bytes(data))
            .map_err(|e| to_pyerr(py, e))
    }

    /// Undo the last `n_tokens` accepted tokens (EOS included).
    fn rollback(&mut self, py: Python<'_>, n_tokens: i64) -> PyResult<()> {
        let Ok(n) = usize::try_from(n_tokens) else {
            let accepted = self.inner.num_accepted();
            let err = GrammarError::Rollback {
                requested: n_tokens,
                accepted,
            };
            return Err(to_pyerr(py, err));
        };
        self.guarded(|m| m.rollback(n)).map_err(|e| to_pyerr(py, e))
    }

    /// Back to the start of the grammar.
    fn reset(&mut self) {
        self.inner.reset()
    }
}

/// The Python twin's error for a bitmask that is not an int32 array of shape `(words,)`.
fn bitmask_error(out: &Bound<'_, PyAny>, words: usize) -> PyErr {
    let describe = |attribute: &str| -> Option<String> {
        Some(out.getattr(attribute).ok()?.str().ok()?.to_string())
    };
    let dtype = describe("dtype")
        .or_else(|| Some(out.get_type().name().ok()?.to_string()))
        .unwrap_or_default();
    let shape = describe("shape").unwrap_or_default();
    PyValueError::new_err(format!(
        "bitmask must be an int32 array of shape ({words},), got {dtype} {shape}"
    ))
}

/// Add the grammar kernels' classes to the module.
pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTokenTrie>()?;
    m.add_class::<PyCompiledGrammar>()?;
    m.add_class::<PyGrammarMatcher>()?;
    Ok(())
}
