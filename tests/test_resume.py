"""A run killed at any moment and restarted with --resume ends exactly where the uninterrupted run does."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tensorboardX.proto.event_pb2 import SessionLog

import student_v0
import teacher
import utils.runs.resume
from models import model_dict
from tests.event_files import events, hparams, scalars
from utils.data.synthetic import write_synthetic_cifar100
from utils.data.synthetic_imagenet import write_image_folder
from utils.errors import Interrupted, Preempted, UserError
from utils.process import preemption
from utils.process.cli import Flags
from utils.process.seeding import rng_state, set_rng_state
from utils.runs.checkpoint import atomic_save
from utils.runs.earlier_names import student_folder
from utils.runs.report import best_epoch
from utils.runs.rundir import open_run
from utils.runs.runnames import student_run_name, teacher_run_name
from utils.training import trainer
from utils.training.iteration import Evaluation, TrainIteration

REPO = Path(__file__).resolve().parents[1]
START = SessionLog.START
# One thread: a 2-core machine shared with pytest itself runs these small steps faster without
# OpenMP workers competing for the cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    """A teacher in the authors' published layout; untrained weights are enough to distil from."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("zoo") / "resnet8.pth"
    torch.save({"state_dict": model_dict["resnet8"](num_classes=100).state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """300 training images: 5 batches an epoch, enough to cross a batch boundary and a milestone."""
    return write_synthetic_cifar100(tmp_path_factory.mktemp("tiny"), train_per_class=3, test_per_class=1)


def student_command(teacher_file, data_root, experiments, *extra, graphs=False):
    """graphs: --cuda-graphs through the CPU stand-in (tests/graph_stand_in.py), which records and replays."""
    runner = [sys.executable, "tests/graph_stand_in.py"] if graphs else [sys.executable]
    return [*runner, "student_v0.py", "--teacher-path", str(teacher_file), "--student-arch", "resnet8",
            "--epoch", "3", "--milestones", "2", "--log-freq", "2", "--data-root", str(data_root),
            "--experiments-dir", str(experiments), *extra]


def run_dir(experiments):
    (run,) = experiments.glob("v0_student_*")
    return run


def kill_after_first_epoch(command) -> None:
    process = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    experiments = Path(command[command.index("--experiments-dir") + 1])
    deadline = time.monotonic() + 120
    while not list(experiments.glob("v0_student_*/ckpt/last.pth")):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.01)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def whole_run(teacher_file, tiny_root, tmp_path_factory):
    """The uninterrupted run, eager."""
    whole = tmp_path_factory.mktemp("whole")
    subprocess.run(student_command(teacher_file, tiny_root, whole), cwd=REPO, env=ENV, check=True, capture_output=True)
    return whole


@pytest.mark.parametrize("graphs", [False, True], ids=["eager", "graphs"])
def test_kill_and_resume_matches_the_uninterrupted_run(teacher_file, tiny_root, whole_run, tmp_path, graphs):
    """Killed after epoch 1, resumed across the milestone (after epoch 2); with graphs (through the CPU
    stand-in) the resumed process records afresh and must still end where the eager, uninterrupted run does."""
    whole, resumed = whole_run, tmp_path / "resumed"
    flags = ["--cuda-graphs"] if graphs else []
    kill_after_first_epoch(student_command(teacher_file, tiny_root, resumed, *flags, graphs=graphs))
    assert torch.load(run_dir(resumed) / "ckpt" / "last.pth", weights_only=True)["epoch"] < 3
    done = subprocess.run(student_command(teacher_file, tiny_root, resumed, *flags, "--resume", graphs=graphs),
                          cwd=REPO, env=ENV, capture_output=True, text=True, check=True)
    assert "resumed" in done.stdout and "running eagerly" not in done.stderr

    a, b = run_dir(whole), run_dir(resumed)
    final_a = torch.load(a / "ckpt" / "last.pth", weights_only=True)
    final_b = torch.load(b / "ckpt" / "last.pth", weights_only=True)
    for key, tensor in final_a["state_dict"].items():
        assert torch.equal(tensor, final_b["state_dict"][key]), key
    assert np.array_equal(np.load(a / "counter.npy"), np.load(b / "counter.npy"))
    summary_a, summary_b = (json.loads((r / "summary.json").read_text()) for r in (a, b))
    for key in ("best_acc", "best_epoch", "last_acc", "epochs_done", "computation"):
        assert summary_a[key] == summary_b[key], key
    assert without_seconds(summary_a["history"]) == without_seconds(summary_b["history"])  # epoch 1's carried over
    # What TensorBoard shows: the killed process's points past epoch 1 are discarded, the resumed one's replace them;
    # epoch 1's, on disk before its last.pth, are there once.
    assert scalars(a / "tensorboard" / "iterations") == scalars(b / "tensorboard" / "iterations")
    per_epoch = [scalars(run / "tensorboard") for run in (a, b)]
    assert per_epoch[0]["val/acc"] == per_epoch[1]["val/acc"] and sorted(per_epoch[1]["val/acc"]) == [1, 2, 3]
    assert {tag: sorted(points) for tag, points in per_epoch[0].items()} == {
        tag: sorted(points) for tag, points in per_epoch[1].items()}
    starts = [event.step for event in events(b / "tensorboard" / "iterations") if event.session_log.status == START]
    assert starts == [1, 6]  # the resumed process starts over at iteration 6, the first of epoch 2


# python -c THIS EPOCH SCRIPT ARGS...: the script, whose process dies (os._exit, as on a SIGKILL) while it writes the
# last.pth of epoch EPOCH.
DIES_SAVING = """
import os, runpy, sys
from utils.training import trainer
original, epoch = trainer.staged_save, int(sys.argv[1])
trainer.staged_save = lambda state, path: os._exit(137) if state["epoch"] == epoch else original(state, path)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_run_killed_saving_its_last_epoch_is_not_finished_and_its_resume_redoes_the_epoch(tiny_root, tmp_path):
    """Killed while the last epoch's last.pth is written: summary.json may not say the run is finished (the
    dispatchers never resume a run it says finished), since that epoch's figures are not on disk; whatever epoch
    it says is done, TensorBoard shows. --resume redoes the epoch and finishes."""
    argv = teacher_argv(tiny_root, tmp_path, "--epoch", "2", "--log-freq", "0")
    killed = subprocess.run([sys.executable, "-c", DIES_SAVING, "2", "teacher.py", *argv], cwd=REPO, env=ENV,
                            capture_output=True, text=True)
    assert killed.returncode == 137, killed.stderr
    run = tmp_path / "teacher_resnet8"
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["epochs_done"], summary["finished"]) == (1, False)
    assert sorted(scalars(run / "tensorboard")["val/acc"]) == [1]
    assert torch.load(run / "ckpt" / "last.pth", weights_only=True)["epoch"] == 1
    teacher.main([*argv, "--resume"])
    assert torch.load(run / "ckpt" / "last.pth", weights_only=True)["epoch"] == 2
    assert json.loads((run / "summary.json").read_text())["finished"]
    assert sorted(scalars(run / "tensorboard")["val/acc"]) == [1, 2]


def without_seconds(history: list) -> list:
    return [{key: value for key, value in entry.items() if key != "seconds"} for entry in history]


def teacher_argv(data_root, experiments, *extra):
    return ["--arch", "resnet8", "--epoch", "1", "--lr", "0.05", "--log-freq", "2", "--data-root", str(data_root),
            "--experiments-dir", str(experiments), *extra]


@pytest.fixture(scope="module")
def one_epoch_teacher(tiny_root, tmp_path_factory):
    experiments = tmp_path_factory.mktemp("teacher")
    teacher.main(teacher_argv(tiny_root, experiments))
    return experiments


@pytest.fixture
def experiments(one_epoch_teacher, tmp_path):
    """A copy of the 1-epoch teacher run's experiments folder, for a test to resume."""
    shutil.copytree(one_epoch_teacher, tmp_path / "experiments")
    return tmp_path / "experiments"


