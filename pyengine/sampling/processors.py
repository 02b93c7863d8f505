"""Logits processors: the steps before temperature, in vLLM's order (api-semantics.md §2).

    allowed_token_ids -> bad_words -> min_tokens -> logit_bias -> repetition, frequency, presence

Each is a pure function `(logits [B, V], rows) -> logits [B, V]` that returns its input
untouched when no row uses it, so a batch of plain requests pays nothing. Per-row parameters
become small host arrays (one value per row) copied to the device; the math on the [B, V]
logits is one vectorised expression per step, never a loop over rows.
"""

from __future__ import annotations

from typing import Any, Sequence

from pyengine.backend import array_module, host_numpy

np = host_numpy()  # host-side construction of per-row index arrays only


def _to_device(like: Any, host_array: Any) -> Any:
    return array_module(like).asarray(host_array)


def _masked(logits: Any, rows_cols: tuple[list[int], list[int]], value: float) -> Any:
    """Set logits[r, c] = value for the (row, column) pairs given; returns a new array."""
    xp = array_module(logits)
    if not rows_cols[0]:
        return logits
    out = logits.copy()
    out[_to_device(logits, np.array(rows_cols[0])), _to_device(logits, np.array(rows_cols[1]))] = value
    return out


def apply_allowed_token_ids(logits: Any, rows: Sequence[Any]) -> Any:
    """Rows with `allowed_token_ids`: every other token -> -inf."""
    limited = [i for i, r in enumerate(rows) if r.params.allowed_token_ids]
    if not limited:
        return logits
    xp = array_module(logits)
    keep = np.zeros((len(rows), logits.shape[1]), dtype=bool)  # [B, V]
    keep[[i for i in range(len(rows)) if i not in limited]] = True
    for i in limited:
        keep[i, rows[i].params.allowed_token_ids] = True
    return xp.where(_to_device(logits, keep), logits, -xp.inf)


def apply_bad_words(logits: Any, rows: Sequence[Any]) -> Any:
    """Ban the last token of each bad word whose other tokens end the output so far (§3.9)."""
    pairs: tuple[list[int], list[int]] = ([], [])
    for i, row in enumerate(rows):
        output = list(row.output_token_ids)
        for word in row.params.bad_words_token_ids or ():
            prefix = word[:-1]
            if not prefix or output[len(output) - len(prefix):] == prefix:
                pairs[0].append(i)
                pairs[1].append(word[-1])
    return _masked(logits, pairs, -float("inf"))


def apply_min_tokens(logits: Any, rows: Sequence[Any]) -> Any:
    """Until `min_tokens` were generated, the stop tokens (EOS and stop_token_ids) are -inf."""
    pairs: tuple[list[int], list[int]] = ([], [])
    for i, row in enumerate(rows):
        if len(row.output_token_ids) < row.params.min_tokens:
            for token_id in row.stop_token_ids:
                pairs[0].append(i)
                pairs[1].append(token_id)
    return _masked(logits, pairs, -float("inf"))


def apply_logit_bias(logits: Any, rows: Sequence[Any]) -> Any:
    """logits[r, t] += bias_t for each row's `logit_bias` (values already clamped to [-100, 100])."""
    biased = [(i, t, b) for i, r in enumerate(rows) for t, b in (r.params.logit_bias or {}).items()]
    if not biased:
        return logits
    xp = array_module(logits)
    bias = np.zeros((len(rows), logits.shape[1]), dtype=np.float32)  # [B, V]
    for i, token_id, value in biased:
        bias[i, token_id] += value
    return logits + xp.asarray(bias)


def apply_penalties(logits: Any, rows: Sequence[Any]) -> Any:
    """Repetition (prompt + output, multiplicative), then frequency and presence (output only).

        repetition: x_t / r if x_t > 0 else x_t * r, for t seen in the prompt or the output
        frequency:  x_t - f * count_t          presence:  x_t - p * [count_t > 0]
    """
    active = [i for i, r in enumerate(rows) if r.params.repetition_penalty != 1.0
              or r.params.frequency_penalty != 0.0 or r.params.presence_penalty != 0.0]
    if not active:
        return logits
    xp = array_module(logits)
    batch, vocab = logits.shape
    counts = np.zeros((batch, vocab), dtype=np.float32)  # [B, V] output occurrences
    seen_in_prompt = np.zeros((batch, vocab), dtype=bool)  # [B, V]
    repetition = np.ones((batch, 1), dtype=np.float32)
    frequency = np.zeros((batch, 1), dtype=np.float32)
    presence = np.zeros((batch, 1), dtype=np.float32)
    for i in active:
        p = rows[i].params
        np.add.at(counts[i], np.asarray(rows[i].output_token_ids, dtype=np.int64), 1.0)
        seen_in_prompt[i, np.asarray(rows[i].prompt_token_ids, dtype=np.int64)] = True
        repetition[i], frequency[i], presence[i] = p.repetition_penalty, p.frequency_penalty, p.presence_penalty
    counts_d = xp.asarray(counts)
    seen = xp.asarray(seen_in_prompt) | (counts_d > 0)  # [B, V]
    r = xp.asarray(repetition)  # [B, 1]
    penalized = xp.where(logits > 0, logits / r, logits * r)
    logits = xp.where(seen, penalized, logits)  # repetition
    logits = logits - xp.asarray(frequency) * counts_d  # frequency
    return logits - xp.asarray(presence) * (counts_d > 0)  # presence
