//! Incremental detokenization: text deltas from token ids, one token at a time.
//!
//! The Rust twin of `pyengine/text/detokenizer.py`, with the same rules:
//!
//! - every token id maps to the bytes it adds (a [`TokenTable`], built once per tokenizer from
//!   the pieces `pyengine/text/token_bytes.py` works out of tokenizer.json's decoder);
//! - the bytes go through a streaming UTF-8 decoder that holds an unfinished character and
//!   writes U+FFFD for invalid bytes exactly as `String::from_utf8_lossy` would on the whole;
//! - SentencePiece byte-fallback tokens (`<0xNN>`) form runs that become text only as a whole
//!   (one U+FFFD per byte token if the run is not valid UTF-8);
//! - the first decoded token may have its own bytes (Metaspace, WordPiece), and a whole-text
//!   `Strip` drops leading characters;
//! - like tokenizers' `DecodeStream`, which vLLM uses, text is held back while it ends in an
//!   unfinished character or in U+FFFD, so nothing emitted is ever taken back.
//!
//! Key types: [`TokenTable`] (shared, immutable), [`IncrementalDetokenizer`] (one per sequence).

use std::collections::HashMap;
use std::sync::Arc;

use crate::KernelError;

/// U+FFFD, what a decoder writes for bytes that are not valid UTF-8.
const REPLACEMENT: char = '\u{FFFD}';
/// vLLM re-decodes a broken logprob token with up to this many preceding tokens.
pub const LOGPROB_CONTEXT: usize = 4;

const FLAG_SPECIAL: u8 = 1;
const FLAG_ADDED: u8 = 2;
const FLAG_BYTE: u8 = 4;
const FLAG_MISSING: u8 = 8;

// ------------------------------------------------------------------------------------------------
// The per-tokenizer table
// ------------------------------------------------------------------------------------------------

/// Everything the detokenizer needs to know about one tokenizer's tokens.
#[derive(Debug, Clone)]
pub struct TokenTable {
    /// All "later" pieces concatenated; piece `i` is `bytes[offsets[i]..offsets[i + 1]]`.
    bytes: Vec<u8>,
    offsets: Vec<usize>,
    /// The pieces of a token decoded first, when they differ (Metaspace, WordPiece, no decoder).
    first: Option<(Vec<u8>, Vec<usize>)>,
    /// `FLAG_*` bits per id.
    flags: Vec<u8>,
    /// The byte of each byte-fallback token (0 elsewhere).
    byte_values: Vec<u8>,
    /// The content of each added token.
    added: HashMap<usize, String>,
    /// `Strip(char, count, 0)` applied to the whole text.
    strip: Option<(char, usize)>,
}

/// What a table knows besides each token's bytes: per-id flags and the whole-text strip, as
/// `pyengine.text.token_bytes.TokenPieces` lists them.
#[derive(Debug, Default, Clone)]
pub struct TokenSpec {
    /// Ids dropped by `skip_special_tokens`.
    pub special_ids: Vec<i64>,
    /// Added tokens (id, content).
    pub added_tokens: Vec<(i64, String)>,
    /// SentencePiece byte-fallback tokens (id, byte).
    pub byte_values: Vec<(i64, u8)>,
    /// Ids that name no token.
    pub missing_ids: Vec<i64>,
    /// The whole-text strip: the character and how many to drop at most.
    pub strip: Option<(char, usize)>,
}

fn flatten(pieces: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::with_capacity(pieces.iter().map(|p| p.len()).sum());
    let mut offsets = Vec::with_capacity(pieces.len() + 1);
    offsets.push(0);
    for piece in pieces {
        bytes.extend_from_slice(piece);
        offsets.push(bytes.len());
    }
    (bytes, offsets)
}

