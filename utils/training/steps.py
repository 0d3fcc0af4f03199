"""Training steps: what one iteration computes. The trainer sums their losses and steps.

Each step returns the student's logits on what it trained on, the labels to score
them against, named losses, and statistics as (sum, count) pairs.
"""
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import losses  # AT, SP, mixed cross-entropy, and the distillers' losses by their declared names
from utils.distillers import BATCH_LABELS, CIFAR100, DISTILLERS, KD, own_settings
from utils.errors import UserError
from utils.process import distributed
from utils.training.computation_meter import ComputationMeter
from utils.training.selection import SelectionCounter, selection_stats
from utils.unix import UnixBatch, largest_mixing_weight, uncertainty_aware_mixup, uncertainty_scores

# Below this largest mixing weight the curve counts as no mixing (the KD baseline's w = 1000 gives 4.04e-4).
NO_MIX_BOUND = 1e-3


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

    def __call__(self, x, y, idx) -> StepOutput:
        logits = self.model(x)
        return StepOutput(logits, y, {"ce": F.cross_entropy(logits, y)})

    def start_epoch(self, epoch: int) -> None:
        pass

    def end_epoch(self) -> None:
        pass

    def continue_epoch(self, keeps_counts: bool) -> None:
        pass

    def account(self, n: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass(frozen=True)  # frozen: conventional_kd and distiller_settings are computed once
class DistillConfig:
    batch_size: int = 64
    k: int = 48
    b: int = 32
    w: float = 10.0
    strategy: int = 3
    mix_strategy: int = 2
    ce_weight: float = 0.0
    kd_weight: float = 1.0
    other_distill: Optional[str] = None  # "AT", "SP" (the authors' per-image form) or "SP-batch"
    distill: str = KD    # the logit distiller: a name of utils.distillers.DISTILLERS
    # Its own settings (T, DKD's beta, ...); those left out are its CIFAR-100 defaults.
    settings: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):
        # A key its loss does not take would be ignored without a word (DKD's beta given to LSKD).
        foreign = self.settings.keys() - own_settings(self.distill, self.settings).keys()
        if foreign:
            own = [setting.name for setting in DISTILLERS[self.distill].settings]
            raise ValueError(f"{sorted(foreign)} not among the settings of the distiller {self.distill}: {own}")

    @cached_property
    def distiller_settings(self) -> dict:
        """Every setting of the distiller's own, as its loss and its epoch weight take them."""
        return {**own_settings(self.distill, DISTILLERS[self.distill].published[CIFAR100].values), **self.settings}

    @cached_property
    def conventional_kd(self) -> bool:
        """Random ranking with every image kept and none mixed: plain KD, no scoring pass.

        "None mixed" means no mixing at all or a curve whose largest weight stays below NO_MIX_BOUND:
        with b = B and w = 1000 it is lambda * sigmoid(-w / 2B) <= 4.04e-4, which the paper's KD
        baseline treats as the zero it approximates; with w = 10 it is 0.48 lambda, real mixing.
        """
        return (self.strategy == 0 and self.k >= self.batch_size and self.b >= self.batch_size
                and largest_mixing_weight(self.batch_size, self.b, self.w, self.mix_strategy) < NO_MIX_BOUND)


def paper_methods(batch_size: int, k: int, b: int) -> tuple:
    """(conventional KD, UNIXKD) as step settings for one batch, as the paper runs them: KD sends every image
    to the teacher and mixes none (strategy 0, w 1000: no scoring pass); UNIXKD ranks by entropy, w 10."""
    kd = DistillConfig(batch_size=batch_size, k=batch_size, b=batch_size, w=1000.0, strategy=0)
    unix = DistillConfig(batch_size=batch_size, k=k, b=b, w=10.0, strategy=3)
    assert kd.conventional_kd and not unix.conventional_kd
    return kd, unix


