//! The text kernels' classes: `TokenTable`, `IncrementalDetokenizer`, `StopChecker`,
//! `RepetitionDetector` (twins of `pyengine/text/detokenizer.py`, `stop.py`, `repetition.py`).
//! Their [`KernelError`](crate::KernelError)s become `ValueError` (see `mod.rs`); a panic inside
//! a kernel (a bug) is caught ([`guarded`]) and raised as `pyengine.text.kernels.TextKernelError`
//! (a `RuntimeError`), never as PyO3's `PanicException`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyInt, PyString, PyType};

use crate::{catch_panic, detok, repetition, stop};

static TEXT_KERNEL_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Run a kernel call; a panic inside it becomes `TextKernelError` (a `RuntimeError` if that class
/// cannot be imported), which the engine's `except Exception` guards stop.
fn guarded<T>(py: Python<'_>, call: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_panic(call).unwrap_or_else(|what| {
        let message = format!("internal error: a text kernel panicked: {what}");
        Err(
            match TEXT_KERNEL_ERROR.import(py, "pyengine.text.kernels", "TextKernelError") {
                Ok(class) => PyErr::from_type(class.clone(), message),
                Err(_) => PyRuntimeError::new_err(message),
            },
        )
    })
}

/// A token id argument: any Python int; one that does not fit i64 gets the out-of-range message.
fn token_id_arg(obj: &Bound<'_, PyAny>, vocab_size: usize) -> PyResult<i64> {
    match obj.extract::<i64>() {
        Ok(id) => Ok(id),
        Err(_) if obj.is_instance_of::<PyInt>() => Err(PyValueError::new_err(format!(
            "token id {} is out of range for a vocabulary of {vocab_size} tokens",
            obj.str()?
        ))),
        Err(err) => Err(err),
    }
}

fn token_ids_arg(obj: &Bound<'_, PyAny>, vocab_size: usize) -> PyResult<Vec<i64>> {
    obj.try_iter()?
        .map(|item| token_id_arg(&item?, vocab_size))
        .collect()
}

/// What every token id decodes to, for one tokenizer (built from a `TokenPieces`).
#[pyclass(name = "TokenTable", module = "pyengine._native", frozen, subclass)]
struct PyTokenTable {
    inner: Arc<detok::TokenTable>,
}

#[pymethods]
impl PyTokenTable {
    #[new]
    fn new(pieces: &Bound<'_, PyAny>) -> PyResult<Self> {
        let later: Vec<Bound<'_, PyBytes>> = pieces.getattr("pieces")?.extract()?;
        let first: Option<Vec<Bound<'_, PyBytes>>> = pieces.getattr("first_pieces")?.extract()?;
        let strip_char: Option<String> = pieces.getattr("strip_char")?.extract()?;
        let strip = match strip_char {
            None => None,
            Some(text) => {
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => {
                        Some((c, pieces.getattr("strip_count")?.extract::<usize>()?))
                    }
                    _ => return Err(PyValueError::new_err("strip_char must be one character")),
                }
            }
        };
        let spec = detok::TokenSpec {
            special_ids: pieces
                .getattr("special_ids")?
                .extract::<HashSet<i64>>()?
                .into_iter()
                .collect(),
            added_tokens: pieces
                .getattr("added_tokens")?
                .extract::<HashMap<i64, String>>()?
                .into_iter()
                .collect(),
            byte_values: pieces
                .getattr("byte_values")?
                .extract::<HashMap<i64, u8>>()?
                .into_iter()
                .collect(),
            missing_ids: pieces
                .getattr("missing_ids")?
                .extract::<HashSet<i64>>()?
                .into_iter()
                .collect(),
            strip,
        };
        let later: Vec<&[u8]> = later.iter().map(|b| b.as_bytes()).collect();
        let first: Option<Vec<&[u8]>> = first
            .as_ref()
            .map(|f| f.iter().map(|b| b.as_bytes()).collect());
        let table = guarded(pieces.py(), || {
            Ok(detok::TokenTable::new(&later, first.as_deref(), spec)?)
        })?;
        Ok(Self {
            inner: Arc::new(table),
        })
    }

    /// Number of token ids the table covers.
    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    /// Raise ValueError for an id outside the vocabulary.
    fn check(&self, token_id: &Bound<'_, PyAny>) -> PyResult<()> {
        let id = token_id_arg(token_id, self.inner.vocab_size())?;
        guarded(token_id.py(), || Ok(self.inner.check(id).map(|_| ())?))
    }

    /// The text of `token_ids`, exactly as `tokenizers.Tokenizer.decode` gives it.
    #[pyo3(signature = (token_ids, skip_special_tokens = true))]
    fn decode(&self, token_ids: &Bound<'_, PyAny>, skip_special_tokens: bool) -> PyResult<String> {
        let ids = token_ids_arg(token_ids, self.inner.vocab_size())?;
        guarded(token_ids.py(), || {
            Ok(self.inner.decode(&ids, skip_special_tokens)?)
        })
    }

    /// A logprob's `decoded_token`, as vLLM computes it.
    #[pyo3(signature = (token_id, context_token_ids = None))]
    fn token_text(
        &self,
        token_id: &Bound<'_, PyAny>,
        context_token_ids: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let size = self.inner.vocab_size();
        let context = match context_token_ids {
            Some(ids) => token_ids_arg(ids, size)?,
            None => Vec::new(),
        };
        let id = token_id_arg(token_id, size)?;
        guarded(token_id.py(), || Ok(self.inner.token_text(id, &context)?))
    }
}

