"""The distillation step: which passes run on which images, and what gets counted."""
import pytest
import torch

from models import model_dict
from utils.computation import ComputationMeter
from utils.errors import UserError
from utils.selection import SelectionCounter
from utils.steps import DistillConfig, UnixDistillStep


class Recording(torch.nn.Module):
    """Wraps a model and records the batch size of every forward."""

    def __init__(self, model):
        super().__init__()
        self.model, self.batches = model, []

    def forward(self, x, **kwargs):
        self.batches.append(x.shape[0])
        return self.model(x, **kwargs)


def make_step(**config):
    torch.manual_seed(0)
    student = Recording(model_dict["resnet8"](num_classes=100))
    teacher = Recording(model_dict["resnet8"](num_classes=100).eval())
    cfg = DistillConfig(batch_size=8, **config)
    step = UnixDistillStep(student, teacher, cfg, SelectionCounter(1, 100, "cpu"), ComputationMeter(10, 1))
    return step, student, teacher


def batch(n=8):
    return torch.randn(n, 3, 32, 32), torch.randint(0, 100, (n,)), torch.arange(50, 50 + n)


def test_unix_scores_the_whole_batch_then_trains_on_k():
    step, student, teacher = make_step(k=6, b=4, w=10.0, strategy=3)
    out = step(*batch(), epoch=0)
    assert student.batches == [8, 6] and teacher.batches == [6]
    assert out.logits.shape == (6, 100) and set(out.losses) == {"kd"}
    counts = step.meter.as_dict()
    assert (counts["teacher_images"], counts["scoring_images"], counts["student_images"]) == (6, 8, 6)


def test_counter_records_the_b_most_uncertain_by_dataset_index():
    step, student, _ = make_step(k=6, b=3, w=10.0, strategy=1)
    x, y, idx = batch()
    with torch.no_grad():
        confidence = student.model(x).softmax(1).max(1).values
    step(x, y, idx, epoch=0)
    least_confident = set((idx[confidence.argsort()[:3]]).tolist())
    assert set(step.counter.to_numpy()[0].nonzero()[0].tolist()) == least_confident


def test_conventional_kd_skips_scoring_and_mixing():
    step, student, teacher = make_step(k=8, b=8, w=1000.0, strategy=0)
    x, y, idx = batch()
    out = step(x, y, idx, epoch=0)
    assert student.batches == [8] and teacher.batches == [8]
    assert torch.equal(out.targets, y) and out.stats == {}
    assert step.meter.as_dict()["computation"] == pytest.approx(100.0)


def test_ce_at_and_sp_terms_are_weighted():
    step, _, _ = make_step(k=8, b=8, strategy=0, ce_weight=0.5, other_distill="AT")
    assert set(step(*batch(), epoch=0).losses) == {"ce", "kd", "at"}
    step, _, _ = make_step(k=8, b=8, strategy=0, other_distill="SP")
    assert set(step(*batch(), epoch=0).losses) == {"kd", "sp"}


def test_at_between_families_with_different_stage_counts_is_refused():
    step, _, _ = make_step(k=8, b=8, strategy=0, other_distill="AT")
    step.teacher = Recording(model_dict["vgg8"](num_classes=100).eval())
    with pytest.raises(UserError, match="student has 3 and the teacher 4"):
        step(*batch(), epoch=0)
