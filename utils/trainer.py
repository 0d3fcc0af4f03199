"""The one training loop shared by teacher.py and student_v0.py: train, validate, log, checkpoint, resume."""
import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from tensorboardX import SummaryWriter

from utils.checkpoint import atomic_save
from utils.errors import NonFiniteLoss
from utils.metrics import EpochSums, correct_count
from utils.rundir import RunDirectory
from utils.seeding import rng_state, set_rng_state


@dataclass
class FitConfig:
    epochs: int
    best_file: str = "best.pth"      # teacher: best.pth; student: student_best.pth
    acc_key: str = "acc"             # the accuracy's key in best/snapshot files
    snapshot_epochs: frozenset = field(default_factory=frozenset)  # epochs that also get NNN.pth
    amp: bool = False                # bf16 autocast: faster on GPUs, changes numerics, so opt-in


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def evaluate(model, loader, amp: bool = False):
    """Test loss and top-1 accuracy (%), in eval mode."""
    model.eval()
    sums = EpochSums()
    with torch.inference_mode(), autocast(loader.device, amp):
        for x, y, _ in loader:
            logits = model(x).float()
            sums.add("loss", F.cross_entropy(logits, y, reduction="sum"), len(y))
            sums.add("acc", 100.0 * correct_count(logits, y), len(y))
    means = sums.means()
    return means["loss"], means["acc"]


def train_step(step, optimizer, x, y, idx, epoch: int, amp: bool = False):
    """One iteration: the method's step gives named losses; their sum is minimised."""
    with autocast(x.device, amp):
        out = step(x, y, idx, epoch)
        loss = sum(out.losses.values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return out, loss


class Trainer:
    def __init__(self, model, step, optimizer, scheduler, train_loader, test_loader,
                 run: RunDirectory, cfg: FitConfig,
                 on_epoch_end: Optional[Callable[["Trainer", int, dict], None]] = None):
        self.model, self.step, self.optimizer, self.scheduler = model, step, optimizer, scheduler
        self.train_loader, self.test_loader = train_loader, test_loader
        self.run, self.cfg, self.on_epoch_end = run, cfg, on_epoch_end
        self.epochs_done, self.best_acc = 0, -1.0  # below any accuracy: epoch 1 always writes best
        self.train_seconds, self.wall_seconds, self.train_images = 0.0, 0.0, 0

    def fit(self, resume: Optional[dict] = None) -> float:
        if resume is not None:
            self._restore(resume)
            print(f"resumed {self.run.path} after epoch {self.epochs_done} (best {self.best_acc:.2f})")
        with SummaryWriter(str(self.run.tensorboard), purge_step=self.epochs_done + 1) as writer:
            for epoch in range(self.epochs_done, self.cfg.epochs):
                record = self._epoch(epoch)
                self._log(writer, epoch + 1, record)
        print(f"best accuracy: {self.best_acc:.2f}")
        return self.best_acc

    def _epoch(self, epoch: int) -> dict:
        start = time.perf_counter()
        record = self._train_epoch(epoch)
        train_time = time.perf_counter() - start
        record["val/loss"], record["val/acc"] = evaluate(self.model, self.test_loader, self.cfg.amp)
        record["lr"] = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.epochs_done = epoch + 1
        self.train_seconds += train_time
        self.train_images += self.train_loader.num_samples
        record["time/images_per_second"] = self.train_loader.num_samples / train_time
        self._checkpoint(record["val/acc"])
        # Counted before the epoch-end reports, so summary.json's wall time includes this epoch.
        record["time/epoch_seconds"] = time.perf_counter() - start
        self.wall_seconds += record["time/epoch_seconds"]
        if self.on_epoch_end is not None:
            self.on_epoch_end(self, epoch, record)
        # last.pth goes last: it is the commit point a resumed run starts from.
        atomic_save(self._state(), self.run.last)
        return record

    def _train_epoch(self, epoch: int) -> dict:
        self.model.train()
        sums = EpochSums()
        # Where the loss first went non-finite, tracked on the device and read once per epoch.
        first_bad = torch.tensor(-1, device=self.train_loader.device)
        for it, (x, y, idx) in enumerate(self.train_loader):
            out, loss = train_step(self.step, self.optimizer, x, y, idx, epoch, self.cfg.amp)
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), it, first_bad)
            self._accumulate(sums, out, loss)
        means = sums.means()
        bad = int(first_bad)
        if bad >= 0:
            raise NonFiniteLoss(f"loss became non-finite at epoch {epoch + 1}, iteration {bad}; "
                                f"stopped, the last good checkpoint {self.run.last} (epoch {epoch}) is kept")
        return means

    @staticmethod
    def _accumulate(sums: EpochSums, out, loss) -> None:
        n = len(out.targets)
        sums.add("train/loss", loss * n, n)
        sums.add("train/acc", 100.0 * correct_count(out.logits, out.targets), n)
        for name, value in out.losses.items():
            sums.add(f"train/loss_{name}", value * n, n)
        for name, (total, count) in out.stats.items():
            sums.add(name, total, count)

    def _checkpoint(self, acc: float) -> None:
        epoch = self.epochs_done
        weights = {"epoch": epoch, "state_dict": self.model.state_dict(), self.cfg.acc_key: acc}
        if acc > self.best_acc:
            self.best_acc = acc
            atomic_save(weights, self.run.ckpt / self.cfg.best_file)
        if epoch in self.cfg.snapshot_epochs:
            atomic_save(weights, self.run.ckpt / f"{epoch:03d}.pth")

    def _state(self) -> dict:
        return {
            "epoch": self.epochs_done, "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "best_acc": self.best_acc, "train_seconds": self.train_seconds,
            "wall_seconds": self.wall_seconds, "train_images": self.train_images,
            "rng": rng_state(), "loader": self.train_loader.state_dict(), "step": self.step.state_dict(),
        }

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step.load_state_dict(state["step"])
        self.train_loader.load_state_dict(state["loader"])
        set_rng_state(state["rng"])
        self.epochs_done, self.best_acc = state["epoch"], state["best_acc"]
        self.train_seconds, self.wall_seconds = state["train_seconds"], state["wall_seconds"]
        self.train_images = state["train_images"]

    def _log(self, writer, epoch: int, record: dict) -> None:
        for name, value in record.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                writer.add_scalar(name, value, epoch)
        writer.flush()
        print(f"epoch {epoch:3d}/{self.cfg.epochs} | train loss {record['train/loss']:.4f} "
              f"acc {record['train/acc']:6.2f} | val loss {record['val/loss']:.4f} acc {record['val/acc']:6.2f} "
              f"| best {self.best_acc:6.2f} | lr {record['lr']:.4g} | {record['time/epoch_seconds']:.1f}s "
              f"({record['time/images_per_second']:.0f} img/s)", flush=True)
