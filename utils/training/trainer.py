"""The one training loop shared by teacher.py and student_v0.py: train, validate, log, checkpoint, resume.

Under DDP (torchrun) every rank runs it; the metrics are sums over all ranks, and rank 0 alone writes.
"""
import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from tensorboardX import SummaryWriter

from utils.errors import NonFiniteLoss
from utils.process import distributed
from utils.process.seeding import rng_state, set_rng_state
from utils.runs.checkpoint import atomic_save
from utils.runs.rundir import RunDirectory
from utils.training.iteration import Evaluation, TrainIteration
from utils.training.progress import EpochProgress


@dataclass
class FitConfig:
    epochs: int
    best_file: str = "best.pth"      # teacher: best.pth; student: student_best.pth
    acc_key: str = "acc"             # the accuracy's key in best/snapshot files
    snapshot_epochs: frozenset = field(default_factory=frozenset)  # epochs that also get NNN.pth
    amp: bool = False                # bf16 autocast: faster on GPUs, changes numerics, so opt-in
    capture: Optional[Callable] = None  # utils.training.graphs.capture_cuda_graph to replay steps as CUDA graphs


class Trainer:
    def __init__(self, model, step, optimizer, scheduler, train_loader, test_loader,
                 run: RunDirectory, cfg: FitConfig,
                 on_epoch_end: Optional[Callable[["Trainer", int, dict], None]] = None):
        self.model, self.step, self.optimizer, self.scheduler = model, step, optimizer, scheduler
        self.train_loader, self.test_loader = train_loader, test_loader
        self.run, self.cfg, self.on_epoch_end = run, cfg, on_epoch_end
        self.iteration = TrainIteration(step, optimizer, train_loader, cfg.amp, cfg.capture)
        self.evaluation = Evaluation(model, test_loader, cfg.amp, cfg.capture)
        self.epochs_done, self.best_acc = 0, -1.0  # below any accuracy: epoch 1 always writes best
        self.train_seconds, self.wall_seconds, self.train_images = 0.0, 0.0, 0

    def fit(self, resume: Optional[dict] = None) -> float:
        if resume is not None:
            self._restore(resume)
            print(f"resumed {self.run.path} after epoch {self.epochs_done} (best {self.best_acc:.2f})")
        writer = (SummaryWriter(str(self.run.tensorboard), purge_step=self.epochs_done + 1) if distributed.is_main()
                  else contextlib.nullcontext())
        with writer:
            for epoch in range(self.epochs_done, self.cfg.epochs):
                record = self._epoch(epoch)
                self._log(writer, epoch + 1, record)
        print(f"finished {self.run.path}: best accuracy {self.best_acc:.2f}, last {record['val/acc']:.2f}")
        return self.best_acc

    def _epoch(self, epoch: int) -> dict:
        start = time.perf_counter()
        record = self._train_epoch(epoch)
        train_time = time.perf_counter() - start
        distributed.broadcast_buffers(self.model)
        record["val/loss"], record["val/acc"] = self.evaluation()
        record["lr"] = self.optimizer.param_groups[0]["lr"]
        self._schedule()
        self.epochs_done = epoch + 1
        self.train_seconds += train_time
        self.train_images += self.train_loader.num_samples
        record["time/images_per_second"] = self.train_loader.num_samples / train_time
        saving = time.perf_counter()
        self._checkpoint(record["val/acc"])
        rank_rng = self._rank_rng_states()  # on every rank: it gathers each rank's random state
        # Counted before the epoch-end reports, so summary.json's wall time includes this epoch.
        record["time/epoch_seconds"] = time.perf_counter() - start
        self.wall_seconds += record["time/epoch_seconds"]
        if distributed.is_main():
            if self.on_epoch_end is not None:
                self.on_epoch_end(self, epoch, record)
            # last.pth goes last: it is the commit point a resumed run starts from.
            atomic_save({**self._state(), **rank_rng}, self.run.last)
        record["time/save_seconds"] = time.perf_counter() - saving
        return record

    def _train_epoch(self, epoch: int) -> dict:
        self.model.train()
        self.iteration.start_epoch(epoch)
        progress = EpochProgress(f"epoch {epoch + 1}/{self.cfg.epochs}", len(self.train_loader))
        for done, plan in enumerate(self.train_loader.plans(), start=1):
            self.iteration(plan)
            progress.update(done, plan.shape[-1])
        progress.close()
        self.iteration.end_epoch()
        means = self.iteration.sums.means()
        bad = self.iteration.watch.first_bad_step()
        if bad >= 0:
            raise NonFiniteLoss(f"loss became non-finite at epoch {epoch + 1}, iteration {bad}; "
                                f"stopped, the last good checkpoint {self.run.last} (epoch {epoch}) is kept")
        return means

    def _schedule(self) -> None:
        before = [group["lr"] for group in self.optimizer.param_groups]
        self.scheduler.step()
        if [group["lr"] for group in self.optimizer.param_groups] != before:
            self.iteration.learning_rate_changed()

    def _checkpoint(self, acc: float) -> None:
        epoch = self.epochs_done
        weights = {"epoch": epoch, "state_dict": self.model.state_dict(), self.cfg.acc_key: acc}
        improved, self.best_acc = acc > self.best_acc, max(acc, self.best_acc)
        if not distributed.is_main():
            return
        if improved:
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

    @staticmethod
    def _rank_rng_states() -> dict:
        """Under DDP each rank draws its own random numbers (UNIX's mixing): all of them are kept."""
        return {"rng_by_rank": distributed.gather_objects(rng_state())} if distributed.active() else {}

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step.load_state_dict(state["step"])
        self.train_loader.load_state_dict(state["loader"])
        set_rng_state(state["rng_by_rank"][distributed.rank()] if distributed.active() else state["rng"])
        self.epochs_done, self.best_acc = state["epoch"], state["best_acc"]
        self.train_seconds, self.wall_seconds = state["train_seconds"], state["wall_seconds"]
        self.train_images = state["train_images"]

    def _log(self, writer, epoch: int, record: dict) -> None:
        if not distributed.is_main():
            return
        for name, value in record.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                writer.add_scalar(name, value, epoch)
        writer.flush()
        print(f"epoch {epoch:3d}/{self.cfg.epochs} | train loss {record['train/loss']:.4f} "
              f"acc {record['train/acc']:6.2f} | val loss {record['val/loss']:.4f} acc {record['val/acc']:6.2f} "
              f"| best {self.best_acc:6.2f} | lr {record['lr']:.4g} | {record['time/epoch_seconds']:.1f}s, "
              f"saving {record['time/save_seconds']:.2f}s ({record['time/images_per_second']:.0f} img/s)", flush=True)
