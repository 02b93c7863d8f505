//! Jumps: a state that loops on a class allows a trie node's class tokens without walking them.
//!
//! A state *loops* on a class (a [`SliceKey`]) when every character of the class leads from it
//! back to it (JSON string or key content, `[^\n]*`, ...). Reached at a trie node `i` (at a
//! character boundary), it then allows every token below `i` whose bytes after `i` are characters
//! of the class (a last one maybe cut short), and the other tokens below `i` leave the class at
//! some node `e`: after the class characters before `e` the state is the looping one again, so the
//! walk goes on from there at `e` (stepping first the bytes of the character `e` cuts short).
//!
//! The loop may start a step or two later (a [`Loop`]): `0 ::= "" | 0 C` reaches the set that
//! loops after its second character (the first one's differs in the origin of an item), and the
//! first character may have exceptions: a key after `{"` goes on as an additional key after any
//! character but the first ones of the declared names. The exceptions' subtrees are walked.
//!
//! [`Jumps`] holds, per trie node and class, those tokens as one range of an array and those exit
//! nodes as another (the class regions of the trie laid out one after the other in preorder, so
//! that the part below any node, or below any child of it, is contiguous). A key's mask then
//! takes a few hundred jumps instead of a walk over most of the vocabulary.

use std::sync::Arc;

use super::earley::{has_byte, Automaton, DEAD};
use super::error::GrammarError;
use super::trie::{SliceKey, TokenTrie, OUT};
use super::walk::Kids;
use super::GrammarMatcher;

/// A state loops on fewer ASCII bytes than this: no jumps.
const MIN_LOOP_BYTES: u32 = 32;
/// A state's loop is looked for (a few closures) only below a subtree of this many nodes or more.
const MIN_JUMP_NODES: usize = 512;
/// A subtree of fewer nodes than this is walked (a jump costs a few lookups, a node one step).
const MIN_KNOWN_JUMP_NODES: usize = 8;

/// A node where a token below a jump's node leaves the class: walked from the looping state,
/// after the bytes of the class character it cuts short (`lead[..n_lead]`).
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// The node whose byte leaves the class.
    pub node: u32,
    /// The bytes before it of the character it is in (a multi-byte UTF-8 character).
    pub lead: [u8; 3],
    /// How many of `lead` there are.
    pub n_lead: u8,
    /// The whole class characters on the path before its character (from the trie's root).
    pub chars: u32,
    /// The first byte of its path.
    pub first: u8,
}

/// Per node of a trie (and then the root, at index `len`), for one class: the tokens below it made
/// of class characters and the exits below it (see the module docs).
#[derive(Debug)]
pub struct Jumps {
    /// The class.
    pub key: SliceKey,
    /// Per node: the whole class characters on its path, or `u32::MAX` if its bytes end inside
    /// a character (a jump starts only at a character boundary).
    chars: Vec<u32>,
    /// Per node: its tokens' range in `tokens`, then its exits' range in `exits`.
    ranges: Vec<[u32; 4]>,
    tokens: Vec<u32>,
    exits: Vec<Exit>,
    /// The root's tokens as a bitmask (one bit per token id, as `fill_bitmask` writes them): a
    /// jump at the root starts from it rather than list its tens of thousands of ids.
    root_bits: Box<[u32]>,
}

