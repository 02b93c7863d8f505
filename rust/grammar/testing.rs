//! Hand-drawn grammars and vocabularies for the grammar kernels' unit tests.

use std::sync::Arc;

use super::{CompiledGrammar, GrammarMatcher, Symbol, TokenTrie};

/// A grammar drawn by hand: the caller numbers the rules, byte sets are numbered as they are made.
#[derive(Default)]
pub(super) struct Draw {
    alternatives: Vec<(u32, Vec<Symbol>)>,
    byte_sets: Vec<Vec<(u8, u8)>>,
    repeats: Vec<(u32, u32, u32)>,
}

impl Draw {
    /// One byte from the inclusive `ranges`.
    pub(super) fn set(&mut self, ranges: &[(u8, u8)]) -> Symbol {
        self.byte_sets.push(ranges.to_vec());
        Symbol::Bytes(self.byte_sets.len() as u32 - 1)
    }

    /// Exactly the byte `b`.
    pub(super) fn byte(&mut self, b: u8) -> Symbol {
        self.set(&[(b, b)])
    }

    /// Rule `rule`, `min` to `max` times (a counted repetition).
    pub(super) fn repeat(&mut self, rule: u32, min: u32, max: u32) -> Symbol {
        self.repeats.push((rule, min, max));
        Symbol::Repeat(self.repeats.len() as u32 - 1)
    }

    /// The alternative `lhs ::= symbols` (no symbols: the empty string).
    pub(super) fn alt(&mut self, lhs: u32, symbols: &[Symbol]) {
        self.alternatives.push((lhs, symbols.to_vec()));
    }

    /// The grammar, starting at rule `start`.
    pub(super) fn build(self, start: u32) -> Arc<CompiledGrammar> {
        Arc::new(
            CompiledGrammar::new(start, self.alternatives, self.byte_sets, self.repeats).unwrap(),
        )
    }
}

/// The trie of a hand-written vocabulary (token i is `tokens[i]`; None never matches).
pub(super) fn trie(tokens: &[Option<&[u8]>]) -> Arc<TokenTrie> {
    Arc::new(TokenTrie::new(tokens.iter().map(|t| t.map(<[u8]>::to_vec)).collect()).unwrap())
}

/// A matcher of `g` over `tokens`, with the EOS ids `eos`.
pub(super) fn matcher(
    g: Arc<CompiledGrammar>,
    tokens: &[Option<&[u8]>],
    eos: &[i64],
) -> GrammarMatcher {
    GrammarMatcher::new(g, trie(tokens), eos).unwrap()
}

/// The tokens allowed next, found the slow way: accept each token on its own, then roll it back.
pub(super) fn allowed_one_by_one(m: &mut GrammarMatcher) -> Vec<u32> {
    (0..m.vocab_size() as u32)
        .filter(|&t| {
            let accepted = m.accept_token(t as i64).unwrap();
            if accepted {
                m.rollback(1).unwrap();
            }
            accepted
        })
        .collect()
}