def test_a_resume_with_changed_flags_is_refused_naming_each(tiny_root, experiments, capsys, exit_status):
    run = experiments / "teacher_resnet8"
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file() and path.name != "run.lock"}
    other = experiments.parent / "other"
    changed = teacher_argv(other, experiments, "--epoch", "2", "--resume", "--lr", "0.2", "--amp")
    assert exit_status(teacher.main, changed) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"error: {run} was started with other flags: " in error
    for fragment in ("--lr 0.05 then, 0.2 now", "--amp off then, on now",
                     f"--data-root {tiny_root} then, {other} now", "--tag NAME"):
        assert fragment in error, error
    assert "--epoch" not in error
    assert {path: path.read_bytes() for path in before} == before  # nothing overwritten


def test_a_resume_on_another_kind_of_data_in_the_same_folder_is_refused(tiny_root, experiments, capsys,
                                                                          exit_status, monkeypatch):
    monkeypatch.setattr(utils.runs.resume, "dataset_kind", lambda root: "CIFAR-100")  # as if the files were replaced
    assert exit_status(teacher.main, teacher_argv(tiny_root, experiments, "--epoch", "2", "--resume")) == 2
    assert "the data synthetic then, CIFAR-100 now" in capsys.readouterr().err


def test_a_resume_may_extend_the_run_and_spell_paths_or_the_gpu_otherwise(tiny_root, experiments, monkeypatch):
    monkeypatch.chdir(tiny_root)
    # The data folder itself rather than its parent, relative; another --gpu-id (the CPU ignores it).
    teacher.main(teacher_argv("cifar-100-python", experiments, "--epoch", "2", "--resume", "--gpu-id", "3"))
    summary = json.loads((experiments / "teacher_resnet8" / "summary.json").read_text())
    assert summary["epochs_done"] == 2 and summary["finished"]
    assert (summary["args"]["epoch"], summary["args"]["data_root"], summary["args"]["gpu_id"]) == (
        2, "cifar-100-python", 3)  # what the run uses now
    # TensorBoard keeps the first settings a run gives: the finished run's file is replaced, not added to.
    hparams_folder = experiments / "teacher_resnet8" / "tensorboard" / "hparams"
    assert len(list(hparams_folder.glob("events.*"))) == 1 and hparams(hparams_folder)[0]["epoch"] == 2
    assert scalars(hparams_folder)["hparams/last_acc"] == {2: pytest.approx(summary["last_acc"])}