impl Jumps {
    /// The jumps of class `key` over `trie`, in two passes over its nodes. The first splits the
    /// trie into class regions: a node whose byte leaves the class (read from its parent's class
    /// walk state) starts a region of its own; any other is in its parent's. The second lays out
    /// each region's tokens and exits in preorder, so that the part of a region below a node is
    /// one range.
    pub fn new(trie: &TokenTrie, key: SliceKey) -> Jumps {
        let n = trie.len();
        let root = n;
        let tokens_of = |j: usize| trie.tok_start[j + 1] - trie.tok_start[j];
        // Pass 1. Per node: its region (itself when its byte leaves the class) and the region
        // of its parent; the class walk state after it (restarting at a byte that leaves), how
        // many bytes of an unfinished character that state has read, and how many characters
        // the walk has finished (only differences within a region matter).
        let mut region = vec![0u32; n];
        let mut outer = vec![0u32; n];
        let mut state = vec![0u8; n];
        let mut pending = vec![0u8; n];
        let mut chars = vec![0u32; n];
        let mut n_tokens = vec![0u32; n + 1];
        let mut n_exits = vec![0u32; n + 1];
        let mut leads: Vec<([u8; 3], u8, u32, u8)> = Vec::new(); // per exit, in preorder
        let mut path = vec![root; trie.max_depth + 1]; // the node at each depth of the current path
        for j in 0..n {
            let d = trie.depth[j] as usize;
            let p = path[d - 1];
            path[d] = j;
            let (ps, pp, pr, pc) = if p == root {
                (0, 0, root as u32, 0)
            } else {
                (state[p], pending[p], region[p], chars[p])
            };
            let b = trie.byte[j];
            let st = key.step(ps, b);
            outer[j] = pr;
            if st == OUT {
                region[j] = j as u32;
                n_exits[pr as usize] += 1;
                let mut lead = [0u8; 3];
                for (k, l) in lead.iter_mut().enumerate().take(pp as usize) {
                    *l = trie.byte[path[d - pp as usize + k]];
                }
                leads.push((lead, pp, pc, trie.byte[path[1]]));
                chars[j] = pc + 1;
                // (the walk state restarts at this byte: a character may start here)
                let again = if ps == 0 { OUT } else { key.step(0, b) };
                (state[j], pending[j]) = if again == OUT || again == 0 {
                    (0, 0)
                } else {
                    (again, 1)
                };
            } else {
                region[j] = pr;
                n_tokens[pr as usize] += tokens_of(j);
                (state[j], pending[j]) = if st == 0 { (0, 0) } else { (st, pp + 1) };
                chars[j] = pc + (st == 0) as u32;
            }
        }
        // Pass 2: each region's tokens and exits in preorder, regions one after the other.
        let starts = |counts: &[u32]| {
            let mut at = Vec::with_capacity(counts.len());
            let mut sum = 0u32;
            for &c in counts {
                at.push(sum);
                sum += c;
            }
            (at, sum as usize)
        };
        let (mut tok_at, n_tok) = starts(&n_tokens);
        let (mut exit_at, n_exit) = starts(&n_exits);
        let mut tokens = vec![0u32; n_tok];
        let mut exits = vec![
            Exit {
                node: 0,
                lead: [0; 3],
                n_lead: 0,
                chars: 0,
                first: 0
            };
            n_exit
        ];
        let mut ranges = vec![[0u32; 4]; n + 1];
        ranges[root] = [tok_at[root], 0, exit_at[root], 0];
        let mut open: Vec<usize> = Vec::with_capacity(trie.max_depth + 1);
        let mut leads = leads.into_iter();
        for j in 0..=n {
            while let Some(&o) = open.last() {
                if j < n && (trie.end[o] as usize) > j {
                    break;
                }
                open.pop();
                let r = region[o] as usize;
                ranges[o][1] = tok_at[r];
                ranges[o][3] = exit_at[r];
            }
            if j == n {
                break;
            }
            let r = region[j] as usize;
            if r == j {
                let o = outer[j] as usize;
                let (lead, n_lead, before, first) = leads.next().unwrap_or(([0; 3], 0, 0, 0));
                exits[exit_at[o] as usize] = Exit {
                    node: j as u32,
                    lead,
                    n_lead,
                    chars: before,
                    first,
                };
                exit_at[o] += 1;
            } else {
                let ids =
                    &trie.token_ids[trie.tok_start[j] as usize..trie.tok_start[j + 1] as usize];
                let at = tok_at[r] as usize;
                tokens[at..at + ids.len()].copy_from_slice(ids);
                tok_at[r] += ids.len() as u32;
            }
            ranges[j][0] = tok_at[r];
            ranges[j][2] = exit_at[r];
            open.push(j);
        }
        ranges[root][1] = tok_at[root];
        ranges[root][3] = exit_at[root];
        for (c, &st) in chars.iter_mut().zip(&state) {
            if st != 0 {
                *c = u32::MAX;
            }
        }
        chars.push(0);
        let mut root_bits = vec![0u32; trie.vocab_size.div_ceil(32)].into_boxed_slice();
        for &t in &tokens[ranges[root][0] as usize..ranges[root][1] as usize] {
            root_bits[(t >> 5) as usize] |= 1 << (t & 31);
        }
        Jumps {
            key,
            chars,
            ranges,
            tokens,
            exits,
            root_bits,
        }
    }

