//! The Earley automaton: interned Earley sets ("states") over a byte-level grammar.
//!
//! An Earley item is (alternative, dot, origin). Here the origin is not a position but the id of
//! the interned set the item started in (or `SELF`, the set being built), so two sets with the same
//! items behave the same forever after: each is stored once as a [`State`] with a lazily filled
//! transition table, one entry per byte class (bytes that lie in exactly the same byte sets of the
//! grammar). `step(s, byte)` is then usually two array lookups; a new set is made
//! by [`Automaton::close`] (prediction + completion, memoized by the seeds that start it).
//! Prediction of a nullable rule also moves the dot past it (Aycock & Horspool), so completion
//! never revisits the set being built.
//!
//! A counted repetition `Repeat(rule, min, max)` is one symbol: the item before it carries a
//! `count` (how many `rule`s it has read), waits for one more while count < max, and may move past
//! once count >= min. Completing `rule` adds one to a waiting counted item instead of moving its
//! dot. So a set holds one item per count, whatever the bound (the Python twin does the same).
//!
//! An automaton may also have a *horizon* `h` (the mask walk's, see `GrammarMatcher`): a count
//! that is at least `min` and at least `h` below `max` is then stored as [`FAR`], and stays FAR
//! when its rule is read again. Such an item behaves as its exact count would for `h - 1` more
//! bytes (each byte adds at most one to a count), so a walk no deeper than that (the longest
//! token) finds exactly the same tokens, and `[^"]{0,100000}` is one looping state, like
//! `[^"]*`, instead of a state per count. [`Automaton::import`] maps a state of an exact
//! automaton (no horizon) to its counterpart in one with a horizon.
//!
//! A fresh matcher's first masks create most of their states, so making a state is kept cheap:
//! the tables are reserved when the automaton is made, a closure finds repeated items with stamp
//! tables (per rule for predictions, per (alternative, dot) for the rest) rather than hashing each
//! item, and an interned key is hashed once.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use super::error::GrammarError;

/// The most Earley items one set may hold ([`GrammarError::TooManyItems`] beyond).
pub const MAX_EARLEY_ITEMS: usize = 100_000;
/// The most distinct Earley sets one automaton holds. Past it the matcher starts a fresh automaton
/// from the bytes accepted so far (see `GrammarMatcher::restart`); only a single mask or token
/// that alone needs more ends in [`GrammarError::TooManyStates`].
pub const MAX_STATES: usize = 500_000;

/// The origin of an item that started in the set being built.
const SELF: u32 = u32::MAX;
/// A transition not computed yet.
const UNKNOWN: u32 = u32::MAX;
/// The "state" after a rejected byte.
pub(super) const DEAD: u32 = u32::MAX - 1;
/// The initial state's id.
pub(super) const ROOT: u32 = 0;
/// The count of an item far from its repetition's bounds (see the module docs).
pub(super) const FAR: u32 = u32::MAX;
/// No horizon: every count is kept exactly.
pub(super) const NO_HORIZON: u32 = u32::MAX;
/// Seed-key tag: a completed item, keyed by its rule (see `close`).
const COMPLETED: u32 = 1 << 31;
/// States (and interner entries) reserved by `Automaton::new`.
const INITIAL_STATES: usize = 256;
/// Transition entries per chunk of [`Rows`] (64 KiB).
const ROW_CHUNK_ENTRIES: usize = 16 * 1024;

/// One symbol of an alternative's right-hand side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symbol {
    /// The rule with this number (rules are numbered as `Grammar.to_flat()` lists them).
    Rule(u32),
    /// One byte of the byte set with this number.
    Bytes(u32),
    /// The counted repetition with this number (its rule, min and max: [`CompiledGrammar::new`]).
    Repeat(u32),
}

impl Symbol {
    /// The kind `Grammar.to_flat()` writes for a rule (`SymbolKind.RULE`).
    pub const RULE: u8 = 0;
    /// The kind `Grammar.to_flat()` writes for a byte set (`SymbolKind.BYTES`).
    pub const BYTES: u8 = 1;
    /// The kind `Grammar.to_flat()` writes for a counted repetition (`SymbolKind.REPEAT`).
    pub const REPEAT: u8 = 2;

    /// The symbol written as `(kind, index)` by `Grammar.to_flat()`.
    pub fn from_flat(kind: u8, index: u32) -> Result<Symbol, GrammarError> {
        match kind {
            Symbol::RULE => Ok(Symbol::Rule(index)),
            Symbol::BYTES => Ok(Symbol::Bytes(index)),
            Symbol::REPEAT => Ok(Symbol::Repeat(index)),
            _ => Err(GrammarError::InvalidGrammar("unknown symbol kind")),
        }
    }

    /// The symbol as `Grammar.to_flat()` writes it: `(kind, index)`.
    pub fn to_flat(self) -> (u8, u32) {
        match self {
            Symbol::Rule(r) => (Symbol::RULE, r),
            Symbol::Bytes(k) => (Symbol::BYTES, k),
            Symbol::Repeat(k) => (Symbol::REPEAT, k),
        }
    }
}

/// A grammar over bytes, as numbers (from `Grammar.to_flat()`), ready for the Earley automaton:
/// the alternatives' symbols in one array, each rule's alternatives, the nullable rules, each
/// byte set as a 256-bit table, and each counted repetition.
pub struct CompiledGrammar {
    start: u32,
    repeats: Vec<Repeat>,
    lhs: Vec<u32>,
    /// Alternative `a`'s symbols are `rhs[rhs_start[a]..rhs_start[a + 1]]`.
    rhs_start: Vec<u32>,
    rhs: Vec<Symbol>,
    /// Rule `r`'s alternatives are `rule_alts[rule_alts_start[r]..rule_alts_start[r + 1]]`.
    rule_alts_start: Vec<u32>,
    rule_alts: Vec<u32>,
    nullable: Vec<bool>,
    byte_sets: Vec<[u64; 4]>,
    /// Per byte, its class: bytes in exactly the same byte sets have one (they step alike from
    /// every state, so a transition row needs an entry per class, not per byte).
    class_of: [u8; 256],
    /// The number of classes.
    n_classes: usize,
}

/// A counted repetition: `rule`, `min` to `max` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    /// The rule repeated.
    pub rule: u32,
    /// The fewest times.
    pub min: u32,
    /// The most times.
    pub max: u32,
}

