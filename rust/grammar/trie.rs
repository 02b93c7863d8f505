//! The vocabulary as a byte trie flattened in preorder (twin of `pyengine/structured/trie.py`).
//!
//! Node `i` stands for the byte string of its path: `depth[i]` is its length, `byte[i]` its last
//! byte, `end[i]` the first node after its subtree, and `token_ids[tok_start[i]..tok_start[i+1]]`
//! the tokens whose bytes end there. A walk visits nodes in index order and skips a rejected
//! subtree with `i = end[i]` (the next sibling).
//!
//! A *wide* node (at least [`FAN_MIN_CHILDREN`] children: the root, `" "`, `"\n"`, ...) also has
//! a [`Fan`]: the set of its children's bytes and their indices, so that a walk can go straight to
//! the children whose byte the grammar state can scan instead of visiting (and rejecting) all of
//! them. Most masks after `{`, `,` or `:` would otherwise spend their time on such rejections.

use std::sync::{Arc, Mutex};

use super::error::GrammarError;
use super::jumps::Jumps;

/// Slices cached per trie (each holds a mask and a residual trie: a few MB at most).
pub const MAX_SLICES: usize = 8;
/// Jumps cached per trie (each about 20 bytes per node).
pub const MAX_JUMPS: usize = 8;
/// The slices and jumps built with the trie (the classes most grammars use), never dropped.
const PREBUILT: usize = 3;
/// A node with at least this many children gets a [`Fan`].
pub const FAN_MIN_CHILDREN: usize = 8;
/// `fan` entry of a node without a [`Fan`].
pub const NO_FAN: u32 = u32::MAX;

/// The children of a wide node: the bytes they start with, and their node indices in byte order
/// at `children[first..]` (the child for byte `b` is at `first` + the number of bytes below `b`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Fan {
    /// The children's first bytes, as a 256-bit set.
    pub bits: [u64; 4],
    /// Where the children's node indices start in [`TokenTrie::fan_children`].
    pub first: u32,
}

/// The byte trie of a vocabulary; tokens with no bytes (None or empty) are not in it.
#[derive(Debug, Default)]
pub struct TokenTrie {
    /// The number of token ids (tokens without bytes included).
    pub vocab_size: usize,
    /// Per node, the last byte of its path.
    pub byte: Vec<u8>,
    /// Per node, the length of its path (1 for the root's children).
    pub depth: Vec<u32>,
    /// Per node, the first node after its subtree (its next sibling, or an ancestor's).
    pub end: Vec<u32>,
    /// Per node `i`, where its tokens start in `token_ids` (they end at `tok_start[i + 1]`).
    pub tok_start: Vec<u32>,
    /// The tokens of every node, node after node.
    pub token_ids: Vec<u32>,
    /// The longest token, in bytes (the deepest node).
    pub max_depth: usize,
    /// Each token's bytes (empty for tokens that never match), for `accept_token`.
    pub token_bytes: Vec<Vec<u8>>,
    /// Per node, its index in `fans` or [`NO_FAN`]; `root_fan` for the (implicit) root.
    pub fan: Vec<u32>,
    /// The root's index in `fans`, or [`NO_FAN`].
    pub root_fan: u32,
    /// The fans of the wide nodes.
    pub fans: Vec<Fan>,
    /// The children of every fan, each fan's in byte order (see [`Fan::first`]).
    pub fan_children: Vec<u32>,
    /// Slices built so far (see [`Slice`]), shared by every matcher on this vocabulary.
    slices: Mutex<Vec<Arc<Slice>>>,
    /// Jumps built so far (see [`Jumps`]), shared by every matcher on this vocabulary.
    jumps: Mutex<Vec<Arc<Jumps>>>,
}

/// A class of byte strings a grammar state may loop on: the single bytes of `bits`, and, when
/// `utf8`, every valid multi-byte UTF-8 character (any code point >= U+0080, no surrogates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceKey {
    /// The single bytes of the class, as a 256-bit set.
    pub bits: [u64; 4],
    /// Whether every multi-byte UTF-8 character is in the class too.
    pub utf8: bool,
}

