"""What a student run leaves besides checkpoints: summary.json and counter.npy, rewritten each epoch."""
import json

import numpy as np

from utils.checkpoint import atomic_write


class StudentReport:
    """The trainer's epoch-end hook for student_v0.py."""

    def __init__(self, run, args, teacher_arch: str, teacher_acc: float, step):
        self.run, self.args, self.step = run, args, step
        self.teacher_arch, self.teacher_acc = teacher_arch, teacher_acc

    def __call__(self, trainer, epoch: int, record: dict) -> None:
        computation = self.step.meter.as_dict()
        record["computation/percent_of_kd"] = computation["computation"]
        atomic_write(self.run.path / "counter.npy", lambda f: np.save(f, self.step.counter.to_numpy()))
        summary = self.summary(trainer, record["val/acc"], computation)
        atomic_write(self.run.path / "summary.json", lambda f: f.write(json.dumps(summary, indent=2).encode()))

    def summary(self, trainer, last_acc: float, computation: dict) -> dict:
        return {
            "args": vars(self.args),
            "teacher_arch": self.teacher_arch,
            "student_arch": self.args.student_arch,
            "teacher_acc": self.teacher_acc,
            "best_acc": trainer.best_acc,
            "last_acc": last_acc,
            "epochs_done": trainer.epochs_done,
            "finished": trainer.epochs_done >= self.args.epoch,
            "wall_seconds": trainer.wall_seconds,
            "images_per_second": trainer.train_images / trainer.train_seconds,
            "computation": computation,
            "flops": {"teacher": self.step.meter.ft, "student": self.step.meter.fs},
        }