def test_a_run_whose_summary_was_written_before_the_history_resumes_and_keeps_it_from_then_on(tiny_root, experiments):
    summary_file, last = (experiments / "teacher_resnet8" / name for name in ("summary.json", "ckpt/last.pth"))
    old = json.loads(summary_file.read_text())
    for key in ("history", "best_epoch", "method", "commit", "date"):
        del old[key]
    old["args"].update(resume=False, force=False)  # recorded then
    summary_file.write_text(json.dumps(old))
    atomic_save({key: value for key, value in torch.load(last, weights_only=True).items() if key != "best_epoch"}, last)
    teacher.main(teacher_argv(tiny_root, experiments, "--epoch", "2", "--resume"))
    summary = json.loads(summary_file.read_text())
    assert summary["epochs_done"] == 2 and [entry["epoch"] for entry in summary["history"]] == [2]
    # Epoch 2 is the best epoch only if it beat epoch 1; if it tied, epoch 1 (not in the history) was first.
    assert summary["best_epoch"] == (2 if summary["last_acc"] > old["best_acc"] else None)
    assert "resume" not in summary["args"]


def test_the_best_epoch_is_named_only_when_the_history_shows_the_first_epoch_that_reached_it():
    late = [{"epoch": 2, "val_acc": 30.0}, {"epoch": 3, "val_acc": 30.0}]
    assert best_epoch(late, 30.0) is None  # epoch 1, which the history lacks, may have reached 30 first
    assert best_epoch([{"epoch": 1, "val_acc": 20.0}, *late], 30.0) == 2
    assert best_epoch([{"epoch": 1, "val_acc": 20.0}, *late], 40.0) is None


