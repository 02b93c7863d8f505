//! Token masks from a byte-level grammar (twin of `pyengine/structured/matcher.py`).
//!
//! Same algorithm as the Python twin: an Earley parser over bytes walked depth-first along the
//! vocabulary trie, one Earley set per byte, a rejected byte pruning its whole subtree. What makes
//! it fast, in reading order:
//!
//! - `earley.rs`, the automaton: Earley sets are *hash-consed*. An item's origin is not a position
//!   but the id of the (interned) set it started in, so two sets with the same items behave the
//!   same forever after; each is stored once as a state with a lazily filled transition table
//!   (an entry per byte class: bytes in the same byte sets of the grammar step alike). Inside a
//!   JSON string, a token loop or a repeated object member, parsing a byte is an array lookup.
//! - `walk.rs`, the mask walk: the trie walk with an explicit frame stack; wide trie nodes jump
//!   straight to the children a state can scan ([`trie::Fan`]). The mask of a state is cached.
//! - `slicer.rs`: if a state loops on a class of characters (JSON string content, `[^\n]*`, a
//!   counted `{0,n}`), the tokens made of that class come from a precomputed per-trie table
//!   ([`Slice`]) and only the tokens leaving the class are walked, from where they leave it; a
//!   state whose successors all read exactly its class needs no walk at all.
//! - `jumps.rs`: a state met inside the walk that loops on a class (an additional key once its
//!   first character is none of the declared names' first ones, JSON string content) takes the
//!   class tokens below the trie node as one range of a per-trie table (`Jumps`) and
//!   walks only the nodes where they leave the class: a key's mask walks a few thousand nodes,
//!   not the 300,000 of a vocabulary whose every token may start a key.
//! - `trie.rs`: the vocabulary trie, its fans, the slices and the jumps. A slice or jumps table
//!   costs tens of milliseconds to build and megabytes to keep, so a trie keeps few: those of
//!   the three classes nearly every grammar loops on (built with the trie) and up to
//!   [`trie::MAX_SLICES`] / [`trie::MAX_JUMPS`] in all, a new class pushing out the least
//!   recently used one (a matcher holds on to the tables it was given).
//! - this file: [`GrammarMatcher`], the per-request state (a stack of states, one per byte).
//!
//! A counted repetition with far bounds (a string's `maxLength: 100000`) would make a state per
//! count, so a mask would meet new states (and follow a run of them as deep as the longest token)
//! at every count. The masks are therefore computed on an automaton whose *horizon* is one byte
//! past the longest token (see `earley.rs`): a count far from both bounds is stored as FAR, the
//! same at every count, so such a state loops like `[^"]*` and its mask is computed once. The
//! bytes accepted are stepped on an exact automaton (its counts in full), and each of its states
//! is mapped to the mask automaton's (`Automaton::import`) when a mask is asked for. A grammar with
//! no such repetition needs no second automaton: one does both.
//!
//! Masks are identical to the plain walk (the twin parity tests check it).
//!
//! Errors are [`GrammarError`]s, one variant per cause; the Python glue raises the exception the
//! Python twin raises for each. Limits: [`MAX_EARLEY_ITEMS`] per set (`GrammarLimitError` in
//! Python). [`MAX_STATES`] distinct sets per automaton is a cache bound, not a failure: a long
//! generation whose states pass it (every element of a counted array makes states of its own)
//! gets a fresh automaton, rebuilt from the bytes accepted so far, and the mask or token that hit
//! the bound is computed again there. The masks are the same; only the caches start over.
//!
//! Key types: [`CompiledGrammar`] (a grammar as numbers), [`TokenTrie`] (a vocabulary),
//! [`GrammarMatcher`] (one request's masks), [`GrammarError`].

#![warn(missing_docs)]

mod earley;
mod error;
mod jumps;
mod slicer;
#[cfg(test)]
mod testing;
pub mod trie;
mod walk;

use std::sync::Arc;

pub use earley::{has_byte, FxMap};
use earley::{Automaton, DEAD, NO_HORIZON, ROOT};
pub use earley::{CompiledGrammar, Symbol, MAX_EARLEY_ITEMS, MAX_STATES};
pub use error::{contained, ErrorKind, GrammarError};
use jumps::{Jumps, Loop};
use slicer::{Run, SliceUse};
pub use trie::{Slice, SliceKey, TokenTrie, NO_FAN};
use walk::{Kids, TextMask};

