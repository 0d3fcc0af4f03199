"""The one training loop shared by teacher.py and student_v0.py: train, validate, log, checkpoint, resume.

Under DDP (torchrun) every rank runs it; the metrics are sums over all ranks, and rank 0 alone writes.
"""
import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from utils.errors import NonFiniteLoss
from utils.process import distributed
from utils.process.preemption import StopWatch, stopped
from utils.process.seeding import derive_rng_state, rng_state, set_rng_state
from utils.runs.checkpoint import atomic_save, staged_save
from utils.runs.rundir import RunDirectory
from utils.training.iteration import Evaluation, TrainIteration
from utils.training.iteration_log import FOLDER as ITERATIONS_FOLDER
from utils.training.iteration_log import IterationLog, first_step
from utils.training.progress import EpochProgress


@dataclass
class FitConfig:
    epochs: int
    best_file: str = "best.pth"      # teacher: best.pth; student: student_best.pth
    acc_key: str = "acc"             # the accuracy's key in best/snapshot files
    snapshot_epochs: frozenset = field(default_factory=frozenset)  # epochs that also get NNN.pth
    amp: bool = False                # bf16 autocast: faster on GPUs, changes numerics, so opt-in
    capture: Optional[Callable] = None  # utils.training.graphs.capture_cuda_graph to replay steps as CUDA graphs
    top5: bool = False               # ImageNet: top-5 accuracy beside top-1
    print_freq: Optional[int] = None  # off a terminal: a progress line every N iterations (None: every minute)
    log_freq: int = 0                # TensorBoard: the training loss and lr every N iterations (0: per epoch only)