/// Not in the class (a [`SliceKey`] walk state).
pub const OUT: u8 = u8::MAX;

impl SliceKey {
    /// Walk state after `b`: 0 = at a character boundary, 1..=7 = inside a UTF-8 character
    /// (1/2/3 continuation bytes left; 4..=7 the restricted second bytes of E0, ED, F0, F4), OUT.
    #[inline]
    pub fn step(&self, state: u8, b: u8) -> u8 {
        let cont = (0x80..=0xBF).contains(&b);
        match state {
            0 if self.utf8 && b >= 0x80 => match b {
                0xC2..=0xDF => 1,
                0xE0 => 4,
                0xE1..=0xEC | 0xEE | 0xEF => 2,
                0xED => 5,
                0xF0 => 6,
                0xF1..=0xF3 => 3,
                0xF4 => 7,
                _ => OUT,
            },
            0 => {
                if self.bits[(b >> 6) as usize] >> (b & 63) & 1 == 1 {
                    0
                } else {
                    OUT
                }
            }
            1 if cont => 0,
            2 if cont => 1,
            3 if cont => 2,
            4 if (0xA0..=0xBF).contains(&b) => 1,
            5 if (0x80..=0x9F).contains(&b) => 1,
            6 if (0x90..=0xBF).contains(&b) => 2,
            7 if (0x80..=0x8F).contains(&b) => 2,
            _ => OUT,
        }
    }

    /// Every string of `self` is a string of `other`.
    pub fn subset_of(&self, other: &SliceKey) -> bool {
        (!self.utf8 || other.utf8) && self.bits.iter().zip(&other.bits).all(|(a, b)| a & !b == 0)
    }
}

/// The vocabulary split by a [`SliceKey`]: `upto` has the tokens whose bytes are a string of the
/// class (a grammar state that runs on the class allows them all), `exits` the rest.
///
/// Every other token starts with `k` whole characters of the class (maybe none) and then leaves
/// it: its *exit* node is the first byte that is not a whole class character. A state that runs on
/// the class is, after those `k` characters, a known state of its run, whatever the characters
/// were; so the walk needs no visit to the class prefixes. `exits` holds the exit nodes' subtrees
/// (pruned to the tokens outside the class) as one trie whose top-level nodes are the exit nodes,
/// ordered by (k, exit byte); `groups` gives each (k, byte) its range of top-level nodes, so a byte
/// the run's k-th state rejects skips the whole group with one lookup.
#[derive(Debug)]
pub struct Slice {
    /// The class the vocabulary is split by.
    pub key: SliceKey,
    /// `upto[n - 1]`: the tokens of the class that are at most `n` characters long (a token that
    /// ends inside a character counts that character); the last entry has them all.
    pub upto: Vec<Box<[u32]>>,
    /// The number of tokens in the class.
    pub n_in: usize,
    /// The exit nodes' subtrees, pruned to the tokens outside the class, as one trie.
    pub exits: TokenTrie,
    /// The exit nodes grouped by (class characters before them, byte), in that order.
    pub groups: Vec<ExitGroup>,
    /// The longest class prefix, in characters, of any token (in the class or not).
    pub max_chars: usize,
}

/// The exit nodes after `chars` class characters whose byte is `byte`: nodes `from..to` of
/// [`Slice::exits`] (siblings at depth 1).
#[derive(Debug, Clone, Copy)]
pub struct ExitGroup {
    /// The whole class characters before the exit byte.
    pub chars: u32,
    /// The exit byte.
    pub byte: u8,
    /// The group's first top-level node in [`Slice::exits`].
    pub from: u32,
    /// The node after the group's last top-level node.
    pub to: u32,
}

impl Slice {
    /// The class's tokens of at most `chars` characters.
    pub fn mask(&self, chars: usize) -> Option<&[u32]> {
        self.upto
            .get(chars.min(self.upto.len()).checked_sub(1)?)
            .map(|m| &m[..])
    }
}