    /// The whole class characters on the path of `node` (`len`: the root), or None if its bytes
    /// end inside a character (no jump starts there).
    pub fn chars_at(&self, node: usize) -> Option<u32> {
        Some(self.chars[node]).filter(|&c| c != u32::MAX)
    }

    /// Where the tokens of the subtree of `node` (itself included) lie among all regions' tokens,
    /// when its byte is in the class.
    fn subtree_tokens(&self, trie: &TokenTrie, node: usize) -> (usize, usize) {
        let own = (trie.tok_start[node + 1] - trie.tok_start[node]) as usize;
        let r = &self.ranges[node];
        (r[0] as usize - own, r[1] as usize)
    }

    /// Where the exits in the subtree of `node` lie among all regions' exits, when its byte is in
    /// the class.
    fn subtree_exits(&self, node: usize) -> (usize, usize) {
        let r = &self.ranges[node];
        (r[2] as usize, r[3] as usize)
    }

    /// The tokens below `node` whose bytes after it are class characters.
    pub fn tokens(&self, node: usize) -> &[u32] {
        let (from, to) = self.tokens_range(node);
        &self.tokens[from..to]
    }

    /// The nodes below `node` where its tokens first leave the class.
    pub fn exits(&self, node: usize) -> &[Exit] {
        let (from, to) = self.exits_range(node);
        &self.exits[from..to]
    }

    /// Where `tokens(node)` lies in the array of all regions' tokens.
    fn tokens_range(&self, node: usize) -> (usize, usize) {
        let r = &self.ranges[node];
        (r[0] as usize, r[1] as usize)
    }

    /// Where `exits(node)` lies in the array of all regions' exits.
    fn exits_range(&self, node: usize) -> (usize, usize) {
        let r = &self.ranges[node];
        (r[2] as usize, r[3] as usize)
    }

    /// The number of tokens of the class below the root (to choose between classes).
    pub fn size(&self) -> usize {
        self.tokens(self.chars.len() - 1).len()
    }
}

/// A state's loop (see [`Automaton::loop_class`]): one character of `first` leads from the state
/// to `after[0]`, one of `key` from there to `after[1]`, and from `after[1]` back to `after[1]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Loop {
    /// The class looped on.
    pub(super) key: SliceKey,
    /// The first bytes of the characters of `key` that do not lead to `after[0]` (exceptions:
    /// their subtrees are walked).
    pub(super) except: [u64; 4],
    /// The UTF-8 lead bytes among them when `utf8` is known: every multi-byte first character
    /// leads to `utf8[0]`, and from there the class goes on as from `after[0]` (to `utf8[1]`).
    /// Known at the root only: the first byte of an exit's path says which kind it is.
    pub(super) leads: [u64; 4],
    /// The states after one multi-byte character and more (see `leads`), if known.
    pub(super) utf8: Option<[u32; 2]>,
    /// The states after one character, and after two or more.
    pub(super) after: [u32; 2],
}

impl Loop {
    /// The loop on `key` whose first character leads by `first` to `after[0]` (and by a
    /// multi-byte character to `utf8[0]`, if known).
    fn new(key: SliceKey, first: &SliceKey, after: [u32; 2], utf8: Option<[u32; 2]>) -> Loop {
        let (mut except, mut leads) = ([0u64; 4], [0u64; 4]);
        for b in 0..=255u8 {
            let to_first = if b < 0x80 || !key.utf8 {
                has_byte(&first.bits, b) && (b < 0x80 || !first.utf8)
            } else {
                first.utf8
            };
            if key.step(0, b) != OUT && !to_first {
                if b >= 0x80 && key.utf8 && utf8.is_some() {
                    leads[(b >> 6) as usize] |= 1 << (b & 63);
                } else {
                    except[(b >> 6) as usize] |= 1 << (b & 63);
                }
            }
        }
        Loop {
            key,
            except,
            leads,
            after,
            utf8,
        }
    }
}

