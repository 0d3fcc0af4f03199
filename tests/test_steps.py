"""The distillation step: which passes run on which images, and what gets counted."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from models import model_dict
from utils.errors import UserError
from utils.losses import dkd_loss, dkd_per_image, kd_loss, lskd_loss, sp_batch_loss, sp_loss
from utils.training.computation_meter import ComputationMeter
from utils.training.selection import SelectionCounter
from utils.training.steps import DistillConfig, UnixDistillStep, check_feature_pair


class Recording(torch.nn.Module):
    """Wraps a model and records the batch size of every forward, and the last input."""

    def __init__(self, model):
        super().__init__()
        self.model, self.batches = model, []

    def forward(self, x, **kwargs):
        self.batches.append(x.shape[0])
        self.last_input = x
        return self.model(x, **kwargs)


EPOCHS = 240  # enough for any epoch a test starts


def make_step(**config):
    torch.manual_seed(0)
    student = Recording(model_dict["resnet8"](num_classes=100))
    teacher = Recording(model_dict["resnet8"](num_classes=100).eval())
    cfg = DistillConfig(batch_size=8, **config)
    step = UnixDistillStep(student, teacher, cfg, SelectionCounter(EPOCHS, 100, "cpu"), ComputationMeter(10, 1))
    return step, student, teacher


def batch(n=8):
    return torch.randn(n, 3, 32, 32), torch.randint(0, 100, (n,)), torch.arange(50, 50 + n)


def test_unix_scores_the_whole_batch_then_trains_on_k():
    step, student, teacher = make_step(k=6, b=4, w=10.0, strategy=3)
    out = step(*batch())
    step.account(8)
    assert student.batches == [8, 6] and teacher.batches == [6]
    assert out.logits.shape == (6, 100) and set(out.losses) == {"kd"}
    counts = step.meter.as_dict()
    assert (counts["teacher_images"], counts["scoring_images"], counts["student_images"]) == (6, 8, 6)


def test_counter_records_the_b_most_uncertain_by_dataset_index():
    step, student, _ = make_step(k=6, b=3, w=10.0, strategy=1)
    x, y, idx = batch()
    with torch.no_grad():
        confidence = student.model(x).softmax(1).max(1).values
    step(x, y, idx)
    least_confident = set((idx[confidence.argsort()[:3]]).tolist())
    assert set(step.counter.to_numpy()[0].nonzero()[0].tolist()) == least_confident


def test_conventional_kd_skips_scoring_and_mixing():
    step, student, teacher = make_step(k=8, b=8, w=1000.0, strategy=0)
    x, y, idx = batch()
    out = step(x, y, idx)
    step.account(8)
    assert student.batches == [8] and teacher.batches == [8]
    assert torch.equal(out.targets, y) and out.stats == {}
    assert step.meter.as_dict()["computation"] == pytest.approx(100.0)


def test_the_kd_fast_path_needs_a_curve_that_mixes_nothing():
    published_kd = dict(batch_size=64, k=64, b=64, strategy=0)
    assert DistillConfig(**published_kd, w=1000.0).conventional_kd  # largest weight 4.04e-4
    assert not DistillConfig(**published_kd, w=10.0).conventional_kd  # up to 0.48 lambda
    assert DistillConfig(**published_kd, w=10.0, mix_strategy=0).conventional_kd
    assert not DistillConfig(**published_kd, w=1000.0, mix_strategy=1).conventional_kd


def test_random_order_with_every_image_kept_still_mixes_as_the_curve_says():
    step, student, teacher = make_step(k=8, b=8, w=10.0, strategy=0)
    x, y, idx = batch()
    torch.manual_seed(5)
    out = step(x, y, idx)
    torch.manual_seed(5)  # the step's draws, in its order: scores, lambda, partners
    rank = torch.sort(torch.rand(8), descending=True, stable=True).indices
    lam, partner = torch.rand(()).item(), torch.rand(8).argsort()
    m = torch.tensor([lam / (1 + math.exp(-10 * (r / 8 - 15 / 16))) for r in range(8)]).view(8, 1, 1, 1)
    assert student.batches == [8, 8] and out.stats
    assert torch.allclose(teacher.last_input, (1 - m) * x[rank] + m * x[partner], atol=1e-6)
    total, count = out.stats["select/mix_weight_kept"]  # the mean mixing weight of the images kept
    assert count == 8 and total.item() == pytest.approx(m.sum().item(), rel=1e-6)
    assert m.max() > 0.1 * lam


def batchnorms(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_kd_baseline_batchnorm_statistics_are_those_of_a_scoring_pass_then_the_training_pass():
    batches = [batch(), batch()]
    torch.manual_seed(0)  # make_step's student, before any step changes it
    reference = model_dict["resnet8"](num_classes=100).train()
    for x, _, _ in batches:  # the authors' KD baseline: a no-grad scoring pass, then the training pass
        with torch.no_grad():
            reference(x)
        reference(x[torch.randperm(8)])
    step, student, _ = make_step(k=8, b=8, w=1000.0, strategy=0)
    step(*batches[0])
    # A resumed run: a new process builds a fresh student and step, then loads the checkpoint.
    torch.manual_seed(1)
    resumed = model_dict["resnet8"](num_classes=100)
    resumed.load_state_dict(student.model.state_dict())
    step = UnixDistillStep(Recording(resumed), step.teacher, step.cfg, step.counter, step.meter)
    step(*batches[1])
    assert resumed.state_dict().keys() == reference.state_dict().keys()
    for ours, theirs in zip(batchnorms(resumed), batchnorms(reference), strict=True):
        assert torch.allclose(ours.running_mean, theirs.running_mean, rtol=1e-5, atol=1e-6)
        assert torch.allclose(ours.running_var, theirs.running_var, rtol=1e-5, atol=1e-6)
        assert ours.num_batches_tracked.item() == theirs.num_batches_tracked.item() == 4


def test_unix_steps_leave_batchnorm_momentum_alone():
    step, student, _ = make_step(k=6, b=4, w=10.0, strategy=3)
    step(*batch())
    assert {m.momentum for m in batchnorms(student)} == {0.1}
    assert {m.num_batches_tracked.item() for m in batchnorms(student)} == {2}  # scoring and training pass


@pytest.mark.parametrize("distiller", ["DKD", "LSKD"])
def test_conventional_dkd_and_lskd_update_batchnorm_once_per_batch(distiller):
    # Their authors' code (mdistiller, logit-standardization-KD) makes no scoring pass: momentum 0.1, one
    # update per batch. Only the UNIXKD authors' KD baseline gets the doubled update.
    step, student, _ = make_step(k=8, b=8, w=1000.0, strategy=0, distill=distiller)
    step(*batch())
    assert {m.momentum for m in batchnorms(student)} == {0.1}
    assert {m.num_batches_tracked.item() for m in batchnorms(student)} == {1}


def test_ce_at_and_sp_terms_are_weighted():
    step, _, _ = make_step(k=8, b=8, strategy=0, ce_weight=0.5, other_distill="AT")
    assert set(step(*batch()).losses) == {"ce", "kd", "at"}
    for sp in ("SP", "SP-batch"):
        step, _, _ = make_step(k=8, b=8, strategy=0, other_distill=sp)
        assert set(step(*batch()).losses) == {"kd", "sp"}


def test_sp_and_sp_batch_differ_and_use_the_last_stage_maps():
    values = {}
    for sp in ("SP", "SP-batch"):
        step, _, _ = make_step(k=8, b=8, w=1000.0, strategy=0, kd_weight=0.0, other_distill=sp)
        values[sp] = step(*batch()).losses["sp"].item()
    torch.manual_seed(0)  # make_step's networks and batch, to recompute the losses directly
    student, teacher = model_dict["resnet8"](num_classes=100), model_dict["resnet8"](num_classes=100).eval()
    x = batch()[0]
    f_s, f_t = student(x, is_feat=True)[0][-2], teacher(x, is_feat=True)[0][-2]
    assert values["SP"] == pytest.approx(3000 * sp_loss(f_s, f_t).item(), rel=1e-4)
    assert values["SP-batch"] == pytest.approx(3000 * sp_batch_loss(f_s, f_t).item(), rel=1e-4)
    assert values["SP"] != pytest.approx(values["SP-batch"], rel=0.1)


def test_sp_refuses_teacher_maps_the_student_channel_count_does_not_divide():
    student = [torch.empty(2, 16, 8, 8)] * 2
    check_feature_pair("SP", student, [torch.empty(2, 32, 4, 4)] * 2)  # 512 values: 16 rows of 32
    with pytest.raises(UserError, match="3x5x5 = 75 values.*16 channels"):
        check_feature_pair("SP", student, [torch.empty(2, 3, 5, 5)] * 2)
    check_feature_pair("SP-batch", student, [torch.empty(2, 3, 5, 5)] * 2)  # any pair works batch-wise


def test_at_between_families_with_different_stage_counts_is_refused():
    step, _, _ = make_step(k=8, b=8, strategy=0, other_distill="AT")
    step.teacher = Recording(model_dict["vgg8"](num_classes=100).eval())
    with pytest.raises(UserError, match="student has 3 and the teacher 4"):
        step(*batch())


def distill_losses(epoch=0, **config):
    """The losses of one step on make_step's networks and batch, in (0-based) epoch `epoch`."""
    step, _, _ = make_step(**config)
    step.start_epoch(epoch)
    return step(*batch()).losses


