"""Logits processors: the steps before temperature, in vLLM V1's order.

    allowed_token_ids -> bad_words -> min_tokens -> logit_bias -> repetition, frequency, presence

Each is a function `(logits [B, V], rows, out=None) -> logits [B, V]`: it returns its input
untouched when no row uses it, and otherwise a new array, or writes into `out` when given
(numpy's convention; `out` may be `logits` itself, which lets the sampler run all five on one
working copy instead of copying [B, V] five times). They only ever change a few entries per row
(the allowed tokens, the banned ones, the biased ones, the tokens seen so far), so each one
collects (row, token) pairs on the host from the per-row state, copies those small index
arrays to the device, and rewrites just those entries with one vectorised expression. No loop
over rows touches the [B, V] array, and the cost grows with the number of entries changed,
not with B x V.

The sampler loads this module with the first row that uses a processor
(`SamplingParams.uses_processors`); so do the checks of their parameters, at the end.

Shapes: B rows in the step, V vocabulary, K (row, token) pairs being rewritten.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np  # host side: per-row token lists -> (row, token) index arrays

from pyengine.backend import array_module
from pyengine.sampling.params import SamplingParams, check, check_in_vocabulary, is_int, is_number

MAX_LOGIT_BIAS = 100.0  # bias values are clamped to [-100, 100]


def apply_allowed_token_ids(logits: Any, rows: Sequence[Any], out: Any = None) -> Any:
    """Rows with `allowed_token_ids`: every other token -> -inf.  [B, V] -> [B, V]"""
    limited = [b for b, row in enumerate(rows) if row.params.allowed_token_ids]
    if not limited:
        return logits
    xp = array_module(logits)
    row_ids, token_ids = _pairs({b: rows[b].params.allowed_token_ids for b in limited})
    r, t = _device(xp, row_ids), _device(xp, token_ids)  # [K], [K]
    allowed = logits[r, t]  # [K] read before anything is written (out may be logits)
    out = _output(logits, out)  # [B, V]
    out[_device(xp, limited)] = -xp.inf  # ban the whole row ...
    out[r, t] = allowed  # ... then restore the allowed entries
    return out


def apply_bad_words(logits: Any, rows: Sequence[Any], out: Any = None) -> Any:
    """Ban the last token of each bad word whose other tokens end the output so far."""
    banned = {b: banned_bad_word_tokens(row.output_token_ids, row.bad_words_token_ids)
              for b, row in enumerate(rows)}
    return _set(logits, _pairs(banned), -float("inf"), out)


def banned_bad_word_tokens(output_token_ids: Sequence[int], bad_words_token_ids: Sequence[Sequence[int]]) -> list[int]:
    """Host: for each word [w1..wk], wk is banned when the output ends with [w1..w(k-1)].

    A one-token word is always banned. Only generated tokens count, never the prompt.
    """
    output = list(output_token_ids)
    banned = []
    for word in bad_words_token_ids:
        prefix = list(word[:-1])
        if len(prefix) <= len(output) and output[len(output) - len(prefix):] == prefix:
            banned.append(word[-1])
    return banned


def apply_min_tokens(logits: Any, rows: Sequence[Any], out: Any = None) -> Any:
    """Until `min_tokens` tokens were generated, the row's stop tokens (EOS, stop ids) are -inf."""
    masked = {b: sorted(row.stop_token_ids) for b, row in enumerate(rows)
              if len(row.output_token_ids) < row.params.min_tokens}
    return _set(logits, _pairs(masked), -float("inf"), out)


def apply_logit_bias(logits: Any, rows: Sequence[Any], out: Any = None) -> Any:
    """logits[b, t] += bias_t for each row's `logit_bias` (already clamped to [-100, 100])."""
    biased = {b: row.params.logit_bias for b, row in enumerate(rows) if row.params.logit_bias}
    if not biased:
        return logits
    xp = array_module(logits)
    row_ids, token_ids = _pairs({b: list(bias) for b, bias in biased.items()})
    bias = np.array([value for b in biased for value in biased[b].values()], dtype=np.float32)  # [K]
    r, t = _device(xp, row_ids), _device(xp, token_ids)
    biased_values = logits[r, t] + xp.asarray(bias)  # [K]
    out = _output(logits, out)  # [B, V]
    out[r, t] = biased_values  # a row's keys are distinct: no pair repeats
    return out


