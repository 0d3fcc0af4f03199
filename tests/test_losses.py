"""Losses (utils/losses.py) against direct formulas."""
import math

import pytest
import torch

from utils.losses import at_loss, attention_map, kd_loss, mixed_cross_entropy, sp_loss


def test_kd_loss_is_t_squared_kl_averaged_over_the_batch():
    torch.manual_seed(0)
    s, t, T = torch.randn(4, 5), torch.randn(4, 5), 4.0
    p_s, p_t = (s / T).softmax(1), (t / T).softmax(1)
    expected = sum((p_t[i] * (p_t[i].log() - p_s[i].log())).sum() for i in range(4)) / 4 * T * T
    assert kd_loss(s, t, T).item() == pytest.approx(expected.item(), rel=1e-5)


def test_kd_loss_vanishes_when_student_equals_teacher():
    logits = torch.randn(3, 7)
    assert kd_loss(logits, logits.clone(), 4.0).item() == pytest.approx(0.0, abs=1e-6)


def test_mixed_cross_entropy_weights_the_two_labels():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    y_a, y_b, m = torch.tensor([0, 1]), torch.tensor([2, 0]), torch.tensor([0.25, 0.5])

    def ce(row, label):
        return -math.log(math.exp(row[label]) / sum(math.exp(v) for v in row))

    rows = logits.tolist()
    expected = ((0.75 * ce(rows[0], 0) + 0.25 * ce(rows[0], 2)) + (0.5 * ce(rows[1], 1) + 0.5 * ce(rows[1], 0))) / 2
    assert mixed_cross_entropy(logits, y_a, y_b, m).item() == pytest.approx(expected, rel=1e-6)


def test_attention_map_is_normalised_channel_mean_of_squares():
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])  # 1 image, 2 channels, 1x2
    raw = torch.tensor([(1 + 9) / 2, (4 + 0) / 2])
    assert torch.allclose(attention_map(f), (raw / raw.norm()).view(1, 2))


def test_at_loss_sums_mean_squared_attention_differences_and_pools_the_larger_map():
    torch.manual_seed(0)
    fs = [torch.rand(2, 4, 8, 8), torch.rand(2, 4, 4, 4)]
    ft = [torch.rand(2, 6, 4, 4), torch.rand(2, 6, 4, 4)]
    pooled = torch.nn.functional.avg_pool2d(fs[0], 2)
    expected = ((attention_map(pooled) - attention_map(ft[0])) ** 2).mean() \
        + ((attention_map(fs[1]) - attention_map(ft[1])) ** 2).mean()
    assert at_loss(fs, ft).item() == pytest.approx(expected.item(), rel=1e-6)


def test_sp_loss_by_explicit_gram_matrices():
    torch.manual_seed(0)
    fs, ft = torch.randn(3, 2, 2, 2), torch.randn(3, 5, 1, 1)

    def gram(f):
        flat = f.reshape(3, -1)
        g = flat @ flat.T
        return g / g.norm(dim=1, keepdim=True)

    expected = ((gram(ft) - gram(fs)) ** 2).sum() / 9
    assert sp_loss(fs, ft).item() == pytest.approx(expected.item(), rel=1e-5)