impl TokenTable {
    /// Build a table from each token's bytes (`pieces[id]`), optional first-token bytes and flags.
    ///
    /// ```
    /// use _native::detok::{TokenSpec, TokenTable};
    /// let pieces: Vec<&[u8]> = vec![b"a", b"\xe4", b"\xbd\xa0"];
    /// let table = TokenTable::new(&pieces, None, TokenSpec::default()).unwrap();
    /// assert_eq!(table.decode(&[0, 1, 2], true).unwrap(), "a你");
    /// ```
    ///
    /// Errors: an id in `spec` outside the table, or `first` of a different length.
    pub fn new(
        pieces: &[&[u8]],
        first: Option<&[&[u8]]>,
        spec: TokenSpec,
    ) -> Result<Self, KernelError> {
        let size = pieces.len();
        let index = |id: i64, what: &str| -> Result<usize, KernelError> {
            usize::try_from(id)
                .ok()
                .filter(|&i| i < size)
                .ok_or_else(|| {
                    KernelError(format!(
                        "{what} id {id} is out of range for a vocabulary of {size} tokens"
                    ))
                })
        };
        let mut flags = vec![0u8; size];
        let mut byte_values = vec![0u8; size];
        for &id in &spec.special_ids {
            flags[index(id, "special token")?] |= FLAG_SPECIAL;
        }
        let mut added = HashMap::with_capacity(spec.added_tokens.len());
        for (id, content) in spec.added_tokens {
            let i = index(id, "added token")?;
            flags[i] |= FLAG_ADDED;
            added.insert(i, content);
        }
        for &(id, value) in &spec.byte_values {
            let i = index(id, "byte token")?;
            flags[i] |= FLAG_BYTE;
            byte_values[i] = value;
        }
        for &id in &spec.missing_ids {
            flags[index(id, "missing token")?] |= FLAG_MISSING;
        }
        let first = match first {
            Some(f) if f.len() != size => {
                return Err(KernelError(format!(
                    "first_pieces has {} entries, pieces has {size}",
                    f.len()
                )))
            }
            Some(f) => Some(flatten(f)),
            None => None,
        };
        let (bytes, offsets) = flatten(pieces);
        Ok(Self {
            bytes,
            offsets,
            first,
            flags,
            byte_values,
            added,
            strip: spec.strip,
        })
    }

    /// Number of token ids the table covers.
    pub fn vocab_size(&self) -> usize {
        self.flags.len()
    }

    /// The id as an index, or the error every kernel gives for an id outside the vocabulary.
    pub fn check(&self, token_id: i64) -> Result<usize, KernelError> {
        usize::try_from(token_id)
            .ok()
            .filter(|&i| i < self.flags.len())
            .ok_or_else(|| {
                KernelError(format!(
                    "token id {token_id} is out of range for a vocabulary of {} tokens",
                    self.flags.len()
                ))
            })
    }

    fn piece(&self, id: usize, first: bool) -> &[u8] {
        let (bytes, offsets) = match (&self.first, first) {
            (Some((b, o)), true) => (b, o),
            _ => (&self.bytes, &self.offsets),
        };
        match (offsets.get(id), offsets.get(id + 1)) {
            (Some(&start), Some(&end)) => bytes.get(start..end).unwrap_or(&[]),
            _ => &[],
        }
    }

    fn flags(&self, id: usize) -> u8 {
        self.flags.get(id).copied().unwrap_or(FLAG_MISSING)
    }

    /// The text of `token_ids`, exactly as `tokenizers.Tokenizer.decode` gives it.
    pub fn decode(
        &self,
        token_ids: &[i64],
        skip_special_tokens: bool,
    ) -> Result<String, KernelError> {
        let mut state = DecodeState::new(self);
        for &token_id in token_ids {
            state.decode(self, self.check(token_id)?, skip_special_tokens);
        }
        state.finish(self);
        Ok(state.held)
    }

