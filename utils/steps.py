"""Training steps: what one iteration computes. The trainer sums their losses and steps.

Each step returns the student's logits on what it trained on, the labels to score
them against, named losses, and statistics as (sum, count) pairs.
"""
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

from utils.computation import ComputationMeter
from utils.errors import UserError
from utils.losses import AT_WEIGHT, SP_WEIGHT, at_loss, kd_loss, mixed_cross_entropy, sp_loss
from utils.selection import SelectionCounter, selection_stats
from utils.unix import UnixBatch, uncertainty_aware_mixup, uncertainty_scores


@dataclass
class StepOutput:
    logits: torch.Tensor
    targets: torch.Tensor
    losses: dict
    stats: dict = field(default_factory=dict)


class SupervisedStep:
    """Teacher training: cross-entropy on the augmented batch."""

    def __init__(self, model):
        self.model = model

    def __call__(self, x, y, idx, epoch) -> StepOutput:
        logits = self.model(x)
        return StepOutput(logits, y, {"ce": F.cross_entropy(logits, y)})

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass
class DistillConfig:
    batch_size: int = 64
    k: int = 48
    b: int = 32
    w: float = 10.0
    T: float = 4.0
    strategy: int = 3
    mix_strategy: int = 2
    ce_weight: float = 0.0
    kd_weight: float = 1.0
    other_distill: Optional[str] = None  # "AT" or "SP"

    @property
    def conventional_kd(self) -> bool:
        """Random ranking with every image kept and none mixed: plain KD, no scoring pass.

        (With b = B and w = 1000 the curve's largest weight is lambda * sigmoid(-w / 2B),
        below 4e-4: the paper's KD baseline treats it as the zero it approximates.)
        """
        return self.strategy == 0 and self.k >= self.batch_size and self.b >= self.batch_size


class UnixDistillStep:
    """One UNIXKD iteration: score, rank, mix, select (utils/unix.py), count, distil."""

    def __init__(self, student, teacher, cfg: DistillConfig, counter: SelectionCounter,
                 meter: ComputationMeter):
        self.student, self.teacher, self.cfg = student, teacher, cfg
        self.counter, self.meter = counter, meter

    def __call__(self, x, y, idx, epoch) -> StepOutput:
        n = x.shape[0]
        batch, scoring_logits = self._select(x, y, idx, epoch)
        keep = batch.inputs.shape[0]
        self.meter.add_batch(n, teacher_images=keep, scoring_images=0 if scoring_logits is None else n,
                             student_images=keep)
        feats_s, logits_s = self.student(batch.inputs, is_feat=True)
        feats_t, logits_t = self._teacher_forward(batch.inputs)
        stats = {} if scoring_logits is None else selection_stats(scoring_logits, batch.rank, keep, logits_t)
        return StepOutput(logits_s, batch.targets_a, self._losses(batch, feats_s, logits_s, feats_t, logits_t), stats)

    def _select(self, x, y, idx, epoch):
        """Steps 1-6: what the teacher and the student train on, and the student's scoring logits."""
        cfg = self.cfg
        if cfg.conventional_kd:
            self.counter.record(epoch, idx)  # b >= n: every image is among the b "most uncertain"
            return UnixBatch(x, y, y, torch.zeros(x.shape[0], device=x.device), None), None
        with torch.no_grad():  # student stays in training mode, as in the reference code
            scoring_logits = self.student(x)
        scores = uncertainty_scores(scoring_logits, cfg.strategy)
        batch = uncertainty_aware_mixup(x, y, scores, k=cfg.k, b=cfg.b, w=cfg.w,
                                        batch_size=cfg.batch_size, mix_strategy=cfg.mix_strategy)
        self.counter.record(epoch, idx[batch.rank[:cfg.b]])
        return batch, scoring_logits

    def _teacher_forward(self, inputs):
        with torch.inference_mode():
            feats_t, logits_t = self.teacher(inputs, is_feat=True)
        # Inference tensors cannot enter autograd; cloning outside inference mode makes them ordinary.
        if self.cfg.other_distill is None:
            return None, logits_t.clone()
        return [f.clone() for f in feats_t], logits_t.clone()

    def _losses(self, batch, feats_s, logits_s, feats_t, logits_t) -> dict:
        cfg, losses = self.cfg, {}
        if cfg.ce_weight:
            losses["ce"] = cfg.ce_weight * mixed_cross_entropy(logits_s, batch.targets_a, batch.targets_b, batch.mix)
        if cfg.kd_weight:
            losses["kd"] = cfg.kd_weight * kd_loss(logits_s, logits_t, cfg.T)
        if cfg.other_distill == "AT":
            maps_s, maps_t = feats_s[1:-1], feats_t[1:-1]
            check_one_to_one(maps_s, maps_t)
            losses["at"] = AT_WEIGHT * at_loss(maps_s, maps_t)
        elif cfg.other_distill == "SP":
            losses["sp"] = SP_WEIGHT * sp_loss(feats_s[-2], feats_t[-2])
        return losses

    def state_dict(self) -> dict:
        return {"counter": self.counter.state_dict(), "computation": self.meter.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.counter.load_state_dict(state["counter"])
        self.meter.load_state_dict(state["computation"])


def check_one_to_one(student_maps, teacher_maps) -> None:
    if len(student_maps) != len(teacher_maps):
        raise UserError(f"AT pairs intermediate feature maps one to one, but the student has "
                        f"{len(student_maps)} and the teacher {len(teacher_maps)}; use SP or a matching pair")
