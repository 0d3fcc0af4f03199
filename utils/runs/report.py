"""What a run leaves besides checkpoints: summary.json (both scripts) each epoch, counter.npy and what its
columns are (UNIX students) at the milestones and the end, and, once it has finished, its settings with its
best and last accuracy as TensorBoard hparams."""
import hashlib
import json
import subprocess
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from utils.data.cifar100 import data_folder, dataset_kind
from utils.data.imagenet import image_folder_kind
from utils.process import distributed
from utils.process.files import atomic_write
from utils.runs.checkpoint import sha256_of
from utils.runs.resume import FREE_FLAGS, PLACE_FLAGS, STARTED_BY
from utils.runs.rundir import RunDirectory
from utils.runs.runnames import ALONE, SUMMARY_FILE, read_summary, row_name

COUNTER_FILE = "counter.npy"
COLUMNS_FILE = "counter_columns.json"  # what counter.npy's rows and columns are
HPARAMS_FOLDER = "hparams"  # under the run's tensorboard/: TensorBoard's HParams view reads it
# Not what a run computes, so not what the HParams view compares runs by: where and how it ran and how often it
# reports (the flags a resume may change, its length aside), and paths, which the data's kind and the
# teacher's architecture name instead.
HPARAMS_LEFT_OUT = (set(FREE_FLAGS) | set(PLACE_FLAGS) | {"data_root", "teacher_path", "settings_revision"}) - {"epoch"}
PROJECT = Path(__file__).resolve().parents[2]
# summary.json's history: {its key: the epoch record's}
HISTORY_KEYS = {"train_loss": "train/loss", "train_acc": "train/acc", "val_loss": "val/loss", "val_acc": "val/acc",
                "val_acc5": "val/acc5", "lr": "lr", "seconds": "time/epoch_seconds",
                "macs_spent": "computation/macs_spent"}


def training_summary(trainer, args, history: list) -> dict:
    """What every run reports: its settings, accuracy (top-5 too on ImageNet), progress, speed and history so far,
    and the code and date it was written with. The accuracies are the last finished epoch's: a run stopped
    mid-epoch keeps them."""
    last = trainer.last_scores
    top5 = {"best_acc5": trainer.best_acc5, "last_acc5": last["val/acc5"]} if "val/acc5" in last else {}
    return {
        "args": recorded_args(args),
        "best_acc": trainer.best_acc if trainer.epochs_done else None,
        "best_epoch": trainer.best_epoch or best_epoch(history, trainer.best_acc),
        "last_acc": last.get("val/acc"),
        **top5,
        "epochs_done": trainer.epochs_done,
        "finished": trainer.epochs_done >= args.epoch,
        "wall_seconds": trainer.wall_seconds,
        "images_per_second": trainer.train_images / trainer.train_seconds,
        "world_size": distributed.world_size(),
        "batch_per_process": args.batch_size // distributed.world_size(),  # what a student's resume must keep
        "data": data_record(trainer, args),
        "commit": project_commit(),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "history": history,
    }


def recorded_args(args) -> dict:
    """The run's flags, less those that say how it was started (--resume, --force)."""
    return {key: value for key, value in vars(args).items() if key not in STARTED_BY}


def best_epoch(history: list, best_acc: float):
    """The first epoch that reached the best accuracy, for a run whose checkpoint did not keep it; None when the
    history does not begin with epoch 1 (a run begun by a version that kept none): an epoch before it may
    have reached the best first."""
    if not history or history[0]["epoch"] != 1:
        return None
    return next((entry["epoch"] for entry in history if entry["val_acc"] == best_acc), None)


@lru_cache(maxsize=None)
def project_commit():
    """The git commit of the code writing the summary, '-dirty' after it when tracked files differ from it;
    None outside a git checkout."""
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=40", "--exclude=*"], cwd=PROJECT,
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def data_record(trainer, args) -> dict:
    """Which data the run trains on, so that the results table can tell a trial from the protocol."""
    dataset = getattr(args, "dataset", "cifar100")
    kind = dataset_kind(args.data_root) if dataset == "cifar100" else image_folder_kind(args.data_root)
    return {"kind": kind,
            "train_images": trainer.train_loader.num_samples, "test_images": trainer.test_loader.num_samples}


