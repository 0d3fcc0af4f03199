"""Losses (utils/losses.py) against direct formulas."""
import math

import pytest
import torch

from utils.losses import (at_loss, attention_map, dkd_loss, kd_loss, lskd_loss, mixed_cross_entropy, mixed_dkd_loss,
                          sp_batch_loss, sp_loss, standardise)


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


def test_dkd_by_hand_on_three_classes():
    # T = 1, target 0. Teacher softmax(2, 0, 0) = (.78699, .10651, .10651), student softmax(1, 0, -1) =
    # (.66524, .24473, .09003). TCKD = KL((.78699, .21301) || (.66524, .33476)) = 0.035968; over the two
    # non-target classes the teacher is (.5, .5), the student (.73106, .26894): NCKD = 0.120115.
    s, t, y = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0])
    assert dkd_loss(s, t, y, alpha=1.0, beta=0.0, T=1.0).item() == pytest.approx(0.035968, rel=1e-4)
    assert dkd_loss(s, t, y, alpha=0.0, beta=1.0, T=1.0).item() == pytest.approx(0.120115, rel=1e-4)
    assert dkd_loss(s, t, y, alpha=1.0, beta=8.0, T=1.0).item() == pytest.approx(0.996884, rel=1e-4)
    # T = 2: the T^2 factor, on logits halved.
    assert dkd_loss(2 * s, 2 * t, y, 1.0, 8.0, T=2.0).item() == pytest.approx(4 * 0.996884, rel=1e-4)


def test_dkd_with_beta_one_minus_the_teachers_target_probability_is_kd():
    """The DKD paper's identity KD = TCKD + (1 - p_t) NCKD, per image, at temperature T."""
    torch.manual_seed(0)
    s, t, y, T = torch.randn(5, 10), torch.randn(5, 10), torch.randint(0, 10, (5,)), 4.0
    p_target = (t / T).softmax(1).gather(1, y[:, None]).squeeze(1)
    assert dkd_loss(s, t, y, 1.0, 1 - p_target, T).item() == pytest.approx(kd_loss(s, t, T).item(), rel=1e-5)


def test_dkd_stays_finite_when_the_teacher_is_certain():
    s, t, y = torch.tensor([[0.0, 0.0, 0.0]], requires_grad=True), torch.tensor([[200.0, 0.0, -5.0]]), torch.tensor([0])
    loss = dkd_loss(s, t, y, 1.0, 8.0, 1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_mixed_dkd_rule_plain_at_m_zero_and_symmetric_in_the_labels():
    torch.manual_seed(1)
    s, t = torch.randn(6, 10), torch.randn(6, 10)
    y_a, y_b, m = torch.randint(0, 10, (6,)), torch.randint(0, 10, (6,)), torch.rand(6)
    assert torch.equal(mixed_dkd_loss(s, t, y_a, y_b, torch.zeros(6), 1.0, 8.0, 4.0), dkd_loss(s, t, y_a, 1.0, 8.0, 4.0))
    swapped = mixed_dkd_loss(s, t, y_b, y_a, 1 - m, 1.0, 8.0, 4.0)
    assert mixed_dkd_loss(s, t, y_a, y_b, m, 1.0, 8.0, 4.0).item() == pytest.approx(swapped.item(), rel=1e-6)
    # Per image it is the weighted sum of DKD against each label.
    one = mixed_dkd_loss(s[:1], t[:1], y_a[:1], y_b[:1], m[:1], 1.0, 8.0, 4.0)
    by_hand = (1 - m[0]) * dkd_loss(s[:1], t[:1], y_a[:1], 1.0, 8.0, 4.0) + m[0] * dkd_loss(s[:1], t[:1], y_b[:1], 1.0, 8.0, 4.0)
    assert one.item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_mixed_dkd_weighted_rule_by_hand_on_three_classes():
    # The image of test_dkd_by_hand_on_three_classes with labels 0 (weight 0.75) and 1 (weight 0.25), T = 1.
    # Against label 1: teacher (.10651, .89349), student (.24473, .75527): TCKD = 0.061554; over classes
    # 0 and 2 the teacher is (.88080, .11920), the student (.88080, .11920): NCKD = 0.
    s, t = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64), torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64)
    loss = mixed_dkd_loss(s, t, torch.tensor([0]), torch.tensor([1]), torch.tensor([0.25], dtype=torch.float64),
                          1.0, 8.0, 1.0)
    assert loss.item() == pytest.approx(0.75 * 0.996884 + 0.25 * 0.061554, rel=1e-4)


