"""What a run leaves besides checkpoints: summary.json (both scripts) each epoch, counter.npy (students) at
the milestones and the end."""
import json

import numpy as np

from utils.data.cifar100 import dataset_kind
from utils.runs.checkpoint import atomic_write
from utils.runs.runnames import SUMMARY_FILE


def training_summary(trainer, args, last_acc: float) -> dict:
    """What every run reports: its arguments, accuracy, progress and speed so far."""
    return {
        "args": vars(args),
        "best_acc": trainer.best_acc,
        "last_acc": last_acc,
        "epochs_done": trainer.epochs_done,
        "finished": trainer.epochs_done >= args.epoch,
        "wall_seconds": trainer.wall_seconds,
        "images_per_second": trainer.train_images / trainer.train_seconds,
        "data": data_record(trainer, args),
    }


def data_record(trainer, args) -> dict:
    """Which data the run trains on, so that the results table can tell a trial from the protocol."""
    dataset = getattr(args, "dataset", "cifar100")
    return {"kind": dataset_kind(args.data_root) if dataset == "cifar100" else dataset,
            "train_images": trainer.train_loader.num_samples, "test_images": trainer.test_loader.num_samples}


def write_summary(run, summary: dict) -> None:
    # Atomic: the results table and the dispatchers read it while the run goes on.
    atomic_write(run.path / SUMMARY_FILE, lambda f: f.write(json.dumps(summary, indent=2).encode()))


class TeacherReport:
    """The trainer's epoch-end hook for teacher.py: the table's teacher and student-alone accuracies."""

    def __init__(self, run, args):
        self.run, self.args = run, args

    def __call__(self, trainer, epoch: int, record: dict) -> None:
        write_summary(self.run, {"arch": self.args.arch, **training_summary(trainer, self.args, record["val/acc"])})


class StudentReport:
    """The trainer's epoch-end hook for student_v0.py."""

    def __init__(self, run, args, teacher_arch: str, teacher_acc: float, step, teacher_weights: str):
        self.run, self.args, self.step = run, args, step
        self.teacher_arch, self.teacher_acc = teacher_arch, teacher_acc
        self.teacher_weights = teacher_weights  # their sha256 (or URL): a resume must find the same teacher

    def __call__(self, trainer, epoch: int, record: dict) -> None:
        computation = self.step.meter.as_dict()
        record["computation/percent_of_kd"] = computation["computation"]
        if epoch + 1 in self.args.milestones or epoch + 1 == self.args.epoch:  # last.pth holds it every epoch
            atomic_write(self.run.path / "counter.npy", lambda f: np.save(f, self.step.counter.to_numpy()))
        write_summary(self.run, self.summary(trainer, record["val/acc"], computation))

    def summary(self, trainer, last_acc: float, computation: dict) -> dict:
        return {
            "teacher_arch": self.teacher_arch,
            "student_arch": self.args.student_arch,
            "teacher_acc": self.teacher_acc,
            "teacher_weights": self.teacher_weights,
            **training_summary(trainer, self.args, last_acc),
            "computation": computation,
            "flops": {"teacher": self.step.meter.ft, "student": self.step.meter.fs},
        }