impl Automaton {
    /// The state most ASCII bytes lead from `s` to (`s` itself on a tie) and those bytes, if
    /// at least [`MIN_LOOP_BYTES`] do. (ASCII first: the UTF-8 characters cost more closures to
    /// follow, and most states that do not loop fail here.)
    fn ascii_step(&mut self, s: u32) -> Result<Option<(u32, [u64; 4])>, GrammarError> {
        let scan = self.states[s as usize].scan_bytes;
        if scan[0].count_ones() + scan[1].count_ones() < MIN_LOOP_BYTES {
            return Ok(None);
        }
        let mut to = [DEAD; 128];
        let mut targets: Vec<(u32, u32)> = Vec::new(); // (state, bytes leading there)
        for b in 0..0x80u8 {
            if has_byte(&scan, b) {
                let t = self.step(s, b)?;
                to[b as usize] = t;
                match targets.iter_mut().find(|(u, _)| *u == t) {
                    Some((_, n)) => *n += 1,
                    None => targets.push((t, 1)),
                }
            }
        }
        let Some(&(t, n)) = targets.iter().max_by_key(|&&(t, n)| (n, t == s)) else {
            return Ok(None);
        };
        let mut bits = [0u64; 4];
        for b in (0..0x80u8).filter(|&b| to[b as usize] == t) {
            bits[(b >> 6) as usize] |= 1 << (b & 63);
        }
        Ok((n >= MIN_LOOP_BYTES).then_some((t, bits)))
    }

    /// The class of the ASCII `bits`, with every UTF-8 character if `utf8` and they all lead
    /// from `s` to `t`.
    fn class_to(
        &mut self,
        s: u32,
        t: u32,
        bits: [u64; 4],
        utf8: bool,
    ) -> Result<SliceKey, GrammarError> {
        let key = SliceKey { bits, utf8: true };
        let utf8 = utf8 && self.chars_lead_to(s, t, &key)?;
        Ok(SliceKey { bits, utf8 })
    }

    /// The loop of `s` (see [`Loop`]): `s` loops itself, or its successor (the state most of
    /// its bytes lead to) does, or that one's successor, reached by every character of the class.
    /// With `utf8` false the classes are ASCII only (following the UTF-8 characters costs a
    /// dozen closures a state, and in a token after an ASCII character they are rare).
    pub(super) fn loop_class(&mut self, s: u32, utf8: bool) -> Result<Option<Loop>, GrammarError> {
        let Some((t, first)) = self.ascii_step(s)? else {
            return Ok(None);
        };
        if t == s {
            let key = self.class_to(s, s, first, utf8)?;
            return Ok(Some(Loop::new(key, &key, [s, s], None)));
        }
        let Some((u, second)) = self.ascii_step(t)? else {
            return Ok(None);
        };
        if u == t {
            let key = self.class_to(t, t, second, utf8)?;
            let first = self.class_to(s, t, first, utf8)?;
            let mb = self.utf8_first(s, &key, &first)?;
            return Ok(Some(Loop::new(key, &first, [t, t], mb)));
        }
        let Some((v, third)) = self.ascii_step(u)? else {
            return Ok(None);
        };
        if v != u {
            return Ok(None);
        }
        let key = self.class_to(u, u, third, utf8)?;
        if !key.subset_of(&self.class_to(t, u, second, utf8)?) {
            return Ok(None);
        }
        let first = self.class_to(s, t, first, utf8)?;
        let mb = self.utf8_first(s, &key, &first)?;
        Ok(Some(Loop::new(key, &first, [t, u], mb)))
    }
}

