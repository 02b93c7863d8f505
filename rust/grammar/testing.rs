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

    /// Rule `r` ::= any one UTF-8 character of two to four bytes (no surrogates, none above U+10FFFF).
    pub(super) fn utf8_char(&mut self, r: u32) {
        let cont = self.set(&[(0x80, 0xBF)]);
        let lead2 = self.set(&[(0xC2, 0xDF)]);
        let (e0, e0_next) = (self.byte(0xE0), self.set(&[(0xA0, 0xBF)]));
        let lead3 = self.set(&[(0xE1, 0xEC), (0xEE, 0xEF)]);
        let (ed, ed_next) = (self.byte(0xED), self.set(&[(0x80, 0x9F)]));
        let (f0, f0_next) = (self.byte(0xF0), self.set(&[(0x90, 0xBF)]));
        let lead4 = self.set(&[(0xF1, 0xF3)]);
        let (f4, f4_next) = (self.byte(0xF4), self.set(&[(0x80, 0x8F)]));
        self.alt(r, &[lead2, cont]);
        self.alt(r, &[e0, e0_next, cont]);
        self.alt(r, &[lead3, cont, cont]);
        self.alt(r, &[ed, ed_next, cont]);
        self.alt(r, &[f0, f0_next, cont, cont]);
        self.alt(r, &[lead4, cont, cont, cont]);
        self.alt(r, &[f4, f4_next, cont, cont]);
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
