"""What a run leaves besides checkpoints: summary.json (both scripts) each epoch, counter.npy (students) at
the milestones and the end."""
import json

import numpy as np

from utils.data.cifar100 import dataset_kind
from utils.process import distributed
from utils.runs.checkpoint import atomic_write
from utils.runs.runnames import SUMMARY_FILE


def training_summary(trainer, args) -> dict:
    """What every run reports: its arguments, accuracy (top-5 too on ImageNet), progress and speed so far.
    The accuracies are the last finished epoch's: a run stopped mid-epoch keeps them."""
    last = trainer.last_scores
    top5 = {"best_acc5": trainer.best_acc5, "last_acc5": last["val/acc5"]} if "val/acc5" in last else {}
    return {
        "args": vars(args),
        "best_acc": trainer.best_acc if trainer.epochs_done else None,
        "last_acc": last.get("val/acc"),
        **top5,
        "epochs_done": trainer.epochs_done,
        "finished": trainer.epochs_done >= args.epoch,
        "wall_seconds": trainer.wall_seconds,
        "images_per_second": trainer.train_images / trainer.train_seconds,
        "world_size": distributed.world_size(),
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
        write_summary(self.run, {"arch": self.args.arch, **training_summary(trainer, self.args)})


class StudentReport:
    """The trainer's epoch-end hook for student_v0.py."""

    def __init__(self, run, args, teacher: dict, step):
        """teacher: summary.json's teacher fields (teacher_arch, teacher_acc, teacher_identity, ...: utils.teachers.loading)."""
        self.run, self.args, self.step, self.teacher = run, args, step, teacher

    def __call__(self, trainer, epoch: int, record: dict) -> None:
        computation = self.step.meter.as_dict()
        record["computation/percent_of_kd"] = computation["computation"]
        ended = "val/acc" in record  # not a stop mid-epoch
        if ended and (epoch + 1 in self.args.milestones or epoch + 1 == self.args.epoch):  # last.pth holds it too
            atomic_write(self.run.path / "counter.npy", lambda f: np.save(f, self.step.counter.to_numpy()))
        write_summary(self.run, self.summary(trainer, computation))

    def summary(self, trainer, computation: dict) -> dict:
        return {
            **self.teacher,
            "student_arch": self.args.student_arch,
            **training_summary(trainer, self.args),
            "computation": computation,
            "flops": {"teacher": self.step.meter.ft, "student": self.step.meter.fs},
        }
