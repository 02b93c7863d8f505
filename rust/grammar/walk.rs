//! The mask walk: which tokens a state allows, found depth-first along the vocabulary trie.
//!
//! One Earley step per trie node; a rejected byte skips the node's whole subtree (`end[i]`), every
//! accepted node allows the tokens ending there. At wide trie nodes the walk visits only the
//! children whose byte the state can scan ([`trie::Fan`]). A state with a slice (see `slicer.rs`)
//! takes its class tokens from the slice and walks only the exit groups of the tokens that leave it.
//! The result is kept per state as a [`TextMask`].

use super::earley::DEAD;
use super::error::GrammarError;
use super::slicer::SliceUse;
use super::trie::{TokenTrie, NO_FAN};
use super::GrammarMatcher;

/// Masks kept per matcher; past this many, the cache starts again empty.
const MAX_CACHED_MASKS: usize = 256;

/// The text tokens a state allows: a slice's tokens of at most `chars` characters (shared with
/// the slice, not copied) plus the ids a walk found; or, when those ids would take more room than
/// a bitmask, the bitmask. (A fresh bitmask per state would cost more than the walk itself.)
pub(super) enum TextMask {
    /// A slice's tokens (if any) and the ids found by a walk.
    Ids {
        /// The slice whose class tokens are allowed.
        slice: Option<SliceUse>,
        /// The other allowed tokens.
        ids: Vec<u32>,
    },
    /// The bitmask itself.
    Bits(Box<[u32]>),
}

/// `out` = the slice's tokens (if any) | `ids`.
fn write_mask(slice: &Option<SliceUse>, ids: &[u32], out: &mut [u32]) {
    match slice.as_ref().and_then(|u| u.slice.mask(u.chars)) {
        Some(base) => out.copy_from_slice(base),
        None => out.fill(0),
    }
    for &t in ids {
        out[(t >> 5) as usize] |= 1 << (t & 31);
    }
}

/// The children of a trie node still to visit in a walk (see [`GrammarMatcher::children`]).
pub(super) enum Kids {
    /// Every sibling node from `next` on, up to (not including) `to`.
    Range {
        /// The next child to visit.
        next: usize,
        /// The end of the parent's subtree.
        to: usize,
    },
    /// The children of a wide node, through its [`trie::Fan`](super::trie::Fan).
    Fan {
        /// The fan's index in [`TokenTrie::fans`].
        fan: usize,
        /// Which 64-byte word of the fan's byte set is being visited.
        word: usize,
        /// The bytes of that word left to visit (None: the word is not started).
        todo: Option<u64>,
        /// The index in [`TokenTrie::fan_children`] of the word's first child.
        rank: usize,
    },
}

impl GrammarMatcher {
    /// Write the text tokens allowed from state `s` into `out` (EOS excluded); the tokens are
    /// computed once per state and kept as a [`TextMask`].
    pub(super) fn text_mask(&mut self, s: u32, out: &mut [u32]) -> Result<(), GrammarError> {
        if !self.masks.contains_key(&s) {
            let slice = match self.slices.get(&s) {
                Some(slice) => slice.clone(),
                None => {
                    let slice = self.slice_of(s)?;
                    self.slices.insert(s, slice.clone());
                    slice
                }
            };
            let mut ids = Vec::new();
            let mut based = false; // (whether `out` holds a root jump's tokens)
            if let Some(SliceUse {
                slice: sl,
                chars,
                exits,
            }) = &slice
            {
                // The tokens outside the class: each exit group from the run's state after
                // its class prefix (`chain[k]`: the state after k characters of the class).
                let mut chain = vec![s];
                let groups = if *exits { &sl.groups[..] } else { &[] };
                for g in groups {
                    let k = g.chars as usize;
                    if k > *chars {
                        break; // an exact run dies on a longer prefix (groups go by k)
                    }
                    while chain.len() <= k {
                        let last = chain[chain.len() - 1];
                        let Some(run) = self.run_of(last, 1)? else {
                            return Err(GrammarError::Internal("a run ended early"));
                        };
                        chain.push(run.next);
                    }
                    let from = chain[k];
                    if self.auto.step(from, g.byte)? != DEAD {
                        self.walk_from(&sl.exits, g.from as usize, g.to as usize, from, &mut ids)?;
                    }
                }
            } else {
                let trie = self.trie.clone();
                based = self.walk(&trie, None, s, &mut ids, Some(&mut *out))?;
            }
            let mask = if based {
                for &t in &ids {
                    out[(t >> 5) as usize] |= 1 << (t & 31);
                }
                TextMask::Bits(out.into())
            } else if ids.len() > out.len() {
                // more ids than the bitmask has words: keep the bitmask instead
                write_mask(&slice, &ids, out);
                TextMask::Bits(out.into())
            } else {
                TextMask::Ids { slice, ids }
            };
            if self.masks.len() >= MAX_CACHED_MASKS {
                self.masks.clear();
            }
            self.masks.insert(s, mask);
        }
        match self.masks.get(&s) {
            Some(TextMask::Bits(bits)) => out.copy_from_slice(bits),
            Some(TextMask::Ids { slice, ids }) => write_mask(slice, ids, out),
            None => out.fill(0),
        }
        for &t in &self.eos {
            out[(t >> 5) as usize] &= !(1 << (t & 31)); // text tokens only
        }
        Ok(())
    }