/// Which tokens may come next, and the state advanced by accepted ones (see the module docs).
pub struct GrammarMatcher {
    trie: Arc<TokenTrie>,
    eos: Vec<u32>,
    /// The masks' automaton (states, runs, slices, loops and masks are all of its states)
    auto: Automaton,
    /// The exact automaton of the accepted bytes, if the masks' one has FAR counts (else `auto`)
    path: Option<Automaton>,
    /// `path`'s states mapped to `auto`'s so far
    imported: FxMap<u32, u32>,
    /// State after each consumed byte (of `path`, if any); stack[0] = ROOT
    stack: Vec<u32>,
    /// The bytes consumed: stack[i + 1] is stack[i] stepped by bytes[i] (for `restart`)
    bytes: Vec<u8>,
    /// Per accepted token: (stack length before, terminated before)
    steps: Vec<(usize, bool)>,
    terminated: bool,
    /// Committed state -> allowed text tokens
    masks: FxMap<u32, TextMask>,
    /// State -> its run (see the module docs)
    runs: FxMap<u32, Option<Run>>,
    /// State -> how its mask uses a slice
    slices: FxMap<u32, Option<SliceUse>>,
    /// State -> whether UTF-8 characters were followed, and its loop (see `jumps.rs`)
    loops: FxMap<u32, (bool, Option<Loop>)>,
    /// The vocabulary's jumps asked for so far, by class
    jumps: Vec<(SliceKey, Option<Arc<Jumps>>)>,
    /// Walk scratch: per depth, the state and the children left
    frames: Vec<(u32, Kids)>,
}

impl GrammarMatcher {
    /// A matcher at the start of grammar `g` over the vocabulary `trie`; `eos_token_ids` are
    /// allowed wherever the grammar accepts, and accepting one terminates the matcher.
    pub fn new(
        g: Arc<CompiledGrammar>,
        trie: Arc<TokenTrie>,
        eos_token_ids: &[i64],
    ) -> Result<Self, GrammarError> {
        let mut eos = Vec::new();
        for &t in eos_token_ids {
            if t < 0 || t as usize >= trie.vocab_size {
                return Err(GrammarError::EosOutOfVocabulary {
                    token_id: t,
                    vocab_size: trie.vocab_size,
                });
            }
            eos.push(t as u32);
        }
        eos.sort_unstable();
        eos.dedup();
        let (auto, path) = Self::automata(g, &trie)?;
        Ok(GrammarMatcher {
            trie,
            eos,
            auto,
            path,
            imported: FxMap::default(),
            stack: vec![ROOT],
            bytes: Vec::new(),
            steps: Vec::new(),
            terminated: false,
            masks: FxMap::with_capacity_and_hasher(64, Default::default()),
            runs: FxMap::with_capacity_and_hasher(64, Default::default()),
            slices: FxMap::with_capacity_and_hasher(64, Default::default()),
            loops: FxMap::with_capacity_and_hasher(64, Default::default()),
            jumps: Vec::new(),
            frames: Vec::with_capacity(64),
        })
    }

    /// The masks' automaton of `g` over `trie` (its horizon just past the longest token), and the
    /// exact one for the accepted bytes if the masks' one stores some count as FAR.
    fn automata(
        g: Arc<CompiledGrammar>,
        trie: &TokenTrie,
    ) -> Result<(Automaton, Option<Automaton>), GrammarError> {
        let horizon = u32::try_from(trie.max_depth + 1).unwrap_or(NO_HORIZON);
        if horizon == NO_HORIZON || !g.has_far_counts(horizon) {
            return Ok((Automaton::new(g)?, None));
        }
        let auto = Automaton::with_horizon(g.clone(), horizon)?;
        Ok((auto, Some(Automaton::new(g)?)))
    }

    /// The automaton the accepted bytes are stepped on.
    fn path_auto(&self) -> &Automaton {
        self.path.as_ref().unwrap_or(&self.auto)
    }

    /// The masks' state for the bytes accepted so far.
    fn mask_state(&mut self) -> Result<u32, GrammarError> {
        let s = self.current();
        match &self.path {
            None => Ok(s),
            Some(path) => self.auto.import(path, s, &mut self.imported),
        }
    }

    /// The number of tokens in the vocabulary (masks have one bit per token).
    pub fn vocab_size(&self) -> usize {
        self.trie.vocab_size
    }

    /// The state after every byte accepted so far.
    fn current(&self) -> u32 {
        self.stack.last().copied().unwrap_or(ROOT)
    }

    /// Whether the bytes accepted so far are a whole sentence of the grammar (EOS is allowed).
    pub fn is_accepting(&self) -> bool {
        self.path_auto().states[self.current() as usize].accepting
    }

