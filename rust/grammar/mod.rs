//! Token masks from a byte-level grammar (twin of `pyengine/structured/matcher.py`).
//!
//! Same algorithm as the Python twin: an Earley parser over bytes walked depth-first along the
//! vocabulary trie, one Earley set per byte, a rejected byte pruning its whole subtree. One addition
//! makes it fast: Earley sets are *hash-consed*. An item's origin is not a position but the id of
//! the (interned) set it started in, or `SELF`; two sets with the same items then behave the same
//! forever after, so each set is stored once as a [`State`] with a lazily filled 256-entry
//! transition table, and the mask of a committed state is cached. Inside a JSON string, a token
//! loop or a repeated object member, the walk becomes array lookups and the mask a copy.
//!
//! The *slicer* keeps broad states cheap: if every character of a class (a byte set, plus maybe
//! every multi-byte UTF-8 character) leads from a state along one chain of states (a loop such as
//! JSON string content or `[^\n]*`, or a counted `{0,n}`: a [`Run`]), the tokens made of that
//! class are allowed wholesale, up to the run's length ([`Slice`], a mask per trie and class). Every
//! other token leaves the class after some k characters; after those the state is the run's k-th
//! one, so the walk starts there, at the token's exit byte, never visiting the class prefixes
//! (the slice groups exits by (k, byte): a byte the k-th state rejects drops its group at once).
//! Walks over the whole trie jump straight to the children a state can scan at wide nodes
//! ([`trie::Fan`]). Masks are identical to the plain walk.
//!
//! Limits (a [`KernelError`] whose message contains "limit"; Python raises GrammarLimitError):
//! [`MAX_EARLEY_ITEMS`] per set, [`MAX_STATES`] distinct sets per matcher.

pub mod trie;
#[cfg(feature = "python")]
pub mod python;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::KernelError;
pub use trie::{Slice, SliceKey, TokenTrie, NO_FAN};

pub const MAX_EARLEY_ITEMS: usize = 100_000;
pub const MAX_STATES: usize = 500_000;
const MAX_CACHED_MASKS: usize = 256;
/// A state loops on fewer single bytes than this (and on no UTF-8 character): no slice.
const MIN_SLICE_BYTES: u32 = 32;

const SELF: u32 = u32::MAX; // origin: the set being built
const UNKNOWN: u32 = u32::MAX; // transition not computed yet
const DEAD: u32 = u32::MAX - 1; // byte rejected
const ROOT: u32 = 0; // the initial state's id
const COMPLETED: u32 = 1 << 31; // seed-key tag: a completed item, keyed by its rule (see `close`)

/// The grammar as ints (see `Grammar.to_flat()`): alternatives `[lhs, sym...]`, `sym < 0` a byte set.
pub struct CompiledGrammar {
    start: u32,
    lhs: Vec<u32>,
    rhs_start: Vec<u32>,
    rhs: Vec<i32>,
    rule_alts: Vec<Vec<u32>>,
    nullable: Vec<bool>,
    byte_sets: Vec<[u64; 4]>,
}

fn has_byte(set: &[u64; 4], b: u8) -> bool {
    set[(b >> 6) as usize] >> (b & 63) & 1 == 1
}