class UnixDistillStep:
    """One UNIXKD iteration: score, rank, mix, select (utils/unix.py), count, distil."""

    def __init__(self, student, teacher, cfg: DistillConfig, counter: SelectionCounter,
                 meter: ComputationMeter):
        self.student, self.teacher, self.cfg = student, teacher, cfg
        self.counter, self.meter = counter, meter
        self.distiller = DISTILLERS[cfg.distill]  # its declaration: loss, settings, BatchNorm rule, epoch weight
        self._loss = getattr(losses, self.distiller.loss)
        # Set here, in every process (BN momentum is not in a checkpoint), so resumed runs keep it. The
        # UNIXKD authors' KD baseline alone made the scoring pass; DKD's and LSKD's authors made none.
        scored = cfg.conventional_kd and self.distiller.batchnorm_as_if_scored
        self._bn_counters = batchnorm_as_if_scored(student) if scored else []
        # A weight that changes with the epoch (DKD's warm-up) lives on the device: a recorded step reads it.
        self._epoch_weight = None
        if self.distiller.epoch_weight is not None:
            self._epoch_weight = torch.zeros((), device=next(student.parameters()).device)

    def __call__(self, x, y, idx) -> StepOutput:
        batch, scoring_logits = self._select(x, y, idx)
        keep = batch.inputs.shape[0]
        feats_s, logits_s = self.student(batch.inputs, is_feat=True)
        feats_t, logits_t = self._teacher_forward(batch.inputs)
        stats = {} if scoring_logits is None else {**selection_stats(scoring_logits, batch.rank, keep, logits_t),
                                                   "select/mix_weight_kept": (batch.mix.sum(), keep)}
        return StepOutput(logits_s, batch.targets_a, self._losses(batch, feats_s, logits_s, feats_t, logits_t), stats)

    def start_epoch(self, epoch: int) -> None:
        self.counter.start_epoch(epoch)
        if self._epoch_weight is not None:
            self._epoch_weight.fill_(self.distiller.epoch_weight(epoch, self.cfg.distiller_settings))
        self._counts_at_start = dict(self.meter.counts)

    def end_epoch(self) -> None:
        """Under DDP: the counter's row and the meter's counts become the sums over all ranks."""
        if distributed.active():
            self.counter.sum_epoch_over_ranks()
            self.meter.sum_over_ranks_since(self._counts_at_start)

    def continue_epoch(self, keeps_counts: bool) -> None:
        """Continue an epoch that a mid-epoch checkpoint cut (after start_epoch): the counter's row so far was
        summed over ranks when saved, so one rank keeps it and the others count from zero (the computation
        counts need nothing: each rank adds only what it counts from here)."""
        if not keeps_counts:
            self.counter.clear_epoch()

    def account(self, n: int) -> None:
        """Count a batch of n images on the host: which passes saw how many follows from n and the config."""
        keep = min(self.cfg.k, n)
        scoring = 0 if self.cfg.conventional_kd else n
        self.meter.add_batch(n, teacher_images=keep, scoring_images=scoring, student_images=keep)

    def _select(self, x, y, idx):
        """Steps 1-6: what the teacher and the student train on, and the student's scoring logits."""
        cfg = self.cfg
        if cfg.conventional_kd:
            self.counter.record(idx)  # b >= n: every image is among the b "most uncertain"
            if self._bn_counters:  # the skipped scoring pass would have counted this batch too
                torch._foreach_add_(self._bn_counters, 1)
            return UnixBatch(x, y, y, torch.zeros(x.shape[0], device=x.device), None), None
        with torch.no_grad():  # student stays in training mode, as in the reference code
            scoring_logits = self.student(x)
        scores = uncertainty_scores(scoring_logits, cfg.strategy)
        batch = uncertainty_aware_mixup(x, y, scores, k=cfg.k, b=cfg.b, w=cfg.w,
                                        batch_size=cfg.batch_size, mix_strategy=cfg.mix_strategy)
        self.counter.record(idx[batch.rank[:cfg.b]])
        return batch, scoring_logits

    def _teacher_forward(self, inputs):
        with torch.inference_mode():
            feats_t, logits_t = self.teacher(inputs, is_feat=True)
        # Inference tensors cannot enter autograd; cloning outside inference mode makes them ordinary.
        if self.cfg.other_distill is None:
            return None, logits_t.clone()
        return [f.clone() for f in feats_t], logits_t.clone()

    def _losses(self, batch, feats_s, logits_s, feats_t, logits_t) -> dict:
        cfg, terms = self.cfg, {}
        if cfg.ce_weight:
            terms["ce"] = cfg.ce_weight * losses.mixed_cross_entropy(logits_s, batch.targets_a, batch.targets_b,
                                                                     batch.mix)
        if cfg.kd_weight:
            terms.update(self._distill_loss(batch, logits_s, logits_t))
        if cfg.other_distill is not None:
            check_feature_pair(cfg.other_distill, feats_s, feats_t)
        if cfg.other_distill == "AT":
            terms["at"] = losses.AT_WEIGHT * losses.at_loss(feats_s[1:-1], feats_t[1:-1])
        elif cfg.other_distill == "SP":
            terms["sp"] = losses.SP_WEIGHT * losses.sp_loss(feats_s[-2], feats_t[-2])
        elif cfg.other_distill == "SP-batch":
            terms["sp"] = losses.SP_WEIGHT * losses.sp_batch_loss(feats_s[-2], feats_t[-2])
        return terms

    def _distill_loss(self, batch, logits_s, logits_t) -> dict:
        """The logit distiller's weighted loss, under its name: its loss function takes, after the logits, the
        batch's labels and its own settings that its declaration names (utils.distillers)."""
        settings = self.cfg.distiller_settings
        args = [getattr(batch, name) if name in BATCH_LABELS else settings[name] for name in self.distiller.loss_args]
        loss = self.cfg.kd_weight * self._loss(logits_s, logits_t, *args)
        if self._epoch_weight is not None:
            loss = self._epoch_weight * loss
        return {self.distiller.loss_key: loss}

    def state_dict(self) -> dict:
        return {"counter": self.counter.state_dict(), "computation": self.meter.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.counter.load_state_dict(state["counter"])
        self.meter.load_state_dict(state["computation"])


def batchnorm_as_if_scored(model) -> list:
    """Give the KD baseline the BatchNorm running statistics of the authors' runs.

    Their KD baseline still made the no-grad scoring pass in training mode before the training
    pass: two running-statistics updates per batch, with the same batch statistics (the same images,
    permuted). Two updates with momentum m equal one with 1 - (1 - m)^2, so the training pass alone
    does both. Returns the num_batches_tracked counters, which the step advances by one more.
    """
    counters = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            if module.momentum is None:
                raise ValueError("a cumulative-average BatchNorm (momentum None) has no single-update equivalent")
            module.momentum = 1 - (1 - module.momentum) ** 2
            counters.append(module.num_batches_tracked)
    return counters


def check_feature_pair(other_distill: str, feats_s, feats_t) -> None:
    """Refuse, with one clear line, a pair whose features the feature loss cannot match up."""
    if other_distill == "AT":
        check_one_to_one(feats_s[1:-1], feats_t[1:-1])
    elif other_distill == "SP":
        check_sp_reshape(feats_s[-2], feats_t[-2])


def check_sp_reshape(student_map, teacher_map) -> None:
    channels, teacher_size = student_map.shape[1], math.prod(teacher_map.shape[1:])
    if teacher_size % channels:
        shape = "x".join(map(str, teacher_map.shape[1:]))
        raise UserError(f"SP (the authors' per-image form) reshapes each teacher map ({shape} = {teacher_size} values) "
                        f"to the student's {channels} channels, which needs {channels} to divide {teacher_size}; "
                        f"use SP-batch or a matching pair")


def check_one_to_one(student_maps, teacher_maps) -> None:
    if len(student_maps) != len(teacher_maps):
        raise UserError(f"AT pairs intermediate feature maps one to one, but the student has "
                        f"{len(student_maps)} and the teacher {len(teacher_maps)}; use SP or a matching pair")