    /// Whether an EOS token was accepted (then only EOS stays allowed).
    pub fn is_terminated(&self) -> bool {
        self.terminated
    }

    /// The tokens accepted so far (EOS and `accept_bytes` calls included): what `rollback` can undo.
    pub fn num_accepted(&self) -> usize {
        self.steps.len()
    }

    /// Write the allowed tokens into `out`, one word per 32 tokens: token t is allowed when bit
    /// t % 32 of word t / 32 is set.
    pub fn fill_bitmask(&mut self, out: &mut [u32]) -> Result<(), GrammarError> {
        let words = self.trie.vocab_size.div_ceil(32);
        if out.len() != words {
            return Err(GrammarError::BitmaskLength {
                expected: words,
                got: out.len(),
            });
        }
        if self.terminated {
            out.fill(0);
        } else {
            let accepting = self.is_accepting();
            let masked = self.mask_state().and_then(|s| self.text_mask(s, out));
            match masked {
                Err(GrammarError::TooManyStates) => {
                    self.restart()?;
                    let s = self.mask_state()?;
                    self.text_mask(s, out)?;
                }
                other => other?,
            }
            if !accepting {
                return Ok(());
            }
        }
        for &t in &self.eos {
            out[(t >> 5) as usize] |= 1 << (t & 31);
        }
        Ok(())
    }

    /// Whether `fill_bitmask` would only copy a mask computed before (no walk): a call cheap
    /// enough that releasing the Python interpreter around it would cost more than it saves.
    pub fn mask_is_cached(&self) -> bool {
        let s = match self.path {
            None => Some(self.current()),
            Some(_) => self.imported.get(&self.current()).copied(),
        };
        self.terminated || s.is_some_and(|s| self.masks.contains_key(&s))
    }

    /// The allowed token ids, ascending.
    pub fn allowed_token_ids(&mut self) -> Result<Vec<u32>, GrammarError> {
        let mut mask = vec![0u32; self.trie.vocab_size.div_ceil(32)];
        self.fill_bitmask(&mut mask)?;
        let mut ids = Vec::new();
        for (w, &bits) in mask.iter().enumerate() {
            let mut b = bits;
            while b != 0 {
                ids.push((w as u32) << 5 | b.trailing_zeros());
                b &= b - 1;
            }
        }
        Ok(ids)
    }

    /// Advance by one token; false (and no change) if the grammar does not allow it here.
    pub fn accept_token(&mut self, token_id: i64) -> Result<bool, GrammarError> {
        if token_id < 0 || token_id as usize >= self.trie.vocab_size {
            return Err(GrammarError::TokenOutOfRange {
                token_id,
                vocab_size: self.trie.vocab_size,
            });
        }
        if self.terminated {
            return Ok(false);
        }
        if self.eos.binary_search(&(token_id as u32)).is_ok() {
            if !self.is_accepting() {
                return Ok(false);
            }
            self.steps.push((self.stack.len(), false));
            self.terminated = true;
            return Ok(true);
        }
        let trie = self.trie.clone();
        let data = &trie.token_bytes[token_id as usize];
        Ok(!data.is_empty() && self.accept_bytes(data)?)
    }

    /// Advance by raw bytes, one step for `rollback`; false (and no change) if they do not fit.
    pub fn accept_bytes(&mut self, data: &[u8]) -> Result<bool, GrammarError> {
        if self.terminated {
            return Ok(false);
        }
        let accepted = match self.push_bytes(data) {
            Err(GrammarError::TooManyStates) => {
                self.restart()?;
                self.push_bytes(data)?
            }
            other => other?,
        };
        if accepted {
            self.steps.push((self.stack.len() - data.len(), false));
        }
        Ok(accepted)
    }

    /// Step by each byte of `data`; all or nothing.
    fn push_bytes(&mut self, data: &[u8]) -> Result<bool, GrammarError> {
        let depth = self.stack.len();
        for &b in data {
            let s = self.current();
            let auto = self.path.as_mut().unwrap_or(&mut self.auto);
            match auto.step(s, b) {
                Ok(s) if s != DEAD => {
                    self.stack.push(s);
                    self.bytes.push(b);
                }
                other => {
                    self.stack.truncate(depth);
                    self.bytes.truncate(depth - 1);
                    return other.map(|_| false);
                }
            }
        }
        Ok(true)
    }