KD_SETTING = dict(k=8, b=8, w=1000.0, strategy=0)


def test_dkd_and_lskd_replace_the_kd_term_with_their_own():
    torch.manual_seed(0)  # make_step's networks and batch, to recompute the losses directly
    student, teacher = model_dict["resnet8"](num_classes=100), model_dict["resnet8"](num_classes=100).eval()
    x, y, _ = batch()
    s, t = student(x), teacher(x)
    dkd = distill_losses(epoch=30, distill="DKD", ce_weight=1.0, **KD_SETTING)
    assert set(dkd) == {"ce", "dkd"}
    assert dkd["dkd"].item() == pytest.approx(dkd_loss(s, t, y, 1.0, 8.0, 4.0).item(), rel=1e-4)
    lskd = distill_losses(distill="LSKD", kd_weight=9.0, settings={"T": 2.0}, **KD_SETTING)
    assert set(lskd) == {"lskd"}
    assert lskd["lskd"].item() == pytest.approx(9 * lskd_loss(s, t, 2.0, 1e-7).item(), rel=1e-4)
    assert distill_losses(**KD_SETTING)["kd"].item() == pytest.approx(kd_loss(s, t, 4.0).item(), rel=1e-4)


def test_a_setting_the_distiller_does_not_have_is_refused_not_ignored():
    with pytest.raises(ValueError, match=r"\['beta'\] not among the settings of the distiller LSKD: \['T', 'ls_eps'\]"):
        DistillConfig(distill="LSKD", settings={"beta": 3.0})
    with pytest.raises(ValueError, match="not among the settings of the distiller KD"):
        DistillConfig(settings={"kd_weight": 2.0})  # a weight is a field of its own, not a setting
    assert DistillConfig(distill="DKD", settings={"beta": 3.0}).distiller_settings["beta"] == 3.0