/// Whether the tables of class `built` will do for `key`: the same class, or one a few bytes
/// short of it (a walk reads the bytes left out as exits or exceptions: they cost little).
fn near(built: &SliceKey, key: &SliceKey) -> bool {
    let size = |k: &SliceKey| k.bits.iter().map(|w| w.count_ones()).sum::<u32>();
    built.subset_of(key) && built.utf8 == key.utf8 && size(built) + 4 >= size(key)
}

/// The table for `key` from a per-trie cache of at most `max` (its first [`PREBUILT`] are kept
/// for good): the exact one, else the one at `near` (see [`near`]), else a new one from `build`.
/// The one returned becomes the most recently used; a new one pushes out the least recently used.
/// (A matcher keeps the tables it was given, so a table pushed out stays alive while in use.)
fn cached<T>(
    tables: &mut Vec<Arc<T>>,
    max: usize,
    key: SliceKey,
    near: Option<usize>,
    key_of: impl Fn(&T) -> SliceKey,
    build: impl FnOnce() -> T,
) -> Arc<T> {
    let found = tables.iter().position(|t| key_of(t) == key).or(near);
    let table = match found {
        Some(i) if i < PREBUILT => return tables[i].clone(),
        Some(i) => tables.remove(i),
        None => {
            if tables.len() >= max.max(PREBUILT + 1) {
                tables.remove(PREBUILT);
            }
            Arc::new(build())
        }
    };
    tables.push(table.clone());
    table
}

impl TokenTrie {
    /// The trie of a vocabulary: `tokens[i]` is token i's bytes (None or empty: never matches).
    /// Also builds the slices most grammars need (JSON string content, `[^\n]`).
    pub fn new(tokens: Vec<Option<Vec<u8>>>) -> Result<Self, GrammarError> {
        if tokens.len() > u32::MAX as usize / 2 {
            return Err(GrammarError::VocabularyTooLarge(tokens.len()));
        }
        let vocab_size = tokens.len();
        let token_bytes: Vec<Vec<u8>> = tokens.into_iter().map(|t| t.unwrap_or_default()).collect();
        let mut order: Vec<u32> = (0..vocab_size as u32)
            .filter(|&i| !token_bytes[i as usize].is_empty())
            .collect();
        order.sort_by(|&a, &b| {
            token_bytes[a as usize]
                .cmp(&token_bytes[b as usize])
                .then(a.cmp(&b))
        });

        let mut t = TokenTrie {
            vocab_size,
            ..Default::default()
        };
        let mut node_tokens: Vec<Vec<u32>> = Vec::new();
        let mut open: Vec<usize> = Vec::new(); // the path to the last node, one per depth
        let mut previous: &[u8] = &[];
        for &id in &order {
            let data = token_bytes[id as usize].as_slice();
            let common = data
                .iter()
                .zip(previous)
                .take_while(|(a, b)| a == b)
                .count();
            if common == data.len() && common == previous.len() {
                if let Some(ids) = node_tokens.last_mut() {
                    ids.push(id); // same bytes as the previous token
                    continue;
                }
            }
            while open.len() > common {
                if let Some(node) = open.pop() {
                    t.end[node] = t.byte.len() as u32;
                }
            }
            for depth in common + 1..=data.len() {
                open.push(t.byte.len());
                t.byte.push(data[depth - 1]);
                t.depth.push(depth as u32);
                t.end.push(0);
                node_tokens.push(Vec::new());
            }
            if let Some(ids) = node_tokens.last_mut() {
                ids.push(id); // (the token has bytes, so its last node was just made)
            }
            previous = data;
        }
        for node in open {
            t.end[node] = t.byte.len() as u32;
        }
        t.tok_start.push(0);
        for ids in node_tokens {
            t.token_ids.extend(ids);
            t.tok_start.push(t.token_ids.len() as u32);
        }
        t.max_depth = t.depth.iter().copied().max().unwrap_or(0) as usize;
        t.token_bytes = token_bytes;
        t.index_fans();
        // The classes most grammars loop on, sliced up front (a few ms each) so that no mask pays
        // for them: JSON string content (with and without DEL, as JSON Schema and GBNF write it)
        // and "anything but a newline" (regex `.` and `[^\n]`).
        let ascii = |f: &dyn Fn(u8) -> bool| {
            let mut bits = [0u64; 4];
            for b in (0..0x80u8).filter(|&b| f(b)) {
                bits[(b >> 6) as usize] |= 1 << (b & 63);
            }
            SliceKey { bits, utf8: true }
        };
        let json = |b: u8| b >= 0x20 && b != b'"' && b != b'\\';
        let defaults = [
            ascii(&json),
            ascii(&|b| json(b) && b != 0x7F),
            ascii(&|b| b != b'\n'),
        ];
        let built: Vec<Arc<Slice>> = defaults
            .iter()
            .map(|&k| Arc::new(t.build_slice(k)))
            .collect();
        t.slices = Mutex::new(built);
        // The jumps (see `jumps.rs`) of JSON string content, as JSON Schema writes it (keys
        // too), and of its ASCII alone, for the loops found after an ASCII character (where
        // UTF-8 characters are not followed); others are built when a grammar needs them.
        let ascii_json = SliceKey {
            utf8: false,
            ..defaults[0]
        };
        let jumps: Vec<Arc<Jumps>> = [defaults[0], defaults[1], ascii_json]
            .iter()
            .map(|&k| Arc::new(Jumps::new(&t, k)))
            .collect();
        t.jumps = Mutex::new(jumps);
        Ok(t)
    }

