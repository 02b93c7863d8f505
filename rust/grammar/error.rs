//! The errors of the grammar kernels, one variant per cause.
//!
//! The Python glue maps a variant to its exception by [`GrammarError::kind`], so the Python side
//! raises what the Python twin (`pyengine/structured/matcher.py`) raises, with the same message:
//! the [`std::fmt::Display`] text below.

use std::fmt;

use super::earley::{MAX_EARLEY_ITEMS, MAX_STATES};

/// Why a grammar kernel refused to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrammarError {
    /// The flattened grammar is malformed (an index out of range, an empty alternative row, ...).
    InvalidGrammar(&'static str),
    /// More than [`MAX_EARLEY_ITEMS`] Earley items at one position.
    TooManyItems,
    /// More than [`MAX_STATES`] distinct Earley sets in one matcher.
    TooManyStates,
    /// An EOS token id outside the vocabulary.
    EosOutOfVocabulary {
        /// The EOS id asked for.
        token_id: i64,
        /// The number of tokens in the vocabulary.
        vocab_size: usize,
    },
    /// A token id outside the vocabulary.
    TokenOutOfRange {
        /// The token id asked for.
        token_id: i64,
        /// The number of tokens in the vocabulary.
        vocab_size: usize,
    },
    /// A bitmask whose length is not one word per 32 tokens of the vocabulary.
    BitmaskLength {
        /// The words the vocabulary needs: `vocab_size.div_ceil(32)`.
        expected: usize,
        /// The words given.
        got: usize,
    },
    /// A rollback of more tokens than were accepted (or of a negative number).
    Rollback {
        /// The number of tokens to undo.
        requested: i64,
        /// The number of tokens accepted so far.
        accepted: usize,
    },
    /// A vocabulary too large for the trie's 32-bit indices.
    VocabularyTooLarge(usize),
    /// A broken invariant of the matcher: a bug, never the input's fault.
    Internal(&'static str),
    /// A panic caught at the boundary (see [`contained`]): a bug; its message says where.
    Panicked(String),
}

/// What kind of failure a [`GrammarError`] is: it decides the Python exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The grammar (or its EOS ids) is invalid: `GrammarError` in Python.
    Grammar,
    /// A documented limit was hit: `GrammarLimitError` in Python.
    Limit,
    /// A bad argument to a call (a token id, a bitmask, a rollback count): `ValueError`.
    Argument,
    /// A bug in the kernel: `RuntimeError`.
    Internal,
}

impl GrammarError {
    /// The kind of failure, for the mapping to a Python exception.
    pub fn kind(&self) -> ErrorKind {
        match self {
            GrammarError::InvalidGrammar(_) | GrammarError::EosOutOfVocabulary { .. } => {
                ErrorKind::Grammar
            }
            GrammarError::TooManyItems | GrammarError::TooManyStates => ErrorKind::Limit,
            GrammarError::TokenOutOfRange { .. }
            | GrammarError::BitmaskLength { .. }
            | GrammarError::Rollback { .. }
            | GrammarError::VocabularyTooLarge(_) => ErrorKind::Argument,
            GrammarError::Internal(_) | GrammarError::Panicked(_) => ErrorKind::Internal,
        }
    }
}

impl fmt::Display for GrammarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrammarError::InvalidGrammar(what) => write!(f, "invalid flat grammar: {what}"),
            GrammarError::TooManyItems => {
                write!(
                    f,
                    "more than {MAX_EARLEY_ITEMS} Earley items at one position"
                )
            }
            GrammarError::TooManyStates => write!(f, "more than {MAX_STATES} parser states"),
            GrammarError::EosOutOfVocabulary {
                token_id,
                vocab_size,
            } => write!(
                f,
                "EOS token id {token_id} is outside the vocabulary of {vocab_size} tokens"
            ),
            GrammarError::TokenOutOfRange {
                token_id,
                vocab_size,
            } => write!(
                f,
                "token id {token_id} is out of range for a vocabulary of {vocab_size} tokens"
            ),
            GrammarError::BitmaskLength { expected, got } => write!(
                f,
                "bitmask must be an int32 array of shape ({expected},), got int32 ({got},)"
            ),
            GrammarError::Rollback {
                requested,
                accepted,
            } => write!(
                f,
                "cannot roll back {requested} tokens: {accepted} accepted"
            ),
            GrammarError::VocabularyTooLarge(n) => {
                write!(f, "a vocabulary of {n} tokens is too large")
            }
            GrammarError::Internal(what) => write!(f, "internal error: {what}"),
            GrammarError::Panicked(what) => {
                write!(f, "internal error: the grammar kernel panicked: {what}")
            }
        }
    }
}

impl std::error::Error for GrammarError {}

/// Run `call`, turning a panic inside it into [`GrammarError::Panicked`].
///
/// A panic is a bug, but it must not unwind into Python: there it would be a `PanicException`,
/// a `BaseException` that no `except Exception` stops, so one request's bad grammar could take the
/// server's engine loop down. Every call from Python goes through here; the caller decides whether
/// the object that panicked may be used again (a matcher may not: its state is half-updated).
pub fn contained<T>(call: impl FnOnce() -> Result<T, GrammarError>) -> Result<T, GrammarError> {
    crate::catch_panic(call).unwrap_or_else(|what| Err(GrammarError::Panicked(what)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let caught = contained::<()>(|| panic!("index {} out of range", 7));
        let err = caught.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(
            err.to_string(),
            "internal error: the grammar kernel panicked: index 7 out of range"
        );
        assert_eq!(contained(|| Ok(3)), Ok(3));
        let plain = contained::<()>(|| std::panic::panic_any(12));
        assert!(plain
            .unwrap_err()
            .to_string()
            .ends_with("a panic without a message"));
    }

    #[test]
    fn messages_match_the_python_twin() {
        let e = GrammarError::TokenOutOfRange {
            token_id: 12,
            vocab_size: 12,
        };
        assert_eq!(
            e.to_string(),
            "token id 12 is out of range for a vocabulary of 12 tokens"
        );
        assert_eq!(e.kind(), ErrorKind::Argument);
        let e = GrammarError::Rollback {
            requested: 1,
            accepted: 0,
        };
        assert_eq!(e.to_string(), "cannot roll back 1 tokens: 0 accepted");
        assert_eq!(
            GrammarError::TooManyItems.to_string(),
            "more than 100000 Earley items at one position"
        );
        assert_eq!(GrammarError::TooManyItems.kind(), ErrorKind::Limit);
        let e = GrammarError::EosOutOfVocabulary {
            token_id: 99,
            vocab_size: 12,
        };
        assert_eq!(
            e.to_string(),
            "EOS token id 99 is outside the vocabulary of 12 tokens"
        );
        assert_eq!(e.kind(), ErrorKind::Grammar);
    }
}