def apply_penalties(logits: Any, rows: Sequence[Any], out: Any = None) -> Any:
    """Repetition (prompt and output), then frequency and presence (output only), as vLLM.

    For every token t the row has seen, with count_t its occurrences in the output so far:

        repetition:  x_t <- x_t / r   if x_t > 0,   else  x_t * r
        frequency:   x_t <- x_t - f * count_t
        presence:    x_t <- x_t - p * [count_t > 0]

    Tokens the row has not seen are unchanged by all three, so only the seen entries are read,
    penalised and written back.
    """
    active = [b for b, row in enumerate(rows) if _has_penalty(row.params)]
    if not active:
        return logits
    xp = array_module(logits)
    seen = {b: seen_token_counts(rows[b].prompt_token_ids if rows[b].params.repetition_penalty != 1.0 else (),
                                 rows[b].output_token_ids) for b in active}
    row_ids, token_ids = _pairs({b: ids for b, (ids, _) in seen.items()})
    counts = np.concatenate([c for _, c in seen.values()]).astype(np.float32)  # [K]

    def per_pair(name: str) -> Any:  # one row's parameter, repeated for each of its pairs -> [K]
        return np.repeat(np.array([getattr(rows[b].params, name) for b in seen], dtype=np.float32),
                         [len(ids) for ids, _ in seen.values()])

    r, t = _device(xp, row_ids), _device(xp, token_ids)
    count = xp.asarray(counts)  # [K]
    repetition, frequency, presence = (xp.asarray(per_pair(name)) for name in
                                       ("repetition_penalty", "frequency_penalty", "presence_penalty"))
    x = logits[r, t]  # [K] the seen entries
    x = xp.where(x > 0, x / repetition, x * repetition)  # repetition
    x = x - frequency * count  # frequency
    x = x - presence * (count > 0)  # presence
    out = _output(logits, out)  # [B, V]
    out[r, t] = x
    return out


# The five in vLLM's order, as the sampler runs them.
PROCESSORS = (apply_allowed_token_ids, apply_bad_words, apply_min_tokens, apply_logit_bias, apply_penalties)


def seen_token_counts(prompt_token_ids: Sequence[int], output_token_ids: Sequence[int]) -> tuple[Any, Any]:
    """Host: the distinct tokens of prompt and output, and each one's count in the output.

    Returns (token_ids [S], output_counts [S]); prompt-only tokens have count 0.
    """
    output_ids, output_counts = np.unique(np.asarray(output_token_ids, dtype=np.int64), return_counts=True)
    prompt_only = np.setdiff1d(np.asarray(prompt_token_ids, dtype=np.int64), output_ids)  # sorted, distinct
    return (np.concatenate([output_ids, prompt_only]),
            np.concatenate([output_counts, np.zeros(len(prompt_only), dtype=np.int64)]))


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def _has_penalty(params: Any) -> bool:
    return params.repetition_penalty != 1.0 or params.frequency_penalty != 0.0 or params.presence_penalty != 0.0


def _pairs(tokens_by_row: dict[int, Any]) -> tuple[Any, Any]:
    """Host: {row: [token, ...]} -> (row ids [K], token ids [K]) as int64 arrays."""
    lengths = [len(tokens) for tokens in tokens_by_row.values()]
    row_ids = np.repeat(np.array(list(tokens_by_row), dtype=np.int64), lengths)
    token_ids = np.concatenate([np.asarray(t, dtype=np.int64) for t in tokens_by_row.values()] or
                               [np.zeros(0, dtype=np.int64)])
    return row_ids, token_ids


def _set(logits: Any, pairs: tuple[Any, Any], value: float, out: Any) -> Any:
    """logits with [b, t] = value at the given pairs, in `out` or a copy (logits itself if no pairs)."""
    row_ids, token_ids = pairs
    if len(row_ids) == 0:
        return logits
    xp = array_module(logits)
    out = _output(logits, out)  # [B, V]
    out[_device(xp, row_ids), _device(xp, token_ids)] = value
    return out


def _output(logits: Any, out: Any) -> Any:
    """Where a processor writes: `out` holding a copy of logits, or a fresh copy."""
    if out is None:
        return logits.copy()  # [B, V]
    if out is not logits:
        out[...] = logits
    return out


def _device(xp: Any, host_values: Any) -> Any:
    """Host index values -> an int64 device array (the explicit host->device copy)."""
    return xp.asarray(np.asarray(host_values, dtype=np.int64))