def test_a_tag_gives_a_sweep_its_own_folders():
    assert teacher_run_name("resnet8", 0, "lr0.1") == "teacher_resnet8_lr0.1"
    assert teacher_run_name("resnet8", 2, "lr0.1") == "teacher_resnet8_seed2_lr0.1"
    args = student_v0.parse_args(["--teacher-path", "t.pth", "--student-arch", "resnet8", "--tag", "lr0.1"])
    assert student_run_name(args, "resnet8", "best").endswith("_seed0_lr0.1")
    assert not student_run_name(student_v0.parse_args(["--teacher-path", "t.pth", "--student-arch", "resnet8"]),
                                "resnet8", "best").endswith("_")
    with pytest.raises(UserError, match="--tag '../x'"):
        teacher.parse_args(["--arch", "resnet8", "--tag", "../x"])


def teacher_folder(experiments, name, tag):
    """A teacher.py run folder as a student's --teacher-path names it: its checkpoint and summary.json."""
    (experiments / name / "ckpt").mkdir(parents=True)
    (experiments / name / "ckpt" / "best.pth").write_bytes(b"")  # read only once the student trains
    (experiments / name / "summary.json").write_text(json.dumps({"args": {"arch": "resnet8", "tag": tag}}))
    return experiments / name


def test_a_student_of_a_tagged_teacher_gets_its_own_folder(tmp_path):
    """teacher_resnet8_dali (--tag dali) and teacher_resnet8 teach into two folders; the untagged teacher's
    students keep the name they always had, and the tagged one's is the same from its folder or its file."""
    def run_name(teacher_path):
        return student_v0.teacher_and_run_name(student_v0.parse_args(["--teacher-path", str(teacher_path),
                                                                      "--student-arch", "resnet8"]))[2]

    untagged = teacher_folder(tmp_path, "teacher_resnet8", None)
    tagged = teacher_folder(tmp_path, "teacher_resnet8_dali", "dali")
    assert run_name(untagged) == "v0_student_resnet8_teacher_resnet8-best_strategy3_k48_b32_w10_seed0"
    assert run_name(tagged) == "v0_student_resnet8_teacher_resnet8_dali-best_strategy3_k48_b32_w10_seed0"
    assert run_name(tagged / "ckpt" / "best.pth") == run_name(tagged)


def test_a_tagged_teachers_student_named_as_before_continues_in_its_folder_if_its_teacher_is_this_one(tmp_path):
    """Before the tag was named, such a student had the untagged teacher's name: the folder is its run only if
    it recorded this teacher's weights."""
    tagged = teacher_folder(tmp_path, "teacher_resnet8_dali", "dali")
    args = student_v0.parse_args(["--teacher-path", str(tagged), "--student-arch", "resnet8", "--resume"])
    teacher_arch, _, name, named_teacher = student_v0.teacher_and_run_name(args)
    earlier = tmp_path / "v0_student_resnet8_teacher_resnet8-best_strategy3_k48_b32_w10_seed0"
    atomic_save({"epoch": 1}, earlier / "ckpt" / "last.pth")
    (earlier / "summary.json").write_text(json.dumps({"args": vars(args), "teacher_identity": "sha256:dali"}))
    for identity, folder in (("sha256:dali", earlier), ("sha256:other", tmp_path / name)):
        assert student_folder(tmp_path / name, args, teacher_arch, named_teacher, {"teacher_identity": identity}) == folder


def test_a_resume_that_leaves_the_batch_to_the_run_checks_k_and_b_against_the_runs_own():
    """--k 96 --b 64 fit a run of --batch-size 128: a --resume that does not give the batch is not refused while
    parsing, against the default 64; once the run's own batch is known (settle_batch), against that."""
    flags = ["--teacher-path", "t.pth", "--student-arch", "resnet8", "--k", "96", "--b", "64"]
    with pytest.raises(UserError, match="--k must be between 1 and the batch size 64, got 96"):
        student_v0.parse_args(flags)
    args = student_v0.parse_args([*flags, "--resume"])
    args.batch_size = 128  # the run's own, as the resume keeps it
    student_v0.settle_batch(args)
    args.batch_size = 64
    with pytest.raises(UserError, match="--k must be between 1 and the batch size 64, got 96"):
        student_v0.settle_batch(args)