    /// The jumps for `key`: cached, or those of a class a few bytes short of it, or built now
    /// (see `cached`: at most [`MAX_JUMPS`] are kept, the least recently used dropped first).
    pub fn jumps(&self, key: SliceKey) -> Option<Arc<Jumps>> {
        let mut built = self.jumps.lock().unwrap_or_else(|e| e.into_inner());
        let near = built
            .iter()
            .enumerate()
            .filter(|(_, j)| near(&j.key, &key))
            .max_by_key(|(_, j)| j.size())
            .map(|(i, _)| i);
        Some(cached(
            &mut built,
            MAX_JUMPS,
            key,
            near,
            |j| j.key,
            || Jumps::new(self, key),
        ))
    }

    /// The slice for `key`: cached, or that of a class a few bytes short of it, or built now
    /// (see `cached`: at most [`MAX_SLICES`] are kept, the least recently used dropped first).
    pub fn slice(&self, key: SliceKey) -> Option<Arc<Slice>> {
        let mut slices = self.slices.lock().unwrap_or_else(|e| e.into_inner());
        let near = slices
            .iter()
            .enumerate()
            .filter(|(_, s)| near(&s.key, &key))
            .max_by_key(|(_, s)| s.n_in)
            .map(|(i, _)| i);
        Some(cached(
            &mut slices,
            MAX_SLICES,
            key,
            near,
            |s| s.key,
            || self.build_slice(key),
        ))
    }

