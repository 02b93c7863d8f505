//! N-gram repetition detection, vLLM's `check_sequence_repetition`, in O(max_pattern_size) per
//! token.
//!
//! The output repeats when, for some block length L in max(1, min_pattern_size) ..=
//! max_pattern_size (tried in ascending order, stopping at the first L with
//! L * min_count > len(output)), its last L tokens equal each of the min_count - 1 blocks of L
//! tokens right before them. That holds exactly when the last L * (min_count - 1) positions i
//! all satisfy `out[i] == out[i - L]`. So instead of comparing blocks after every token, the
//! detector keeps, for every L, the length of the current run of such positions: a token extends
//! the run (or resets it to 0) with one comparison. The Python twin
//! (`pyengine/text/repetition.py`) checks the definition directly; the parity tests prove the two
//! agree.
//!
//! Key type: [`RepetitionDetector`].

use crate::KernelError;

/// Push generated token ids; [`push`](Self::push) returns true once the output ends in a repetition.
#[derive(Debug, Clone)]
pub struct RepetitionDetector {
    max_pattern_size: usize,
    min_pattern_size: usize,
    min_count: usize,
    /// The output so far.
    output: Vec<i64>,
    /// runs[L]: how many of the last positions i satisfy out[i] == out[i - L] in a row. It grows
    /// with the output up to max_pattern_size + 1 entries (memory follows what is used).
    runs: Vec<usize>,
}

impl RepetitionDetector {
    /// A detector with vLLM's `repetition_detection` parameters (max 0 disables it).
    ///
    /// ```
    /// use _native::repetition::RepetitionDetector;
    /// let mut rep = RepetitionDetector::new(5, 2, 3).unwrap();
    /// let hits: Vec<bool> = [10, 20, 10, 20, 10, 20].iter().map(|&t| rep.push(t)).collect();
    /// assert_eq!(hits, [false, false, false, false, false, true]);
    /// ```
    ///
    /// Errors: vLLM's validation messages.
    pub fn new(
        max_pattern_size: i64,
        min_pattern_size: i64,
        min_count: i64,
    ) -> Result<Self, KernelError> {
        if max_pattern_size < 0 || min_pattern_size < 0 || min_pattern_size > max_pattern_size {
            return Err(KernelError(
                "max_pattern_size, min_pattern_size must be >=0, with min_pattern_size <= max_pattern_size. \
                 Set both to 0 to disable repetitive pattern detection."
                    .into(),
            ));
        }
        if max_pattern_size > 0 && min_count < 2 {
            return Err(KernelError(
                "min_count must be >= 2 to detect repetitive patterns in engine output. If you do not \
                 wish to detect repetitive patterns, set max_pattern_size to 0."
                    .into(),
            ));
        }
        Ok(Self {
            max_pattern_size: usize::try_from(max_pattern_size).unwrap_or(usize::MAX),
            min_pattern_size: usize::try_from(min_pattern_size).unwrap_or(0).max(1),
            min_count: usize::try_from(min_count).unwrap_or(usize::MAX),
            output: Vec::new(),
            runs: vec![0],
        })
    }

    /// Append a generated token; true when the output now ends in a repetition.
    pub fn push(&mut self, token_id: i64) -> bool {
        let n = self.output.len(); // index of the new token
        self.output.push(token_id);
        if self.max_pattern_size == 0 {
            return false;
        }
        let (lo, hi) = (self.min_pattern_size, self.max_pattern_size.min(n));
        if self.runs.len() <= hi {
            self.runs.push(0); // block length n is now comparable for the first time
        }
        // Extend or reset the run of every block length that has an earlier token to compare with.
        for length in lo..=hi {
            self.runs[length] = if self.output[n - length] == token_id {
                self.runs[length] + 1
            } else {
                0
            };
        }
        let len = n + 1;
        for length in lo..=self.max_pattern_size {
            if length.saturating_mul(self.min_count) > len {
                return false; // no longer block fits either
            }
            // length * min_count <= len implies length <= n, so runs[length] exists
            let run = self.runs.get(length).copied().unwrap_or(0);
            if run >= length.saturating_mul(self.min_count - 1) {
                return true;
            }
        }
        false
    }

    /// The longest block length checked.
    pub fn max_pattern_size(&self) -> usize {
        self.max_pattern_size
    }

    /// The shortest block length checked (at least 1).
    pub fn min_pattern_size(&self) -> usize {
        self.min_pattern_size
    }

    /// Copies of the block that count as a repetition.
    pub fn min_count(&self) -> usize {
        self.min_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// vLLM's definition, checked directly.
    fn naive(out: &[i64], lo: usize, hi: usize, count: usize) -> bool {
        for length in lo.max(1)..=hi {
            if length * count > out.len() {
                return false;
            }
            let k = out.len();
            if (1..=length).all(|n| (1..count).all(|m| out[k - n] == out[k - (length * m + n)])) {
                return true;
            }
        }
        false
    }

    #[test]
    fn examples_from_the_api_notes() {
        let mut rep = RepetitionDetector::new(5, 2, 3).unwrap();
        let hits: Vec<bool> = [1, 2, 3, 1, 2, 3, 1, 2, 4]
            .iter()
            .map(|&t| rep.push(t))
            .collect();
        assert!(hits.iter().all(|&h| !h));
    }

    #[test]
    fn agrees_with_the_definition_on_pseudo_random_streams() {
        let mut seed: u64 = 42;
        for trial in 0..200 {
            let (lo, hi, count) = (trial % 3, 1 + trial % 7, 2 + trial % 3);
            let mut rep =
                RepetitionDetector::new(hi as i64, lo.min(hi) as i64, count as i64).unwrap();
            let mut out = Vec::new();
            for _ in 0..60 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // mostly copies of an earlier token, so repetitions actually occur
                let token = if out.len() > 3 && seed >> 60 < 12 {
                    out[out.len() - 1 - ((seed >> 33) as usize % 3)]
                } else {
                    (seed >> 61) as i64
                };
                out.push(token);
                assert_eq!(
                    rep.push(token),
                    naive(&out, lo.min(hi), hi, count),
                    "{out:?}"
                );
            }
        }
    }

    #[test]
    fn disabled_and_invalid_parameters() {
        let mut off = RepetitionDetector::new(0, 0, 0).unwrap();
        assert!(!off.push(1) && !off.push(1));
        assert!(RepetitionDetector::new(2, 3, 2).is_err());
        assert!(RepetitionDetector::new(-1, 0, 2).is_err());
        assert!(RepetitionDetector::new(4, 0, 1).is_err());
        let mut huge = RepetitionDetector::new(3, 0, i64::MAX).unwrap();
        assert!(!huge.push(1) && !huge.push(1));
        // A huge max_pattern_size allocates nothing up front.
        let mut wide = RepetitionDetector::new(i64::MAX, 0, 2).unwrap();
        assert!(!wide.push(1) && wide.push(1));
    }
}
