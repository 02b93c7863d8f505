//! `pyengine._native`: the Rust hot paths of pyengine.
//!
//! Every kernel here is pure Rust (no pyo3 types) and returns a `Result` with its own error type
//! ([`KernelError`] for the text kernels, [`grammar::GrammarError`] for the grammar kernels); all
//! the Python glue lives in `python/`, compiled only with the `python` feature.
//! Each kernel has a pure-Python twin in the package component it serves.
//!
//! Key types:
//! - [`KernelError`]: the text kernels' error; the glue maps it to `ValueError`.
//! - [`catch_panic`]: what the glue runs every kernel call under, so a bug is a typed exception.
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

/// Run `call`, catching a panic (a bug) as its message, so that the glue raises it as a typed Python
/// exception instead of letting PyO3 raise its `PanicException`, a `BaseException` that no
/// `except Exception` stops (one request could take the server's engine loop down with it).
pub fn catch_panic<T>(call: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).map_err(|payload| {
        if let Some(text) = payload.downcast_ref::<&str>() {
            (*text).to_string()
        } else if let Some(text) = payload.downcast_ref::<String>() {
            text.clone()
        } else {
            "a panic without a message".to_string()
        }
    })
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

    #[test]
    fn a_panic_is_caught_as_its_message() {
        assert_eq!(catch_panic(|| 7), Ok(7));
        let index = 9;
        let caught = catch_panic(|| -> u8 { panic!("index {index} out of range") });
        assert_eq!(caught, Err("index 9 out of range".to_string()));
        assert_eq!(
            catch_panic(|| -> u8 { panic!("plain") }),
            Err("plain".to_string())
        );
    }
}