/// Each byte's class (see [`CompiledGrammar`]'s `class_of`) under `sets`, and how many there are:
/// the partition of the 256 bytes that every set refines, found by splitting it by each set in
/// turn (the bytes of a set that are only part of their class leave it for a new one), in time
/// linear in the sets' sizes.
fn byte_classes(sets: &[[u64; 4]]) -> ([u8; 256], usize) {
    let mut distinct: Vec<[u64; 4]> = sets.to_vec();
    distinct.sort_unstable();
    distinct.dedup(); // (a few sets, like a quote or a digit, stand in most grammars many times)
    let mut class_of = [0u8; 256];
    let mut size = vec![256u16]; // bytes per class
    let mut bytes = Vec::with_capacity(256);
    let mut touched = Vec::with_capacity(256);
    // per class, for the set at hand: its bytes in the set, and the class that part moves to
    let (mut inside, mut split_to) = ([0u16; 256], [u16::MAX; 256]);
    for set in &distinct {
        bytes.clear();
        touched.clear();
        for (w, &word) in set.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                bytes.push(w * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
        for &b in &bytes {
            let c = class_of[b] as usize;
            if inside[c] == 0 {
                touched.push(c);
            }
            inside[c] += 1;
        }
        for &b in &bytes {
            let c = class_of[b] as usize;
            if split_to[c] == u16::MAX {
                if inside[c] == size[c] {
                    continue; // the whole class is in the set: it stays as it is
                }
                split_to[c] = size.len() as u16;
                size.push(0);
            }
            let to = split_to[c] as usize;
            (size[c], size[to]) = (size[c] - 1, size[to] + 1);
            class_of[b] = to as u8; // (at most 256 classes: one per byte)
        }
        for &c in &touched {
            (inside[c], split_to[c]) = (0, u16::MAX);
        }
    }
    (class_of, size.len())
}

/// Whether byte `b` is in the 256-bit table `set`.
pub fn has_byte(set: &[u64; 4], b: u8) -> bool {
    set[(b >> 6) as usize] >> (b & 63) & 1 == 1
}

impl CompiledGrammar {
    /// The grammar whose start rule is `start`, with `alternatives` as `(lhs, symbols)` (an empty
    /// `symbols` is epsilon), `byte_sets` as inclusive byte ranges and `repeats` as
    /// `(rule, min, max)`. Rules are numbered `0..=max(start, every lhs)`; a rule with no
    /// alternative matches nothing.
    pub fn new(
        start: u32,
        alternatives: Vec<(u32, Vec<Symbol>)>,
        byte_sets: Vec<Vec<(u8, u8)>>,
        repeats: Vec<(u32, u32, u32)>,
    ) -> Result<Self, GrammarError> {
        let n_symbols: usize = alternatives.iter().map(|(_, symbols)| symbols.len()).sum();
        let mut lhs = Vec::with_capacity(alternatives.len());
        let mut rhs_start = Vec::with_capacity(alternatives.len() + 1);
        let mut rhs = Vec::with_capacity(n_symbols);
        rhs_start.push(0);
        for (rule, symbols) in alternatives {
            lhs.push(rule);
            rhs.extend_from_slice(&symbols);
            rhs_start.push(rhs.len() as u32); // (a sum past u32 is refused below)
        }
        Self::from_columns(start, lhs, rhs_start, rhs, &byte_sets, &repeats)
    }

    /// The grammar whose alternative `a` defines rule `lhs[a]` with the symbols
    /// `rhs[rhs_start[a]..rhs_start[a + 1]]`, the alternatives as [`new`](Self::new) takes
    /// them but in columns (for a caller that reads them from elsewhere, with no vector per
    /// alternative); every number is checked here.
    pub fn from_columns(
        start: u32,
        lhs: Vec<u32>,
        rhs_start: Vec<u32>,
        rhs: Vec<Symbol>,
        byte_sets: &[Vec<(u8, u8)>],
        repeats: &[(u32, u32, u32)],
    ) -> Result<Self, GrammarError> {
        let n_rules = lhs
            .iter()
            .copied()
            .chain([start])
            .max()
            .map_or(0, |m| m as usize + 1);
        if n_rules > u32::MAX as usize / 2
            || lhs.len() + rhs.len() > u32::MAX as usize / 2
            || byte_sets.len() > u32::MAX as usize / 2
        {
            return Err(GrammarError::InvalidGrammar("too many rules or symbols"));
        }
        if rhs_start.len() != lhs.len() + 1
            || rhs_start.windows(2).any(|w| w[0] > w[1])
            || rhs_start.last().map(|&end| end as usize) != Some(rhs.len())
        {
            return Err(GrammarError::InvalidGrammar(
                "the alternatives' ends do not cover the symbols in order",
            ));
        }
        let mut sets = Vec::with_capacity(byte_sets.len());
        for ranges in byte_sets {
            let mut bits = [0u64; 4];
            for &(lo, hi) in ranges {
                if lo > hi {
                    return Err(GrammarError::InvalidGrammar("an empty byte range"));
                }
                for b in lo..=hi {
                    bits[(b >> 6) as usize] |= 1 << (b & 63);
                }
            }
            sets.push(bits);
        }
        let mut counted = Vec::with_capacity(repeats.len());
        for &(rule, min, max) in repeats {
            if rule as usize >= n_rules {
                return Err(GrammarError::InvalidGrammar("symbol out of range"));
            }
            if min > max || max == u32::MAX {
                return Err(GrammarError::InvalidGrammar("invalid repetition bounds"));
            }
            counted.push(Repeat { rule, min, max });
        }
        for &s in &rhs {
            let known = match s {
                Symbol::Rule(r) => (r as usize) < n_rules,
                Symbol::Bytes(k) => (k as usize) < sets.len(),
                Symbol::Repeat(k) => (k as usize) < counted.len(),
            };
            if !known {
                return Err(GrammarError::InvalidGrammar("symbol out of range"));
            }
        }
        // each rule's alternatives, in order: a counting sort of the alternatives by rule
        let mut rule_alts_start = vec![0u32; n_rules + 1];
        for &l in &lhs {
            rule_alts_start[l as usize + 1] += 1;
        }
        for r in 0..n_rules {
            rule_alts_start[r + 1] += rule_alts_start[r];
        }
        let mut rule_alts = vec![0u32; lhs.len()];
        let mut filled = rule_alts_start.clone();
        for (a, &l) in lhs.iter().enumerate() {
            rule_alts[filled[l as usize] as usize] = a as u32;
            filled[l as usize] += 1;
        }
        let (class_of, n_classes) = byte_classes(&sets);
        let mut g = CompiledGrammar {
            start,
            repeats: counted,
            lhs,
            rhs_start,
            rhs,
            rule_alts_start,
            rule_alts,
            nullable: vec![false; n_rules],
            byte_sets: sets,
            class_of,
            n_classes,
        };
        g.nullable = g.nullable_rules();
        Ok(g)
    }

    /// The start rule's number.
    pub fn start(&self) -> u32 {
        self.start
    }

    /// Every alternative as (its rule, its symbols), in order.
    pub fn alternatives(&self) -> impl Iterator<Item = (u32, &[Symbol])> {
        (0..self.lhs.len() as u32).map(|a| (self.lhs[a as usize], self.alt_rhs(a)))
    }

    /// Each byte set as a 256-bit table (bit `b % 64` of word `b / 64` set: byte `b` is in it).
    pub fn byte_sets(&self) -> &[[u64; 4]] {
        &self.byte_sets
    }

    /// Each counted repetition as `(rule, min, max)`.
    pub fn repeats(&self) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
        self.repeats.iter().map(|r| (r.rule, r.min, r.max))
    }

    /// Which rules match the empty string: a rule does if one of its alternatives is all such
    /// symbols (rules that do, counted repetitions of one or with `min` 0). Found from the
    /// alternatives that are empty, by following each rule found to the alternatives that use
    /// it (each alternative counts the symbols it still waits for), so in time linear in the
    /// grammar, where passes until nothing changes would take one pass per level of nesting.
    fn nullable_rules(&self) -> Vec<bool> {
        let n_rules = self.nullable.len();
        // the rule each symbol waits for (None: never empty, or always), and its users
        let waits_for = |s: Symbol| match s {
            Symbol::Rule(r) => Some(r),
            Symbol::Repeat(k) if self.repeats[k as usize].min > 0 => {
                Some(self.repeats[k as usize].rule)
            }
            Symbol::Repeat(_) | Symbol::Bytes(_) => None,
        };
        let mut waiting = vec![0u32; self.lhs.len()]; // per alternative: symbols not known empty yet
        let mut users_start = vec![0u32; n_rules + 1];
        for a in 0..self.lhs.len() as u32 {
            let rhs = self.alt_rhs(a);
            if rhs.iter().any(|s| matches!(s, Symbol::Bytes(_))) {
                waiting[a as usize] = u32::MAX; // never empty
                continue;
            }
            for r in rhs.iter().filter_map(|&s| waits_for(s)) {
                waiting[a as usize] += 1;
                users_start[r as usize + 1] += 1;
            }
        }
        for r in 0..n_rules {
            users_start[r + 1] += users_start[r];
        }
        let mut users = vec![0u32; users_start[n_rules] as usize]; // by rule: the alternatives using it
        let mut filled = users_start.clone();
        for a in 0..self.lhs.len() as u32 {
            if waiting[a as usize] == u32::MAX {
                continue;
            }
            for r in self.alt_rhs(a).iter().filter_map(|&s| waits_for(s)) {
                users[filled[r as usize] as usize] = a;
                filled[r as usize] += 1;
            }
        }
        let mut nullable = vec![false; n_rules];
        let mut found: Vec<u32> = Vec::new();
        for (a, &w) in waiting.iter().enumerate() {
            let l = self.lhs[a];
            if w == 0 && !nullable[l as usize] {
                nullable[l as usize] = true;
                found.push(l);
            }
        }
        while let Some(r) = found.pop() {
            let r = r as usize;
            for &a in &users[users_start[r] as usize..users_start[r + 1] as usize] {
                waiting[a as usize] -= 1;
                let l = self.lhs[a as usize];
                if waiting[a as usize] == 0 && !nullable[l as usize] {
                    nullable[l as usize] = true;
                    found.push(l);
                }
            }
        }
        nullable
    }

    /// Rule `rule`'s alternatives.
    fn alternatives_of(&self, rule: u32) -> &[u32] {
        let r = rule as usize;
        &self.rule_alts[self.rule_alts_start[r] as usize..self.rule_alts_start[r + 1] as usize]
    }

    /// A number per (alternative, dot), dot in 0..=len: `0..rhs.len() + lhs.len()`.
    fn position(&self, it: Item) -> usize {
        (self.rhs_start[it.alt as usize] + it.alt + it.dot) as usize
    }

    /// The right-hand side of alternative `alt`.
    fn alt_rhs(&self, alt: u32) -> &[Symbol] {
        &self.rhs[self.rhs_start[alt as usize] as usize..self.rhs_start[alt as usize + 1] as usize]
    }

    /// Whether some counted repetition has counts that an automaton with `horizon` stores as
    /// [`FAR`] (at least `min` and at least `horizon` below `max`).
    pub(super) fn has_far_counts(&self, horizon: u32) -> bool {
        self.repeats.iter().any(|r| r.max - r.min >= horizon)
    }

    /// The count `count` of an item at `dot` in alternative `alt` as an automaton with `horizon`
    /// stores it: [`FAR`] before a counted repetition whose bounds are both far, else `count`.
    fn stored_count(&self, alt: u32, dot: u32, count: u32, horizon: u32) -> u32 {
        if count == FAR || horizon == NO_HORIZON {
            return count;
        }
        match self.alt_rhs(alt).get(dot as usize) {
            Some(Symbol::Repeat(k)) => {
                let rep = self.repeats[*k as usize];
                if count >= rep.min && rep.max - count >= horizon {
                    FAR
                } else {
                    count
                }
            }
            _ => count,
        }
    }
}