def forward_macs(summary: dict) -> tuple:
    """(teacher, student) forward multiply-accumulates of one image from a student's summary.json; files written
    before they were named so call them 'flops'."""
    macs = summary.get("macs") or summary["flops"]
    return macs["teacher"], macs["student"]


def write_summary(run, summary: dict) -> None:
    # Atomic: the results table and the dispatchers read it while the run goes on.
    atomic_write(run.path / SUMMARY_FILE, lambda f: f.write(json.dumps(summary, indent=2).encode()))


class History:
    """summary.json's epochs: {epoch, train_loss, train_acc, val_loss, val_acc[, val_acc5], lr, seconds[,
    macs_spent]} each. A resumed run reads back those before the epoch it continues from."""

    def __init__(self, run):
        self.run, self.entries = run, None

    def update(self, epoch: int, record: dict) -> list:
        """The history after 0-based `epoch`, with it when the record has its accuracy (not a stop mid-epoch)."""
        if self.entries is None:
            self.entries = [entry for entry in self._written() if entry["epoch"] <= epoch]
        if "val/acc" in record:
            self.entries.append({"epoch": epoch + 1, **{key: record[name] for key, name in HISTORY_KEYS.items()
                                                        if name in record}})
        return self.entries

    def _written(self) -> list:
        # None yet, or unreadable: resume has judged it already.
        return (read_summary(self.run.path) or {}).get("history", [])


def write_hparams(run, summary: dict, step: int) -> None:
    """The run's settings with its best and last accuracy, for TensorBoard's HParams view. Only the session's start
    and end are written, no experiment summary: without one, TensorBoard builds the view's columns from every
    run's settings, where with one it would take a single run's (picked arbitrarily) for all, and teacher.py's
    and student_v0.py's runs, which have different settings, could not be compared. A run extended after it
    finished replaces its earlier file, since TensorBoard keeps the first settings a run gives."""
    from tensorboardX.summary import hparams

    for earlier in (run.tensorboard / HPARAMS_FOLDER).glob("events.*"):
        earlier.unlink()
    metrics = {"hparams/best_acc": summary["best_acc"], "hparams/last_acc": summary["last_acc"]}
    _, session_start, session_end = hparams(hparams_settings(summary), metrics)
    with run.events_writer(HPARAMS_FOLDER) as writer:
        writer.add_summary(session_start)
        writer.add_summary(session_end)
        for name, value in metrics.items():
            writer.add_scalar(name, value, step)


def rewrite_hparams(experiments_dir) -> list:
    """Each finished run's tensorboard/hparams/ under `experiments_dir` written anew from its summary.json, for runs
    whose file came from a version that wrote an experiment summary (which hides the other runs' settings in
    TensorBoard's HParams view). Returns the run folders rewritten."""
    rewritten = []
    for folder in sorted(Path(experiments_dir).glob(f"*/tensorboard/{HPARAMS_FOLDER}")):
        run = RunDirectory(folder.parents[1])
        summary = read_summary(run.path)
        if summary and summary.get("finished"):
            write_hparams(run, summary, summary["epochs_done"])
            rewritten.append(run.path)
    return rewritten


def hparams_settings(summary: dict) -> dict:
    """What the HParams view compares runs by: the method, the data's kind, the flags that change what a run
    computes (lists as text) and, for a student, its teacher's architecture."""
    flags = {key: " ".join(map(str, value)) if isinstance(value, list) else value
             for key, value in summary["args"].items() if key not in HPARAMS_LEFT_OUT}
    teacher = {"teacher_arch": summary["teacher_arch"]} if "teacher_arch" in summary else {}
    return {"method": summary["method"], "data": summary["data"]["kind"], **flags, **teacher}


class TeacherReport:
    """The trainer's epoch-end hook for teacher.py: the table's teacher and student-alone accuracies."""

    def __init__(self, run, args):
        self.run, self.args, self.history = run, args, History(run)

    def __call__(self, trainer, epoch: int, record: dict) -> None:
        history = self.history.update(epoch, record)
        summary = {"arch": self.args.arch, "method": ALONE, **training_summary(trainer, self.args, history)}
        write_summary(self.run, summary)
        if summary["finished"] and "val/acc" in record:
            write_hparams(self.run, summary, trainer.epochs_done)


