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
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PySequence, PyString, PyTuple, PyType};

use crate::grammar::{
    contained, has_byte, CompiledGrammar, ErrorKind, FxMap, GrammarError, GrammarMatcher, Symbol,
    TokenTrie,
};

/// The module that defines the Python twin's exceptions and a `Grammar`'s element classes.
const GRAMMAR_MODULE: &str = "pyengine.structured.grammar";
static GRAMMAR_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GRAMMAR_LIMIT_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GRAMMAR_INTERNAL_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Look up the Python twin's exception classes (once per process; later calls are a read).
fn load_error_types(py: Python<'_>) -> PyResult<()> {
    GRAMMAR_ERROR.import(py, GRAMMAR_MODULE, "GrammarError")?;
    GRAMMAR_LIMIT_ERROR.import(py, GRAMMAR_MODULE, "GrammarLimitError")?;
    GRAMMAR_INTERNAL_ERROR.import(py, GRAMMAR_MODULE, "GrammarInternalError")?;
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

/// The element classes of a `Grammar` (looked up by the first read, once per process).
static BYTE_SET: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static REF: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static REPEAT: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// A grammar as the matcher's tables, built once from a `Grammar` and shared by every matcher of
/// that grammar (the wrapper in pyengine/structured/matcher.py keeps it with the grammar).
///
/// The rules are read here, straight from the `Grammar`'s objects, into the numbers that
/// `Grammar.to_flat()` gives the Python twin (the same numbering, which `to_flat` below returns
/// for the parity tests): a flat form built in Python first would cost a Python loop step per
/// element, then a tuple per symbol to read back here.
#[pyclass(name = "CompiledGrammar", module = "pyengine._native", frozen)]
pub struct PyCompiledGrammar {
    inner: Arc<CompiledGrammar>,
}

#[pymethods]
impl PyCompiledGrammar {
    #[new]
    fn new(py: Python<'_>, grammar: &Bound<'_, PyAny>) -> PyResult<Self> {
        load_error_types(py)?;
        let flat = read_grammar(grammar)?;
        let g = py
            .detach(|| {
                contained(|| {
                    CompiledGrammar::from_columns(
                        flat.start,
                        flat.lhs,
                        flat.rhs_start,
                        flat.rhs,
                        &flat.byte_sets,
                        &flat.repeats,
                    )
                })
            })
            .map_err(|e| to_pyerr(py, e))?;
        Ok(Self { inner: Arc::new(g) })
    }

    /// The tables as `Grammar.to_flat()` writes them, `(start, alternatives, byte_sets, repeats)`,
    /// with each byte set as its merged ranges (for the parity tests).
    #[allow(clippy::type_complexity)]
    fn to_flat(
        &self,
    ) -> (
        u32,
        Vec<(u32, Vec<(u8, u32)>)>,
        Vec<Vec<(u8, u8)>>,
        Vec<(u32, u32, u32)>,
    ) {
        let g = &self.inner;
        let alternatives = g
            .alternatives()
            .map(|(lhs, symbols)| (lhs, symbols.iter().map(|s| s.to_flat()).collect()))
            .collect();
        let byte_sets = g.byte_sets().iter().map(ranges_of).collect();
        (g.start(), alternatives, byte_sets, g.repeats().collect())
    }
}

/// The bytes of a 256-bit table as sorted, merged inclusive ranges.
fn ranges_of(set: &[u64; 4]) -> Vec<(u8, u8)> {
    let mut ranges: Vec<(u8, u8)> = Vec::new();
    for b in (0..=255u8).filter(|&b| has_byte(set, b)) {
        match ranges.last_mut() {
            Some((_, hi)) if *hi as usize + 1 == b as usize => *hi = b,
            _ => ranges.push((b, b)),
        }
    }
    ranges
}

/// A grammar's alternatives in columns, for [`CompiledGrammar::from_columns`].
struct Columns {
    start: u32,
    lhs: Vec<u32>,
    rhs_start: Vec<u32>,
    rhs: Vec<Symbol>,
    byte_sets: Vec<Vec<(u8, u8)>>,
    repeats: Vec<(u32, u32, u32)>,
}

/// The numbers `Grammar.to_flat()` gives `grammar`: rules numbered in `grammar.rules` order, byte
/// sets (by their ranges) and counted repetitions (by rule, min and max) in the order they first
/// occur. A grammar shares many element objects (a literal's byte sets, references to a common
/// rule), so each object's symbol is kept by its address for as long as this reads it (the
/// grammar keeps every object alive meanwhile).
fn read_grammar(grammar: &Bound<'_, PyAny>) -> PyResult<Columns> {
    let py = grammar.py();
    let invalid = |what: &'static str| to_pyerr(py, GrammarError::InvalidGrammar(what));
    let class = |cell: &PyOnceLock<Py<PyType>>, name: &str| -> PyResult<Bound<'_, PyType>> {
        Ok(cell.import(py, GRAMMAR_MODULE, name)?.clone())
    };
    let (byte_set, reference, repeat) = (
        class(&BYTE_SET, "ByteSet")?,
        class(&REF, "Ref")?,
        class(&REPEAT, "Repeat")?,
    );
    let rules = grammar
        .getattr(intern!(py, "rules"))?
        .cast_into::<PyDict>()?;
    let names: Vec<Bound<'_, PyString>> = rules
        .keys()
        .iter()
        .map(|name| name.cast_into::<PyString>().map_err(PyErr::from))
        .collect::<PyResult<_>>()?;
    let mut numbers: FxMap<&str, u32> = FxMap::default(); // rule name -> number
    numbers.reserve(names.len());
    for (i, name) in names.iter().enumerate() {
        numbers.insert(name.to_str()?, i as u32);
    }
    let number_of = |name: Bound<'_, PyAny>| -> PyResult<u32> {
        let name = name.cast_into::<PyString>()?;
        let number = numbers.get(name.to_str()?).copied();
        number.ok_or_else(|| invalid("a reference to an undefined rule"))
    };
    let start = number_of(grammar.getattr(intern!(py, "start"))?)?;
    let mut out = Columns {
        start,
        lhs: Vec::new(),
        rhs_start: vec![0],
        rhs: Vec::new(),
        byte_sets: Vec::new(),
        repeats: Vec::new(),
    };
    let mut symbol_of: FxMap<usize, Symbol> = FxMap::default(); // element object address -> symbol
    let mut set_numbers: FxMap<Vec<(u8, u8)>, u32> = FxMap::default();
    let mut repeat_numbers: FxMap<(u32, u32, u32), u32> = FxMap::default();
    for (rule, alternatives) in rules.values().iter().enumerate() {
        for alt in alternatives.try_iter()? {
            // (a tuple, as `GrammarBuilder` makes them; any other sequence is read as one)
            let alt = match alt?.cast_into::<PyTuple>() {
                Ok(tuple) => tuple,
                Err(other) => other.into_inner().cast_into::<PySequence>()?.to_tuple()?,
            };
            for e in alt.iter() {
                let address = e.as_ptr() as usize;
                if let Some(&symbol) = symbol_of.get(&address) {
                    out.rhs.push(symbol);
                    continue;
                }
                let symbol = if e.is_exact_instance(&reference) {
                    Symbol::Rule(number_of(e.getattr(intern!(py, "name"))?)?)
                } else if e.is_exact_instance(&byte_set) {
                    let ranges: Vec<(u8, u8)> = e.getattr(intern!(py, "ranges"))?.extract()?;
                    let next = set_numbers.len() as u32;
                    let k = *set_numbers.entry(ranges).or_insert_with_key(|ranges| {
                        out.byte_sets.push(ranges.clone());
                        next
                    });
                    Symbol::Bytes(k)
                } else if e.is_exact_instance(&repeat) {
                    let key = (
                        number_of(e.getattr(intern!(py, "name"))?)?,
                        e.getattr(intern!(py, "min"))?.extract()?,
                        e.getattr(intern!(py, "max"))?.extract()?,
                    );
                    let next = repeat_numbers.len() as u32;
                    let k = *repeat_numbers.entry(key).or_insert_with(|| {
                        out.repeats.push(key);
                        next
                    });
                    Symbol::Repeat(k)
                } else {
                    return Err(invalid("an element that is not a ByteSet, Ref or Repeat"));
                };
                symbol_of.insert(address, symbol);
                out.rhs.push(symbol);
            }
            out.lhs.push(rule as u32);
            out.rhs_start.push(out.rhs.len() as u32);
        }
    }
    Ok(out)
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