impl Automaton {
    /// Where the class `key` goes on after a multi-byte first character, when that does not
    /// lead where the `first` class does (an additional key's first character is one of two
    /// alternatives): every such character leads from `s` to one state that reads `key` on
    /// to a state that loops on it. The states after one character and after more.
    fn utf8_first(
        &mut self,
        s: u32,
        key: &SliceKey,
        first: &SliceKey,
    ) -> Result<Option<[u32; 2]>, GrammarError> {
        if !key.utf8 || first.utf8 {
            return Ok(None);
        }
        let mut y = s;
        for b in "é".bytes() {
            y = self.step(y, b)?;
            if y == DEAD {
                return Ok(None);
            }
        }
        if !self.chars_lead_to(s, y, key)? {
            return Ok(None);
        }
        let Some((z, bits)) = self.ascii_step(y)? else {
            return Ok(None);
        };
        let on = self.class_to(y, z, bits, true)?;
        if !key.subset_of(&on) {
            return Ok(None);
        }
        if z == y {
            return Ok(Some([y, y]));
        }
        let Some((z2, bits)) = self.ascii_step(z)? else {
            return Ok(None);
        };
        let again = self.class_to(z, z, bits, true)?;
        Ok((z2 == z && key.subset_of(&again)).then_some([y, z]))
    }
}

impl GrammarMatcher {
    /// The loop of state `s` (see [`Automaton::loop_class`]), memoized (found again when UTF-8
    /// characters are to be followed and were not).
    pub(super) fn loop_of(&mut self, s: u32, utf8: bool) -> Result<Option<Loop>, GrammarError> {
        match self.loops.get(&s) {
            Some(&(followed, l)) if followed || !utf8 => return Ok(l),
            _ => {}
        }
        let l = self.auto.loop_class(s, utf8)?;
        self.loops.insert(s, (utf8, l));
        Ok(l)
    }

    /// The vocabulary's jumps of `key` (kept by the matcher: no lock per jump).
    fn jumps_of(&mut self, key: SliceKey) -> Option<Arc<Jumps>> {
        if let Some((_, j)) = self.jumps.iter().find(|(k, _)| *k == key) {
            return j.clone();
        }
        let j = self.trie.jumps(key);
        self.jumps.push((key, j.clone()));
        j
    }

    /// If `s` (reached at `node` of `trie`; None: the root) has a loop, allow the class tokens
    /// below the node and push a walk frame per exit and per exception; false (nothing done)
    /// otherwise. The class tokens are added to `ids`, or, at the root with a `base` (a bitmask
    /// of the vocabulary's size), written to `base` as a bitmask (its old bits dropped).
    pub(super) fn jump(
        &mut self,
        trie: &TokenTrie,
        node: Option<usize>,
        s: u32,
        ids: &mut Vec<u32>,
        base: Option<&mut [u32]>,
    ) -> Result<bool, GrammarError> {
        let (at, below) = match node {
            Some(i) => (i, trie.end[i] as usize - i - 1),
            None => (trie.len(), trie.len()),
        };
        // (a state's loop is looked for below a large subtree of the vocabulary's trie; once
        // known, a small one will do; a slice's exits are the tokens leaving its class: few
        // of them go on in a class. Most nodes of a walk have a small subtree: they are turned
        // away before any lookup, which a walk over the whole vocabulary would pay per node.)
        if below < MIN_KNOWN_JUMP_NODES || !std::ptr::eq(trie, &*self.trie) {
            return Ok(false);
        }
        if below < MIN_JUMP_NODES && !self.loops.contains_key(&s) {
            return Ok(false);
        }
        // (UTF-8 characters followed at the root and after one: where tokens have more)
        let l = self.loop_of(s, node.is_none_or(|i| trie.byte[i] >= 0x80))?;
        let Some(l) = l else {
            return Ok(false);
        };
        let Some(jumps) = self.jumps_of(l.key) else {
            return Ok(false);
        };
        let Some(chars) = jumps.chars_at(at) else {
            return Ok(false);
        };
        // The exceptions (children walked from `s`), whose parts of the ranges are left out. The
        // jumps may be those of a class a few bytes short of the loop's (`TokenTrie::jumps`): a
        // child whose byte is outside theirs is one of their exits, walked from `s` as such.
        let (mut tokens, mut exits) = (vec![jumps.tokens_range(at)], vec![jumps.exits_range(at)]);
        let at_root = node.is_none();
        let mut except = l.except;
        if !at_root {
            for (w, x) in except.iter_mut().zip(&l.leads) {
                *w |= x;
            }
        }
        if except != [0; 4] {
            let mut c = at + 1;
            let to = node.map_or(trie.len(), |i| trie.end[i] as usize);
            if node.is_none() {
                c = 0;
            }
            while c < to {
                let b = trie.byte[c];
                if has_byte(&except, b) && jumps.key.step(0, b) != OUT {
                    let next = trie.end[c] as usize;
                    self.frames.push((s, Kids::Range { next: c, to: next }));
                    cut(&mut tokens, jumps.subtree_tokens(trie, c));
                    cut(&mut exits, jumps.subtree_exits(c));
                }
                c = trie.end[c] as usize;
            }
        }
        match base {
            Some(bits) if at_root => {
                // the root's tokens but those of the exceptions (the gaps between the ranges)
                bits.copy_from_slice(&jumps.root_bits);
                for pair in tokens.windows(2) {
                    for &t in &jumps.tokens[pair[0].1..pair[1].0] {
                        bits[(t >> 5) as usize] &= !(1 << (t & 31));
                    }
                }
            }
            _ => {
                for (from, to) in tokens {
                    ids.extend_from_slice(&jumps.tokens[from..to]);
                }
            }
        }
        for (from, to) in exits {
            for e in &jumps.exits[from..to] {
                let node = e.node as usize;
                // (the state before the exit's character: after how many class characters?)
                let after = match l.utf8 {
                    Some(states) if at_root && e.first >= 0x80 => states,
                    _ => l.after,
                };
                let mut u = match e.chars - chars {
                    0 => s,
                    1 => after[0],
                    _ => after[1],
                };
                if e.n_lead == 0
                    && !has_byte(&self.auto.states[u as usize].scan_bytes, trie.byte[node])
                {
                    continue; // (the usual exit: a byte the state cannot read, rejected without a step)
                }
                for &b in &e.lead[..e.n_lead as usize] {
                    u = self.auto.step(u, b)?;
                    if u == DEAD {
                        break;
                    }
                }
                if u != DEAD {
                    let to = trie.end[node] as usize;
                    self.frames.push((u, Kids::Range { next: node, to }));
                }
            }
        }
        Ok(true)
    }
}