/// The last entry of an accepting state's interning key (its items, sorted): no real item has it.
const ACCEPTING: Item = Item {
    alt: u32::MAX,
    dot: u32::MAX,
    origin: u32::MAX,
    count: u32::MAX,
};

/// An Earley item: alternative, dot, origin state id (or `SELF`), and count (before a counted
/// repetition: how many of its rule are read, or [`FAR`]; else 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Item {
    /// The alternative (an index into the grammar's alternatives).
    pub(super) alt: u32,
    /// How many of its symbols are matched.
    pub(super) dot: u32,
    /// The state the item started in, or `SELF`.
    pub(super) origin: u32,
    /// Before a [`Symbol::Repeat`]: how many of its rule are read, or [`FAR`] (else 0).
    pub(super) count: u32,
}

/// One interned Earley set. Its lists live in the automaton's shared arrays (one allocation for
/// many states, not several per state): `waiting` and `scans` are ranges of one chunk of
/// `Automaton::pairs`,
/// `next` its row of transitions in `Automaton::next` (NO_ROW until its first step).
pub(super) struct State {
    /// The chunk of `Automaton::pairs` that holds its lists
    chunk: u32,
    /// (rule after the dot, item), sorted by rule: for completion
    waiting: (u32, u32),
    /// (byte set after the dot, item)
    scans: (u32, u32),
    /// The bytes some item can scan next: the union of the scans' byte sets.
    pub(super) scan_bytes: [u64; 4],
    /// Whether the start rule is complete here (the bytes so far are a sentence).
    pub(super) accepting: bool,
    /// Its row in `Automaton::next`, or `NO_ROW`.
    next: u32,
}

const NO_ROW: u32 = u32::MAX;

/// Lists of many states (or keys), stored in chunks that never grow once made (see [`Rows`]):
/// each list lies within one chunk, so a list is a chunk and a range in it.
struct Arena<T> {
    chunks: Vec<Vec<T>>,
}

/// The room a chunk of an [`Arena`] is made with (more for one longer list).
const ARENA_CHUNK: usize = 4096;

impl<T: Copy> Arena<T> {
    /// The chunk to add a list of `n` more entries to, made if the last one lacks the room.
    fn room(&mut self, n: usize) -> u32 {
        match self.chunks.last() {
            Some(c) if c.capacity() - c.len() >= n => {}
            _ => self.chunks.push(Vec::with_capacity(n.max(ARENA_CHUNK))),
        }
        (self.chunks.len() - 1) as u32
    }

    /// Add `list` to chunk `c` (made by `room` with space for it): where it starts there.
    fn extend(&mut self, c: u32, list: &[T]) -> u32 {
        let chunk = &mut self.chunks[c as usize];
        let at = chunk.len() as u32;
        chunk.extend_from_slice(list);
        at
    }

    /// Entries `from..to` of chunk `c`.
    #[inline]
    fn get(&self, c: u32, from: u32, to: u32) -> &[T] {
        &self.chunks[c as usize][from as usize..to as usize]
    }
}

impl<T> Default for Arena<T> {
    fn default() -> Self {
        Arena { chunks: Vec::new() }
    }
}