    fn build_slice(&self, key: SliceKey) -> Slice {
        let n = self.len();
        let mut by_len: Vec<Vec<u32>> = Vec::new(); // the class's tokens by length in characters
        let mut n_in = 0;
        // Per depth on the current path: (class walk state, whole class characters, node).
        let mut path = vec![(0u8, 0u32, u32::MAX); self.max_depth + 1];
        // Per node: its exit (u32::MAX for a node whose path is whole class characters), whether
        // its part of the exit's subtree holds a residual token, and its parent.
        let mut exit_of = vec![u32::MAX; n];
        let mut keep = vec![false; n];
        let mut parent = vec![u32::MAX; n];
        let mut prefix_chars = vec![0u32; n]; // per exit node: the class characters before it
        for i in 0..n {
            let d = self.depth[i] as usize;
            let (ps, pc, p) = path[d - 1];
            let st = if ps == OUT {
                OUT
            } else {
                key.step(ps, self.byte[i])
            };
            let chars = pc + (st == 0) as u32;
            path[d] = (st, chars, i as u32);
            parent[i] = p;
            if st != 0 {
                exit_of[i] = if ps == 0 {
                    i as u32
                } else {
                    exit_of[p as usize]
                };
                prefix_chars[i] = pc;
            }
            let toks = &self.token_ids[self.tok_start[i] as usize..self.tok_start[i + 1] as usize];
            // A token that ends inside a character of the class (k whole characters, then the
            // first bytes of one more) is allowed exactly where k + 1 characters are: a run's
            // states pass only live states inside a character (see `chars_lead_to`). So it
            // counts as a token of k + 1 characters.
            let partial = st != 0 && st != OUT;
            let len = chars + partial as u32;
            if (st == 0 || partial) && !toks.is_empty() {
                if by_len.len() < len as usize {
                    by_len.resize(len as usize, Vec::new());
                }
                by_len[len as usize - 1].extend_from_slice(toks);
                n_in += toks.len();
            }
            keep[i] = st == OUT && !toks.is_empty();
        }
        for i in (0..n).rev() {
            if keep[i] && exit_of[i] != i as u32 {
                keep[parent[i] as usize] = true; // (a non-exit node of an exit has a parent in it)
            }
        }
        let mut upto: Vec<Box<[u32]>> = Vec::with_capacity(by_len.len());
        let mut mask = vec![0u32; self.vocab_size.div_ceil(32)].into_boxed_slice();
        for toks in &by_len {
            for &t in toks {
                mask[(t >> 5) as usize] |= 1 << (t & 31);
            }
            upto.push(mask.clone());
        }
        // The kept exit nodes by (class characters before them, byte); then each one's subtree,
        // the kept nodes of that exit only, copied in that order.
        let mut exit_nodes: Vec<(u32, u8, usize)> = (0..n)
            .filter(|&i| exit_of[i] == i as u32 && keep[i])
            .map(|e| (prefix_chars[e], self.byte[e], e))
            .collect();
        exit_nodes.sort_unstable();
        let mut r = TokenTrie {
            vocab_size: self.vocab_size,
            ..Default::default()
        };
        r.tok_start.push(0);
        let mut groups: Vec<ExitGroup> = Vec::new();
        for &(chars, byte, e) in &exit_nodes {
            let from = r.len() as u32;
            match groups.last_mut() {
                Some(g) if g.chars == chars && g.byte == byte => {}
                _ => groups.push(ExitGroup {
                    chars,
                    byte,
                    from,
                    to: from,
                }),
            }
            let base = self.depth[e] - 1;
            let mut open: Vec<usize> = Vec::new(); // copied nodes whose `end` is not known yet
            for i in e..self.end[e] as usize {
                if exit_of[i] != e as u32 || !keep[i] {
                    continue;
                }
                let depth = self.depth[i] - base;
                while open.last().is_some_and(|&o| r.depth[o] >= depth) {
                    if let Some(o) = open.pop() {
                        r.end[o] = r.len() as u32;
                    }
                }
                open.push(r.len());
                r.byte.push(self.byte[i]);
                r.depth.push(depth);
                r.end.push(0);
                r.token_ids.extend_from_slice(
                    &self.token_ids[self.tok_start[i] as usize..self.tok_start[i + 1] as usize],
                );
                r.tok_start.push(r.token_ids.len() as u32);
            }
            for o in open {
                r.end[o] = r.len() as u32;
            }
            if let Some(g) = groups.last_mut() {
                g.to = r.len() as u32;
            }
        }
        r.max_depth = r.depth.iter().copied().max().unwrap_or(0) as usize;
        r.index_fans();
        let max_chars = groups
            .iter()
            .map(|g| g.chars as usize)
            .max()
            .unwrap_or(0)
            .max(upto.len());
        Slice {
            key,
            upto,
            n_in,
            exits: r,
            groups,
            max_chars,
        }
    }