class StudentReport:
    """The trainer's epoch-end hook for student_v0.py."""

    def __init__(self, run, args, teacher: dict, step):
        """teacher: summary.json's teacher fields (teacher_arch, teacher_acc, teacher_identity, ...: utils.teachers.loading)."""
        self.run, self.args, self.step, self.teacher = run, args, step, teacher
        self.history = History(run)

    def __call__(self, trainer, epoch: int, record: dict) -> None:
        ended = "val/acc" in record  # not a stop mid-epoch
        if not self.writes_counter():  # a counter a version before this one wrote for KD would stay stale
            (self.run.path / COUNTER_FILE).unlink(missing_ok=True)
        elif ended and (epoch + 1 in self.args.milestones or epoch + 1 == self.args.epoch):
            self.write_counter(trainer)  # last.pth holds it too
        summary = self.summary(trainer, self.step.meter.as_dict(), self.history.update(epoch, record))
        write_summary(self.run, summary)
        if summary["finished"] and ended:
            write_hparams(self.run, summary, trainer.epochs_done)

    def epoch_figures(self, epoch: int) -> dict:
        """The trainer's epoch_figures for a student (TensorBoard's, and summary.json's history has the cost): the
        computation share and the cumulative cost so far (the x-axis of accuracy against computation), the
        teacher's accuracy (a reference line) and, under UNIX, how much of the b most uncertain images changed
        since the epoch before."""
        computation = self.step.meter.as_dict()
        figures = {"computation/percent_of_kd": computation["computation"],
                   "computation/macs_spent": computation["macs_spent"], "teacher/acc": self.teacher["teacher_acc"]}
        changed = self.step.counter.changed_percent(epoch) if self.writes_counter() else None
        return figures if changed is None else {**figures, "select/changed_percent": changed}

    def writes_counter(self) -> bool:
        """Conventional KD counts every image in every epoch: its counter says nothing, and is not written."""
        return not self.step.cfg.conventional_kd

    def write_counter(self, trainer) -> None:
        if not (self.run.path / COLUMNS_FILE).is_file():
            columns = counter_columns(self.args, trainer.train_loader)
            atomic_write(self.run.path / COLUMNS_FILE, lambda f: f.write(json.dumps(columns, indent=2).encode()))
        atomic_write(self.run.path / COUNTER_FILE, lambda f: np.save(f, self.step.counter.to_numpy()))

    def summary(self, trainer, computation: dict, history: list) -> dict:
        return {
            **self.teacher,
            "student_arch": self.args.student_arch,
            "method": row_name(vars(self.args), self.teacher["teacher_arch"], self.step.cfg.conventional_kd),
            **training_summary(trainer, self.args, history),
            "computation": computation,
            "macs": {"teacher": self.step.meter.ft, "student": self.step.meter.fs},
        }


def counter_columns(args, train_loader) -> dict:
    """counter_columns.json: what counter.npy's rows and columns are, and the training images' order with a
    hash to check it against."""
    if getattr(args, "dataset", "cifar100") == "cifar100":
        train_file = data_folder(args.data_root) / "train"
        order = {"columns": "column i is image i of the file (its data[i] and fine_labels[i]; "
                            "utils.data.cifar100.load_cifar100(root).train_images[i])",
                 "file": str(train_file.resolve()), "sha256": sha256_of(train_file)}
    else:
        dataset = train_loader.dataset
        paths = "\n".join(str(Path(path).relative_to(dataset.root)) for path, _ in dataset.samples)
        order = {"columns": "column i is torchvision.datasets.ImageFolder(folder).samples[i] (class folders sorted, "
                            "then the files in each); sha256_of_paths is that of their paths relative to the "
                            "folder, joined by newlines",
                 "folder": str(Path(dataset.root).resolve()),
                 "sha256_of_paths": hashlib.sha256(paths.encode()).hexdigest()}
    return {"rows": "row e is epoch e + 1 (the rows of epochs not trained yet are 0)", **order,
            "images": train_loader.num_samples,
            "values": "1 where the image was among the b most uncertain of its batch in that epoch, else 0"}
