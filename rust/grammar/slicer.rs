//! The slicer: masks of broad states from per-class token tables instead of a walk.
//!
//! If every character of a class (a byte set, plus maybe every multi-byte UTF-8 character) leads
//! from a state along one chain of states (a loop such as JSON string content or `[^\n]*`, or a
//! counted `{0,n}`: a [`Run`]), the tokens made of that class are allowed wholesale, up to the
//! run's length (a [`Slice`]: masks per trie and class, built once). Every other token leaves the
//! class after some k characters; after those the state is the run's k-th one, so the walk of
//! those tokens starts there, at the token's exit byte (see `GrammarMatcher::text_mask`).
//!
//! A state may also be *closed* under its byte class: every state its bytes lead to scans exactly
//! the same class (an email's domain `[a-z0-9.-]+\.[a-z]{2,4}`). Then the tokens allowed are exactly
//! the tokens of that class, the slice's mask, with no walk at all.

use std::sync::Arc;

use super::earley::{has_byte, Automaton, DEAD};
use super::trie::{self, Slice, SliceKey};
use super::GrammarMatcher;
use super::error::GrammarError;

/// A state loops on fewer single bytes than this (and on no UTF-8 character): no slice.
const MIN_SLICE_BYTES: u32 = 32;
/// A closed class (see [`Automaton::closed_class`]) is looked for among this many states at most.
const MAX_CLOSED_STATES: usize = 16;

impl Automaton {
    /// The first step of a run from `s` (see [`Run`]): the state `t` most ASCII bytes lead to, and
    /// the class of the characters that lead there: those bytes, plus every multi-byte UTF-8
    /// character if they all lead there too (else the non-ASCII bytes that do). None if narrow.
    pub(super) fn first_step(&mut self, s: u32) -> Result<Option<(SliceKey, u32)>, GrammarError> {
        // Narrow at a glance: a class needs MIN_SLICE_BYTES bytes, or all 51 UTF-8 lead bytes.
        // (Most states after `{`, `:` or `,` stop here, before stepping every byte they scan.)
        if self.states[s as usize].scan_bytes.iter().map(|w| w.count_ones()).sum::<u32>() < MIN_SLICE_BYTES {
            return Ok(None);
        }
        let mut targets: Vec<(u32, u32)> = Vec::new(); // (state, bytes leading there)
        let mut to = [DEAD; 256];
        for b in 0..=255u8 {
            if has_byte(&self.states[s as usize].scan_bytes, b) {
                to[b as usize] = self.step(s, b)?;
            }
            if b < 0x80 && to[b as usize] != DEAD {
                match targets.iter_mut().find(|(t, _)| *t == to[b as usize]) {
                    Some((_, n)) => *n += 1,
                    None => targets.push((to[b as usize], 1)),
                }
            }
        }
        let Some(&(t, _)) = targets.iter().max_by_key(|&&(t, n)| (n, t == s)) else { return Ok(None) };
        let mut bits = [0u64; 4];
        for b in 0..=255u8 {
            if to[b as usize] == t {
                bits[(b >> 6) as usize] |= 1 << (b & 63);
            }
        }
        let utf8 = SliceKey { bits: [bits[0], bits[1], 0, 0], utf8: true };
        if self.chars_lead_to(s, t, &utf8)? {
            return Ok(Some((utf8, t)));
        }
        let n: u32 = bits.iter().map(|w| w.count_ones()).sum();
        Ok((n >= MIN_SLICE_BYTES).then_some((SliceKey { bits, utf8: false }, t)))
    }

    /// Every valid multi-byte UTF-8 character leads from `s` to `t`.
    pub(super) fn chars_lead_to(&mut self, s: u32, t: u32, key: &SliceKey) -> Result<bool, GrammarError> {
        let mut todo: Vec<(u32, u8)> = vec![(s, 0)];
        let mut seen: Vec<(u32, u8)> = Vec::new();
        while let Some((u, d)) = todo.pop() {
            let bytes = if d == 0 { 0xC2..=0xF4u8 } else { 0x80..=0xBFu8 };
            let mut last = (DEAD, trie::OUT);
            for b in bytes {
                let d2 = key.step(d, b);
                if d2 == trie::OUT {
                    continue;
                }
                let u2 = self.step(u, b)?;
                if (u2, d2) == last {
                    continue; // same as the byte before (a byte class): checked already
                }
                last = (u2, d2);
                if u2 == DEAD || (d2 == 0 && u2 != t) {
                    return Ok(false);
                }
                if d2 != 0 && !seen.contains(&(u2, d2)) {
                    if seen.len() >= 64 {
                        return Ok(false);
                    }
                    seen.push((u2, d2));
                    todo.push((u2, d2));
                }
            }
        }
        Ok(true)
    }

