//! Stop strings, matched on the generated text across token boundaries.
//!
//! The Rust twin of `pyengine/text/stop.py` (vLLM's `check_stop_strings` plus its streaming
//! hold-back). For each step's delta: each stop string `s` is searched from
//! `len(text) - len(delta) - len(s) + 1`, in list order, the first found wins; the text is cut
//! before it (after it with `include_stop_str_in_output`). While running, the last
//! `max(len(s)) - 1` characters are held back. Lengths and positions count characters (Python's
//! `len`), not bytes. Only the last `max(len(s)) - 1` characters are kept, so a push costs
//! O(len(delta) + max len(s)).
//!
//! Key type: [`StopChecker`].

use crate::KernelError;

/// Push text deltas; get back the text safe to emit and, once one matches, the stop string.
#[derive(Debug, Clone)]
pub struct StopChecker {
    stop_strings: Vec<String>,
    /// Length of each stop string in characters.
    stop_lens: Vec<usize>,
    include_stop_str_in_output: bool,
    /// Characters of context a match may reach back into: max length - 1.
    keep: usize,
    /// Characters withheld from the output (`keep`, or 0 with include_stop_str_in_output).
    hold: usize,
    /// The last `keep` characters of the text, and how many characters that is.
    recent: String,
    recent_chars: usize,
    /// How many characters at the end of `recent` were not returned yet.
    unemitted: usize,
    /// Index of the stop string that matched.
    stopped: Option<usize>,
    /// `recent` + the new delta; kept between calls to reuse its allocation.
    buffer: String,
}

/// Byte offset of the character at index `chars` in `text` (its length if past the end).
fn byte_offset(text: &str, chars: usize) -> usize {
    if text.is_ascii() {
        return chars.min(text.len());
    }
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i)
}

/// Byte offset where the last `chars` characters of `text` begin.
fn byte_offset_from_end(text: &str, chars: usize) -> usize {
    if chars == 0 {
        return text.len();
    }
    if text.is_ascii() {
        return text.len().saturating_sub(chars);
    }
    text.char_indices()
        .rev()
        .nth(chars - 1)
        .map_or(0, |(i, _)| i)
}

/// Number of characters in `text` (Python's `len`).
fn num_chars(text: &str) -> usize {
    if text.is_ascii() {
        text.len()
    } else {
        text.chars().count()
    }
}

/// Byte position of the first `needle` in `haystack`. The haystacks here are a few characters
/// long, where a plain scan beats building a two-way searcher.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let last_start = haystack.len().checked_sub(needle.len())?;
    (0..=last_start).find(|&i| haystack[i] == first && haystack[i + 1..i + needle.len()] == *rest)
}

impl StopChecker {
    /// A checker for `stop_strings`, tried in this order.
    ///
    /// ```
    /// use _native::stop::StopChecker;
    /// let mut stop = StopChecker::new(vec!["</a>".into()], false).unwrap();
    /// assert_eq!(stop.push("x<"), ("", None));
    /// assert_eq!(stop.push("/a"), ("x", None));
    /// assert_eq!(stop.push(">y"), ("", Some(0)));
    /// ```
    ///
    /// Errors: an empty stop string.
    pub fn new(
        stop_strings: Vec<String>,
        include_stop_str_in_output: bool,
    ) -> Result<Self, KernelError> {
        if stop_strings.iter().any(String::is_empty) {
            return Err(KernelError("stop strings must not be empty".into()));
        }
        let stop_lens: Vec<usize> = stop_strings.iter().map(|s| num_chars(s)).collect();
        let keep = stop_lens.iter().copied().max().unwrap_or(1) - 1;
        Ok(Self {
            stop_strings,
            stop_lens,
            include_stop_str_in_output,
            keep,
            hold: if include_stop_str_in_output { 0 } else { keep },
            recent: String::new(),
            recent_chars: 0,
            unemitted: 0,
            stopped: None,
            buffer: String::new(),
        })
    }

    /// Add one step's text; return (text to emit now, index of the matched stop string).
    pub fn push(&mut self, delta: &str) -> (&str, Option<usize>) {
        if self.stopped.is_some() {
            return ("", self.stopped);
        }
        self.buffer.clear();
        self.buffer.push_str(&self.recent);
        self.buffer.push_str(delta);
        let emit_from = byte_offset(&self.buffer, self.recent_chars - self.unemitted);
        if !delta.is_empty() {
            for (index, stop) in self.stop_strings.iter().enumerate() {
                let from_char = (self.recent_chars + 1).saturating_sub(self.stop_lens[index]);
                let start = byte_offset(&self.recent, from_char);
                if let Some(position) = find(&self.buffer.as_bytes()[start..], stop.as_bytes()) {
                    let mut end = start + position;
                    if self.include_stop_str_in_output {
                        end += stop.len();
                    }
                    // After a flush() the match may start in text already returned: that text
                    // stays returned (nothing is taken back).
                    let end = end.max(emit_from);
                    self.stopped = Some(index);
                    self.recent.clear();
                    self.recent_chars = 0;
                    self.unemitted = 0;
                    return (&self.buffer[emit_from..end], Some(index));
                }
            }
        }
        (self.advance(emit_from, num_chars(delta)), None)
    }

