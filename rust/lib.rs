//! `pyengine._native`: the Rust hot paths of pyengine.
//!
//! Every kernel here is pure Rust (no pyo3 types) and returns a `Result` with its own error type
//! ([`KernelError`] for the text kernels, [`grammar::GrammarError`] for the grammar kernels); all
//! the Python glue lives in `python/`, compiled only with the `python` feature.
//! Each kernel has a pure-Python twin in the package component it serves.
//!
//! Key types:
//! - [`KernelError`]: the text kernels' error; the glue maps it to `ValueError`.
//! - [`detok::TokenTable`], [`detok::IncrementalDetokenizer`]: token ids to text deltas.
//! - [`stop::StopChecker`]: stop strings across token boundaries, with streaming hold-back.
//! - [`repetition::RepetitionDetector`]: n-gram repetition at the tail of the output.
//! - [`grammar::GrammarMatcher`], [`grammar::TokenTrie`]: token masks for structured outputs;
//!   [`grammar::GrammarError`] says why one failed (the glue raises the Python twin's exception).

use std::fmt;

pub mod detok;
pub mod grammar;
pub mod repetition;
pub mod stop;

#[cfg(feature = "python")]
mod python;

/// The crate version, as exposed by `pyengine._native.version()`.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// An error a text kernel returns instead of panicking; its message reaches Python unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError(pub String);

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KernelError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_matches_cargo() {
        assert_eq!(version(), "0.1.0");
    }
}
