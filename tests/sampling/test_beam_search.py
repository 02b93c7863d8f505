"""Beam search equals exhaustive search when the beam is wide enough, and ranks as vLLM does."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pyengine.sampling.beam_search import beam_search

V, EOS = 4, 3


def toy_model(seed=0):
    """Next-token log-probabilities that depend on the whole sequence (hashed), deterministic."""
    def next_token_logprobs(sequences):
        rows = []
        for seq in sequences:
            rng = np.random.default_rng(abs(hash(tuple(seq))) % (2**32) + seed)
            x = rng.normal(0, 2, V)
            rows.append(x - np.log(np.exp(x).sum()))
        return np.array(rows)
    return next_token_logprobs


def exhaustive(prompt, model, depth, length_penalty, width):
    """Every sequence up to `depth` tokens, ending at EOS or at depth, scored like vLLM."""
    hypotheses = []
    for length in range(1, depth + 1):
        for tokens in itertools.product(range(V), repeat=length):
            if EOS in tokens[:-1] or (length < depth and tokens[-1] != EOS):
                continue
            cum = sum(model([list(prompt) + list(tokens[:i])])[0][tokens[i]] for i in range(length))
            size = len(prompt) + length - (1 if tokens[-1] == EOS else 0)
            hypotheses.append((cum / size ** length_penalty, list(tokens)))
    hypotheses.sort(key=lambda h: h[0], reverse=True)
    return hypotheses[:width]


@pytest.mark.parametrize("length_penalty", [1.0, 0.0, 2.0])
def test_wide_beam_equals_exhaustive_search(length_penalty):
    prompt, model = [0, 1], toy_model()
    width = V ** 3  # wide enough to keep every live sequence: the search is exact
    result = beam_search(prompt, model, beam_width=width, max_tokens=3, eos_token_id=EOS,
                         length_penalty=length_penalty, include_stop_str_in_output=True)
    best = exhaustive(prompt, model, 3, length_penalty, 3)
    assert [h.token_ids for h in result[:3]] == [tokens for _, tokens in best]
    np.testing.assert_allclose([h.score for h in result[:3]], [score for score, _ in best])


def test_length_penalty_ranking_by_hand():
    """Two finished hypotheses: A = [EOS] after 1 step (cum -1.0), B = [1, EOS] (cum -1.5).
    Prompt has 2 tokens, EOS does not count. A: length 2, B: length 3.
    length_penalty 1: A = -0.5, B = -0.5 -> tie (A first: found first).  penalty 2: A = -0.25,
    B = -0.1667 -> B first.  penalty 0: A = -1.0, B = -1.5 -> A first."""
    table = {(0, 0): [-9, -0.5, -9, -1.0], (0, 0, 1): [-9, -9, -9, -1.0]}

    def model(sequences):
        return np.array([table.get(tuple(s), [-9, -9, -9, -0.1]) for s in sequences], dtype=float)

    def best(lp):
        return beam_search([0, 0], model, beam_width=1, max_tokens=2, eos_token_id=EOS, length_penalty=lp)[0]

    assert best(2.0).token_ids == [1]  # B (EOS excluded from the output by default)
    assert best(0.0).token_ids == [] and best(0.0).finish_reason == "stop"  # A
    assert best(2.0).cum_logprob == pytest.approx(-1.5)


def test_ignore_eos_keeps_searching_to_max_tokens():
    result = beam_search([0], toy_model(1), beam_width=2, max_tokens=4, eos_token_id=EOS, ignore_eos=True)
    assert all(len(h.token_ids) == 4 and h.finish_reason == "length" for h in result)


def test_finished_hypotheses_report_stop_and_keep_eos_only_when_asked():
    table = {(0,): [-0.1, -9, -9, -2.5], (0, 0): [-9, -9, -9, -0.05]}

    def model(sequences):
        return np.array([table.get(tuple(s), [-9, -9, -0.2, -9]) for s in sequences], dtype=float)

    [best] = beam_search([0], model, beam_width=1, max_tokens=3, eos_token_id=EOS)
    assert best.token_ids == [0] and best.finish_reason == "stop" and best.stop_reason == EOS
    assert best.cum_logprob == pytest.approx(-0.15)
    [with_eos] = beam_search([0], model, beam_width=1, max_tokens=3, eos_token_id=EOS, include_stop_str_in_output=True)
    assert with_eos.token_ids == [0, EOS] and with_eos.score == pytest.approx(best.score)  # EOS not in the length


def test_per_step_logprobs_list_the_chosen_token_first_then_the_top_2w():
    def model(sequences):
        return np.log(np.array([[0.1, 0.6, 0.2, 0.1]] * len(sequences)))

    [best] = beam_search([2], model, beam_width=1, max_tokens=2, eos_token_id=None)
    assert best.token_ids == [1, 1] and len(best.logprobs) == 2
    step = best.logprobs[0]
    assert step.token_ids == [1, 1, 2] and step.ranks == [1, 1, 2]
    np.testing.assert_allclose(step.logprobs, np.log([0.6, 0.6, 0.2]))


def test_scores_match_vllms_formula():
    from pyengine.sampling.beam_search import beam_score

    assert beam_score([1, 2, 3, 4], -2.0, eos_token_id=4, length_penalty=1.0) == pytest.approx(-2.0 / 3)
    assert beam_score([1, 2, 3, 4], -2.0, eos_token_id=9, length_penalty=2.0) == pytest.approx(-2.0 / 16)


def test_device_rows_copy_back_only_the_candidates():
    from pyengine.backend import get_backend

    backend = get_backend("fake")
    model = toy_model(3)
    host = beam_search([0, 1], model, beam_width=2, max_tokens=3, eos_token_id=EOS)
    device = beam_search([0, 1], lambda seqs: backend.to_device(model(seqs)), beam_width=2, max_tokens=3,
                         eos_token_id=EOS, backend=backend)
    assert [(h.token_ids, h.score) for h in host] == [(h.token_ids, h.score) for h in device]
    assert backend.transfers.device_to_host <= 3  # one [2, W, 2W] copy per step


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="beam_width >= 1"):
        beam_search([0], toy_model(), beam_width=0, max_tokens=2, eos_token_id=EOS)
    with pytest.raises(ValueError, match="returned shape"):
        beam_search([0], lambda seqs: np.zeros((5, V)), beam_width=2, max_tokens=2, eos_token_id=EOS)