    /// Add text that must not be searched (the first `min_tokens` tokens); return what to emit.
    /// It still counts as context for a stop string that ends in a later delta.
    pub fn skip(&mut self, delta: &str) -> &str {
        if self.stopped.is_some() {
            return "";
        }
        self.buffer.clear();
        self.buffer.push_str(&self.recent);
        self.buffer.push_str(delta);
        let emit_from = byte_offset(&self.buffer, self.recent_chars - self.unemitted);
        self.advance(emit_from, num_chars(delta))
    }

    /// At the end of generation: the held-back tail (nothing after a match).
    pub fn flush(&mut self) -> &str {
        let start = byte_offset_from_end(&self.recent, self.unemitted);
        self.unemitted = 0;
        &self.recent[start..]
    }

    /// The stop string that matched, if any.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped
            .and_then(|i| self.stop_strings.get(i))
            .map(String::as_str)
    }

    /// The stop strings, in the order they are tried.
    pub fn stop_strings(&self) -> &[String] {
        &self.stop_strings
    }

    /// Whether a matched stop string stays in the text.
    pub fn include_stop_str_in_output(&self) -> bool {
        self.include_stop_str_in_output
    }

    /// No match: emit all but the last `hold` characters of the buffer; keep the last `keep`
    /// characters as context.
    fn advance(&mut self, emit_from: usize, num_new: usize) -> &str {
        let buffer_chars = self.recent_chars + num_new;
        self.unemitted = self.hold.min(self.unemitted + num_new);
        let emit_to = byte_offset_from_end(&self.buffer, self.unemitted).max(emit_from);
        let kept = self.keep.min(buffer_chars);
        self.recent.clear();
        self.recent
            .push_str(&self.buffer[byte_offset_from_end(&self.buffer, kept)..]);
        self.recent_chars = kept;
        &self.buffer[emit_from..emit_to]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], include: bool, deltas: &[&str]) -> (Vec<String>, Option<String>) {
        let mut checker =
            StopChecker::new(stops.iter().map(|s| s.to_string()).collect(), include).unwrap();
        let mut out = Vec::new();
        for delta in deltas {
            let (emit, stopped) = checker.push(delta);
            out.push(emit.to_string());
            if stopped.is_some() {
                break;
            }
        }
        out.push(checker.flush().to_string());
        (out, checker.stopped().map(String::from))
    }

    #[test]
    fn a_stop_string_split_across_deltas_is_never_emitted() {
        let (out, stopped) = run(&["STOP"], false, &["ab", "cS", "TO", "Pxyz"]);
        assert_eq!(out, ["", "a", "bc", "", ""]);
        assert_eq!(out.concat(), "abc");
        assert_eq!(stopped.as_deref(), Some("STOP"));
    }

    #[test]
    fn include_stop_str_in_output_keeps_it_and_holds_nothing() {
        let (out, _) = run(&["STOP"], true, &["ab", "cS", "TO", "Pxyz"]);
        assert_eq!(out, ["ab", "cS", "TO", "P", ""]);
    }

    #[test]
    fn list_order_wins_over_text_order() {
        let (out, stopped) = run(&["b", "a"], false, &["xaby"]);
        assert_eq!(stopped.as_deref(), Some("b"));
        assert_eq!(out.concat(), "xa");
    }

    #[test]
    fn no_match_flushes_the_held_tail() {
        let (out, stopped) = run(&["abc"], false, &["x", "ab"]);
        assert_eq!(out, ["", "x", "ab"]);
        assert!(stopped.is_none());
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let (out, stopped) = run(&["éé"], false, &["aé", "éb"]);
        assert_eq!(out.concat(), "a");
        assert_eq!(stopped.as_deref(), Some("éé"));
        let (out, _) = run(&["你好"], false, &["日本", "語"]);
        assert_eq!(out, ["日", "本", "語"]);
    }

    #[test]
    fn skipped_text_is_context_but_not_searched() {
        let mut checker = StopChecker::new(vec!["ab".into()], false).unwrap();
        assert_eq!(checker.skip("xab"), "xa"); // "ab" is inside skipped text: never matches
        assert_eq!(checker.push("c"), ("b", None));
        let mut checker = StopChecker::new(vec!["ab".into()], false).unwrap();
        assert_eq!(checker.skip("xa"), "x");
        assert_eq!(checker.push("b"), ("", Some(0))); // straddles the boundary: matches
    }

    #[test]
    fn a_match_inside_flushed_text_takes_nothing_back() {
        let mut checker = StopChecker::new(vec!["abc".into()], false).unwrap();
        assert_eq!(checker.push("xab"), ("x", None));
        assert_eq!(checker.flush(), "ab");
        assert_eq!(checker.push("c"), ("", Some(0)));
    }

    #[test]
    fn empty_stop_string_is_an_error() {
        assert!(StopChecker::new(vec!["".into()], false).is_err());
        let mut none = StopChecker::new(vec![], false).unwrap();
        assert_eq!(none.push("abc"), ("abc", None));
    }
}