/// The states' transition rows (one entry per byte class: UNKNOWN, DEAD or a state), kept in
/// chunks of a fixed size. An automaton of a large grammar steps tens of thousands of states; one
/// growing array of their rows would be copied whole (and its new pages faulted in) each time it
/// doubled, a pause of several milliseconds in the middle of some unlucky mask.
struct Rows {
    chunks: Vec<Box<[u32]>>,
    len: usize,
    /// Entries per row (the grammar's byte classes)
    width: usize,
    /// Rows per chunk
    per_chunk: usize,
}

impl Rows {
    /// No rows yet, each to have `width` entries.
    fn new(width: usize) -> Self {
        let width = width.max(1);
        Rows {
            chunks: Vec::new(),
            len: 0,
            width,
            per_chunk: (ROW_CHUNK_ENTRIES / width).max(1),
        }
    }

    /// A new row, every entry UNKNOWN: its number.
    fn push(&mut self) -> u32 {
        if self.len == self.chunks.len() * self.per_chunk {
            let entries = self.per_chunk * self.width;
            self.chunks.push(vec![UNKNOWN; entries].into_boxed_slice());
        }
        self.len += 1;
        (self.len - 1) as u32
    }

    /// Row `r`.
    #[inline]
    fn row(&self, r: u32) -> &[u32] {
        let (c, at) = (
            r as usize / self.per_chunk,
            r as usize % self.per_chunk * self.width,
        );
        &self.chunks[c][at..at + self.width]
    }

    /// Row `r`, to fill.
    fn row_mut(&mut self, r: u32) -> &mut [u32] {
        let (c, at) = (
            r as usize / self.per_chunk,
            r as usize % self.per_chunk * self.width,
        );
        &mut self.chunks[c][at..at + self.width]
    }
}

/// FxHash (rustc's hasher): fast for the short integer keys hashed here.
#[derive(Default)]
pub struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash map with [`Fx`] hashing.
pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// The interned Earley sets of one grammar, with their transitions, and scratch buffers.
pub(super) struct Automaton {
    /// The grammar.
    pub(super) g: Arc<CompiledGrammar>,
    /// Every state made so far, by id (`ROOT` first).
    pub(super) states: Vec<State>,
    /// Every state's `waiting` and `scans` lists
    pairs: Arena<(u32, Item)>,
    /// Every stepped state's transitions, one per byte class (UNKNOWN, DEAD or a state)
    next: Rows,
    /// A state's items -> its id
    intern: Interner,
    /// Canonical seeds (see `close`) -> their closure's state
    by_seeds: Interner,
    seed_key: Vec<Item>,
    seeds: Vec<Item>,
    waiting: Vec<(u32, Item)>,
    scans: Vec<(u32, Item)>,
    seen: Seen,
    /// Per rule: the `gen` of the last closure that predicted it
    predicted: Vec<u32>,
    /// This closure's stamp (see `close_uncached`)
    gen: u32,
    /// The most states (MAX_STATES; less in tests)
    pub(super) max_states: usize,
    /// Counts at least this far below their maximum are [`FAR`] (or [`NO_HORIZON`])
    horizon: u32,
    work: Vec<Item>,
    items: Vec<Item>,
}

impl Automaton {
    /// The automaton of `g`, with its root state (the start rule predicted) made.
    pub(super) fn new(g: Arc<CompiledGrammar>) -> Result<Self, GrammarError> {
        Self::with_horizon(g, NO_HORIZON)
    }

    /// The automaton of `g` that stores counts at least `horizon` below their maximum (and not
    /// below their minimum) as [`FAR`]: exact for any `horizon - 1` bytes from a state
    /// [`import`](Self::import)ed from an exact automaton.
    pub(super) fn with_horizon(
        g: Arc<CompiledGrammar>,
        horizon: u32,
    ) -> Result<Self, GrammarError> {
        let n_rules = g.nullable.len();
        let seen = Seen {
            at: vec![(0, 0, 0); g.rhs.len() + g.lhs.len()],
            more: FxMap::with_capacity_and_hasher(64, Default::default()),
        };
        let width = g.n_classes;
        let mut a = Automaton {
            g,
            // Room for the states of a few first masks, allocated now rather than grown (and
            // copied) a little at a time while those masks are made. Each stays below glibc's
            // mmap threshold (128 KiB), so it comes from the heap, not from fresh pages.
            states: Vec::with_capacity(INITIAL_STATES),
            pairs: Arena::default(),
            next: Rows::new(width),
            intern: Interner::with_capacity(INITIAL_STATES),
            by_seeds: Interner::with_capacity(INITIAL_STATES),
            seed_key: Vec::with_capacity(64),
            seeds: Vec::with_capacity(64),
            waiting: Vec::with_capacity(64),
            scans: Vec::with_capacity(64),
            seen,
            predicted: vec![0; n_rules],
            gen: 0,
            max_states: MAX_STATES,
            horizon,
            work: Vec::with_capacity(128),
            items: Vec::with_capacity(128),
        };
        let seeds: Vec<Item> =
            a.g.alternatives_of(a.g.start)
                .iter()
                .map(|&alt| Item {
                    alt,
                    dot: 0,
                    origin: SELF,
                    count: a.g.stored_count(alt, 0, 0, horizon),
                })
                .collect();
        a.close(&seeds)?;
        Ok(a)
    }