class Trainer:
    def __init__(self, model, step, optimizer, scheduler, train_loader, test_loader,
                 run: RunDirectory, cfg: FitConfig,
                 on_epoch_end: Optional[Callable[["Trainer", int, dict], None]] = None):
        self.model, self.step, self.optimizer, self.scheduler = model, step, optimizer, scheduler
        self.train_loader, self.test_loader = train_loader, test_loader
        self.run, self.cfg, self.on_epoch_end = run, cfg, on_epoch_end
        self.iteration = TrainIteration(step, optimizer, train_loader, cfg.amp, cfg.capture)
        self.evaluation = Evaluation(model, test_loader, cfg.amp, cfg.capture, cfg.top5)
        self.epochs_done, self.best_acc = 0, -1.0  # below any accuracy: epoch 1 always writes best
        self.best_acc5 = None  # top-5 of the best top-1 epoch (ImageNet)
        self.best_epoch = None  # the first epoch that reached best_acc (None: before a checkpoint that kept it)
        self.train_seconds, self.wall_seconds, self.train_images = 0.0, 0.0, 0
        self.last_scores = {}  # the last finished epoch's val/acc (and val/acc5): a stop mid-epoch reports them
        self.stops = StopWatch()
        # A checkpoint taken mid-epoch (on a stop signal): the iterations done, the sums and the seconds so far.
        self._resume_batches, self._resume_sums, self._resume_seconds = 0, None, 0.0

    def fit(self, resume: Optional[dict] = None) -> float:
        if resume is not None:
            self._restore(resume)
            print(self._resumed_where())
        main = distributed.is_main()
        self.events = self.run.events_writer(purge_step=self.epochs_done + 1) if main else None
        iterations = self._iteration_writer()
        self.iteration_log = IterationLog(iterations, self.cfg.log_freq, len(self.train_loader))
        with self.events or contextlib.nullcontext(), iterations or contextlib.nullcontext(), self.stops:
            for epoch in range(self.epochs_done, self.cfg.epochs):
                record = self._epoch(epoch)
                self._print_epoch(epoch + 1, record)
                self._stop_at_epoch_end(epoch)
        print(f"finished {self.run.path}: best accuracy {self.best_acc:.2f}, last {record['val/acc']:.2f}")
        return self.best_acc

    def _iteration_writer(self):
        """Rank 0's writer of the per-iteration figures (utils.training.iteration_log), when they are asked for."""
        if not (self.cfg.log_freq and distributed.is_main()):
            return None
        purge = first_step(self.epochs_done, self._resume_batches, len(self.train_loader))
        return self.run.events_writer(ITERATIONS_FOLDER, purge_step=purge)

    def _epoch(self, epoch: int) -> dict:
        start = time.perf_counter()
        first = self._resume_batches  # iterations of this epoch a mid-epoch checkpoint has done already
        record = self._train_epoch(epoch, start)
        train_time = time.perf_counter() - start
        distributed.broadcast_buffers(self.model)
        record.update(zip(("val/loss", "val/acc", "val/acc5"), self.evaluation()))
        self.last_scores = {name: record[name] for name in ("val/acc", "val/acc5") if name in record}
        record["lr"] = self.optimizer.param_groups[0]["lr"]
        self._schedule()
        self.epochs_done = epoch + 1
        images = self._images_of(len(self.train_loader) - first)
        self.train_seconds += train_time
        self.train_images += images
        record["time/images_per_second"] = images / train_time
        saving = time.perf_counter()
        self._checkpoint(record["val/acc"], record.get("val/acc5"))
        rank_rng = self._rank_rng_states()  # on every rank: it gathers each rank's random state
        # Counted before the epoch-end reports, so summary.json's wall time includes this epoch; an epoch
        # continued from a mid-epoch checkpoint adds the seconds the stopped process spent on it.
        seconds = time.perf_counter() - start
        self.wall_seconds += seconds
        record["time/epoch_seconds"], self._resume_seconds = self._resume_seconds + seconds, 0.0
        if distributed.is_main():
            if self.on_epoch_end is not None:
                self.on_epoch_end(self, epoch, record)
            # last.pth is the commit point a resumed run starts from, and a resumed run never writes this epoch's
            # figures again: it is written first but takes the previous one's place only once they are on disk.
            with staged_save({**self._state(), **rank_rng}, self.run.last):
                record["time/save_seconds"] = time.perf_counter() - saving
                self._write_figures(epoch + 1, record)
        return record

    def _train_epoch(self, epoch: int, start: float) -> dict:
        self.model.train()
        self.iteration.start_epoch(epoch)
        first = self._continue_epoch()
        loader_at_start = self.train_loader.state_dict()  # before plans() draws the epoch
        progress = EpochProgress(f"epoch {epoch + 1}/{self.cfg.epochs}", len(self.train_loader), self.cfg.print_freq,
                                 first_batch=first, processes=distributed.world_size())
        self.iteration_log.start_epoch(self.iteration.sums, first)
        waited = time.perf_counter()
        for done, plan in enumerate(self.train_loader.plans(first), start=first + 1):
            arrived = time.perf_counter()
            self.iteration(plan)
            self.iteration_log.after(epoch, done, self.iteration.sums, self.optimizer.param_groups[0]["lr"])
            progress.update(done, plan.shape[-1], arrived - waited)
            reason = self.stops.after_iteration()
            if reason:
                progress.close()
                self._stop_mid_epoch(epoch, first, done, loader_at_start, start, reason)
            waited = time.perf_counter()
        progress.close()
        self.iteration.end_epoch()
        means = self.iteration.sums.means()
        self._check_finite(epoch)
        return means

    def _check_finite(self, epoch: int) -> None:
        bad = self.iteration.watch.first_bad_step()
        if bad >= 0:
            raise NonFiniteLoss(f"loss became non-finite at epoch {epoch + 1}, iteration {bad}; "
                                f"stopped, the last good checkpoint {self.run.last} (epoch {epoch}) is kept")

    def _continue_epoch(self) -> int:
        """Pick up an epoch where a mid-epoch checkpoint left it: its sums and counts so far stay on rank 0
        (they were summed over ranks when saved). Returns the iterations it had done (0: a fresh epoch)."""
        first, self._resume_batches = min(self._resume_batches, len(self.train_loader)), 0
        if first:
            saved = self._resume_sums
            self.iteration.sums.restore(saved if distributed.is_main() else dict.fromkeys(saved, (0.0, 0)),
                                        self.train_loader.device)
            self.step.continue_epoch(distributed.is_main())
        return first

    def _stop_mid_epoch(self, epoch: int, first: int, done: int, loader_at_start: dict, start: float,
                        reason: int) -> None:
        """On a stop signal (utils.process.preemption): save what the epoch has done so far as last.pth, then stop."""
        self._check_finite(epoch)
        self.step.end_epoch()  # under DDP: the counter's row and the computation counts summed over ranks
        elapsed = time.perf_counter() - start
        partial = {"batches_done": done, "epoch_sums": self.iteration.sums.totals_over_ranks(),
                   "loader": loader_at_start, "epoch_seconds": self._resume_seconds + elapsed}
        rank_rng = self._rank_rng_states()
        self.train_seconds += elapsed
        self.wall_seconds += elapsed
        self.train_images += self._images_of(done - first)
        if distributed.is_main():
            if self.on_epoch_end is not None:  # summary.json: the run's flags and progress, for --resume to check
                self.on_epoch_end(self, epoch, {})
            self.iteration_log.flush()  # the points up to here: on disk before last.pth says they are done
            atomic_save({**self._state(), **partial, **rank_rng}, self.run.last)
            self.stops.acknowledge(reason)
        distributed.wait_for_all()  # no rank ends (and gets the others killed) before rank 0 has saved
        raise stopped(reason, f"after iteration {done}/{len(self.train_loader)} of epoch {epoch + 1}, saved in "
                              f"{self.run.last}")

    def _stop_at_epoch_end(self, epoch: int) -> None:
        """A stop noted during the epoch's evaluation or save: the epoch's last.pth is written, so stop there."""
        reason = self.stops.check() if epoch + 1 < self.cfg.epochs else 0
        if reason:
            self.stops.acknowledge(reason)
            raise stopped(reason, f"after epoch {epoch + 1}, saved in {self.run.last}")

    def _images_of(self, batches: int) -> int:
        """The training images (all ranks') in `batches` of this epoch's iterations."""
        return round(self.train_loader.num_samples * batches / len(self.train_loader))

    def _schedule(self) -> None:
        before = [group["lr"] for group in self.optimizer.param_groups]
        self.scheduler.step()
        if [group["lr"] for group in self.optimizer.param_groups] != before:
            self.iteration.learning_rate_changed()

    def _checkpoint(self, acc: float, acc5: Optional[float]) -> None:
        epoch = self.epochs_done
        weights = {"epoch": epoch, "state_dict": self.model.state_dict(), self.cfg.acc_key: acc}
        if acc5 is not None:
            weights["acc5"] = acc5
        improved, self.best_acc = acc > self.best_acc, max(acc, self.best_acc)
        if improved:
            self.best_acc5, self.best_epoch = acc5, epoch
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
            "best_acc": self.best_acc, "best_acc5": self.best_acc5, "best_epoch": self.best_epoch,
            "train_seconds": self.train_seconds, "wall_seconds": self.wall_seconds, "train_images": self.train_images,
            "rng": rng_state(), "loader": self.train_loader.state_dict(), "step": self.step.state_dict(),
            "world_size": distributed.world_size(),
            "last_scores": self.last_scores,
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
        self._restore_rng(state)
        self.epochs_done, self.best_acc = state["epoch"], state["best_acc"]
        self.best_acc5, self.best_epoch = state.get("best_acc5"), state.get("best_epoch")
        self.train_seconds, self.wall_seconds = state["train_seconds"], state["wall_seconds"]
        self.train_images = state["train_images"]
        self._resume_batches, self._resume_sums = state.get("batches_done", 0), state.get("epoch_sums")
        self._resume_seconds = state.get("epoch_seconds", 0.0)
        self.last_scores = state.get("last_scores", {})

    def _resumed_where(self) -> str:
        """The resume's line: the run, how far it got, and the epoch and iteration it continues with."""
        batches, done = len(self.train_loader), min(self._resume_batches, len(self.train_loader))
        within = f", {done} of {batches} iterations into epoch {self.epochs_done + 1}" if done else ""
        best = f" (best {self.best_acc:.2f})" if self.epochs_done else ""
        rest = f"iteration {done + 1} of {batches}" if done < batches else "its evaluation"
        return f"resumed {self.run.path} after epoch {self.epochs_done}{within}{best}: continues with epoch " \
               f"{self.epochs_done + 1}, {rest}"

    def _restore_rng(self, state: dict) -> None:
        """Each rank's own random state; on another number of processes, streams derived from the checkpoint."""
        saved, now = saved_world_size(state), distributed.world_size()
        if saved == now:
            set_rng_state(state["rng_by_rank"][distributed.rank()] if distributed.active() else state["rng"])
            return
        derive_rng_state(state["rng"], distributed.rank())
        print(f"note: {self.run.path} ran on {saved} process(es) and continues on {now}: each rank's random stream "
              f"is derived anew from the checkpoint and each process's batch (BatchNorm's) changes, so the run is no "
              f"longer bit-identical to one that stayed on {saved}")

    def _write_figures(self, epoch: int, record: dict) -> None:
        """The epoch's figures and the iterations' points so far, on disk (rank 0)."""
        for name, value in record.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.events.add_scalar(name, value, epoch)
        self.events.flush()
        self.iteration_log.flush()

    def _print_epoch(self, epoch: int, record: dict) -> None:
        if not distributed.is_main():
            return
        top5 = f" top-5 {record['val/acc5']:6.2f}" if "val/acc5" in record else ""
        print(f"epoch {epoch:3d}/{self.cfg.epochs} | train loss {record['train/loss']:.4f} "
              f"acc {record['train/acc']:6.2f} | val loss {record['val/loss']:.4f} acc {record['val/acc']:6.2f}{top5} "
              f"| best {self.best_acc:6.2f} | lr {record['lr']:.4g} | {record['time/epoch_seconds']:.1f}s, "
              f"saving {record['time/save_seconds']:.2f}s ({record['time/images_per_second']:.0f} img/s)", flush=True)


def saved_world_size(state: dict) -> int:
    """The number of processes a checkpoint was written by (older checkpoints: told by their random states)."""
    return state.get("world_size") or len(state.get("rng_by_rank", [None]))