    /// The byte class `s` is *closed* under, if any: every state that bytes of `s`'s scan set C
    /// lead to (from `s`, then from those, ...) scans exactly C again. Then a byte string is
    /// accepted from `s` if and only if all its bytes are in C: the mask is the slice of C, with
    /// nothing to walk. (The email regex's domain `[a-z0-9.-]+\.[a-z]{2,4}` is such a state: its
    /// bytes lead to different states, so it has no [`Run`], but all of them read the same class.)
    pub(super) fn closed_class(&mut self, s: u32) -> Result<Option<SliceKey>, GrammarError> {
        let class = self.states[s as usize].scan_bytes;
        if class.iter().map(|w| w.count_ones()).sum::<u32>() < MIN_SLICE_BYTES {
            return Ok(None);
        }
        let mut reached = vec![s];
        let mut i = 0;
        while let Some(&u) = reached.get(i) {
            i += 1;
            if self.states[u as usize].scan_bytes != class {
                return Ok(None);
            }
            for (w, &word) in class.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let v = self.step(u, (w * 64 + bits.trailing_zeros() as usize) as u8)?;
                    bits &= bits - 1;
                    if !reached.contains(&v) {
                        if reached.len() >= MAX_CLOSED_STATES {
                            return Ok(None);
                        }
                        reached.push(v);
                    }
                }
            }
        }
        Ok(Some(SliceKey { bits: class, utf8: false }))
    }

    /// No character of `key` can be read from `s` (checked on first bytes: conservative).
    pub(super) fn rejects(&mut self, s: u32, key: &SliceKey) -> Result<bool, GrammarError> {
        for b in 0..=255u8 {
            if key.step(0, b) != trie::OUT && self.step(s, b)? != DEAD {
                return Ok(false);
            }
        }
        Ok(true)
    }}

/// A run of characters from a state: every string of `chars` characters or fewer of `key`
/// (`u32::MAX`: any number) is accepted. If `exact`, no longer one is; otherwise longer ones are
/// unknown.
#[derive(Debug, Clone, Copy)]
pub(super) struct Run {
    pub(super) key: SliceKey,
    pub(super) chars: u32,
    pub(super) exact: bool,
    pub(super) next: u32, // the state after any one character of `key`
}

/// How a state's mask uses a slice: the class tokens of at most `chars` characters, and, if
/// `exits`, a walk of the exit groups from the run's states.
#[derive(Clone)]
pub(super) struct SliceUse {
    pub(super) slice: Arc<Slice>,
    pub(super) chars: usize,
    pub(super) exits: bool,
}

pub(super) const UNBOUNDED: u32 = u32::MAX;
const MAX_RUN_DEPTH: usize = 512;

impl GrammarMatcher {
    /// The run from `s`, memoized (a chain of states, each one step further along the class).
    pub(super) fn run_of(&mut self, s: u32, depth: usize) -> Result<Option<Run>, GrammarError> {
        if let Some(r) = self.runs.get(&s) {
            return Ok(*r);
        }
        let r = match self.auto.first_step(s)? {
            None => None,
            Some((key, t)) if t == s => Some(Run { key, chars: UNBOUNDED, exact: true, next: t }),
            Some((key, t)) => {
                let tail = if depth >= MAX_RUN_DEPTH { None } else { self.run_of(t, depth + 1)? };
                let (chars, exact) = match tail {
                    Some(r) if key.subset_of(&r.key) => (r.chars.saturating_add(1), r.exact),
                    _ if self.auto.rejects(t, &key)? => (1, true),
                    _ => (1, false),
                };
                Some(Run { key, chars, exact, next: t })
            }
        };
        if depth < MAX_RUN_DEPTH {
            self.runs.insert(s, r);
        }
        Ok(r)
    }

    /// The slice to mask `s` with: its class is closed from `s`, or `s` starts a run on it.
    pub(super) fn slice_of(&mut self, s: u32) -> Result<Option<SliceUse>, GrammarError> {
        if let Some(key) = self.auto.closed_class(s)? {
            // (only the slice of exactly this class will do: there is no walk to add what a
            // narrower one misses)
            if let Some(slice) = self.trie.slice(key).filter(|sl| sl.key == key) {
                return Ok(Some(SliceUse { slice, chars: UNBOUNDED as usize, exits: false }));
            }
        }
        let Some(run) = self.run_of(s, 0)? else { return Ok(None) };
        let Some(slice) = self.trie.slice(run.key) else { return Ok(None) };
        let chars = run.chars as usize;
        Ok((run.exact || chars >= slice.max_chars).then_some(SliceUse { slice, chars, exits: true }))
    }
}