def test_dkd_weight_warms_up_linearly_over_its_first_epochs():
    full = distill_losses(epoch=19, distill="DKD", **KD_SETTING)["dkd"].item()  # epoch 20 of 20: weight 1
    assert distill_losses(epoch=0, distill="DKD", **KD_SETTING)["dkd"].item() == pytest.approx(full / 20, rel=1e-5)
    assert distill_losses(epoch=4, distill="DKD", settings={"warmup": 10}, **KD_SETTING)["dkd"].item() == pytest.approx(full / 2, rel=1e-5)
    assert distill_losses(epoch=200, distill="DKD", **KD_SETTING)["dkd"].item() == pytest.approx(full, rel=1e-5)


def mixed_as_the_paper_says(student, x, y, seed, k, b, w):
    """What a UNIX step should train on, recomputed outside the step: entropy ranking of the scoring pass,
    then (seeded) lambda ~ U(0, 1) and a random partner order, the curve at w, the first k positions."""
    n = x.shape[0]
    with torch.no_grad():
        p = student(x).softmax(1)
    rank = torch.sort(-(p * p.log()).sum(1), descending=True, stable=True).indices
    torch.manual_seed(seed)
    lam, partner = torch.rand(()).item(), torch.rand(n).argsort()
    m = torch.tensor([lam / (1 + math.exp(-w * (r / n - (2 * b - 1) / (2 * n)))) for r in range(n)])[:k]
    mixed = (1 - m.view(-1, 1, 1, 1)) * x[rank[:k]] + m.view(-1, 1, 1, 1) * x[partner[:k]]
    return mixed, y[rank[:k]], y[partner[:k]], m


# Every weight away from its default, so that a term that drops or swaps one shows.
NON_DEFAULT = dict(ce_weight=0.7, kd_weight=2.5)
DISTILLER_SETTINGS = {"KD": dict(T=3.0), "DKD": dict(T=3.0, alpha=0.5, beta=3.0, warmup=10),
                      "LSKD": dict(T=3.0, ls_eps=0.05)}


@pytest.mark.parametrize("distill", ["KD", "DKD", "LSKD"])
def test_each_distiller_under_real_mixing_trains_on_both_labels_with_its_weights(distill):
    step, student, teacher = make_step(k=6, b=4, w=10.0, strategy=3, distill=distill, **NON_DEFAULT,
                                       settings=DISTILLER_SETTINGS[distill])
    step.start_epoch(4)  # DKD: epoch 5 of a 10-epoch warm-up, weight 1/2
    x, y, idx = batch()
    mixed, y_a, y_b, m = mixed_as_the_paper_says(copy.deepcopy(student.model), x, y, seed=5, k=6, b=4, w=10.0)
    torch.manual_seed(5)
    out = step(x, y, idx)
    assert torch.allclose(teacher.last_input, mixed, atol=1e-6) and torch.equal(out.targets, y_a)
    assert m.max() > 0.1 and (y_a != y_b).any()  # real mixing, of images with other labels
    s = out.logits.detach()
    with torch.no_grad():
        t = teacher.model(mixed)
    ce = (1 - m) * F.cross_entropy(s, y_a, reduction="none") + m * F.cross_entropy(s, y_b, reduction="none")
    expected = {"ce": 0.7 * ce.mean()}
    if distill == "DKD":
        terms = [dkd_per_image(s, t, labels, 0.5, 3.0, 3.0) for labels in (y_a, y_b)]
        expected["dkd"] = 0.5 * 2.5 * ((1 - m) * terms[0] + m * terms[1]).mean()
    elif distill == "LSKD":
        expected["lskd"] = 2.5 * lskd_loss(s, t, 3.0, 0.05)
    else:
        expected["kd"] = 2.5 * kd_loss(s, t, 3.0)
    assert set(out.losses) == set(expected)
    for name, value in expected.items():
        assert out.losses[name].item() == pytest.approx(value.item(), rel=1e-5), name
