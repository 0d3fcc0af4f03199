"""The UNIX step (utils/unix.py) against hand-computed expectations."""
import math
from pathlib import Path

import pytest
import torch

from utils import unix
from utils.unix import (largest_mixing_weight, mixing_weights, rank_by_uncertainty, uncertainty_aware_mixup,
                        uncertainty_scores)
from utils.unix_settings import STRATEGIES

DOCS = Path(__file__).resolve().parents[1] / "docs"

# Two images with known class probabilities: a confident one and an ambiguous one.
PROBS = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]])
LOGITS = PROBS.log()


def entropy(p):
    return -sum(q * math.log(q) for q in p)


def test_least_confidence_is_one_minus_top_probability():
    assert uncertainty_scores(LOGITS, 1).tolist() == pytest.approx([0.3, 0.6], abs=1e-6)


def test_margin_is_minus_top1_minus_top2():
    assert uncertainty_scores(LOGITS, 2).tolist() == pytest.approx([-0.5, 0.0], abs=1e-6)


def test_entropy_of_the_prediction():
    expected = [entropy([0.7, 0.2, 0.1]), entropy([0.4, 0.4, 0.2])]
    assert uncertainty_scores(LOGITS, 3).tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("strategy", [1, 2, 3])
def test_uniform_prediction_is_the_most_uncertain(strategy):
    logits = torch.cat([LOGITS[:1], torch.zeros(1, 3)])
    assert uncertainty_scores(logits, strategy).argmax() == 1


def test_a_one_hot_prediction_has_entropy_zero_and_ranks_least_uncertain():
    # softmax then log would give 0 * log 0 = NaN here, which a descending sort ranks first.
    logits = torch.tensor([[1000.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    scores = uncertainty_scores(logits, 3)
    assert scores[0].item() == 0.0 and rank_by_uncertainty(scores).tolist() == [1, 0]


def test_random_strategy_gives_one_uniform_score_per_image():
    torch.manual_seed(0)
    scores = uncertainty_scores(torch.zeros(1000, 5), 0)
    assert scores.shape == (1000,) and 0 <= scores.min() and scores.max() < 1
    assert abs(scores.mean().item() - 0.5) < 0.05


def test_each_strategy_names_a_scoring_function_of_utils_unix():
    for strategy in STRATEGIES.values():
        assert callable(getattr(unix, strategy.scores)), strategy


def test_the_docs_list_the_papers_four_strategies_as_the_table_names_them():
    papers = ", ".join(f"{number} {STRATEGIES[number].name}" for number in range(4))
    assert papers == "0 random, 1 least confidence, 2 margin, 3 entropy"
    for page in ("training.md", "unix-step.md"):
        assert papers in (DOCS / page).read_text(), page


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match=f"got {max(STRATEGIES) + 1}"):
        uncertainty_scores(LOGITS, max(STRATEGIES) + 1)


def test_rank_puts_most_uncertain_first_and_keeps_ties_in_batch_order():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.9])
    assert rank_by_uncertainty(scores).tolist() == [1, 3, 2, 0]


def test_adaptive_curve_matches_the_formula():
    B, b, w, lam = 64, 32, 10.0, 0.8
    m = mixing_weights(B, B, b, w, lam, 2)
    for r in (0, 31, 32, 63):
        expected = lam / (1 + math.exp(-w * (r / B - (2 * b - 1) / (2 * B))))
        assert m[r].item() == pytest.approx(expected, rel=1e-5)


def test_adaptive_curve_keeps_the_b_most_uncertain_nearly_clean():
    m = mixing_weights(64, 64, 32, 1000.0, 0.6, 2)
    assert m[:32].max() < 1e-3 and m[32:].min() > 0.6 - 1e-3
    assert torch.all(m[1:] >= m[:-1])
    # The curve is centred between positions b-1 and b.
    assert (m[31] + m[32]).item() == pytest.approx(0.6, rel=1e-5)


def test_last_smaller_batch_uses_the_full_batch_curve():
    full = mixing_weights(64, 64, 32, 10.0, 0.5, 2)
    assert torch.allclose(mixing_weights(20, 64, 32, 10.0, 0.5, 2), full[:20])


def test_no_mixing_and_plain_mixup():
    assert torch.equal(mixing_weights(8, 64, 32, 10.0, 0.3, 0), torch.zeros(8))
    assert torch.allclose(mixing_weights(8, 64, 32, 10.0, 0.3, 1), torch.full((8,), 0.3))


def test_largest_mixing_weight_is_the_last_position_at_lambda_one():
    # b = B: the last position sits half a step before the curve's centre, sigmoid(-w / 2B).
    assert largest_mixing_weight(64, 64, 1000.0, 2) == pytest.approx(1 / (1 + math.exp(1000 / 128)), rel=1e-5)
    assert largest_mixing_weight(64, 64, 10.0, 2) == pytest.approx(1 / (1 + math.exp(10 / 128)), rel=1e-5)
    assert largest_mixing_weight(64, 32, 10.0, 2) == pytest.approx(1 / (1 + math.exp(-10 * 63 / 128)), rel=1e-5)
    assert (largest_mixing_weight(64, 64, 10.0, 0), largest_mixing_weight(64, 64, 10.0, 1)) == (0.0, 1.0)


def make_batch(n=8):
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 2, 2).clone()
    y = torch.arange(n) + 100
    scores = torch.tensor([0.2, 0.9, 0.1, 0.5, 0.7, 0.3, 0.8, 0.4])[:n]
    return x, y, scores


def test_mixup_by_hand():
    x, y, scores = make_batch()
    torch.manual_seed(3)
    out = uncertainty_aware_mixup(x, y, scores, k=5, b=3, w=10.0, batch_size=8, mix_strategy=2)
    torch.manual_seed(3)  # the same draws in the same order: lambda, then the partner permutation
    lam = torch.rand(())
    partner = torch.rand(8).argsort()
    rank = [1, 6, 4, 3, 7]  # scores sorted, most uncertain first, first k=5
    m = [lam.item() / (1 + math.exp(-10 * (r / 8 - 5 / 16))) for r in range(5)]
    for r in range(5):
        expected = (1 - m[r]) * rank[r] + m[r] * partner[r].item()
        assert out.inputs[r, 0, 0, 0].item() == pytest.approx(expected, rel=1e-5)
    assert out.targets_a.tolist() == [100 + i for i in rank]
    assert out.targets_b.tolist() == (partner[:5] + 100).tolist()
    assert out.mix.tolist() == pytest.approx(m, rel=1e-5)
    assert out.rank.tolist()[:5] == rank


def test_selection_keeps_the_first_k_and_no_mixing_keeps_images_intact():
    x, y, scores = make_batch()
    out = uncertainty_aware_mixup(x, y, scores, k=4, b=2, w=10.0, batch_size=8, mix_strategy=0)
    assert out.inputs.shape[0] == 4
    assert torch.equal(out.inputs, x[[1, 6, 4, 3]])
    assert torch.equal(out.mix, torch.zeros(4))


def test_k_larger_than_a_short_last_batch_keeps_all_of_it():
    x, y, scores = make_batch(5)
    out = uncertainty_aware_mixup(x, y, scores, k=48, b=32, w=10.0, batch_size=64, mix_strategy=2)
    assert out.inputs.shape[0] == 5 and len(out.rank) == 5
