//! The vocabulary as a byte trie flattened in preorder (twin of `pyengine/structured/trie.py`).
//!
//! Node `i` stands for the byte string of its path: `depth[i]` is its length, `byte[i]` its last
//! byte, `end[i]` the first node after its subtree, and `token_ids[tok_start[i]..tok_start[i+1]]`
//! the tokens whose bytes end there. A walk visits nodes in index order and skips a rejected
//! subtree with `i = end[i]`.

use crate::KernelError;

/// The byte trie of a vocabulary; tokens with no bytes (None or empty) are not in it.
#[derive(Debug, Clone, Default)]
pub struct TokenTrie {
    pub vocab_size: usize,
    pub byte: Vec<u8>,
    pub depth: Vec<u32>,
    pub end: Vec<u32>,
    pub tok_start: Vec<u32>,
    pub token_ids: Vec<u32>,
    /// The longest token, in bytes (the deepest node).
    pub max_depth: usize,
    /// Each token's bytes (empty for tokens that never match), for `accept_token`.
    pub token_bytes: Vec<Vec<u8>>,
}

impl TokenTrie {
    pub fn new(tokens: Vec<Option<Vec<u8>>>) -> Result<Self, KernelError> {
        if tokens.len() > u32::MAX as usize / 2 {
            return Err(KernelError("vocabulary too large".into()));
        }
        let vocab_size = tokens.len();
        let token_bytes: Vec<Vec<u8>> = tokens.into_iter().map(|t| t.unwrap_or_default()).collect();
        let mut order: Vec<u32> = (0..vocab_size as u32)
            .filter(|&i| !token_bytes[i as usize].is_empty())
            .collect();
        order.sort_by(|&a, &b| token_bytes[a as usize].cmp(&token_bytes[b as usize]).then(a.cmp(&b)));

        let mut t = TokenTrie { vocab_size, ..Default::default() };
        let mut node_tokens: Vec<Vec<u32>> = Vec::new();
        let mut open: Vec<usize> = Vec::new(); // the path to the last node, one per depth
        let mut previous: &[u8] = &[];
        for &id in &order {
            let data = token_bytes[id as usize].as_slice();
            let common = data.iter().zip(previous).take_while(|(a, b)| a == b).count();
            if common == data.len() && common == previous.len() && !node_tokens.is_empty() {
                node_tokens.last_mut().map(|v| v.push(id)); // same bytes as the previous token
                continue;
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
            node_tokens.last_mut().map(|v| v.push(id));
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
        Ok(t)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.byte.len()
    }

    pub fn is_empty(&self) -> bool {
        self.byte.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preorder_layout() {
        let toks = vec![Some(b"ab".to_vec()), Some(b"a".to_vec()), None, Some(b"b".to_vec()), Some(b"a".to_vec())];
        let t = TokenTrie::new(toks).unwrap();
        assert_eq!(t.byte, b"abb".to_vec());
        assert_eq!(t.depth, vec![1, 2, 1]);
        assert_eq!(t.end, vec![2, 2, 3]);
        assert_eq!(t.tok_start, vec![0, 2, 3, 4]);
        assert_eq!(t.token_ids, vec![1, 4, 0, 3]);
    }
}
