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
use super::error::GrammarError;
use super::trie::{self, Slice, SliceKey};
use super::GrammarMatcher;

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
        if self.states[s as usize]
            .scan_bytes
            .iter()
            .map(|w| w.count_ones())
            .sum::<u32>()
            < MIN_SLICE_BYTES
        {
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
        let Some(&(t, _)) = targets.iter().max_by_key(|&&(t, n)| (n, t == s)) else {
            return Ok(None);
        };
        let mut bits = [0u64; 4];
        for b in 0..=255u8 {
            if to[b as usize] == t {
                bits[(b >> 6) as usize] |= 1 << (b & 63);
            }
        }
        let utf8 = SliceKey {
            bits: [bits[0], bits[1], 0, 0],
            utf8: true,
        };
        if self.chars_lead_to(s, t, &utf8)? {
            return Ok(Some((utf8, t)));
        }
        let n: u32 = bits.iter().map(|w| w.count_ones()).sum();
        Ok((n >= MIN_SLICE_BYTES).then_some((SliceKey { bits, utf8: false }, t)))
    }

    /// Every valid multi-byte UTF-8 character leads from `s` to `t`.
    pub(super) fn chars_lead_to(
        &mut self,
        s: u32,
        t: u32,
        key: &SliceKey,
    ) -> Result<bool, GrammarError> {
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
        Ok(Some(SliceKey {
            bits: class,
            utf8: false,
        }))
    }

    /// No character of `key` can be read from `s` (checked on first bytes: conservative).
    pub(super) fn rejects(&mut self, s: u32, key: &SliceKey) -> Result<bool, GrammarError> {
        for b in 0..=255u8 {
            if key.step(0, b) != trie::OUT && self.step(s, b)? != DEAD {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A run of characters from a state: every string of `chars` characters or fewer of `key`
/// (`u32::MAX`: any number) is accepted. If `exact`, no longer one is; otherwise longer ones are
/// unknown.
#[derive(Debug, Clone, Copy)]
pub(super) struct Run {
    /// The class of the run's characters.
    pub(super) key: SliceKey,
    /// The most characters of the class known to be accepted ([`UNBOUNDED`]: any number).
    pub(super) chars: u32,
    /// Whether one character more than `chars` is known to be rejected.
    pub(super) exact: bool,
    /// The state after any one character of `key`
    pub(super) next: u32,
}

/// How a state's mask uses a slice: the class tokens of at most `chars` characters, and, if
/// `exits`, a walk of the exit groups from the run's states.
#[derive(Clone)]
pub(super) struct SliceUse {
    /// The slice of the state's class.
    pub(super) slice: Arc<Slice>,
    /// The most class characters a token may have ([`UNBOUNDED`]: any number).
    pub(super) chars: usize,
    /// Whether the tokens that leave the class are walked too (else the slice is all).
    pub(super) exits: bool,
}

/// A run of any length.
pub(super) const UNBOUNDED: u32 = u32::MAX;
const MAX_RUN_DEPTH: u32 = 512;

impl GrammarMatcher {
    /// The run from `s`, followed at least `need` characters deep (or to its end), memoized (a
    /// chain of states, each one step further along the class).
    ///
    /// A run is followed only as deep as a mask can use (the longest token of the class), not to
    /// its end: `[^"]{0,100000}` has a chain of 100,000 states. A memoized run found too short
    /// for a later `need` is extended from its tail, which is memoized too, so the mask one
    /// character further along costs one new state, not a new chain.
    pub(super) fn run_of(&mut self, s: u32, need: u32) -> Result<Option<Run>, GrammarError> {
        let need = need.clamp(1, MAX_RUN_DEPTH);
        let known = match self.runs.get(&s) {
            Some(None) => return Ok(None),
            Some(Some(r)) if r.exact || r.chars >= need => return Ok(Some(*r)),
            Some(Some(r)) => Some((r.key, r.next)),
            None => None,
        };
        let first = match known {
            Some(step) => Some(step),
            None => self.auto.first_step(s)?,
        };
        let r = match first {
            None => None,
            Some((key, t)) if t == s => Some(Run {
                key,
                chars: UNBOUNDED,
                exact: true,
                next: t,
            }),
            Some((key, t)) => {
                let tail = if need > 1 {
                    self.run_of(t, need - 1)?
                } else {
                    None
                };
                let (chars, exact) = match tail {
                    Some(r) if key.subset_of(&r.key) => (r.chars.saturating_add(1), r.exact),
                    _ if self.auto.rejects(t, &key)? => (1, true),
                    _ => (1, false),
                };
                Some(Run {
                    key,
                    chars,
                    exact,
                    next: t,
                })
            }
        };
        self.runs.insert(s, r);
        Ok(r)
    }

    /// The slice to mask `s` with: its class is closed from `s`, or `s` starts a run on it.
    pub(super) fn slice_of(&mut self, s: u32) -> Result<Option<SliceUse>, GrammarError> {
        if let Some(key) = self.auto.closed_class(s)? {
            // (only the slice of exactly this class will do: there is no walk to add what a
            // narrower one misses)
            if let Some(slice) = self.trie.slice(key).filter(|sl| sl.key == key) {
                return Ok(Some(SliceUse {
                    slice,
                    chars: UNBOUNDED as usize,
                    exits: false,
                }));
            }
        }
        let Some(first) = self.run_of(s, 1)? else {
            return Ok(None);
        };
        if first.next != s {
            // A first class narrower than the class its successor goes on with (an additional
            // key after the declared names' first characters): most tokens would be exits of
            // the slice; a walk that jumps from the successor (see `jumps.rs`) does better.
            if let Some(then) = self.run_of(first.next, 1)? {
                if !then.key.subset_of(&first.key) {
                    return Ok(None);
                }
            }
        }
        let Some(slice) = self.trie.slice(first.key) else {
            return Ok(None);
        };
        // (only as deep as the longest token of the class: a deeper run changes no mask)
        let need = u32::try_from(slice.max_chars).unwrap_or(u32::MAX);
        let Some(run) = self.run_of(s, need)? else {
            return Ok(None);
        };
        let chars = run.chars as usize;
        Ok((run.exact || chars >= slice.max_chars).then_some(SliceUse {
            slice,
            chars,
            exits: true,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::earley::ROOT;
    use super::super::testing::{allowed_one_by_one, matcher, Draw};
    use super::super::Symbol;
    use super::*;

    #[test]
    fn json_string_content_is_an_unbounded_run_on_the_prebuilt_slice() {
        // 0 ::= "\"" 1 "\""    1 ::= "" | 1 2    2 ::= [ !#-[\]-\x7F] | 3    3 ::= a UTF-8 character
        let mut d = Draw::default();
        let quote = d.byte(b'"');
        let plain = d.set(&[(0x20, 0x21), (0x23, 0x5B), (0x5D, 0x7F)]);
        d.alt(0, &[quote, Symbol::Rule(1), quote]);
        d.alt(1, &[]);
        d.alt(1, &[Symbol::Rule(1), Symbol::Rule(2)]);
        d.alt(2, &[plain]);
        d.alt(2, &[Symbol::Rule(3)]);
        d.utf8_char(3);
        let vocab: [Option<&[u8]>; 10] = [
            Some(b"\""),          // 0: closes the string
            Some(b"ab"),          // 1
            Some("é".as_bytes()), // 2
            Some(b"a\""),         // 3: content, then the close
            Some(b"\","),         // 4: nothing may follow the close
            Some(b"\\"),          // 5: no escapes in this grammar
            Some(b"\xC3"),        // 6: the first byte of "é"
            Some(b"\n"),          // 7: a control character
            Some(b"a\"b"),        // 8
            Some(b"\xC3("),       // 9: not UTF-8
        ];
        let mut m = matcher(d.build(0), &vocab, &[]);
        assert!(m.accept_token(0).unwrap());
        let s = m.current();
        let run = m.run_of(s, 64).unwrap().unwrap();
        assert_eq!(
            (run.chars, run.exact, run.key.utf8),
            (UNBOUNDED, true, true)
        );
        let slice = m.slice_of(s).unwrap().unwrap();
        assert!(slice.exits);
        assert_eq!(
            slice.slice.mask(UNBOUNDED as usize),
            Some(&[0b100_0110u32][..])
        ); // 1, 2, 6
        assert_eq!(m.allowed_token_ids().unwrap(), vec![0, 1, 2, 3, 6]);
        assert_eq!(allowed_one_by_one(&mut m), vec![0, 1, 2, 3, 6]);
    }

    #[test]
    fn a_counted_repeat_is_an_exact_run_of_its_count() {
        // 0 ::= 1 ";"    1 ::= "" | C | C C    C = [0-9A-Za-z]
        let mut d = Draw::default();
        let semicolon = d.byte(b';');
        let c = d.set(&[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z')]);
        d.alt(0, &[Symbol::Rule(1), semicolon]);
        d.alt(1, &[]);
        d.alt(1, &[c]);
        d.alt(1, &[c, c]);
        let vocab: [Option<&[u8]>; 8] = [
            Some(b"a"),           // 0
            Some(b"ab"),          // 1
            Some(b"abc"),         // 2: one character too many
            Some(b";"),           // 3
            Some(b"a;"),          // 4
            Some(b"ab;"),         // 5
            Some(b"abc;"),        // 6
            Some("é".as_bytes()), // 7
        ];
        let mut m = matcher(d.build(0), &vocab, &[]);
        let run = m.run_of(ROOT, 10).unwrap().unwrap();
        assert_eq!((run.chars, run.exact, run.key.utf8), (2, true, false));
        let slice = m.slice_of(ROOT).unwrap().unwrap();
        assert_eq!(slice.chars, 2);
        assert_eq!(m.allowed_token_ids().unwrap(), vec![0, 1, 3, 4, 5]);
        assert_eq!(allowed_one_by_one(&mut m), vec![0, 1, 3, 4, 5]);
    }

    #[test]
    fn a_long_counted_run_is_followed_only_as_deep_as_a_mask_needs() {
        // 0 ::= 1{0,100000} "\n"    1 ::= [ -~]
        let mut d = Draw::default();
        let newline = d.byte(b'\n');
        let printable = d.set(&[(b' ', b'~')]);
        let many = d.repeat(1, 0, 100_000);
        d.alt(0, &[many, newline]);
        d.alt(1, &[printable]);
        let vocab: [Option<&[u8]>; 4] =
            [Some(b"abc"), Some(b"abcdefgh\n"), Some(b"\n"), Some(b"\t")];
        let mut m = matcher(d.build(0), &vocab, &[]);
        assert_eq!(m.allowed_token_ids().unwrap(), vec![0, 1, 2]);
        assert!(m.slice_of(ROOT).unwrap().is_some()); // (masked with the slice of [ -~])
        let made = m.auto.states.len();
        assert!(made < 40, "{made} states for the first mask");
        for _ in 0..100 {
            assert!(m.accept_token(0).unwrap());
            assert_eq!(m.allowed_token_ids().unwrap(), vec![0, 1, 2]);
        }
        // each mask three characters further on: a few new states, not a new chain
        assert!(
            m.auto.states.len() < made + 100 * 8,
            "{}",
            m.auto.states.len()
        );
    }

    #[test]
    fn a_closed_class_masks_with_its_slice_alone() {
        // an email's domain:  0 ::= 1 "." L L    1 ::= D | 1 D    D = [a-z0-9.-]    L = [a-z]
        let mut d = Draw::default();
        let dot = d.byte(b'.');
        let domain = d.set(&[(b'-', b'.'), (b'0', b'9'), (b'a', b'z')]);
        let letter = d.set(&[(b'a', b'z')]);
        d.alt(0, &[Symbol::Rule(1), dot, letter, letter]);
        d.alt(1, &[domain]);
        d.alt(1, &[Symbol::Rule(1), domain]);
        let vocab: [Option<&[u8]>; 7] = [
            Some(b"mail"),        // 0
            Some(b"example.com"), // 1
            Some(b".org"),        // 2
            Some(b"a-b"),         // 3
            Some(b"@"),           // 4
            Some(b"A"),           // 5
            Some(b"x y"),         // 6
        ];
        let mut m = matcher(d.build(0), &vocab, &[]);
        let class = m.auto.closed_class(ROOT).unwrap().unwrap();
        assert_eq!(class.bits, m.auto.states[ROOT as usize].scan_bytes);
        let slice = m.slice_of(ROOT).unwrap().unwrap();
        assert!(!slice.exits); // nothing to walk
        assert_eq!(m.allowed_token_ids().unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(allowed_one_by_one(&mut m), vec![0, 1, 2, 3]);
    }
}