    /// Allow the tokens below `node` (None: the root) of `trie` that the grammar accepts from `s`:
    /// add them to `ids`, or, where a jump at the root wrote its class tokens to `base` as a
    /// bitmask (see [`GrammarMatcher::jump`]), add the others to `ids` and return true.
    pub(super) fn walk(
        &mut self,
        trie: &TokenTrie,
        node: Option<usize>,
        s: u32,
        ids: &mut Vec<u32>,
        base: Option<&mut [u32]>,
    ) -> Result<bool, GrammarError> {
        self.frames.clear();
        let based = node.is_none() && base.is_some();
        let jumped = self.jump(trie, node, s, ids, base)?;
        if !jumped {
            self.frames.push((s, Self::children(trie, node)));
        }
        self.walk_frames(trie, ids)?;
        Ok(based && jumped)
    }

    /// Allow the tokens in the subtrees of the sibling nodes `from..to` accepted from `s`.
    pub(super) fn walk_from(
        &mut self,
        trie: &TokenTrie,
        from: usize,
        to: usize,
        s: u32,
        ids: &mut Vec<u32>,
    ) -> Result<(), GrammarError> {
        self.frames.clear();
        self.frames.push((s, Kids::Range { next: from, to }));
        self.walk_frames(trie, ids)
    }

    /// How to go over the children of `node`: all of them in order, or, for a wide node, only
    /// those whose byte the state can scan (looked up in its [`trie::Fan`]).
    pub(super) fn children(trie: &TokenTrie, node: Option<usize>) -> Kids {
        let (fan, from, to) = match node {
            Some(i) => (trie.fan[i], i + 1, trie.end[i] as usize),
            None => (trie.root_fan, 0, trie.len()),
        };
        if fan == NO_FAN {
            Kids::Range { next: from, to }
        } else {
            Kids::Fan {
                fan: fan as usize,
                word: 0,
                todo: None,
                rank: trie.fans[fan as usize].first as usize,
            }
        }
    }