/// Feed ids with `push`; get back the text each one completes (vLLM's streaming rules).
#[pyclass(name = "IncrementalDetokenizer", module = "pyengine._native")]
struct PyIncrementalDetokenizer {
    table: Py<PyTokenTable>,
    inner: detok::IncrementalDetokenizer,
    skip_special_tokens: bool,
    spaces_between_special_tokens: bool,
}

#[pymethods]
impl PyIncrementalDetokenizer {
    #[new]
    #[pyo3(signature = (table, prompt_token_ids = None, skip_special_tokens = true, spaces_between_special_tokens = true))]
    fn new(
        table: Bound<'_, PyTokenTable>,
        prompt_token_ids: Option<&Bound<'_, PyAny>>,
        skip_special_tokens: bool,
        spaces_between_special_tokens: bool,
    ) -> PyResult<Self> {
        let shared = table.get().inner.clone();
        let prompt = match prompt_token_ids {
            Some(ids) => token_ids_arg(ids, shared.vocab_size())?,
            None => Vec::new(),
        };
        let inner = guarded(table.py(), || {
            Ok(detok::IncrementalDetokenizer::new(
                shared,
                &prompt,
                skip_special_tokens,
                spaces_between_special_tokens,
            )?)
        })?;
        Ok(Self {
            table: table.unbind(),
            inner,
            skip_special_tokens,
            spaces_between_special_tokens: skip_special_tokens || spaces_between_special_tokens,
        })
    }

    /// Append one output token; return the newly completed text ("" while it is held).
    fn push<'py>(
        &mut self,
        py: Python<'py>,
        token_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyString>> {
        let id = token_id_arg(token_id, self.inner.table().vocab_size())?;
        guarded(py, || Ok(PyString::new(py, self.inner.push(id)?)))
    }

    /// At the end of generation: release held text (an unfinished character becomes U+FFFD).
    fn flush<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        guarded(py, || Ok(PyString::new(py, self.inner.flush())))
    }

    /// The `decoded_token` of a logprob for the next position (call before pushing it).
    fn token_text(&self, token_id: &Bound<'_, PyAny>) -> PyResult<String> {
        let id = token_id_arg(token_id, self.inner.table().vocab_size())?;
        guarded(token_id.py(), || Ok(self.inner.token_text(id)?))
    }

    /// Everything returned so far.
    #[getter]
    fn text(&self) -> &str {
        self.inner.text()
    }

    #[getter]
    fn table(&self, py: Python<'_>) -> Py<PyTokenTable> {
        self.table.clone_ref(py)
    }

    #[getter]
    fn skip_special_tokens(&self) -> bool {
        self.skip_special_tokens
    }

    #[getter]
    fn spaces_between_special_tokens(&self) -> bool {
        self.spaces_between_special_tokens
    }
}