    /// Fresh automata (and caches) with the bytes accepted so far replayed: the states the old
    /// ones made for masks and paths not taken are dropped. If the replay alone passes the bound,
    /// the error comes back and the matcher keeps its old automata.
    fn restart(&mut self) -> Result<(), GrammarError> {
        let (mut auto, mut path) = Self::automata(self.auto.g.clone(), &self.trie)?;
        auto.max_states = self.auto.max_states;
        if let (Some(new), Some(old)) = (&mut path, &self.path) {
            new.max_states = old.max_states;
        }
        let mut stack = Vec::with_capacity(self.stack.len());
        stack.push(ROOT);
        let replay = path.as_mut().unwrap_or(&mut auto);
        for &b in &self.bytes {
            let s = replay.step(stack[stack.len() - 1], b)?;
            if s == DEAD {
                return Err(GrammarError::Internal("a replayed byte was rejected"));
            }
            stack.push(s);
        }
        (self.auto, self.path, self.stack) = (auto, path, stack);
        self.imported.clear();
        self.masks.clear();
        self.runs.clear();
        self.slices.clear();
        self.loops.clear();
        Ok(())
    }

    /// Undo the last `n_tokens` accepted tokens (EOS included).
    pub fn rollback(&mut self, n_tokens: usize) -> Result<(), GrammarError> {
        if n_tokens > self.steps.len() {
            return Err(GrammarError::Rollback {
                requested: n_tokens as i64,
                accepted: self.steps.len(),
            });
        }
        if n_tokens == 0 {
            return Ok(());
        }
        let (depth, terminated) = self.steps[self.steps.len() - n_tokens];
        self.steps.truncate(self.steps.len() - n_tokens);
        self.stack.truncate(depth);
        self.bytes.truncate(depth - 1);
        self.terminated = terminated;
        Ok(())
    }