    /// The state after `byte` from `s`, or DEAD.
    #[inline]
    pub(super) fn step(&mut self, s: u32, byte: u8) -> Result<u32, GrammarError> {
        let st = &self.states[s as usize];
        if !has_byte(&st.scan_bytes, byte) {
            return Ok(DEAD);
        }
        if st.next != NO_ROW {
            let t = self.next.row(st.next)[self.g.class_of[byte as usize] as usize];
            if t != UNKNOWN {
                return Ok(t);
            }
        }
        let (g, horizon) = (&self.g, self.horizon);
        let mut seeds = std::mem::take(&mut self.seeds); // (a scratch buffer, given back below)
        seeds.clear();
        // The seeds: the items that scan `byte`, moved past it. And every byte that belongs to
        // exactly the same scanned byte sets leads to the same state: `same`, filled below all
        // at once (a class like [^"] costs one closure, not 200).
        let mut same = st.scan_bytes;
        for &(set, it) in self.pairs.get(st.chunk, st.scans.0, st.scans.1) {
            let bits = &g.byte_sets[set as usize];
            if has_byte(bits, byte) {
                for (w, x) in same.iter_mut().zip(bits) {
                    *w &= *x;
                }
                seeds.push(Item {
                    alt: it.alt,
                    dot: it.dot + 1,
                    origin: if it.origin == SELF { s } else { it.origin },
                    count: g.stored_count(it.alt, it.dot + 1, 0, horizon),
                });
            } else {
                for (w, x) in same.iter_mut().zip(bits) {
                    *w &= !*x;
                }
            }
        }
        let t = if seeds.is_empty() {
            Ok(DEAD)
        } else {
            self.close(&seeds)
        };
        self.seeds = seeds;
        let t = t?;
        let st = &mut self.states[s as usize];
        if st.next == NO_ROW {
            st.next = self.next.push();
        }
        // (the bytes of `same` are whole classes: a class's bytes are in the same sets)
        let class_of = &self.g.class_of;
        let row = self.next.row_mut(st.next);
        for (w, &word) in same.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                row[class_of[w * 64 + bits.trailing_zeros() as usize] as usize] = t;
                bits &= bits - 1;
            }
        }
        row[class_of[byte as usize] as usize] = t;
        Ok(t)
    }

    /// Close `seeds` under prediction and completion; intern the set; return its id.
    ///
    /// Closures are memoized by their seeds. A completed seed matters only through its rule and
    /// origin (what it completes, and whether the set accepts), so it is keyed as that: the bytes
    /// that end different alternatives of one rule (the last byte of a 1-, 2-, 3- or 4-byte UTF-8
    /// character, say) then share one closure instead of computing the same set again.
    pub(super) fn close(&mut self, seeds: &[Item]) -> Result<u32, GrammarError> {
        self.seed_key.clear();
        for &it in seeds {
            let done = it.dot as usize == self.g.alt_rhs(it.alt).len();
            let lhs = self.g.lhs[it.alt as usize];
            self.seed_key.push(if done {
                Item {
                    alt: COMPLETED | lhs,
                    dot: 0,
                    origin: it.origin,
                    count: 0,
                }
            } else {
                it
            });
        }
        self.seed_key.sort_unstable();
        self.seed_key.dedup();
        let hash = match self.by_seeds.get(&self.seed_key) {
            Ok(id) => return Ok(id),
            Err(hash) => hash,
        };
        let id = self.close_uncached(seeds)?;
        self.by_seeds.insert(&self.seed_key, hash, id);
        Ok(id)
    }

    fn close_uncached(&mut self, seeds: &[Item]) -> Result<u32, GrammarError> {
        let g = self.g.clone();
        let horizon = self.horizon;
        let is_root = self.states.is_empty();
        self.seen.more.clear();
        self.work.clear();
        self.items.clear();
        let (mut waiting, mut scans) = (
            std::mem::take(&mut self.waiting),
            std::mem::take(&mut self.scans),
        );
        waiting.clear();
        scans.clear();
        let mut accepting = false;
        // A predicted item (dot 0, origin SELF) comes only with all its rule's alternatives, so
        // prediction is deduplicated per rule with a stamp (`predicted[rule] == gen`), not per
        // item; `seen` holds the other items. (The root's seeds are its start rule predicted.)
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            // the stamps wrapped around: start again from clean tables
            self.predicted.fill(0);
            self.seen.at.fill((0, 0, 0));
            self.gen = 1;
        }
        let gen = self.gen;
        for &it in seeds {
            if it.dot == 0 && it.origin == SELF {
                self.predicted[g.lhs[it.alt as usize] as usize] = self.gen;
                self.work.push(it);
            } else if self.seen.insert(g.position(it), it, gen) {
                self.work.push(it);
            }
        }
        let mut n_items = 0; // every item, completed ones too (`items` keeps only the others)
        while let Some(it) = self.work.pop() {
            n_items += 1;
            if n_items > MAX_EARLEY_ITEMS {
                return Err(GrammarError::TooManyItems);
            }
            let rhs = g.alt_rhs(it.alt);
            let add = |n: Item, seen: &mut Seen, work: &mut Vec<Item>| {
                if seen.insert(g.position(n), n, gen) {
                    work.push(n);
                }
            };
            if (it.dot as usize) < rhs.len() {
                self.items.push(it);
                let rule = match rhs[it.dot as usize] {
                    Symbol::Bytes(set) => {
                        scans.push((set, it));
                        continue;
                    }
                    Symbol::Rule(rule) => Counted::Plain(rule),
                    Symbol::Repeat(k) => Counted::Repeat(g.repeats[k as usize]),
                };
                // (a counted repetition: room for one more `rule`? read enough to move on?)
                let (rule, wants_more, may_skip) = match rule {
                    Counted::Plain(rule) => (rule, true, g.nullable[rule as usize]),
                    Counted::Repeat(rep) => (
                        rep.rule,
                        it.count == FAR || it.count < rep.max,
                        it.count == FAR || it.count >= rep.min || g.nullable[rep.rule as usize],
                    ),
                };
                if wants_more {
                    waiting.push((rule, it));
                    if self.predicted[rule as usize] != self.gen {
                        self.predicted[rule as usize] = self.gen;
                        self.work
                            .extend(g.alternatives_of(rule).iter().map(|&alt| Item {
                                alt,
                                dot: 0,
                                origin: SELF,
                                count: g.stored_count(alt, 0, 0, horizon),
                            }));
                    }
                }
                if may_skip {
                    add(
                        Item {
                            dot: it.dot + 1,
                            count: g.stored_count(it.alt, it.dot + 1, 0, horizon),
                            ..it
                        },
                        &mut self.seen,
                        &mut self.work,
                    );
                }
            } else {
                let lhs = g.lhs[it.alt as usize];
                if lhs == g.start && (it.origin == ROOT || (is_root && it.origin == SELF)) {
                    accepting = true;
                }
                if it.origin != SELF {
                    // an empty completion (origin SELF) was handled by `nullable` at prediction
                    let o = it.origin;
                    let parent = &self.states[o as usize];
                    let (from, to) = parent.waiting;
                    let parents = self.pairs.get(parent.chunk, from, to);
                    let from = parents.partition_point(|(r, _)| *r < lhs);
                    for &(r, p) in &parents[from..] {
                        if r != lhs {
                            break;
                        }
                        let origin = if p.origin == SELF { o } else { p.origin };
                        // a counted parent reads one more; any other moves its dot past
                        let counted = matches!(g.alt_rhs(p.alt)[p.dot as usize], Symbol::Repeat(_));
                        let next = if counted {
                            Item {
                                origin,
                                count: match p.count {
                                    FAR => FAR,
                                    c => g.stored_count(p.alt, p.dot, c + 1, horizon),
                                },
                                ..p
                            }
                        } else {
                            Item {
                                alt: p.alt,
                                dot: p.dot + 1,
                                origin,
                                count: g.stored_count(p.alt, p.dot + 1, 0, horizon),
                            }
                        };
                        add(next, &mut self.seen, &mut self.work);
                    }
                }
            }
        }
        // The key: items that still matter (a completed item has done its work) and acceptance.
        self.items.sort_unstable();
        if accepting {
            self.items.push(ACCEPTING);
        }
        let id = match self.intern.get(&self.items) {
            Ok(id) => Ok(id),
            Err(_) if self.states.len() >= self.max_states => Err(GrammarError::TooManyStates),
            Err(hash) => Ok(self.new_state(&mut waiting, &scans, accepting, hash)),
        };
        (self.waiting, self.scans) = (waiting, scans); // the scratch buffers, for the next closure
        id
    }

    /// The state of this automaton that stands for state `s` of the exact automaton `exact`
    /// (one with no horizon, on the same grammar): the same items, with their counts stored as
    /// this automaton stores them and their origins mapped likewise. `map` memoizes the mapping
    /// from `exact`'s states to this one's (every origin of `s` is mapped first).
    pub(super) fn import(
        &mut self,
        exact: &Automaton,
        s: u32,
        map: &mut FxMap<u32, u32>,
    ) -> Result<u32, GrammarError> {
        let mut todo = vec![s];
        while let Some(&u) = todo.last() {
            if map.contains_key(&u) {
                todo.pop();
                continue;
            }
            let items = exact.intern.key(u);
            // (the accepting marker's origin is u32::MAX = SELF too: skipped with it)
            let unmapped = items
                .iter()
                .filter(|it| it.alt != u32::MAX && it.origin != SELF)
                .find(|it| !map.contains_key(&it.origin));
            if let Some(it) = unmapped {
                todo.push(it.origin);
                continue;
            }
            let mut accepting = false;
            self.items.clear();
            for it in items {
                if it.alt == u32::MAX {
                    accepting = true;
                    continue;
                }
                self.items.push(Item {
                    origin: if it.origin == SELF {
                        SELF
                    } else {
                        map[&it.origin]
                    },
                    count: self.g.stored_count(it.alt, it.dot, it.count, self.horizon),
                    ..*it
                });
            }
            let id = self.intern_items(accepting)?;
            map.insert(u, id);
            todo.pop();
        }
        Ok(map[&s])
    }

    /// The state whose non-completed items are `self.items` (in any order) and which accepts if
    /// `accepting`: found, or made (its lists derived from the items as a closure derives them).
    fn intern_items(&mut self, accepting: bool) -> Result<u32, GrammarError> {
        self.items.sort_unstable();
        self.items.dedup();
        if accepting {
            self.items.push(ACCEPTING);
        }
        let hash = match self.intern.get(&self.items) {
            Ok(id) => return Ok(id),
            Err(_) if self.states.len() >= self.max_states => {
                return Err(GrammarError::TooManyStates)
            }
            Err(hash) => hash,
        };
        let g = self.g.clone();
        let (mut waiting, mut scans) = (
            std::mem::take(&mut self.waiting),
            std::mem::take(&mut self.scans),
        );
        waiting.clear();
        scans.clear();
        for &it in &self.items[..self.items.len() - usize::from(accepting)] {
            match g.alt_rhs(it.alt)[it.dot as usize] {
                Symbol::Bytes(set) => scans.push((set, it)),
                Symbol::Rule(rule) => waiting.push((rule, it)),
                Symbol::Repeat(k) => {
                    let rep = g.repeats[k as usize];
                    if it.count == FAR || it.count < rep.max {
                        waiting.push((rep.rule, it));
                    }
                }
            }
        }
        let id = self.new_state(&mut waiting, &scans, accepting, hash);
        (self.waiting, self.scans) = (waiting, scans);
        Ok(id)
    }

    /// Store the closure just computed (`self.items` is its key, `hash` the key's hash) as a new state.
    fn new_state(
        &mut self,
        waiting: &mut [(u32, Item)],
        scans: &[(u32, Item)],
        accepting: bool,
        hash: u64,
    ) -> u32 {
        let g = &self.g;
        waiting.sort_unstable();
        let mut scan_bytes = [0u64; 4];
        for (set, _) in scans {
            for (w, x) in scan_bytes.iter_mut().zip(&g.byte_sets[*set as usize]) {
                *w |= x;
            }
        }
        let id = self.states.len() as u32;
        let chunk = self.pairs.room(waiting.len() + scans.len());
        let at = self.pairs.extend(chunk, waiting);
        let end = self.pairs.extend(chunk, scans) + scans.len() as u32;
        let (waiting, scans) = (
            (at, at + waiting.len() as u32),
            (at + waiting.len() as u32, end),
        );
        self.states.push(State {
            chunk,
            waiting,
            scans,
            scan_bytes,
            accepting,
            next: NO_ROW,
        });
        self.intern.insert(&self.items, hash, id);
        id
    }
}