/// Push text deltas; get back the text safe to emit and, once one matches, the stop string.
#[pyclass(name = "StopChecker", module = "pyengine._native")]
struct PyStopChecker {
    inner: stop::StopChecker,
}

#[pymethods]
impl PyStopChecker {
    #[new]
    #[pyo3(signature = (stop_strings, include_stop_str_in_output = false))]
    fn new(stop_strings: &Bound<'_, PyAny>, include_stop_str_in_output: bool) -> PyResult<Self> {
        if stop_strings.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(
                "stop_strings must be a list of strings, not a str",
            ));
        }
        let strings: Vec<String> = stop_strings.extract()?;
        let inner = guarded(stop_strings.py(), || {
            Ok(stop::StopChecker::new(strings, include_stop_str_in_output)?)
        })?;
        Ok(Self { inner })
    }

    /// Add one step's text; return (text to emit now, the matched stop string or None).
    fn push<'py>(
        &mut self,
        py: Python<'py>,
        delta: &str,
    ) -> PyResult<(Bound<'py, PyString>, Option<Bound<'py, PyString>>)> {
        guarded(py, || {
            let (emit, stopped) = self.inner.push(delta);
            let emit = PyString::new(py, emit);
            let stopped = stopped
                .and_then(|i| self.inner.stop_strings().get(i))
                .map(|s| PyString::new(py, s));
            Ok((emit, stopped))
        })
    }

    /// Add text that must not be searched (the first `min_tokens` tokens); return what to emit.
    fn skip<'py>(&mut self, py: Python<'py>, delta: &str) -> PyResult<Bound<'py, PyString>> {
        guarded(py, || Ok(PyString::new(py, self.inner.skip(delta))))
    }

    /// At the end of generation: the held-back tail (nothing after a match).
    fn flush<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        guarded(py, || Ok(PyString::new(py, self.inner.flush())))
    }

    #[getter]
    fn stopped(&self) -> Option<&str> {
        self.inner.stopped()
    }

    #[getter]
    fn stop_strings(&self) -> Vec<String> {
        self.inner.stop_strings().to_vec()
    }

    #[getter]
    fn include_stop_str_in_output(&self) -> bool {
        self.inner.include_stop_str_in_output()
    }
}

/// Push generated token ids; `push` returns True once the output ends in a repetition.
#[pyclass(name = "RepetitionDetector", module = "pyengine._native")]
struct PyRepetitionDetector {
    inner: repetition::RepetitionDetector,
}

#[pymethods]
impl PyRepetitionDetector {
    #[new]
    #[pyo3(signature = (max_pattern_size, min_pattern_size = 0, min_count = 2))]
    fn new(
        py: Python<'_>,
        max_pattern_size: i64,
        min_pattern_size: i64,
        min_count: i64,
    ) -> PyResult<Self> {
        let inner = guarded(py, || {
            Ok(repetition::RepetitionDetector::new(
                max_pattern_size,
                min_pattern_size,
                min_count,
            )?)
        })?;
        Ok(Self { inner })
    }

    /// Append a generated token; True when the output now ends in a repetition.
    fn push(&mut self, py: Python<'_>, token_id: i64) -> PyResult<bool> {
        guarded(py, || Ok(self.inner.push(token_id)))
    }

    #[getter]
    fn max_pattern_size(&self) -> usize {
        self.inner.max_pattern_size()
    }

    #[getter]
    fn min_pattern_size(&self) -> usize {
        self.inner.min_pattern_size()
    }

    #[getter]
    fn min_count(&self) -> usize {
        self.inner.min_count()
    }
}

/// Add the text kernels' classes to the module.
pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTokenTable>()?;
    m.add_class::<PyIncrementalDetokenizer>()?;
    m.add_class::<PyStopChecker>()?;
    m.add_class::<PyRepetitionDetector>()?;
    Ok(())
}
