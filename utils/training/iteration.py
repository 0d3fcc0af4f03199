"""One training iteration and one evaluation pass, as device work that a CUDA graph can record.

Everything a step does on the device (assemble the batch, the method's step, backward, SGD, running
sums, the non-finite watch) is one function of the batch plan. Eagerly it is simply called; with
`capture` (utils/training/graphs.py) it is recorded once per batch shape and replayed. What the host needs per
step (counts for the means, the computation meter) follows from shapes alone, so it is done outside.
"""
import contextlib
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from utils.training.graphs import CapturedCall
from utils.training.metrics import EpochSums, NonFiniteWatch, correct_count, top5_count


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def train_step(step, optimizer, x, y, idx, amp: bool = False):
    """One iteration: the method's step gives named losses; their sum is minimised."""
    with autocast(x.device, amp):
        out = step(x, y, idx)
        loss = sum(out.losses.values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return out, loss


def epoch_terms(out, loss) -> dict:
    """What an epoch's means are made of: {name: (sum over this step's images, number of images)}."""
    n = len(out.targets)
    terms = {"train/loss": (loss * n, n), "train/acc": (100.0 * correct_count(out.logits, out.targets), n)}
    terms.update({f"train/loss_{name}": (value * n, n) for name, value in out.losses.items()})
    terms.update(out.stats)
    return terms


def maybe_captured(fn: Callable, capture: Optional[Callable]):
    return fn if capture is None else CapturedCall(fn, capture)


class TrainIteration:
    """A method's step (utils/training/steps.py) with its optimizer, fed batch plans of a DeviceLoader."""

    def __init__(self, step, optimizer, loader, amp: bool = False, capture: Optional[Callable] = None):
        self.step, self.optimizer, self.loader, self.amp = step, optimizer, loader, amp
        self.sums, self.watch = EpochSums(), NonFiniteWatch(loader.device)
        self._run = maybe_captured(self._device_work, capture)

    def start_epoch(self, epoch: int) -> None:
        self.sums.reset()
        self.watch.reset()
        self.step.start_epoch(epoch)

    def end_epoch(self) -> None:
        self.step.end_epoch()

    def __call__(self, plan: torch.Tensor) -> None:
        self.sums.count(self._run(plan))
        self.step.account(plan.shape[-1])

    def _device_work(self, plan: torch.Tensor) -> tuple:
        x, y, idx = self.loader.assemble(plan)
        out, loss = train_step(self.step, self.optimizer, x, y, idx, self.amp)
        self.watch.observe(loss)
        return self.sums.add(epoch_terms(out, loss))

    def learning_rate_changed(self) -> None:
        """A recording holds the learning rate as a constant: record again."""
        if isinstance(self._run, CapturedCall):
            self._run.reset()


class Evaluation:
    """(test loss, top-1 accuracy %) of a model in eval mode over a loader's test plans; with top5 (ImageNet)
    (test loss, top-1 %, top-5 %)."""

    def __init__(self, model, loader, amp: bool = False, capture: Optional[Callable] = None, top5: bool = False):
        self.model, self.loader, self.amp, self.top5 = model, loader, amp, top5
        self.sums = EpochSums()
        self._run = maybe_captured(self._device_work, capture)

    def __call__(self):
        self.model.eval()
        # no_grad, not inference_mode: the first CUDA-graph capture of a process makes the generator's
        # state tensors, and made under inference mode they could never be updated outside it again.
        with torch.no_grad():
            self.sums.reset()
            for plan in self.loader.plans():
                self.sums.count(self._run(plan))
            return tuple(self.sums.means().values())

    def _device_work(self, plan: torch.Tensor) -> tuple:
        x, y, _ = self.loader.assemble(plan)
        with autocast(x.device, self.amp):
            logits = self.model(x).float()
        n = len(y)
        terms = {"loss": (F.cross_entropy(logits, y, reduction="sum"), n), "acc": (100.0 * correct_count(logits, y), n)}
        if self.top5:
            terms["acc5"] = (100.0 * top5_count(logits, y), n)
        return self.sums.add(terms)


def evaluate(model, loader, amp: bool = False, top5: bool = False) -> tuple:
    """One eager evaluation pass: (test loss, top-1 accuracy %[, top-5 accuracy %])."""
    return Evaluation(model, loader, amp, top5=top5)()