    /// Build the [`Fan`]s of the wide nodes (and of the root).
    fn index_fans(&mut self) {
        let n = self.len();
        self.fan = vec![NO_FAN; n];
        self.root_fan = NO_FAN;
        let mut kids: Vec<u32> = Vec::new();
        for node in std::iter::once(None).chain((0..n).map(Some)) {
            let (from, to) = match node {
                Some(i) => (i + 1, self.end[i] as usize),
                None => (0, n),
            };
            kids.clear();
            let mut c = from;
            while c < to {
                kids.push(c as u32);
                c = self.end[c] as usize;
            }
            if kids.len() < FAN_MIN_CHILDREN {
                continue;
            }
            let mut fan = Fan {
                bits: [0; 4],
                first: self.fan_children.len() as u32,
            };
            for &k in &kids {
                let b = self.byte[k as usize];
                fan.bits[(b >> 6) as usize] |= 1 << (b & 63);
            }
            self.fan_children.extend_from_slice(&kids); // children are in byte order (preorder)
            let id = self.fans.len() as u32;
            self.fans.push(fan);
            match node {
                Some(i) => self.fan[i] = id,
                None => self.root_fan = id,
            }
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.byte.len()
    }

    /// Whether the trie has no node (no token has bytes).
    pub fn is_empty(&self) -> bool {
        self.byte.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The class of the one byte `b` (a stand-in for a table built for it).
    fn class(b: u8) -> SliceKey {
        let mut bits = [0u64; 4];
        bits[(b >> 6) as usize] |= 1 << (b & 63);
        SliceKey { bits, utf8: false }
    }

    #[test]
    fn the_cache_keeps_its_prebuilt_tables_and_drops_the_least_recently_used() {
        let mut tables: Vec<Arc<SliceKey>> =
            (0..PREBUILT as u8).map(|b| Arc::new(class(b))).collect();
        let builds = std::cell::Cell::new(0u32);
        let get = |tables: &mut Vec<Arc<SliceKey>>, b: u8| {
            *cached(
                tables,
                PREBUILT + 2,
                class(b),
                None,
                |k| *k,
                || {
                    builds.set(builds.get() + 1);
                    class(b)
                },
            )
        };
        assert_eq!(get(&mut tables, 10), class(10));
        assert_eq!(get(&mut tables, 11), class(11));
        assert_eq!(get(&mut tables, 10), class(10)); // a hit: 10 is now the most recent
        assert_eq!(get(&mut tables, 12), class(12)); // full: 11, the least recent, goes
        assert_eq!(get(&mut tables, 0), class(0)); // prebuilt: always there
        let keys: Vec<SliceKey> = tables.iter().map(|t| **t).collect();
        let expected: Vec<SliceKey> = [0, 1, 2, 10, 12].map(class).to_vec();
        assert_eq!(keys[..PREBUILT], expected[..PREBUILT]);
        assert_eq!(keys.len(), PREBUILT + 2);
        assert!(
            keys.contains(&class(10)) && keys.contains(&class(12)) && !keys.contains(&class(11))
        );
        assert_eq!(builds.get(), 3);
    }

    #[test]
    fn preorder_layout() {
        let toks = vec![
            Some(b"ab".to_vec()),
            Some(b"a".to_vec()),
            None,
            Some(b"b".to_vec()),
            Some(b"a".to_vec()),
        ];
        let t = TokenTrie::new(toks).unwrap();
        assert_eq!(t.byte, b"abb".to_vec());
        assert_eq!(t.depth, vec![1, 2, 1]);
        assert_eq!(t.end, vec![2, 2, 3]);
        assert_eq!(t.tok_start, vec![0, 2, 3, 4]);
        assert_eq!(t.token_ids, vec![1, 4, 0, 3]);
    }
}