    /// A logprob's `decoded_token` as vLLM computes it (see the Python twin's docstring):
    /// the token alone, or, if that ends in U+FFFD, what it completes after 1..4 context tokens.
    pub fn token_text(
        &self,
        token_id: i64,
        context_token_ids: &[i64],
    ) -> Result<String, KernelError> {
        let text = self.decode(&[token_id], false)?;
        if !text.ends_with(REPLACEMENT) {
            return Ok(text);
        }
        let context = &context_token_ids[context_token_ids.len().saturating_sub(LOGPROB_CONTEXT)..];
        for num_context in 1..=context.len() {
            let window = &context[context.len() - num_context..];
            let mut ids = window.to_vec();
            ids.push(token_id);
            let full = self.decode(&ids, false)?;
            if full.ends_with(REPLACEMENT) {
                continue; // still unfinished: try one more token of context
            }
            let mut clean_end = window.len();
            while clean_end > 0
                && self
                    .decode(&window[clean_end - 1..clean_end], false)?
                    .ends_with(REPLACEMENT)
            {
                clean_end -= 1;
            }
            let clean_prefix = self.decode(&window[..clean_end], false)?;
            if let Some(rest) = full.strip_prefix(clean_prefix.as_str()) {
                return Ok(rest.to_string());
            }
            let common = common_prefix_bytes(&clean_prefix, &full);
            return Ok(full[common..].to_string());
        }
        Ok(String::new())
    }
}

/// Byte length of the longest common prefix of `a` and `b`, counted in whole characters.
fn common_prefix_bytes(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map(|((i, _), _)| i)
        .unwrap_or_else(|| a.len().min(b.len()))
}

// ------------------------------------------------------------------------------------------------
// The decoder state machine
// ------------------------------------------------------------------------------------------------

/// What has been decoded but not yet returned, and what is still unfinished.
#[derive(Debug, Clone)]
struct DecodeState {
    /// Bytes of an unfinished UTF-8 character (at most 3).
    pending: Vec<u8>,
    /// The open run of byte-fallback tokens.
    run: Vec<u8>,
    /// Tokens passed to the decoder (the first one has its own piece).
    num_decoded: usize,
    /// Leading strip characters still to drop.
    strip_left: usize,
    /// Decoded text not yet returned.
    held: String,
}

impl DecodeState {
    fn new(table: &TokenTable) -> Self {
        let strip_left = table.strip.map_or(0, |(_, n)| n);
        Self {
            pending: Vec::new(),
            run: Vec::new(),
            num_decoded: 0,
            strip_left,
            held: String::new(),
        }
    }

    /// Pass one (valid) token through the decoder: skip it, extend a byte run, or add its bytes.
    fn decode(&mut self, table: &TokenTable, id: usize, skip_special_tokens: bool) {
        let flags = table.flags(id);
        if flags & FLAG_MISSING != 0 || (skip_special_tokens && flags & FLAG_SPECIAL != 0) {
            return; // decode drops it before the decoder sees it
        }
        let first = self.num_decoded == 0;
        self.num_decoded += 1;
        if flags & FLAG_BYTE != 0 {
            self.run
                .push(table.byte_values.get(id).copied().unwrap_or(0));
            return;
        }
        self.close_run(table);
        self.feed(table, table.piece(id, first));
    }

    /// A finished byte run is its UTF-8 text if valid as a whole, else one U+FFFD per byte.
    fn close_run(&mut self, table: &TokenTable) {
        if self.run.is_empty() {
            return;
        }
        let run = std::mem::take(&mut self.run);
        match std::str::from_utf8(&run) {
            Ok(text) => self.feed(table, text.as_bytes()),
            Err(_) => {
                let text: String = std::iter::repeat_n(REPLACEMENT, run.len()).collect();
                self.feed(table, text.as_bytes());
            }
        }
    }