def test_mixed_dkd_split_rule_by_hand_on_four_classes():
    # Labels 1 and 2 (m = 0.3), T = 2: the three-way split [p1, p2, p0 + p3] and the distribution over 0 and 3.
    # Teacher softmax((.3, 1.5, 2, 0) / 2) = (.16604, .30255, .38849, .14292), student softmax((1, 2, .5, -1) / 2)
    # = (.26348, .43440, .20520, .09693): TCKD = KL((.30255, .38849, .30896) || (.43440, .20520, .36041))
    # = 0.090948; over classes 0 and 3 the teacher is (.53743, .46257), the student (.73106, .26894):
    # NCKD = 0.085489. Loss = T^2 (TCKD + 8 NCKD) = 3.09945; the gradient is checked in float64.
    s = torch.tensor([[1.0, 2.0, 0.5, -1.0]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[0.3, 1.5, 2.0, 0.0]], dtype=torch.float64)
    y_a, y_b, m = torch.tensor([1]), torch.tensor([2]), torch.tensor([0.3], dtype=torch.float64)
    loss = mixed_dkd_loss(s, t, y_a, y_b, m, 1.0, 8.0, 2.0, rule="split")
    assert loss.item() == pytest.approx(4 * (0.090948 + 8 * 0.085489), rel=1e-4)
    assert torch.autograd.gradcheck(lambda x: mixed_dkd_loss(x, t, y_a, y_b, m, 1.0, 8.0, 2.0, rule="split"), (s,))


def test_mixed_dkd_split_rule_is_plain_dkd_for_an_image_with_one_label():
    torch.manual_seed(2)
    s, t = torch.randn(6, 10), torch.randn(6, 10)
    y_a, y_b, m = torch.randint(0, 10, (6,)), torch.randint(0, 10, (6,)), torch.rand(6)
    plain = dkd_loss(s, t, y_a, 1.0, 8.0, 4.0)
    assert mixed_dkd_loss(s, t, y_a, y_b, torch.zeros(6), 1.0, 8.0, 4.0, "split").item() == pytest.approx(plain.item())
    assert mixed_dkd_loss(s, t, y_a, y_a, m, 1.0, 8.0, 4.0, "split").item() == pytest.approx(plain.item())
    # With two labels it is another loss than the weighted rule's.
    assert mixed_dkd_loss(s, t, y_a, (y_a + 1) % 10, m, 1.0, 8.0, 4.0, "split").item() != pytest.approx(
        mixed_dkd_loss(s, t, y_a, (y_a + 1) % 10, m, 1.0, 8.0, 4.0).item())


def test_mixed_dkd_split_rule_stays_finite_when_the_teacher_is_certain():
    s = torch.zeros(2, 3, requires_grad=True)
    t = torch.tensor([[200.0, 0.0, -5.0], [0.0, 300.0, 0.0]])
    loss = mixed_dkd_loss(s, t, torch.tensor([0, 0]), torch.tensor([1, 0]), torch.tensor([0.5, 0.5]), 1.0, 8.0, 1.0,
                          "split")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_lskd_by_hand_and_standardisation():
    # z-scores (Bessel's std): student (1, 2, 3) -> (-1, 0, 1); teacher (0, 0, 3): mean 1, std sqrt 3 ->
    # (-1, -1, 2) / sqrt 3. At T = 2: 4 * KL(softmax(z_t / 2) || softmax(z_s / 2)) = 0.067279.
    s, t = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.0, 0.0, 3.0]])
    assert torch.allclose(standardise(s, 1e-7), torch.tensor([[-1.0, 0.0, 1.0]]), atol=1e-6)
    assert lskd_loss(s, t, T=2.0, eps=1e-7).item() == pytest.approx(0.067279, rel=1e-4)
    # Scale and shift of either network's logits do not matter, unlike plain KD.
    assert lskd_loss(10 * s - 3, t, 2.0, 1e-7).item() == pytest.approx(0.067279, rel=1e-4)


def test_standardising_a_constant_row_needs_the_epsilon():
    constant = torch.full((1, 4), 5.0)
    assert torch.equal(standardise(constant, 1e-7), torch.zeros(1, 4))
    assert torch.isnan(standardise(constant, 0.0)).all()  # why --ls-eps must be positive