class CudaOnDevice2:
    """torch.cuda as a process using device 2 of 4 sees it; it has no get_rng_state_all, so a call to it fails."""

    def __init__(self, visible=4):
        self.states = [torch.full((16,), device, dtype=torch.uint8) for device in range(visible)]

    def is_available(self):
        return True

    def current_device(self):
        return 2

    def get_rng_state(self, device):
        return self.states[device]

    def set_rng_state(self, state, device):
        self.states[device] = state


def test_the_cuda_random_state_saved_and_restored_is_the_device_in_uses_alone():
    """A run may resume with fewer devices visible (command.sh shows one) or on another --gpu-id: the state
    follows the device in use, not a position among the visible ones."""
    saved = rng_state(CudaOnDevice2())
    assert torch.equal(saved["cuda"], torch.full((16,), 2, dtype=torch.uint8))
    resumed = CudaOnDevice2(visible=3)
    resumed.states[2] = torch.zeros(16, dtype=torch.uint8)
    set_rng_state(saved, resumed)
    assert [int(state[0]) for state in resumed.states] == [0, 1, 2]


def test_a_checkpoint_holding_every_visible_devices_cuda_state_still_resumes(recwarn):
    """Saved the old way, a list by position: the device in use takes its entry; a list of one (one device
    visible, as command.sh shows it) takes that one, the device the run used; a longer list too short for it
    (saved with fewer devices visible) leaves the seeded state, with a warning."""
    earlier = {"torch": torch.get_rng_state(), "cuda": [torch.full((16,), 10 + d, dtype=torch.uint8) for d in range(8)]}
    cuda = CudaOnDevice2()
    set_rng_state(earlier, cuda)
    assert int(cuda.states[2][0]) == 12 and int(cuda.states[0][0]) == 0
    set_rng_state({**earlier, "cuda": earlier["cuda"][:1]}, cuda)
    assert int(cuda.states[2][0]) == 10 and not recwarn.list
    set_rng_state({**earlier, "cuda": earlier["cuda"][:2]}, cuda)
    assert int(cuda.states[2][0]) == 10 and "none for device 2" in str(recwarn.pop(UserWarning).message)


def test_a_run_stopped_on_the_preemption_signal_mid_epoch_resumes_to_the_uninterrupted_end(tiny_root, one_epoch_teacher,
                                                                                              tmp_path, monkeypatch):
    """SIGUSR1 (what SLURM sends before ending a job) after iteration 2 of 5, and again, once resumed, after
    iteration 4: the run saves there and stops each time; resumed, it skips the iterations done and ends bit for
    bit where the run that was never stopped ends. The epoch's seconds count those each stopped process spent on
    it (100 s an iteration by the trainer's clock)."""
    original, calls, clock = TrainIteration.__call__, [], {"shift": 0.0}

    def signalled_at_the_second_and_fourth(self, plan):
        original(self, plan)
        calls.append(plan)
        clock["shift"] += 100.0
        if len(calls) in (2, 4):
            os.kill(os.getpid(), signal.SIGUSR1)

    monkeypatch.setattr(TrainIteration, "__call__", signalled_at_the_second_and_fourth)
    monkeypatch.setattr(trainer, "time", SimpleNamespace(perf_counter=lambda: time.perf_counter() + clock["shift"]))
    monkeypatch.setattr(preemption, "CHECK_SECONDS", 0)  # a check after every iteration: the stop comes at once
    for argv, done in ((teacher_argv(tiny_root, tmp_path), 2), (teacher_argv(tiny_root, tmp_path, "--resume"), 4)):
        with pytest.raises(Preempted, match=rf"after iteration {done}/5 of epoch 1, saved in .*last\.pth; --resume"):
            teacher.main(argv)
        stopped = torch.load(tmp_path / "teacher_resnet8" / "ckpt" / "last.pth", weights_only=True)
        assert (stopped["epoch"], stopped["batches_done"]) == (0, done) and stopped["epoch_seconds"] > 100 * done
    teacher.main(teacher_argv(tiny_root, tmp_path, "--resume"))
    monkeypatch.setattr(TrainIteration, "__call__", original)

    runs = [experiments / "teacher_resnet8" for experiments in (one_epoch_teacher, tmp_path)]
    final = [torch.load(run / "ckpt" / "last.pth", weights_only=True)["state_dict"] for run in runs]
    assert all(torch.equal(tensor, final[1][key]) for key, tensor in final[0].items())
    summaries = [json.loads((run / "summary.json").read_text()) for run in runs]
    assert summaries[0]["last_acc"] == summaries[1]["last_acc"] and summaries[1]["finished"]
    assert without_seconds(summaries[0]["history"]) == without_seconds(summaries[1]["history"])
    assert summaries[1]["history"][0]["seconds"] > 500 > summaries[0]["history"][0]["seconds"]
    # The point after the stop averages iterations 3 and 4 alone, as the run never stopped does.
    iterations = [scalars(run / "tensorboard" / "iterations") for run in runs]
    assert sorted(iterations[1]["iteration/train_loss"]) == [2, 4] and iterations[0] == iterations[1]