    /// Streaming UTF-8: decode what is complete (U+FFFD for invalid bytes), keep an unfinished tail.
    fn feed(&mut self, table: &TokenTable, bytes: &[u8]) {
        if self.pending.is_empty() {
            if let Ok(text) = std::str::from_utf8(bytes) {
                self.emit(table, text); // the common case: whole characters
                return;
            }
        }
        let mut buffer = std::mem::take(&mut self.pending);
        buffer.extend_from_slice(bytes);
        let mut rest = buffer.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    self.emit(table, text);
                    return;
                }
                Err(error) => {
                    let (valid, after) = rest.split_at(error.valid_up_to());
                    self.emit(table, std::str::from_utf8(valid).unwrap_or_default());
                    match error.error_len() {
                        Some(len) => {
                            self.emit(table, "\u{FFFD}");
                            rest = after.get(len..).unwrap_or_default();
                        }
                        None => {
                            self.pending = after.to_vec(); // an unfinished character: wait for more
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Decoded characters join the held text, after the whole-text Strip (if any).
    fn emit(&mut self, table: &TokenTable, mut text: &str) {
        if self.strip_left > 0 {
            if let Some((strip_char, _)) = table.strip {
                while self.strip_left > 0 && !text.is_empty() {
                    match text.strip_prefix(strip_char) {
                        Some(rest) => {
                            text = rest;
                            self.strip_left -= 1;
                        }
                        None => self.strip_left = 0, // the text has started
                    }
                }
            }
        }
        self.held.push_str(text);
    }

    /// DecodeStream's rule: the held text may still change while a character or a byte run is
    /// unfinished, or while it ends in U+FFFD.
    fn is_ready(&self) -> bool {
        self.run.is_empty() && self.pending.is_empty() && !self.held.ends_with(REPLACEMENT)
    }

    /// The end of the stream: close the run; an unfinished character becomes one U+FFFD.
    fn finish(&mut self, table: &TokenTable) {
        self.close_run(table);
        if !self.pending.is_empty() {
            self.pending.clear();
            self.emit(table, "\u{FFFD}");
        }
    }
}

// ------------------------------------------------------------------------------------------------
// One sequence's detokenizer
// ------------------------------------------------------------------------------------------------

/// Feed ids with [`push`](Self::push); get back the text each one completes.
#[derive(Debug, Clone)]
pub struct IncrementalDetokenizer {
    table: Arc<TokenTable>,
    skip_special_tokens: bool,
    spaces_between_special_tokens: bool,
    state: DecodeState,
    text: String,
    last_added: bool,
    recent_ids: Vec<i64>,
}

impl IncrementalDetokenizer {
    /// A detokenizer primed with the prompt (decoded first and not returned), as vLLM primes
    /// tokenizers' `DecodeStream`, so that the first output token is decoded in context.
    ///
    /// Errors: a prompt id outside the vocabulary.
    pub fn new(
        table: Arc<TokenTable>,
        prompt_token_ids: &[i64],
        skip_special_tokens: bool,
        spaces_between_special_tokens: bool,
    ) -> Result<Self, KernelError> {
        let mut state = DecodeState::new(&table);
        for &token_id in prompt_token_ids {
            state.decode(&table, table.check(token_id)?, skip_special_tokens);
            if state.is_ready() {
                state.held.clear(); // the prompt's own text is not output
            }
        }
        Ok(Self {
            table,
            skip_special_tokens,
            spaces_between_special_tokens: skip_special_tokens || spaces_between_special_tokens,
            state,
            text: String::new(),
            last_added: false,
            recent_ids: Vec::with_capacity(LOGPROB_CONTEXT),
        })
    }

    /// Append one output token; return the newly completed text ("" while it is held).
    ///
    /// Errors: an id outside the vocabulary (nothing changes).
    pub fn push(&mut self, token_id: i64) -> Result<&str, KernelError> {
        let id = self.table.check(token_id)?;
        let table = &*self.table;
        self.state.decode(table, id, self.skip_special_tokens);
        let start = self.text.len();
        let ready = self.state.is_ready();
        let is_added = table.flags(id) & FLAG_ADDED != 0;
        if !self.spaces_between_special_tokens && is_added && self.last_added {
            // vLLM returns the bare content of an added token that follows another one.
            if ready {
                self.state.held.clear();
            }
            self.text
                .push_str(table.added.get(&id).map_or("", String::as_str));
        } else if ready {
            self.text.push_str(&self.state.held);
            self.state.held.clear();
        }
        if !self.spaces_between_special_tokens {
            self.last_added = is_added;
        }
        if self.recent_ids.len() == LOGPROB_CONTEXT {
            self.recent_ids.remove(0);
        }
        self.recent_ids.push(token_id);
        Ok(&self.text[start..])
    }

    /// At the end of generation: release held text (an unfinished character becomes U+FFFD).
    pub fn flush(&mut self) -> &str {
        self.state.finish(&self.table);
        let start = self.text.len();
        self.text.push_str(&self.state.held);
        self.state.held.clear();
        &self.text[start..]
    }

    /// The `decoded_token` of a logprob for the next position (call before pushing it).
    pub fn token_text(&self, token_id: i64) -> Result<String, KernelError> {
        self.table.token_text(token_id, &self.recent_ids)
    }

    /// Everything returned so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The shared table.
    pub fn table(&self) -> &Arc<TokenTable> {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-drawn byte-level vocabulary:
    ///
    /// ```text
    /// id  piece        note
    /// 0   "a"
    /// 1   " b"
    /// 2   e4           first byte of "你" (e4 bd a0)
    /// 3   bd a0        the rest of "你"
    /// 4   ff           never valid UTF-8
    /// 5   "<|end|>"    special, added
    /// 6   "<|tool|>"   added, not special
    /// ```
    fn byte_level() -> Arc<TokenTable> {
        let pieces: Vec<&[u8]> = vec![
            b"a",
            b" b",
            b"\xe4",
            b"\xbd\xa0",
            b"\xff",
            b"<|end|>",
            b"<|tool|>",
        ];
        let spec = TokenSpec {
            special_ids: vec![5],
            added_tokens: vec![(5, "<|end|>".into()), (6, "<|tool|>".into())],
            ..TokenSpec::default()
        };
        Arc::new(TokenTable::new(&pieces, None, spec).unwrap())
    }

    /// A SentencePiece vocabulary with byte fallback and `Strip(" ", 1, 0)`:
    ///
    /// ```text
    /// id  piece     note
    /// 0   " hi"     "▁hi" after Replace("▁", " ")
    /// 1   <0xE4>    byte tokens
    /// 2   <0xBD>
    /// 3   <0xA0>
    /// 4   <0x20>    a space, spelled as a byte
    /// 5   "<s>"     special
    /// ```
    fn sentencepiece() -> Arc<TokenTable> {
        let pieces: Vec<&[u8]> = vec![b" hi", b"<0xE4>", b"<0xBD>", b"<0xA0>", b"<0x20>", b"<s>"];
        let spec = TokenSpec {
            special_ids: vec![5],
            added_tokens: vec![(5, "<s>".into())],
            byte_values: vec![(1, 0xe4), (2, 0xbd), (3, 0xa0), (4, 0x20)],
            strip: Some((' ', 1)),
            ..TokenSpec::default()
        };
        Arc::new(TokenTable::new(&pieces, None, spec).unwrap())
    }

    fn deltas(table: &Arc<TokenTable>, ids: &[i64], skip: bool) -> Vec<String> {
        let mut detok = IncrementalDetokenizer::new(table.clone(), &[], skip, true).unwrap();
        let mut out: Vec<String> = ids
            .iter()
            .map(|&i| detok.push(i).unwrap().to_string())
            .collect();
        out.push(detok.flush().to_string());
        out
    }

    #[test]
    fn split_character_is_held_until_complete() {
        assert_eq!(
            deltas(&byte_level(), &[0, 2, 3, 1], true),
            ["a", "", "你", " b", ""]
        );
    }

    #[test]
    fn invalid_bytes_become_replacement_and_are_held_like_decode_stream() {
        // ff is invalid: "�" is decoded at once but held while the text ends in U+FFFD.
        assert_eq!(
            deltas(&byte_level(), &[0, 4, 1], true),
            ["a", "", "\u{FFFD} b", ""]
        );
        // An unfinished character at the end is flushed as one U+FFFD, as decode gives it.
        assert_eq!(deltas(&byte_level(), &[0, 2], true), ["a", "", "\u{FFFD}"]);
        assert_eq!(byte_level().decode(&[0, 2], true).unwrap(), "a\u{FFFD}");
    }

    #[test]
    fn special_tokens_are_skipped_or_kept() {
        assert_eq!(byte_level().decode(&[0, 5, 6], true).unwrap(), "a<|tool|>");
        assert_eq!(
            byte_level().decode(&[0, 5, 6], false).unwrap(),
            "a<|end|><|tool|>"
        );
    }

    #[test]
    fn byte_fallback_runs_are_all_or_nothing() {
        let table = sentencepiece();
        assert_eq!(table.decode(&[1, 2, 3, 0], true).unwrap(), "你 hi");
        // A run that is not valid UTF-8 gives one U+FFFD per byte token.
        assert_eq!(
            table.decode(&[1, 2, 0], true).unwrap(),
            "\u{FFFD}\u{FFFD} hi"
        );
        // A skipped special token does not break the run; a kept one does.
        assert_eq!(table.decode(&[1, 5, 2, 3], true).unwrap(), "你");
        assert_eq!(
            table.decode(&[1, 5, 2, 3], false).unwrap(),
            "\u{FFFD}<s>\u{FFFD}\u{FFFD}"
        );
        // The run is held even while valid so far: a later byte could invalidate it.
        assert_eq!(
            deltas(&table, &[1, 2, 3, 0], true),
            ["", "", "", "你 hi", ""]
        );
    }

    #[test]
    fn strip_removes_only_the_first_space_of_the_text() {
        let table = sentencepiece();
        assert_eq!(table.decode(&[0, 0], true).unwrap(), "hi hi");
        assert_eq!(table.decode(&[4, 0], true).unwrap(), " hi"); // the byte space is stripped
        assert_eq!(deltas(&table, &[0, 0], true), ["hi", " hi", ""]);
        // With a prompt, the first output token keeps its space.
        let mut detok = IncrementalDetokenizer::new(table, &[0], true, true).unwrap();
        assert_eq!(detok.push(0).unwrap(), " hi");
    }

    #[test]
    fn first_pieces_apply_to_the_first_decoded_token_only() {
        let pieces: Vec<&[u8]> = vec![b" x", b"<s>"];
        let first: Vec<&[u8]> = vec![b"x", b"<s>"];
        let spec = TokenSpec {
            special_ids: vec![1],
            ..TokenSpec::default()
        };
        let table = TokenTable::new(&pieces, Some(&first), spec).unwrap();
        assert_eq!(table.decode(&[1, 0, 0], true).unwrap(), "x x");
        assert_eq!(table.decode(&[1, 0, 0], false).unwrap(), "<s> x x");
    }

    #[test]
    fn spaces_between_special_tokens_false_returns_bare_added_content() {
        let mut detok = IncrementalDetokenizer::new(byte_level(), &[], false, false).unwrap();
        let out: Vec<String> = [6, 5, 0]
            .iter()
            .map(|&i| detok.push(i).unwrap().to_string())
            .collect();
        assert_eq!(out, ["<|tool|>", "<|end|>", "a"]);
    }

    #[test]
    fn invalid_ids_are_errors_not_panics() {
        let table = byte_level();
        let err = table.decode(&[7], true).unwrap_err();
        assert_eq!(
            err.0,
            "token id 7 is out of range for a vocabulary of 7 tokens"
        );
        let mut detok = IncrementalDetokenizer::new(table.clone(), &[], true, true).unwrap();
        assert!(detok.push(-1).is_err());
        assert!(IncrementalDetokenizer::new(table, &[99], true, true).is_err());
        let bad = TokenSpec {
            special_ids: vec![3],
            ..TokenSpec::default()
        };
        assert!(TokenTable::new(&[b"a".as_slice()], None, bad).is_err());
    }

    #[test]
    fn token_text_completes_a_character_from_context() {
        let table = byte_level();
        assert_eq!(table.token_text(0, &[]).unwrap(), "a");
        assert_eq!(table.token_text(5, &[]).unwrap(), "<|end|>"); // special tokens are kept
        assert_eq!(table.token_text(3, &[]).unwrap(), ""); // nothing completes without context
        assert_eq!(table.token_text(3, &[0, 2]).unwrap(), "你"); // e4 belongs to this token's char
        assert_eq!(table.token_text(2, &[0]).unwrap(), "");
    }
}