# ------------------------------------------------------------------------------------------------
# Their parameters
# ------------------------------------------------------------------------------------------------


def check_processor_params(params: SamplingParams) -> None:
    """SamplingParams' checks of the token lists the processors read (model-free); `logit_bias` keys
    become ints. (The penalties are numbers whose defaults a wrong type can equal, so params.py checks them.)"""
    if params.logit_bias is not None:  # JSON keys arrive as strings; values are clamped
        params.logit_bias = _normalise_logit_bias(params.logit_bias)
    check(all(isinstance(w, str) for w in params.bad_words), f"bad_words must be strings, got {params.bad_words!r}.")
    check(all(params.bad_words), f"bad_words cannot contain an empty string. Got bad_words={params.bad_words}")
    if params.allowed_token_ids is not None:
        check(len(params.allowed_token_ids) > 0, "allowed_token_ids is not None and empty!")
        check(all(is_int(t) for t in params.allowed_token_ids),
              f"allowed_token_ids must contain only integers, got {params.allowed_token_ids}.")


def verify_processor_params(params: SamplingParams, vocab_size: int) -> None:
    """`SamplingParams.verify`'s share for the processors: their token ids inside the vocabulary."""
    check_in_vocabulary("logit_bias", list(params.logit_bias or {}), vocab_size)
    check_in_vocabulary("allowed_token_ids", params.allowed_token_ids or [], vocab_size)
    _check_bad_word_ids(params.bad_words_token_ids or [], vocab_size)


def request_bad_words(params: SamplingParams, tokenizer: Any, vocab_size: int) -> list[list[int]]:
    """A request's `bad_words` tokenized with the model's tokenizer (ids checked against its vocabulary),
    or as the caller tokenized them already (`params.bad_words_token_ids`, checked by `verify`)."""
    if params.bad_words_token_ids is not None:
        return params.bad_words_token_ids
    if tokenizer is None:
        raise ValueError("bad_words need a tokenizer (the engine runs with skip_tokenizer_init)")
    return tokenize_bad_words(params.bad_words, lambda s: tokenizer.encode(s, add_special_tokens=False), vocab_size)


def tokenize_bad_words(bad_words: list[str], encode: Callable[[str], list[int]],
                       vocab_size: int | None = None) -> list[list[int]]:
    """Token sequences to ban, as vLLM builds them.

    Each word is encoded (no special tokens) bare, `word.lstrip()`, and with one leading space.
    The spaced variant is kept only when it has as many tokens as the bare one and a different
    first token (otherwise it is the same word, tokenized the same way). A word whose bare form
    encodes to nothing is an error; `vocab_size`, when given, bounds every token id.
    """
    sequences: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()  # de-duplication in linear time, first occurrence kept
    for word in bad_words:
        bare = list(encode(word.lstrip()))
        check(bool(bare), "bad_words entries must tokenize to at least one token.")
        spaced = list(encode(" " + word.lstrip()))
        for ids in [bare] + ([spaced] if len(spaced) == len(bare) and spaced[0] != bare[0] else []):
            if tuple(ids) not in seen:
                seen.add(tuple(ids))
                sequences.append(ids)
    if vocab_size is not None:
        _check_bad_word_ids(sequences, vocab_size)
    return sequences


def _check_bad_word_ids(sequences: Sequence[Sequence[int]], vocab_size: int) -> None:
    bad = [t for ids in sequences for t in ids if not 0 <= t < vocab_size]
    check(not bad, f"The model vocabulary size is {vocab_size}, but the following tokens were specified "
                   f"as bad: {bad}. All token id values should be integers satisfying: "
                   f"0 <= token_id <= {vocab_size - 1}.")


def _normalise_logit_bias(logit_bias: dict[Any, Any]) -> dict[int, float]:
    """String or int keys -> int token ids; values clamped to [-100, 100] (vLLM's from_optional)."""
    bias: dict[int, float] = {}
    invalid = []
    for key, value in logit_bias.items():
        try:
            token_id = int(key)
        except (TypeError, ValueError):
            invalid.append(key)
            continue
        check(is_number(value) and not math.isnan(value),
              f"logit_bias values must be numbers in [-100, 100], got {value!r} for token {token_id}.")
        bias[token_id] = min(MAX_LOGIT_BIAS, max(-MAX_LOGIT_BIAS, float(value)))
    check(not invalid, f"logit_bias contains key(s) that cannot be converted to integer token IDs: {invalid!r}")
    return bias