def test_ctrl_c_mid_epoch_keeps_what_the_epoch_did_and_the_last_finished_epochs_accuracies(tmp_path, monkeypatch,
                                                                                           capsys):
    """Ctrl-C at iteration 1 of 3 in epoch 2 (ImageNet: top-5 too): the run saves there, as on the preemption
    signal, and exits 130; summary.json keeps epoch 1's accuracies; --resume says where it continues."""
    root = write_image_folder(tmp_path / "data", classes=3, train_per_class=2, val_per_class=1, size=36)
    argv = ["--dataset", "imagenet", "--data-root", str(root), "--arch", "imagenet_mobilenet_v2", "--image-size", "32",
            "--workers", "0", "--batch-size", "2", "--epoch", "2", "--milestones", "1",
            "--experiments-dir", str(tmp_path / "e")]
    run, original, calls, before = tmp_path / "e" / "teacher_imagenet_mobilenet_v2", TrainIteration.__call__, [], {}

    def interrupted_in_epoch_2(self, plan):
        original(self, plan)
        calls.append(plan)
        if len(calls) == 4:
            before.update(json.loads((run / "summary.json").read_text()))  # epoch 1's
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(TrainIteration, "__call__", interrupted_in_epoch_2)
    monkeypatch.setattr(preemption, "CHECK_SECONDS", 0)  # a check after every iteration: the stop comes at once
    with pytest.raises(Interrupted, match=r"^interrupted after iteration 1/3 of epoch 2, saved in .*last\.pth; "
                                          r"--resume continues from there$") as interrupted:
        teacher.main(argv)
    assert interrupted.value.status == 130
    stopped = torch.load(run / "ckpt" / "last.pth", weights_only=True)
    assert (stopped["epoch"], stopped["batches_done"]) == (1, 1)
    summary = json.loads((run / "summary.json").read_text())
    for key in ("best_acc", "last_acc", "best_acc5", "last_acc5"):
        assert summary[key] == before[key] and summary[key] is not None, key
    monkeypatch.setattr(TrainIteration, "__call__", original)
    capsys.readouterr()
    teacher.main([*argv, "--resume"])
    assert (f"resumed {run} after epoch 1, 1 of 3 iterations into epoch 2 (best {before['best_acc']:.2f}): "
            f"continues with epoch 2, iteration 2 of 3\n") in capsys.readouterr().out


def test_ctrl_c_during_an_epochs_evaluation_stops_once_the_epoch_is_saved(tmp_path, monkeypatch, capsys):
    """Ctrl-C while epoch 1 of 2 is evaluated: the epoch ends, is saved, and the run stops there (not one iteration
    into epoch 2); --resume continues with epoch 2's first iteration."""
    root = write_image_folder(tmp_path / "data", classes=3, train_per_class=2, val_per_class=1, size=36)
    argv = ["--dataset", "imagenet", "--data-root", str(root), "--arch", "imagenet_mobilenet_v2", "--image-size", "32",
            "--workers", "0", "--batch-size", "2", "--epoch", "2", "--milestones", "1",
            "--experiments-dir", str(tmp_path / "e")]
    evaluate, train = Evaluation.__call__, TrainIteration.__call__
    monkeypatch.setattr(Evaluation, "__call__", lambda self: os.kill(os.getpid(), signal.SIGINT) or evaluate(self))
    monkeypatch.setattr(preemption, "CHECK_SECONDS", 0)  # a check after every iteration: epoch 2's first would stop
    with pytest.raises(Interrupted, match=r"^interrupted after epoch 1, saved in .*last\.pth; --resume continues "
                                          r"from there$") as interrupted:
        teacher.main(argv)
    assert interrupted.value.status == 130
    capsys.readouterr()
    monkeypatch.setattr(TrainIteration, "__call__", lambda self, plan: os.kill(os.getpid(), signal.SIGINT) or
                        train(self, plan))
    with pytest.raises(Interrupted, match="after iteration 1/3 of epoch 2"):  # enough: the resume's line is out
        teacher.main([*argv, "--resume"])
    out = capsys.readouterr().out
    assert "after epoch 1 (best " in out and "): continues with epoch 2, iteration 1 of 3\n" in out