/// A symbol a dot can stand before other than a byte set: a rule, or a counted repetition.
enum Counted {
    Plain(u32),
    Repeat(Repeat),
}

/// The items of the closure being built, other than predicted ones (see `close_uncached`).
/// Most differ in (alternative, dot), so a table stamped per position finds a repeat with one
/// lookup; an item at a position already taken by another origin or count goes to the map `more`.
struct Seen {
    /// Per (alternative, dot) position: (closure stamp, origin, count)
    at: Vec<(u32, u32, u32)>,
    more: FxMap<Item, ()>,
}

impl Seen {
    /// Add `it` (at `position`) to the closure stamped `gen`; false if it was there already.
    fn insert(&mut self, position: usize, it: Item, gen: u32) -> bool {
        let (stamp, origin, count) = &mut self.at[position];
        if *stamp != gen {
            (*stamp, *origin, *count) = (gen, it.origin, it.count);
            return true;
        }
        (*origin, *count) != (it.origin, it.count) && self.more.insert(it, ()).is_none()
    }
}

/// A map from item lists to ids that stores every key in one shared array: a lookup hashes the
/// slice and compares it in place, so neither a lookup nor an insert allocates a key.
#[derive(Default)]
struct Interner {
    /// Hash -> the newest entry with that hash
    heads: FxMap<u64, u32>,
    /// Per entry: its key's chunk and range in `keys`, value, older same-hash entry
    entries: Vec<Entry>,
    keys: Arena<Item>,
}

struct Entry {
    chunk: u32,
    from: u32,
    to: u32,
    value: u32,
    /// U32::MAX: none
    older: u32,
}

impl Interner {
    fn with_capacity(n: usize) -> Self {
        Interner {
            heads: FxMap::with_capacity_and_hasher(n, Default::default()),
            entries: Vec::with_capacity(n),
            keys: Arena::default(),
        }
    }

    /// FxHash of the items, two words per item (alternative and dot, count and origin).
    fn hash(key: &[Item]) -> u64 {
        let mut h = Fx::default();
        h.write_usize(key.len());
        for it in key {
            h.write_u64((it.alt as u64) << 32 | it.dot as u64);
            // (the origin in the low half: Fx mixes only upwards, and the map indexes by low bits)
            h.write_u64((it.count as u64) << 32 | it.origin as u64);
        }
        h.finish()
    }

    /// The key of the entry inserted `id`-th.
    fn key(&self, id: u32) -> &[Item] {
        let e = &self.entries[id as usize];
        self.keys.get(e.chunk, e.from, e.to)
    }

    /// The value of `key`, or, if it has none, the key's hash (for `insert`).
    fn get(&self, key: &[Item]) -> Result<u32, u64> {
        let hash = Self::hash(key);
        let mut e = *self.heads.get(&hash).ok_or(hash)?;
        while let Some(entry) = self.entries.get(e as usize) {
            if self.keys.get(entry.chunk, entry.from, entry.to) == key {
                return Ok(entry.value);
            }
            e = entry.older;
        }
        Err(hash)
    }