impl CompiledGrammar {
    pub fn new(start: i64, alts: Vec<Vec<i64>>, byte_sets: Vec<Vec<(i64, i64)>>) -> Result<Self, KernelError> {
        let err = |m: &str| Err(KernelError(format!("invalid flat grammar: {m}")));
        let n_rules = alts.iter().filter_map(|a| a.first()).copied().max().map_or(0, |m| m + 1).max(start + 1);
        if start < 0 || n_rules > u32::MAX as i64 / 2 || alts.len() > u32::MAX as usize / 2 || byte_sets.len() > i32::MAX as usize / 2 {
            return err("bad start rule or size");
        }
        let mut sets = Vec::with_capacity(byte_sets.len());
        for ranges in &byte_sets {
            let mut bits = [0u64; 4];
            for &(lo, hi) in ranges {
                if !(0 <= lo && lo <= hi && hi <= 255) {
                    return err("byte range outside 0..=255");
                }
                for b in lo..=hi {
                    bits[(b >> 6) as usize] |= 1 << (b & 63);
                }
            }
            sets.push(bits);
        }
        let mut g = CompiledGrammar {
            start: start as u32,
            lhs: Vec::new(),
            rhs_start: vec![0],
            rhs: Vec::new(),
            rule_alts: vec![Vec::new(); n_rules as usize],
            nullable: vec![false; n_rules as usize],
            byte_sets: sets,
        };
        for alt in &alts {
            let Some((&lhs, syms)) = alt.split_first() else { return err("empty alternative row") };
            if lhs < 0 {
                return err("negative rule index");
            }
            for &s in syms {
                if s >= n_rules || (s < 0 && (-s - 1) as usize >= byte_sets.len()) {
                    return err("symbol out of range");
                }
                g.rhs.push(s as i32);
            }
            g.rule_alts[lhs as usize].push(g.lhs.len() as u32);
            g.lhs.push(lhs as u32);
            g.rhs_start.push(g.rhs.len() as u32);
        }
        loop {
            // fixed point: a rule is nullable if some alternative is all nullable rules
            let mut changed = false;
            for a in 0..g.lhs.len() {
                let l = g.lhs[a] as usize;
                if !g.nullable[l] && g.alt_rhs(a as u32).iter().all(|&s| s >= 0 && g.nullable[s as usize]) {
                    g.nullable[l] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        Ok(g)
    }

    fn alt_rhs(&self, alt: u32) -> &[i32] {
        &self.rhs[self.rhs_start[alt as usize] as usize..self.rhs_start[alt as usize + 1] as usize]
    }
}

/// An Earley item: alternative, dot, and origin state id (or `SELF`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Item {
    alt: u32,
    dot: u32,
    origin: u32,
}

/// One interned Earley set.
struct State {
    waiting: Box<[(u32, Item)]>, // (rule after the dot, item), sorted by rule: for completion
    scans: Box<[(u32, Item)]>,   // (byte set after the dot, item)
    scan_bytes: [u64; 4],        // union of the scans' byte sets
    accepting: bool,
    next: Option<Box<[u32; 256]>>,
}

/// FxHash (rustc's hasher): fast for the short integer keys hashed here.
#[derive(Default)]
struct Fx(u64);

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

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// The interned Earley sets of one grammar, with their transitions, and scratch buffers.
struct Automaton {
    g: Arc<CompiledGrammar>,
    states: Vec<State>,
    intern: FxMap<Box<[Item]>, u32>,
    by_seeds: FxMap<Box<[Item]>, u32>, // canonical seeds (see `close`) -> their closure's state
    seed_key: Vec<Item>,
    seeds: Vec<Item>,
    waiting: Vec<(u32, Item)>,
    scans: Vec<(u32, Item)>,
    seen: FxMap<Item, ()>,
    work: Vec<Item>,
    items: Vec<Item>,
}

impl Automaton {
    fn new(g: Arc<CompiledGrammar>) -> Result<Self, KernelError> {
        let mut a = Automaton {
            g,
            states: Vec::new(),
            intern: FxMap::default(),
            by_seeds: FxMap::default(),
            seed_key: Vec::new(),
            seeds: Vec::new(),
            waiting: Vec::new(),
            scans: Vec::new(),
            seen: FxMap::default(),
            work: Vec::new(),
            items: Vec::new(),
        };
        let seeds: Vec<Item> =
            a.g.rule_alts[a.g.start as usize].iter().map(|&alt| Item { alt, dot: 0, origin: SELF }).collect();
        a.close(&seeds)?;
        Ok(a)
    }

    /// The state after `byte` from `s`, or DEAD.
    #[inline]
    fn step(&mut self, s: u32, byte: u8) -> Result<u32, KernelError> {
        let st = &self.states[s as usize];
        if !has_byte(&st.scan_bytes, byte) {
            return Ok(DEAD);
        }
        if let Some(next) = &st.next {
            let t = next[byte as usize];
            if t != UNKNOWN {
                return Ok(t);
            }
        }
        let g = &self.g;
        let mut seeds = std::mem::take(&mut self.seeds); // (a scratch buffer, given back below)
        seeds.clear();
        seeds.extend(
            st.scans
                .iter()
                .filter(|(set, _)| has_byte(&g.byte_sets[*set as usize], byte))
                .map(|&(_, it)| Item { alt: it.alt, dot: it.dot + 1, origin: if it.origin == SELF { s } else { it.origin } }),
        );
        let t = if seeds.is_empty() { Ok(DEAD) } else { self.close(&seeds) };
        self.seeds = seeds;
        let t = t?;
        // Every byte that belongs to exactly the same scanned byte sets leads to the same state:
        // fill them all now (a class like [^"] costs one closure, not 200).
        // (the bytes in every scanned set that holds `byte` and in no other scanned set)
        let g = &self.g;
        let st = &mut self.states[s as usize];
        let mut same = st.scan_bytes;
        for (set, _) in st.scans.iter() {
            let bits = &g.byte_sets[*set as usize];
            let inside = has_byte(bits, byte);
            for (w, x) in same.iter_mut().zip(bits) {
                *w &= if inside { *x } else { !*x };
            }
        }
        let mut row = st.next.take().unwrap_or_else(|| Box::new([UNKNOWN; 256]));
        for (w, &word) in same.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                row[w * 64 + bits.trailing_zeros() as usize] = t;
                bits &= bits - 1;
            }
        }
        row[byte as usize] = t;
        st.next = Some(row);
        Ok(t)
    }