def test_a_resume_keeps_the_runs_own_value_of_each_flag_not_given(tmp_path, capsys):
    """The run started with --epoch 3 --lr 0.1 on GPU 2: a bare --resume goes on to epoch 3 at lr 0.1 (not the
    defaults, 240 and 0.05), on the GPU given now; a flag given must still match."""
    run = tmp_path / "teacher_resnet8"
    atomic_save({"epoch": 1}, run / "ckpt" / "last.pth")
    started = vars(teacher.parse_args(["--arch", "resnet8", "--epoch", "3", "--lr", "0.1", "--gpu-id", "2"]))
    (run / "summary.json").write_text(json.dumps({"args": started}))
    args = teacher.parse_args(["--arch", "resnet8", "--resume"])
    open_run(run, resume=True, force=False, epochs=args.epoch, args=args)[0].release()
    assert (args.epoch, args.lr, args.gpu_id) == (3, 0.1, 0)
    assert "--resume: the run's own --epoch 3, --lr 0.1 (flags not given" in capsys.readouterr().out
    with pytest.raises(UserError, match="--lr 0.1 then, 0.2 now"):
        open_run(run, resume=True, force=False, epochs=240, args=teacher.parse_args(["--arch", "resnet8", "--resume",
                                                                                     "--lr", "0.2"]))


def test_the_worker_count_may_change_on_resume():
    """Each ImageNet crop is seeded by (seed, epoch, image), whichever worker draws it."""
    assert utils.runs.resume.changed_flags({"workers": 8, "lr": 0.1}, {"workers": 2, "lr": 0.1}) == []


def test_a_resume_not_given_workers_takes_this_machines_default_not_the_runs():
    """The run's 8 workers may be more than this machine's cores; its lr is kept all the same."""
    args = Flags(workers=2, lr=0.2)
    args.given = frozenset()
    assert utils.runs.resume.keep_started_flags({"workers": 8, "lr": 0.1}, args) == [("--lr", 0.1)]
    assert (args.workers, args.lr) == (2, 0.1)


def test_a_resume_with_a_replaced_teacher_is_refused_naming_both(teacher_file, tiny_root, tmp_path, capsys,
                                                                  exit_status):
    """The teacher retrained (here: other weights in the same file) after the student started: one run must
    not distil from two teachers."""
    experiments, teacher_path = tmp_path / "e", tmp_path / "resnet8.pth"
    shutil.copy(teacher_file, teacher_path)
    argv = ["--teacher-path", str(teacher_path), "--student-arch", "resnet8", "--data-root", str(tiny_root),
            "--experiments-dir", str(experiments)]
    student_v0.main([*argv, "--epoch", "1"])
    before = json.loads((run_dir(experiments) / "summary.json").read_text())["teacher_identity"]
    torch.manual_seed(2)
    torch.save({"state_dict": model_dict["resnet8"](num_classes=100).state_dict()}, teacher_path)
    capsys.readouterr()
    assert exit_status(student_v0.main, [*argv, "--epoch", "2", "--resume"]) == 2
    after = f"sha256:{hashlib.sha256(teacher_path.read_bytes()).hexdigest()}"
    error = capsys.readouterr().err
    assert f"was started with other settings: the teacher's weights {before} then, {after} now" in error, error
    assert before != after
    assert json.loads((run_dir(experiments) / "summary.json").read_text())["epochs_done"] == 1