    /// Add `key -> value`; `hash` is what `get` returned for it (`key` must not be in the map).
    fn insert(&mut self, key: &[Item], hash: u64, value: u32) {
        let chunk = self.keys.room(key.len());
        let from = self.keys.extend(chunk, key);
        let id = self.entries.len() as u32;
        let older = self.heads.insert(hash, id).unwrap_or(u32::MAX);
        self.entries.push(Entry {
            chunk,
            from,
            to: from + key.len() as u32,
            value,
            older,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Draw;
    use super::*;

    /// The states after each byte of `text` from the root (DEAD once a byte is rejected).
    fn walk(a: &mut Automaton, text: &[u8]) -> Vec<u32> {
        let mut s = ROOT;
        let mut states = Vec::new();
        for &b in text {
            if s != DEAD {
                s = a.step(s, b).unwrap();
            }
            states.push(s);
        }
        states
    }

    fn accepts(a: &mut Automaton, text: &[u8]) -> bool {
        match walk(a, text).last() {
            Some(&s) => s != DEAD && a.states[s as usize].accepting,
            None => a.states[ROOT as usize].accepting,
        }
    }

    /// `0 ::= "a" 0 "b" | ""`: balanced a^n b^n (a center-recursive rule, not a regular language).
    fn balanced() -> Arc<CompiledGrammar> {
        let mut d = Draw::default();
        let (a, b) = (d.byte(b'a'), d.byte(b'b'));
        d.alt(0, &[a, Symbol::Rule(0), b]);
        d.alt(0, &[]);
        d.build(0)
    }

    #[test]
    fn recognizes_exactly_the_language() {
        let mut a = Automaton::new(balanced()).unwrap();
        for (text, expected) in [
            (&b""[..], true),
            (b"ab", true),
            (b"aabb", true),
            (b"aab", false),
            (b"abab", false),
            (b"ba", false),
        ] {
            assert_eq!(accepts(&mut a, text), expected, "{:?}", text);
        }
        let states = walk(&mut a, b"abb");
        assert_ne!(states[1], DEAD);
        assert_eq!(states[2], DEAD); // the second "b" has no "a" to close
    }

    #[test]
    fn equal_earley_sets_are_one_state() {
        // 0 ::= "" | 0 [a-z]   (a left-recursive star: after any letters, the same items)
        let mut d = Draw::default();
        let letter = d.set(&[(b'a', b'z')]);
        d.alt(0, &[]);
        d.alt(0, &[Symbol::Rule(0), letter]);
        let mut a = Automaton::new(d.build(0)).unwrap();
        let states = walk(&mut a, b"abcq");
        assert!(states.iter().all(|&s| s == states[0]), "{states:?}");
        assert_eq!(a.states.len(), 2); // the root and the state after a letter
    }

    #[test]
    fn nullable_rules_are_skipped_at_prediction() {
        // 0 ::= 1 1 "x"     1 ::= "" | "a"
        let mut d = Draw::default();
        let (x, a) = (d.byte(b'x'), d.byte(b'a'));
        d.alt(0, &[Symbol::Rule(1), Symbol::Rule(1), x]);
        d.alt(1, &[]);
        d.alt(1, &[a]);
        let mut auto = Automaton::new(d.build(0)).unwrap();
        for (text, expected) in [
            (&b"x"[..], true),
            (b"ax", true),
            (b"aax", true),
            (b"aaax", false),
        ] {
            assert_eq!(accepts(&mut auto, text), expected, "{:?}", text);
        }
    }

    #[test]
    fn a_counted_repeat_reads_exactly_its_bounds_with_one_item_per_count() {
        // 0 ::= 1{2,20000} ";"    1 ::= "a" | "bc"
        let mut d = Draw::default();
        let (semicolon, a, b, c) = (d.byte(b';'), d.byte(b'a'), d.byte(b'b'), d.byte(b'c'));
        let many = d.repeat(1, 2, 20_000);
        d.alt(0, &[many, semicolon]);
        d.alt(1, &[a]);
        d.alt(1, &[b, c]);
        let mut auto = Automaton::new(d.build(0)).unwrap();
        for (text, expected) in [
            (&b";"[..], false),
            (b"a;", false),
            (b"abc;", true),
            (b"bcbca;", true),
            (b"ab;", false),
        ] {
            assert_eq!(accepts(&mut auto, text), expected, "{:?}", text);
        }
        let mut text = vec![b'a'; 20_000];
        text.push(b';');
        assert!(accepts(&mut auto, &text));
        let states = auto.states.len();
        text.insert(0, b'a'); // one too many
        assert!(!accepts(&mut auto, &text));
        assert_eq!(auto.states.len(), states); // (the same states: no new one past the bound)
        assert!(auto.states.len() < 20_010); // one state per count, each of a few items
    }

    #[test]
    fn far_counts_are_one_state_and_imported_near_ones_stay_exact() {
        // 0 ::= 1{2,1000} ";"    1 ::= "a" | "bc"     (a horizon of 4 bytes)
        let mut d = Draw::default();
        let (semicolon, a, b, c) = (d.byte(b';'), d.byte(b'a'), d.byte(b'b'), d.byte(b'c'));
        let many = d.repeat(1, 2, 1000);
        d.alt(0, &[many, semicolon]);
        d.alt(1, &[a]);
        d.alt(1, &[b, c]);
        let g = d.build(0);
        assert!(g.has_far_counts(4) && !g.has_far_counts(999));
        let mut exact = Automaton::new(g.clone()).unwrap();
        let mut far = Automaton::with_horizon(g, 4).unwrap();
        let mut map = FxMap::default();
        assert_eq!(far.import(&exact, ROOT, &mut map), Ok(ROOT));
        // below the minimum, counts are exact; past it, far from the maximum, all one state
        assert!(!accepts(&mut far, b"a;") && accepts(&mut far, b"abc;"));
        let states = walk(&mut far, &[b'a'; 300]);
        assert!(states[2..].iter().all(|&s| s == states[2]), "{states:?}");
        assert!(far.states.len() < 20, "{}", far.states.len());
        // 997 read on the exact automaton: three more, not four, from its imported state
        let s = *walk(&mut exact, &[b'a'; 997]).last().unwrap();
        let t = far.import(&exact, s, &mut map).unwrap();
        let from = |far: &mut Automaton, text: &[u8]| {
            let mut u = t;
            for &byte in text {
                u = if u == DEAD {
                    DEAD
                } else {
                    far.step(u, byte).unwrap()
                };
            }
            u != DEAD && far.states[u as usize].accepting
        };
        assert!(from(&mut far, b";") && from(&mut far, b"abca;"));
        assert!(!from(&mut far, b"aaaa;") && !from(&mut far, b"bcbcbc"));
        // a state far from both bounds imports to the loop
        let s = *walk(&mut exact, &[b'a'; 10]).last().unwrap();
        assert_eq!(far.import(&exact, s, &mut map), Ok(states[2]));
    }

    #[test]
    fn a_counted_repeat_of_a_nullable_rule_may_stop_early() {
        // 0 ::= 1{3,4} ";"    1 ::= "" | "a"      (empty repetitions make up the minimum)
        let mut d = Draw::default();
        let (semicolon, a) = (d.byte(b';'), d.byte(b'a'));
        let some = d.repeat(1, 3, 4);
        d.alt(0, &[some, semicolon]);
        d.alt(1, &[]);
        d.alt(1, &[a]);
        let mut auto = Automaton::new(d.build(0)).unwrap();
        for (text, expected) in [(&b";"[..], true), (b"aaaa;", true), (b"aaaaa;", false)] {
            assert_eq!(accepts(&mut auto, text), expected, "{:?}", text);
        }
    }

    #[test]
    fn bytes_in_the_same_sets_share_a_class_and_no_others_do() {
        let set = |ranges: &[(u8, u8)]| {
            let mut bits = [0u64; 4];
            for &(lo, hi) in ranges {
                for b in lo..=hi {
                    bits[(b >> 6) as usize] |= 1 << (b & 63);
                }
            }
            bits
        };
        let sets = [
            set(&[(b'a', b'z')]),
            set(&[(b'a', b'a')]),
            set(&[(b'0', b'9')]),
            set(&[(b'a', b'a')]),
            set(&[(b'b', b'c'), (b'5', b'9'), (0x80, 0xFF)]),
        ];
        let (class_of, n) = byte_classes(&sets);
        assert_eq!(n, 7); // a, b-c, d-z, 0-4, 5-9, 80-FF, the rest
        for x in 0..=255u8 {
            for y in 0..=255u8 {
                let alike = sets.iter().all(|s| has_byte(s, x) == has_byte(s, y));
                assert_eq!(
                    class_of[x as usize] == class_of[y as usize],
                    alike,
                    "{x} {y}"
                );
            }
        }
        assert_eq!(byte_classes(&[]).1, 1);
        // random sets (a fixed LCG): the classes are exactly the bytes' memberships
        let mut x = 12345u64;
        let sets: Vec<[u64; 4]> = (0..40)
            .map(|_| {
                [0; 4].map(|_: u64| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    x & x.rotate_left(17) // (sparser than half the bytes)
                })
            })
            .collect();
        let (class_of, n) = byte_classes(&sets);
        let mut signatures: Vec<Vec<bool>> = (0..=255u8)
            .map(|b| sets.iter().map(|s| has_byte(s, b)).collect())
            .collect();
        for x in 0..256 {
            for y in 0..256 {
                let alike = signatures[x] == signatures[y];
                assert_eq!(class_of[x] == class_of[y], alike, "{x} {y}");
            }
        }
        signatures.sort();
        signatures.dedup();
        assert_eq!(n, signatures.len());
    }

    #[test]
    fn a_state_may_hold_more_items_than_a_chunk_of_lists() {
        // 0 ::= "a" "b" | "a" "b" | ... (ARENA_CHUNK + 100 times) | "a" "c"
        let mut d = Draw::default();
        let (a, b, c) = (d.byte(b'a'), d.byte(b'b'), d.byte(b'c'));
        for _ in 0..ARENA_CHUNK + 100 {
            d.alt(0, &[a, b]);
        }
        d.alt(0, &[a, c]);
        let mut auto = Automaton::new(d.build(0)).unwrap();
        for (text, expected) in [
            (&b"ab"[..], true),
            (b"ac", true),
            (b"ad", false),
            (b"a", false),
        ] {
            assert_eq!(accepts(&mut auto, text), expected, "{:?}", text);
        }
        assert!(auto.pairs.chunks.iter().any(|c| c.len() > ARENA_CHUNK));
    }

    #[test]
    fn a_huge_alternation_hits_the_item_limit() {
        let mut d = Draw::default();
        let a = d.byte(b'a');
        for _ in 0..=MAX_EARLEY_ITEMS {
            d.alt(0, &[a]);
        }
        assert_eq!(
            Automaton::new(d.build(0)).err(),
            Some(GrammarError::TooManyItems)
        );
    }

    /// The nullable rules by the definition: passes over every alternative until none changes.
    fn nullable_by_passes(g: &CompiledGrammar) -> Vec<bool> {
        let mut nullable = vec![false; g.nullable.len()];
        let empty = |nullable: &[bool], s: Symbol| match s {
            Symbol::Rule(r) => nullable[r as usize],
            Symbol::Bytes(_) => false,
            Symbol::Repeat(k) => {
                let rep = g.repeats[k as usize];
                rep.min == 0 || nullable[rep.rule as usize]
            }
        };
        let mut changed = true;
        while changed {
            changed = false;
            for (lhs, rhs) in g.alternatives() {
                if !nullable[lhs as usize] && rhs.iter().all(|&s| empty(&nullable, s)) {
                    nullable[lhs as usize] = true;
                    changed = true;
                }
            }
        }
        nullable
    }

    #[test]
    fn nullable_rules_are_found_in_one_sweep_as_passes_find_them() {
        // rule i ::= rule i+1 rule i+1 | "x", down to an empty rule 40: each pass of the definition
        // finds one more, from the end; plus counted repetitions, empty and not, of both kinds.
        let mut d = Draw::default();
        let x = d.byte(b'x');
        for i in 0..40 {
            d.alt(i, &[Symbol::Rule(i + 1), Symbol::Rule(i + 1)]);
            d.alt(i, &[x]);
        }
        d.alt(40, &[]);
        let (some_x, maybe_x, some_empty) =
            (d.repeat(41, 1, 3), d.repeat(41, 0, 3), d.repeat(40, 2, 5));
        d.alt(41, &[x]);
        d.alt(42, &[some_x]);
        d.alt(43, &[maybe_x, Symbol::Rule(42)]);
        d.alt(44, &[maybe_x, some_empty, Symbol::Rule(0)]);
        d.alt(45, &[Symbol::Rule(45), x]);
        d.alt(46, &[Symbol::Rule(46)]);
        let g = d.build(0);
        let nullable = nullable_by_passes(&g);
        assert_eq!(g.nullable, nullable);
        assert!(nullable[..=40].iter().all(|&n| n) && nullable[44]);
        assert!(!nullable[41] && !nullable[42] && !nullable[43] && !nullable[45] && !nullable[46]);
    }

    #[test]
    fn malformed_flat_grammars_are_errors() {
        let invalid = |alternatives, byte_sets| {
            CompiledGrammar::new(0, alternatives, byte_sets, vec![]).err()
        };
        assert_eq!(
            invalid(vec![(0, vec![Symbol::Rule(5)])], vec![]),
            Some(GrammarError::InvalidGrammar("symbol out of range"))
        );
        assert_eq!(
            invalid(vec![(0, vec![Symbol::Bytes(1)])], vec![vec![(0, 1)]]),
            Some(GrammarError::InvalidGrammar("symbol out of range"))
        );
        assert_eq!(
            invalid(vec![(0, vec![Symbol::Bytes(0)])], vec![vec![(9, 1)]]),
            Some(GrammarError::InvalidGrammar("an empty byte range"))
        );
        assert_eq!(
            CompiledGrammar::new(
                0,
                vec![(0, vec![Symbol::Repeat(0)])],
                vec![],
                vec![(0, 3, 2)]
            )
            .err(),
            Some(GrammarError::InvalidGrammar("invalid repetition bounds"))
        );
        assert_eq!(
            CompiledGrammar::new(
                0,
                vec![(0, vec![Symbol::Repeat(1)])],
                vec![],
                vec![(0, 0, 2)]
            )
            .err(),
            Some(GrammarError::InvalidGrammar("symbol out of range"))
        );
        assert_eq!(Symbol::from_flat(Symbol::REPEAT, 2), Ok(Symbol::Repeat(2)));
        assert_eq!(Symbol::from_flat(Symbol::BYTES, 3), Ok(Symbol::Bytes(3)));
        assert_eq!(Symbol::Bytes(3).to_flat(), (Symbol::BYTES, 3));
        assert_eq!(
            Symbol::from_flat(7, 0),
            Err(GrammarError::InvalidGrammar("unknown symbol kind"))
        );
    }
}