/// Take `(from, to)` out of the last of the ascending, disjoint `ranges` (it lies inside it).
fn cut(ranges: &mut Vec<(usize, usize)>, (from, to): (usize, usize)) {
    if let Some(last) = ranges.last_mut() {
        let end = last.1;
        last.1 = from;
        ranges.push((to, end));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{allowed_one_by_one, matcher, trie, Draw};
    use super::super::Symbol;
    use super::*;

    /// The node of `path` in `t`.
    fn node(t: &TokenTrie, path: &[u8]) -> usize {
        let mut i = 0;
        for (d, &b) in path.iter().enumerate() {
            while t.depth[i] as usize != d + 1 || t.byte[i] != b {
                i = if t.depth[i] as usize == d + 1 {
                    t.end[i] as usize
                } else {
                    i + 1
                };
            }
            if d + 1 < path.len() {
                i += 1;
            }
        }
        i
    }

    fn ascii(f: impl Fn(u8) -> bool, utf8: bool) -> SliceKey {
        let mut bits = [0u64; 4];
        for b in (0..=255u8).filter(|&b| f(b) && (!utf8 || b < 0x80)) {
            bits[(b >> 6) as usize] |= 1 << (b & 63);
        }
        SliceKey { bits, utf8 }
    }

    #[test]
    fn the_tokens_below_a_node_split_into_class_tokens_and_exits() {
        // class: lowercase letters and every UTF-8 character
        let vocab: [Option<&[u8]>; 9] = [
            Some(b"ab"),            // 0
            Some(b"abc"),           // 1
            Some(b"ab!"),           // 2: leaves at "!"
            Some(b"ab!c"),          // 3: below that exit
            Some("abé".as_bytes()), // 4
            Some(b"ab\xC3"),        // 5: a character cut short: still the class
            Some(b"ab\xC3("),       // 6: leaves inside a character
            Some(b"Ab"),            // 7: leaves at once
            Some(b"b"),             // 8
        ];
        let t = trie(&vocab);
        let j = Jumps::new(&t, ascii(|b| b.is_ascii_lowercase(), true));
        let node_ab = node(&t, b"ab");
        let mut below: Vec<u32> = j.tokens(node_ab).to_vec();
        below.sort_unstable();
        assert_eq!(below, vec![1, 4, 5]);
        let exits: Vec<(u8, Vec<u8>)> = j
            .exits(node_ab)
            .iter()
            .map(|e| {
                (
                    t.byte[e.node as usize],
                    e.lead[..e.n_lead as usize].to_vec(),
                )
            })
            .collect();
        assert_eq!(exits, vec![(b'!', vec![]), (b'(', vec![0xC3])]);
        let mut all: Vec<u32> = j.tokens(t.len()).to_vec();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 4, 5, 8]);
        assert_eq!(j.exits(t.len()).len(), 3); // "A", then "!" and "(" below "ab"
        let node_c3 = node(&t, b"ab\xC3");
        assert_eq!(j.chars_at(node_c3), None);
        assert_eq!(j.chars_at(node_ab), Some(2));
    }

    #[test]
    fn an_additional_key_jumps_past_the_declared_names_first_characters() {
        // 0 ::= "\"" 1 "\"" ":"    1 ::= "ab" | K 2    2 ::= "" | 2 C
        // C = [ !#-[\]-~] | a UTF-8 character, K = C but "a": a declared name "ab", or any other
        // key that does not start with "a" (the shape of a key that is none of the declared ones)
        let mut d = Draw::default();
        let (quote, colon) = (d.byte(b'"'), d.byte(b':'));
        let (a, b) = (d.byte(b'a'), d.byte(b'b'));
        let plain = d.set(&[(0x20, 0x21), (0x23, 0x5B), (0x5D, 0x7E)]);
        let not_a = d.set(&[(0x20, 0x21), (0x23, 0x5B), (0x5D, 0x60), (0x62, 0x7E)]);
        d.alt(0, &[quote, Symbol::Rule(1), quote, colon]);
        d.alt(1, &[a, b]);
        d.alt(1, &[not_a, Symbol::Rule(2)]);
        d.alt(1, &[Symbol::Rule(4), Symbol::Rule(2)]);
        d.alt(2, &[]);
        d.alt(2, &[Symbol::Rule(2), Symbol::Rule(3)]);
        d.alt(3, &[plain]);
        d.alt(3, &[Symbol::Rule(4)]);
        d.utf8_char(4);
        let mut words: Vec<Vec<u8>> = vec![b"\"".to_vec(), b"ab\":".to_vec()];
        for x in [b'a', b'b', b'c', b'q'] {
            for y in b'a'..=b'z' {
                words.push(vec![x, y]);
                words.push(vec![x, y, b'"']);
                words.push(vec![x, y, b'"', b':']);
                words.push(vec![x, y, b'\\']);
                words.push(vec![x, y, 0xC3]);
                words.push(vec![x, y, 0xC3, 0xA9]);
                words.push(vec![x, y, 0xC3, b'(']);
            }
        }
        words.push("é\":".as_bytes().to_vec());
        words.push("éa\"".as_bytes().to_vec());
        let vocab: Vec<Option<&[u8]>> = words.iter().map(|w| Some(&w[..])).collect();
        let mut m = matcher(d.build(0), &vocab, &[]);
        assert!(m.accept_token(0).unwrap()); // "\""
        let want = allowed_one_by_one(&mut m);
        assert_eq!(m.allowed_token_ids().unwrap(), want);
        // ("ab\":" yes, "aa" no)
        assert!(want.contains(&1) && !want.contains(&2));
        // The key's state loops after two characters (the second set differs from the first
        // in an origin); a first "a" is an exception, walked. A first UTF-8 character takes
        // the other alternative, to a state of its own that goes on the same way.
        let s = m.current();
        let l = m.loop_of(s, true).unwrap().unwrap();
        assert!(l.key.utf8 && has_byte(&l.key.bits, b'z') && !has_byte(&l.key.bits, b'"'));
        assert_eq!(l.except, [0, 1 << (b'a' - 64), 0, 0]);
        assert!(has_byte(&l.leads, 0xC3) && !has_byte(&l.leads, 0x80));
        assert_ne!(l.after[0], l.after[1]);
        let after_c3 = m.auto.step(s, 0xC3).unwrap();
        let after_e = m.auto.step(after_c3, 0xA9).unwrap();
        assert_eq!(l.utf8.map(|u| u[0]), Some(after_e));
        let t = m.trie.clone();
        let mut ids = Vec::new();
        m.frames.clear();
        assert!(m.jump(&t, None, s, &mut ids, None).unwrap());
        // walked: the exception "a", then per first letter but "a" and per second letter "\""
        // and "\xC3(", and the "\"" of "é\":" and "éa\"" ("\\" is no byte a key can read)
        assert_eq!(m.frames.len(), 1 + 3 * 26 * 2 + 2);
        m.walk_frames(&t, &mut ids).unwrap();
        ids.sort_unstable();
        assert_eq!(ids, want);
    }

    #[test]
    fn jumps_of_a_class_short_of_the_loops_leave_its_exceptions_to_their_exits() {
        // 0 ::= "\"" 1 "\""    1 ::= "ab" | K 2    2 ::= "" | 2 C
        // C = [ -~] but "\"", K = C but "a": the exception "a" lies outside the class of the
        // jumps built before (C but "a" and "0", within a few bytes of C, so taken for it)
        let mut d = Draw::default();
        let (quote, a, b) = (d.byte(b'"'), d.byte(b'a'), d.byte(b'b'));
        let plain = d.set(&[(0x20, 0x21), (0x23, 0x7E)]);
        let not_a = d.set(&[(0x20, 0x21), (0x23, 0x60), (0x62, 0x7E)]);
        d.alt(0, &[quote, Symbol::Rule(1), quote]);
        d.alt(1, &[a, b]);
        d.alt(1, &[not_a, Symbol::Rule(2)]);
        d.alt(2, &[]);
        d.alt(2, &[Symbol::Rule(2), plain]);
        let mut words: Vec<Vec<u8>> = vec![b"\"".to_vec(), b"ab\"".to_vec()];
        for x in [b'a', b'b', b'0', b'q'] {
            for y in b'a'..=b'z' {
                words.push(vec![x, y]);
                words.push(vec![x, y, b'"']);
                words.push(vec![x, b'0', y]);
            }
        }
        let vocab: Vec<Option<&[u8]>> = words.iter().map(|w| Some(&w[..])).collect();
        let mut m = matcher(d.build(0), &vocab, &[]);
        assert!(m.accept_token(0).unwrap()); // "\""
        let want = allowed_one_by_one(&mut m);
        let s = m.current();
        let l = m.loop_of(s, true).unwrap().unwrap();
        assert_eq!(l.except, [0, 1 << (b'a' - 64), 0, 0]);
        let mut short = l.key;
        for x in [b'a', b'0'] {
            short.bits[(x >> 6) as usize] &= !(1 << (x & 63));
        }
        let t = m.trie.clone();
        assert_eq!(t.jumps(short).unwrap().key, short);
        assert_eq!(t.jumps(l.key).unwrap().key, short);
        let mut ids = Vec::new();
        m.frames.clear();
        assert!(m.jump(&t, None, s, &mut ids, None).unwrap());
        m.walk_frames(&t, &mut ids).unwrap();
        ids.sort_unstable();
        assert_eq!(ids, want);
        // the same as a bitmask at the root
        let mut bits = vec![u32::MAX; t.vocab_size.div_ceil(32)];
        let mut ids = Vec::new();
        m.frames.clear();
        assert!(m.jump(&t, None, s, &mut ids, Some(&mut bits)).unwrap());
        m.walk_frames(&t, &mut ids).unwrap();
        for &i in &ids {
            bits[(i >> 5) as usize] |= 1 << (i & 31);
        }
        let got: Vec<u32> = (0..t.vocab_size as u32)
            .filter(|&i| bits[(i >> 5) as usize] >> (i & 31) & 1 == 1)
            .collect();
        assert_eq!(got, want);
    }
}