    /// Back to the start of the grammar.
    pub fn reset(&mut self) {
        self.steps.clear();
        self.stack.truncate(1);
        self.bytes.clear();
        self.terminated = false;
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{allowed_one_by_one, matcher, Draw};
    use super::*;

    /// `0 ::= "" | 0 "a"` (a left-recursive star).
    fn a_star() -> Arc<CompiledGrammar> {
        let mut d = Draw::default();
        let a = d.byte(b'a');
        d.alt(0, &[]);
        d.alt(0, &[Symbol::Rule(0), a]);
        d.build(0)
    }

    //                     0          1           2          3
    const VOCAB: [Option<&[u8]>; 4] = [Some(b"a"), Some(b"aa"), Some(b"b"), None];
    const EOS: i64 = 3;

    #[test]
    fn eos_only_where_the_grammar_accepts_and_rollback_undoes_it() {
        let mut m = matcher(a_star(), &VOCAB, &[EOS]);
        assert_eq!(m.allowed_token_ids().unwrap(), vec![0, 1, 3]);
        assert!(m.accept_token(1).unwrap()); // "aa"
        assert!(!m.accept_token(2).unwrap()); // "b" refused, nothing changed
        assert_eq!(m.num_accepted(), 1);
        assert!(m.accept_token(EOS).unwrap());
        assert!(m.is_terminated());
        assert_eq!(m.allowed_token_ids().unwrap(), vec![3]);
        assert!(!m.accept_token(0).unwrap()); // nothing after EOS
        m.rollback(2).unwrap();
        assert!(!m.is_terminated());
        assert_eq!(m.num_accepted(), 0);
    }

    #[test]
    fn the_bitmask_has_one_bit_per_token() {
        let mut m = matcher(a_star(), &VOCAB, &[EOS]);
        let mut words = [0u32; 1];
        m.fill_bitmask(&mut words).unwrap();
        assert_eq!(words[0], 0b1011); // tokens 0, 1 and EOS
        assert!(m.accept_bytes(b"a").unwrap());
        assert!(!m.accept_bytes(b"ab").unwrap()); // all or nothing
        assert_eq!(m.num_accepted(), 1);
        m.reset();
        assert_eq!(m.num_accepted(), 0);
    }

    #[test]
    fn past_the_state_bound_the_matcher_starts_again_from_its_bytes() {
        // 0 ::= "[" 1{0,200} "]"    1 ::= "a" | "b" "c" "d" "a"
        // (a state per count on the path, and three more off it, after "b", "bc" and "bcd";
        // a token longer than the bound keeps every count exact in the masks' states too)
        let mut d = Draw::default();
        let (open, close) = (d.byte(b'['), d.byte(b']'));
        let (a, b, c, e) = (d.byte(b'a'), d.byte(b'b'), d.byte(b'c'), d.byte(b'd'));
        let many = d.repeat(1, 0, 200);
        d.alt(0, &[open, many, close]);
        d.alt(1, &[a]);
        d.alt(1, &[b, c, e, a]);
        let long = [b'a'; 250];
        let vocab: [Option<&[u8]>; 6] = [
            Some(b"["),
            Some(b"a"),
            Some(b"aaaa"),
            Some(b"]"),
            Some(b"bcd"),
            Some(&long),
        ];
        let mut m = matcher(d.build(0), &vocab, &[]);
        m.auto.max_states = 300;
        let mut restarts = 0;
        assert!(m.accept_token(0).unwrap());
        let mut before = m.auto.states.len();
        for _ in 0..50 {
            assert_eq!(m.allowed_token_ids().unwrap(), vec![1, 2, 3, 4]);
            assert!(m.accept_token(2).unwrap()); // 200 a's in all
            restarts += usize::from(m.auto.states.len() < before);
            before = m.auto.states.len();
            assert!(before <= 300);
        }
        assert!(restarts > 0);
        assert_eq!(m.allowed_token_ids().unwrap(), vec![3]);
        m.rollback(1).unwrap(); // the caches were dropped, not the history
        assert_eq!(m.allowed_token_ids().unwrap(), vec![1, 2, 3, 4]);
        m.auto.max_states = 100; // the bytes alone need more: a clean error, the matcher kept
        assert_eq!(m.restart(), Err(GrammarError::TooManyStates));
        assert_eq!(m.allowed_token_ids().unwrap(), vec![1, 2, 3, 4]);
        assert_eq!((m.num_accepted(), m.stack.len()), (50, 198));
    }

    #[test]
    fn masks_near_a_far_bound_are_exact_and_far_counts_share_their_states() {
        // 0 ::= "[" 1{0,60} "]"    1 ::= "a" | "bc"   (tokens of up to 5 bytes: FAR counts)
        let mut d = Draw::default();
        let (open, close) = (d.byte(b'['), d.byte(b']'));
        let (a, b, c) = (d.byte(b'a'), d.byte(b'b'), d.byte(b'c'));
        let many = d.repeat(1, 0, 60);
        d.alt(0, &[open, many, close]);
        d.alt(1, &[a]);
        d.alt(1, &[b, c]);
        let vocab: [Option<&[u8]>; 8] = [
            Some(b"["),
            Some(b"aa"),
            Some(b"a"),
            Some(b"aaaa"),
            Some(b"]"),
            Some(b"bc"),
            Some(b"a]"),
            Some(b"abca]"),
        ];
        let mut m = matcher(d.build(0), &vocab, &[]);
        assert!(m.path.is_some());
        assert!(m.accept_token(0).unwrap());
        for count in (0..=60).step_by(2) {
            let allowed = m.allowed_token_ids().unwrap();
            assert_eq!(allowed, allowed_one_by_one(&mut m), "after {count}");
            assert_eq!(allowed.contains(&3), count <= 56, "after {count}");
            assert_eq!(allowed.contains(&7), count <= 56, "after {count}");
            assert_eq!(allowed.contains(&1), count <= 58, "after {count}");
            if count < 60 {
                assert!(m.accept_token(1).unwrap());
            }
        }
        assert!(!m.accept_token(2).unwrap() && m.accept_token(4).unwrap());
        assert!(m.is_accepting());
        // (a state per count on the path; the masks' states are the same far from the bound)
        let path = m.path.as_ref().unwrap().states.len();
        assert!(
            path > 60 && m.auto.states.len() < 40,
            "{path} {}",
            m.auto.states.len()
        );
    }

    #[test]
    fn bad_arguments_are_errors_not_panics() {
        let mut d = Draw::default();
        let x = d.byte(b'x');
        d.alt(0, &[x]);
        let g = d.build(0);
        let only_x: [Option<&[u8]>; 1] = [Some(b"x")];
        let trie = testing::trie(&only_x);
        assert_eq!(
            GrammarMatcher::new(g.clone(), trie.clone(), &[7]).err(),
            Some(GrammarError::EosOutOfVocabulary {
                token_id: 7,
                vocab_size: 1
            })
        );
        let mut m = GrammarMatcher::new(g, trie, &[]).unwrap();
        assert_eq!(
            m.accept_token(9),
            Err(GrammarError::TokenOutOfRange {
                token_id: 9,
                vocab_size: 1
            })
        );
        assert_eq!(
            m.rollback(1),
            Err(GrammarError::Rollback {
                requested: 1,
                accepted: 0
            })
        );
        assert_eq!(
            m.fill_bitmask(&mut [0, 0]),
            Err(GrammarError::BitmaskLength {
                expected: 1,
                got: 2
            })
        );
    }
}