    /// The first step of a run from `s` (see [`Run`]): the state `t` most ASCII bytes lead to, and
    /// the class of the characters that lead there: those bytes, plus every multi-byte UTF-8
    /// character if they all lead there too (else the non-ASCII bytes that do). None if narrow.
    fn first_step(&mut self, s: u32) -> Result<Option<(SliceKey, u32)>, KernelError> {
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
    fn chars_lead_to(&mut self, s: u32, t: u32, key: &SliceKey) -> Result<bool, KernelError> {
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

    /// No character of `key` can be read from `s` (checked on first bytes: conservative).
    fn rejects(&mut self, s: u32, key: &SliceKey) -> Result<bool, KernelError> {
        for b in 0..=255u8 {
            if key.step(0, b) != trie::OUT && self.step(s, b)? != DEAD {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Close `seeds` under prediction and completion; intern the set; return its id.
    ///
    /// Closures are memoized by their seeds. A completed seed matters only through its rule and
    /// origin (what it completes, and whether the set accepts), so it is keyed as that: the bytes
    /// that end different alternatives of one rule (the last byte of a 1-, 2-, 3- or 4-byte UTF-8
    /// character, say) then share one closure instead of computing the same set again.
    fn close(&mut self, seeds: &[Item]) -> Result<u32, KernelError> {
        self.seed_key.clear();
        for &it in seeds {
            let done = it.dot as usize == self.g.alt_rhs(it.alt).len();
            let lhs = self.g.lhs[it.alt as usize];
            self.seed_key.push(if done { Item { alt: COMPLETED | lhs, dot: 0, origin: it.origin } } else { it });
        }
        self.seed_key.sort_unstable();
        self.seed_key.dedup();
        if let Some(&id) = self.by_seeds.get(self.seed_key.as_slice()) {
            return Ok(id);
        }
        let id = self.close_uncached(seeds)?;
        self.by_seeds.insert(self.seed_key.as_slice().into(), id);
        Ok(id)
    }

    fn close_uncached(&mut self, seeds: &[Item]) -> Result<u32, KernelError> {
        let g = self.g.clone();
        let is_root = self.states.is_empty();
        self.seen.clear();
        self.work.clear();
        self.items.clear();
        let (mut waiting, mut scans) = (std::mem::take(&mut self.waiting), std::mem::take(&mut self.scans));
        waiting.clear();
        scans.clear();
        let mut accepting = false;
        for &it in seeds {
            if self.seen.insert(it, ()).is_none() {
                self.work.push(it);
            }
        }
        while let Some(it) = self.work.pop() {
            self.items.push(it);
            if self.items.len() > MAX_EARLEY_ITEMS {
                return Err(KernelError(format!(
                    "grammar limit: more than {MAX_EARLEY_ITEMS} Earley items at one position"
                )));
            }
            let rhs = g.alt_rhs(it.alt);
            let add = |n: Item, seen: &mut FxMap<Item, ()>, work: &mut Vec<Item>| {
                if seen.insert(n, ()).is_none() {
                    work.push(n);
                }
            };
            if (it.dot as usize) < rhs.len() {
                let sym = rhs[it.dot as usize];
                if sym < 0 {
                    scans.push(((-sym - 1) as u32, it));
                    continue;
                }
                waiting.push((sym as u32, it));
                for &alt in &g.rule_alts[sym as usize] {
                    add(Item { alt, dot: 0, origin: SELF }, &mut self.seen, &mut self.work);
                }
                if g.nullable[sym as usize] {
                    add(Item { dot: it.dot + 1, ..it }, &mut self.seen, &mut self.work);
                }
            } else {
                let lhs = g.lhs[it.alt as usize];
                if lhs == g.start && (it.origin == ROOT || (is_root && it.origin == SELF)) {
                    accepting = true;
                }
                if it.origin != SELF {
                    // an empty completion (origin SELF) was handled by `nullable` at prediction
                    let o = it.origin;
                    let parents = &self.states[o as usize].waiting;
                    let from = parents.partition_point(|(r, _)| *r < lhs);
                    for &(r, p) in &parents[from..] {
                        if r != lhs {
                            break;
                        }
                        let origin = if p.origin == SELF { o } else { p.origin };
                        add(Item { alt: p.alt, dot: p.dot + 1, origin }, &mut self.seen, &mut self.work);
                    }
                }
            }
        }
        // The key: items that still matter (a completed item has done its work) and acceptance.
        self.items.retain(|it| (it.dot as usize) < g.alt_rhs(it.alt).len());
        self.items.sort_unstable();
        if accepting {
            self.items.push(Item { alt: u32::MAX, dot: u32::MAX, origin: u32::MAX });
        }
        let known = self.intern.get(self.items.as_slice()).copied();
        let id = match known {
            Some(id) => Ok(id),
            None if self.states.len() >= MAX_STATES => {
                Err(KernelError(format!("grammar limit: more than {MAX_STATES} parser states")))
            }
            None => Ok(self.new_state(&mut waiting, &scans, accepting)),
        };
        (self.waiting, self.scans) = (waiting, scans); // the scratch buffers, for the next closure
        id
    }

    /// Store the closure just computed (`self.items` is its key) as a new state.
    fn new_state(&mut self, waiting: &mut [(u32, Item)], scans: &[(u32, Item)], accepting: bool) -> u32 {
        let g = &self.g;
        waiting.sort_unstable();
        let mut scan_bytes = [0u64; 4];
        for (set, _) in scans {
            for (w, x) in scan_bytes.iter_mut().zip(&g.byte_sets[*set as usize]) {
                *w |= x;
            }
        }
        let id = self.states.len() as u32;
        self.states.push(State { waiting: waiting.into(), scans: scans.into(), scan_bytes, accepting, next: None });
        self.intern.insert(self.items.as_slice().into(), id);
        id
    }
}

/// A run of characters from a state: every string of `chars` characters or fewer of `key`
/// (`u32::MAX`: any number) is accepted. If `exact`, no longer one is; otherwise longer ones are
/// unknown.
#[derive(Debug, Clone, Copy)]
struct Run {
    key: SliceKey,
    chars: u32,
    exact: bool,
    next: u32, // the state after any one character of `key`
}

const UNBOUNDED: u32 = u32::MAX;
const MAX_RUN_DEPTH: usize = 512;

/// Which tokens may come next, and the state advanced by accepted ones (see the module docs).
pub struct GrammarMatcher {
    trie: Arc<TokenTrie>,
    eos: Vec<u32>,
    auto: Automaton,
    stack: Vec<u32>,               // state after each consumed byte; stack[0] = ROOT
    steps: Vec<(usize, bool)>,     // per accepted token: (stack length before, terminated before)
    terminated: bool,
    masks: FxMap<u32, TextMask>,   // committed state -> allowed text tokens
    runs: FxMap<u32, Option<Run>>, // state -> its run (see the module docs)
    slices: FxMap<u32, Option<(Arc<Slice>, usize)>>, // state -> its slice and run length
    frames: Vec<(u32, Kids)>,      // walk scratch: per depth, the state and the children left
}

/// The text tokens a state allows: a slice's tokens of at most `chars` characters (shared with
/// the slice, not copied) plus the ids a walk found; or, when those ids would take more room than
/// a bitmask, the bitmask. (A fresh bitmask per state would cost more than the walk itself.)
enum TextMask {
    Ids { slice: Option<(Arc<Slice>, usize)>, ids: Vec<u32> },
    Bits(Box<[u32]>),
}

/// `out` = the slice's tokens (if any) | `ids`.
fn write_mask(slice: &Option<(Arc<Slice>, usize)>, ids: &[u32], out: &mut [u32]) {
    match slice.as_ref().and_then(|(sl, chars)| sl.mask(*chars)) {
        Some(base) => out.copy_from_slice(base),
        None => out.fill(0),
    }
    for &t in ids {
        out[(t >> 5) as usize] |= 1 << (t & 31);
    }
}

/// The children of a trie node still to visit in a walk (see [`GrammarMatcher::children`]).
enum Kids {
    Range { next: usize, to: usize },
    Fan { fan: usize, word: usize, todo: Option<u64>, rank: usize },
}

impl GrammarMatcher {
    pub fn new(g: Arc<CompiledGrammar>, trie: Arc<TokenTrie>, eos_token_ids: &[i64]) -> Result<Self, KernelError> {
        let mut eos = Vec::new();
        for &t in eos_token_ids {
            if t < 0 || t as usize >= trie.vocab_size {
                return Err(KernelError(format!(
                    "EOS token id {t} is outside the vocabulary of {} tokens",
                    trie.vocab_size
                )));
            }
            eos.push(t as u32);
        }
        eos.sort_unstable();
        eos.dedup();
        Ok(GrammarMatcher {
            trie,
            eos,
            auto: Automaton::new(g)?,
            stack: vec![ROOT],
            steps: Vec::new(),
            terminated: false,
            masks: FxMap::default(),
            runs: FxMap::default(),
            slices: FxMap::default(),
            frames: Vec::new(),
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.trie.vocab_size
    }

    fn current(&self) -> u32 {
        self.stack.last().copied().unwrap_or(ROOT)
    }

    pub fn is_accepting(&self) -> bool {
        self.auto.states[self.current() as usize].accepting
    }

    pub fn is_terminated(&self) -> bool {
        self.terminated
    }

    pub fn num_accepted(&self) -> usize {
        self.steps.len()
    }

    /// The run from `s`, memoized (a chain of states, each one step further along the class).
    fn run_of(&mut self, s: u32, depth: usize) -> Result<Option<Run>, KernelError> {
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

    /// The slice to mask `s` with, and how many characters of its class `s` accepts.
    fn slice_of(&mut self, s: u32) -> Result<Option<(Arc<Slice>, usize)>, KernelError> {
        let Some(run) = self.run_of(s, 0)? else { return Ok(None) };
        let Some(slice) = self.trie.slice(run.key) else { return Ok(None) };
        let chars = run.chars as usize;
        Ok((run.exact || chars >= slice.max_chars).then_some((slice, chars)))
    }

    /// Write the text tokens allowed from state `s` into `out` (EOS excluded); the tokens are
    /// computed once per state and kept as a [`TextMask`].
    fn text_mask(&mut self, s: u32, out: &mut [u32]) -> Result<(), KernelError> {
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
            if let Some((sl, chars)) = &slice {
                // The tokens outside the class: each exit group from the run's state after
                // its class prefix (`chain[k]`: the state after k characters of the class).
                let mut chain = vec![s];
                for g in &sl.groups {
                    let k = g.chars as usize;
                    if k > *chars {
                        break; // an exact run dies on a longer prefix (groups go by k)
                    }
                    while chain.len() <= k {
                        let last = chain[chain.len() - 1];
                        let Some(run) = self.run_of(last, 0)? else {
                            return Err(KernelError("internal error: a run ended early".into()));
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
                self.walk(&trie, None, s, &mut ids)?;
            }
            let mask = if ids.len() > out.len() {
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

    /// Allow the tokens below `node` (None: the root) of `trie` that the grammar accepts from `s`.
    fn walk(&mut self, trie: &TokenTrie, node: Option<usize>, s: u32, ids: &mut Vec<u32>) -> Result<(), KernelError> {
        self.frames.clear();
        self.frames.push((s, Self::children(trie, node)));
        self.walk_frames(trie, ids)
    }

    /// Allow the tokens in the subtrees of the sibling nodes `from..to` accepted from `s`.
    fn walk_from(&mut self, trie: &TokenTrie, from: usize, to: usize, s: u32, ids: &mut Vec<u32>) -> Result<(), KernelError> {
        self.frames.clear();
        self.frames.push((s, Kids::Range { next: from, to }));
        self.walk_frames(trie, ids)
    }

    /// How to go over the children of `node`: all of them in order, or, for a wide node, only
    /// those whose byte the state can scan (looked up in its [`trie::Fan`]).
    fn children(trie: &TokenTrie, node: Option<usize>) -> Kids {
        let (fan, from, to) = match node {
            Some(i) => (trie.fan[i], i + 1, trie.end[i] as usize),
            None => (trie.root_fan, 0, trie.len()),
        };
        if fan == NO_FAN {
            Kids::Range { next: from, to }
        } else {
            Kids::Fan { fan: fan as usize, word: 0, todo: None, rank: trie.fans[fan as usize].first as usize }
        }
    }

    /// The depth-first walk: `frames` holds, per depth, the state there and the children left.
    /// A rejected byte skips the node's whole subtree; every accepted node allows its tokens.
    fn walk_frames(&mut self, trie: &TokenTrie, ids: &mut Vec<u32>) -> Result<(), KernelError> {
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
                Kids::Fan { fan, word, todo, rank } => {
                    let f = &trie.fans[*fan];
                    // candidates: the fan's bytes that the state scans, one 64-byte word at a time
                    let mut bits = match *todo {
                        Some(bits) => bits,
                        None if *word < 4 => f.bits[*word] & self.auto.states[s as usize].scan_bytes[*word],
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
            ids.extend_from_slice(&trie.token_ids[trie.tok_start[i] as usize..trie.tok_start[i + 1] as usize]);
            if i + 1 < trie.end[i] as usize {
                self.frames.push((next, Self::children(trie, Some(i))));
            }
        }
        Ok(())
    }

    /// Write the allowed tokens into `out` (bit t % 32 of word t / 32).
    pub fn fill_bitmask(&mut self, out: &mut [u32]) -> Result<(), KernelError> {
        let words = (self.trie.vocab_size + 31) / 32;
        if out.len() != words {
            return Err(KernelError(format!("bitmask must have {words} words, got {}", out.len())));
        }
        if self.terminated {
            out.fill(0);
        } else {
            let s = self.current();
            let accepting = self.is_accepting();
            self.text_mask(s, out)?;
            if !accepting {
                return Ok(());
            }
        }
        for &t in &self.eos {
            out[(t >> 5) as usize] |= 1 << (t & 31);
        }
        Ok(())
    }

    pub fn allowed_token_ids(&mut self) -> Result<Vec<u32>, KernelError> {
        let mut mask = vec![0u32; (self.trie.vocab_size + 31) / 32];
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

    pub fn accept_token(&mut self, token_id: i64) -> Result<bool, KernelError> {
        if token_id < 0 || token_id as usize >= self.trie.vocab_size {
            return Err(KernelError(format!(
                "token id {token_id} is out of range for a vocabulary of {} tokens",
                self.trie.vocab_size
            )));
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

    pub fn accept_bytes(&mut self, data: &[u8]) -> Result<bool, KernelError> {
        if self.terminated {
            return Ok(false);
        }
        let depth = self.stack.len();
        for &b in data {
            let next = self.auto.step(self.current(), b);
            match next {
                Ok(s) if s != DEAD => self.stack.push(s),
                other => {
                    self.stack.truncate(depth);
                    return other.map(|_| false);
                }
            }
        }
        self.steps.push((depth, false));
        Ok(true)
    }

    pub fn rollback(&mut self, n_tokens: usize) -> Result<(), KernelError> {
        if n_tokens > self.steps.len() {
            return Err(KernelError(format!(
                "cannot roll back {n_tokens} tokens: {} accepted",
                self.steps.len()
            )));
        }
        if n_tokens == 0 {
            return Ok(());
        }
        let (depth, terminated) = self.steps[self.steps.len() - n_tokens];
        self.steps.truncate(self.steps.len() - n_tokens);
        self.stack.truncate(depth);
        self.terminated = terminated;
        Ok(())
    }

    pub fn reset(&mut self) {
        self.steps.clear();
        self.stack.truncate(1);
        self.terminated = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(b: u8) -> i64 {
        -(b as i64) - 1 // byte set index == byte value in these tests
    }

    fn grammar(alts: Vec<Vec<i64>>) -> Arc<CompiledGrammar> {
        let sets = (0..=255).map(|b| vec![(b, b)]).collect();
        Arc::new(CompiledGrammar::new(0, alts, sets).unwrap())
    }

    #[test]
    fn left_recursive_star_and_eos() {
        // 0 ::= "" | 0 "a"   over the vocabulary a, aa, b, <eos>
        let g = grammar(vec![vec![0], vec![0, 0, lit(b'a')]]);
        let trie = Arc::new(TokenTrie::new(vec![Some(b"a".to_vec()), Some(b"aa".to_vec()), Some(b"b".to_vec()), None]).unwrap());
        let mut m = GrammarMatcher::new(g, trie, &[3]).unwrap();
        assert_eq!(m.allowed_token_ids().unwrap(), vec![0, 1, 3]);
        assert!(m.accept_token(1).unwrap());
        assert!(!m.accept_token(2).unwrap());
        assert!(m.accept_token(3).unwrap());
        assert!(m.is_terminated());
        assert_eq!(m.allowed_token_ids().unwrap(), vec![3]);
        m.rollback(2).unwrap();
        assert!(!m.is_terminated());
        assert_eq!(m.num_accepted(), 0);
    }

    #[test]
    fn errors_not_panics() {
        assert!(CompiledGrammar::new(0, vec![vec![0, 5]], vec![]).is_err());
        assert!(CompiledGrammar::new(0, vec![vec![0, -2]], vec![vec![(0, 1)]]).is_err());
        let g = grammar(vec![vec![0, lit(b'x')]]);
        let trie = Arc::new(TokenTrie::new(vec![Some(b"x".to_vec())]).unwrap());
        assert!(GrammarMatcher::new(g.clone(), trie.clone(), &[7]).is_err());
        let mut m = GrammarMatcher::new(g, trie, &[]).unwrap();
        assert!(m.accept_token(9).is_err());
        assert!(m.rollback(1).is_err());
        assert!(m.fill_bitmask(&mut [0, 0]).is_err());
    }
}