    /// The depth-first walk: `frames` holds, per depth, the state there and the children left.
    /// A rejected byte skips the node's whole subtree; every accepted node allows its tokens.
    pub(super) fn walk_frames(
        &mut self,
        trie: &TokenTrie,
        ids: &mut Vec<u32>,
    ) -> Result<(), GrammarError> {
        while let Some(top) = self.frames.len().checked_sub(1) {
            let (s, kids) = &mut self.frames[top];
            let s = *s;
            let i = match kids {
                Kids::Range { next, to } => {
                    if *next >= *to {
                        self.frames.pop();
                        continue;
                    }
                    let i = *next;
                    *next = trie.end[i] as usize;
                    i
                }
                Kids::Fan {
                    fan,
                    word,
                    todo,
                    rank,
                } => {
                    let f = &trie.fans[*fan];
                    // candidates: the fan's bytes that the state scans, one 64-byte word at a time
                    let mut bits = match *todo {
                        Some(bits) => bits,
                        None if *word < 4 => {
                            f.bits[*word] & self.auto.states[s as usize].scan_bytes[*word]
                        }
                        None => {
                            self.frames.pop();
                            continue;
                        }
                    };
                    if bits == 0 {
                        *rank += f.bits[*word].count_ones() as usize;
                        *word += 1;
                        *todo = None;
                        continue;
                    }
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    *todo = Some(bits);
                    let below = f.bits[*word] & ((1u64 << b) - 1);
                    trie.fan_children[*rank + below.count_ones() as usize] as usize
                }
            };
            let next = self.auto.step(s, trie.byte[i])?;
            if next == DEAD {
                continue;
            }
            ids.extend_from_slice(
                &trie.token_ids[trie.tok_start[i] as usize..trie.tok_start[i + 1] as usize],
            );
            if i + 1 < trie.end[i] as usize && !self.jump(trie, Some(i), next, ids, None)? {
                self.frames.push((next, Self::children(trie, Some(i))));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{allowed_one_by_one, matcher, Draw};
    use super::super::{CompiledGrammar, Symbol};
    use super::*;
    use std::sync::Arc;

    /// `0 ::= "(" 0 ")" 0 | ""`: balanced parentheses.
    fn parens() -> Arc<CompiledGrammar> {
        let mut d = Draw::default();
        let (open, close) = (d.byte(b'('), d.byte(b')'));
        d.alt(0, &[open, Symbol::Rule(0), close, Symbol::Rule(0)]);
        d.alt(0, &[]);
        d.build(0)
    }

    #[test]
    fn a_rejected_byte_skips_its_subtree_and_an_accepted_one_allows_its_tokens() {
        let vocab: [Option<&[u8]>; 7] = [
            Some(b"("),   // 0
            Some(b"()"),  // 1
            Some(b"())"), // 2: one ")" too many
            Some(b")"),   // 3
            Some(b")("),  // 4
            Some(b"(("),  // 5
            None,         // 6: EOS
        ];
        let mut m = matcher(parens(), &vocab, &[6]);
        assert_eq!(m.allowed_token_ids().unwrap(), vec![0, 1, 5, 6]);
        assert_eq!(allowed_one_by_one(&mut m), vec![0, 1, 5, 6]);
        assert!(m.accept_token(5).unwrap()); // "(("
        assert_eq!(m.allowed_token_ids().unwrap(), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(allowed_one_by_one(&mut m), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_wide_node_visits_only_the_children_the_state_scans() {
        // 0 ::= [aceg] "!"?   over the ten letters a..j (the root gets a fan) and "a!", "b!"
        let mut d = Draw::default();
        let (some, bang) = (
            d.set(&[(b'a', b'a'), (b'c', b'c'), (b'e', b'e'), (b'g', b'g')]),
            d.byte(b'!'),
        );
        d.alt(0, &[some]);
        d.alt(0, &[some, bang]);
        let letters: Vec<[u8; 1]> = (b'a'..=b'j').map(|b| [b]).collect();
        let mut vocab: Vec<Option<&[u8]>> = letters.iter().map(|l| Some(&l[..])).collect(); // 0..=9: a..j
        vocab.push(Some(b"a!")); // 10
        vocab.push(Some(b"b!")); // 11
        let mut m = matcher(d.build(0), &vocab, &[]);
        assert_ne!(m.trie.root_fan, NO_FAN);
        assert_eq!(m.allowed_token_ids().unwrap(), vec![0, 2, 4, 6, 10]);
        assert_eq!(allowed_one_by_one(&mut m), vec![0, 2, 4, 6, 10]);
    }

    #[test]
    fn a_state_keeps_its_mask() {
        // 0 ::= "" | 0 [ab]   (every letter leads back to one state)
        let mut d = Draw::default();
        let letter = d.set(&[(b'a', b'b')]);
        d.alt(0, &[]);
        d.alt(0, &[Symbol::Rule(0), letter]);
        let vocab: [Option<&[u8]>; 3] = [Some(b"a"), Some(b"ba"), Some(b"c")]; // 0, 1, 2
        let mut m = matcher(d.build(0), &vocab, &[]);
        assert_eq!(m.allowed_token_ids().unwrap(), vec![0, 1]);
        assert!(m.accept_token(0).unwrap());
        assert_eq!(m.allowed_token_ids().unwrap(), vec![0, 1]);
        assert_eq!(m.masks.len(), 2); // the root's and the loop state's
        assert!(m.accept_token(1).unwrap());
        assert_eq!(m.allowed_token_ids().unwrap(), vec![0, 1]);
        assert_eq!(m.masks.len(), 2); // the loop state's mask, reused
    }
}
