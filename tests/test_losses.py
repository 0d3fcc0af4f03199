"""Losses (utils/losses.py) against direct formulas."""
import math

import pytest
import torch

from utils.losses import at_loss, attention_map, kd_loss, mixed_cross_entropy, sp_batch_loss, sp_loss


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


def test_sp_batch_loss_by_explicit_gram_matrices():
    torch.manual_seed(0)
    fs, ft = torch.randn(3, 2, 2, 2), torch.randn(3, 5, 1, 1)

    def gram(f):
        flat = f.reshape(3, -1)
        g = flat @ flat.T
        return g / g.norm(dim=1, keepdim=True)

    expected = ((gram(ft) - gram(fs)) ** 2).sum() / 9
    assert sp_batch_loss(fs, ft).item() == pytest.approx(expected.item(), rel=1e-5)


# By hand: student rows (1, 0), (0, 1) give the Gram I; teacher rows (1, 1), (1, 1) give a Gram of 2s,
# rows normalised to 1/sqrt(2). ||G_t - G_s||^2 = 2 (1 - 1/sqrt(2))^2 + 2 (1/2) = 4 - 2 sqrt(2); / 2^2.
HAND_SP = 1 - math.sqrt(2) / 2


def test_sp_batch_loss_by_hand_compares_images():
    fs = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(2, 2, 1, 1)  # 2 images, 2 channels
    ft = torch.ones(2, 3, 1, 1)
    assert sp_batch_loss(fs, ft).item() == pytest.approx(HAND_SP, rel=1e-6)


def test_sp_loss_by_hand_compares_channels_and_reshapes_the_teacher_to_the_students():
    fs = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 1, 2)  # 1 image, 2 channels of 1x2
    ft = torch.ones(1, 1, 2, 2)  # 1 channel of 2x2: its 4 values become 2 rows of 2
    assert sp_loss(fs, ft).item() == pytest.approx(HAND_SP, rel=1e-6)
    # A second image whose maps agree adds nothing: the loss is a sum over images, not a mean.
    twice = sp_loss(torch.cat([fs, fs]), torch.cat([ft, fs.reshape(1, 1, 2, 2)]))
    assert twice.item() == pytest.approx(HAND_SP, rel=1e-6)


def test_sp_loss_is_the_sum_of_per_image_channel_gram_differences():
    torch.manual_seed(0)
    fs, ft = torch.randn(3, 4, 2, 2), torch.randn(3, 8, 2, 1)

    def per_image(f_s, f_t):
        a, b = f_s.reshape(4, -1), f_t.reshape(4, -1)
        g_s, g_t = a @ a.T, b @ b.T
        g_s, g_t = g_s / g_s.norm(dim=1, keepdim=True), g_t / g_t.norm(dim=1, keepdim=True)
        return ((g_t - g_s) ** 2).sum() / 16

    expected = sum(per_image(fs[i], ft[i]) for i in range(3))
    assert sp_loss(fs, ft).item() == pytest.approx(expected.item(), rel=1e-5)
