"""Bad input to the training scripts: one 'error:' line naming the value, exit 2, nothing written."""
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import student_v0
import teacher
from models import model_dict
from utils.unix_settings import STRATEGIES
from utils.errors import UserError
from utils.training.steps import SupervisedStep

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def teacher_file(tmp_path):
    path = tmp_path / "resnet8.pth"
    torch.save({"state_dict": model_dict["resnet8"](num_classes=100).state_dict()}, path)
    return path


def one_error_line(capsys, *fragments):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize("argv, fragments", [
    (["--arch", "resnet9"], ["'resnet9'", "resnet8x4", "ShuffleV2"]),
    (["--arch", "resnet8", "--epoch", "0"], ["--epoch", "got 0"]),
    (["--arch", "resnet8", "--batch-size", "-1"], ["--batch-size", "got -1"]),
    (["--arch", "resnet8", "--lr", "0"], ["--lr", "got 0.0"]),
    (["--arch", "resnet8", "--lr", "fast"], ["--lr", "'fast'"]),
    (["--arch", "resnet8", "--resume", "--force"], ["--resume and --force"]),
    (["--arch", "resnet8", "--compile", "--cuda-graphs"], ["--compile and --cuda-graphs"]),
    (["--epoch", "3"], ["--arch"]),
])
def test_teacher_bad_flags(argv, fragments, capsys, exit_status, tmp_path):
    assert exit_status(teacher.main, [*argv, "--experiments-dir", str(tmp_path)]) == 2
    one_error_line(capsys, *fragments)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, fragments", [
    (["--k", "65"], ["--k", "batch size 64", "got 65"]),
    (["--b", "0"], ["--b", "got 0"]),
    (["--k", "20", "--batch-size", "16"], ["--k", "batch size 16"]),
    (["--k", "16", "--b", "32"], ["--b 32 is larger than --k 16", "16 would be counted but never trained on"]),
    (["--T", "0"], ["--T"]),
    (["--kd-weight", "0"], ["nothing to train on"]),
    (["--strategy", str(max(STRATEGIES) + 1)], ["--strategy", str(max(STRATEGIES) + 1)]),  # one past the last
    (["--student-arch", "mobilenet"], ["'mobilenet'", "MobileNetV2"]),
    # Unmatched feature pairs are refused before a run directory exists (the teacher is resnet8).
    (["--student-arch", "ShuffleV1", "--other-distill", "SP"], ["SP", "64x8x8 = 4096", "960 channels", "SP-batch"]),
    (["--student-arch", "vgg8", "--other-distill", "AT"], ["AT", "student has 4 and the teacher 3"]),
    (["--distill", "CRD"], ["--distill", "'CRD'", "KD", "DKD", "LSKD"]),
    (["--distill", "DKD", "--alpha", "0"], ["--alpha", "positive", "got 0.0"]),
    (["--distill", "DKD", "--beta", "-8"], ["--beta", "positive", "got -8.0"]),
    (["--distill", "DKD", "--T", "0"], ["--T", "got 0.0"]),
    (["--distill", "LSKD", "--T", "-2"], ["--T", "got -2.0"]),
    (["--distill", "LSKD", "--ls-eps", "0"], ["--ls-eps", "positive", "got 0.0"]),
    (["--beta", "6"], ["--beta", "--distill DKD", "not of --distill KD"]),
    (["--distill", "DKD", "--ls-eps", "1e-5"], ["--ls-eps", "--distill LSKD", "not of --distill DKD"]),
])
def test_student_bad_flags(extra, fragments, capsys, exit_status, tmp_path, teacher_file):
    argv = ["--teacher-path", str(teacher_file), "--student-arch", "resnet8", "--experiments-dir", str(tmp_path / "e"), *extra]
    assert exit_status(student_v0.main, argv) == 2
    one_error_line(capsys, *fragments)
    assert not (tmp_path / "e").exists()


def test_missing_and_corrupt_teachers(capsys, exit_status, tmp_path):
    argv = ["--student-arch", "resnet8", "--experiments-dir", str(tmp_path / "e")]
    assert exit_status(student_v0.main, ["--teacher-path", str(tmp_path / "nope"), *argv]) == 2
    one_error_line(capsys, "nope", "does not exist")
    broken = tmp_path / "resnet8.pth"
    broken.write_bytes(b"not a checkpoint")
    assert exit_status(student_v0.main, ["--teacher-path", str(broken), "--data-root", str(tmp_path), *argv]) == 2
    one_error_line(capsys, "cannot read checkpoint", "resnet8.pth")


def test_missing_dataset_without_network(capsys, exit_status, tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("torchvision.datasets.CIFAR100", offline)
    argv = ["--arch", "resnet8", "--data-root", str(tmp_path / "data"), "--experiments-dir", str(tmp_path / "e")]
    assert exit_status(teacher.main, argv) == 2
    one_error_line(capsys, str(tmp_path / "data" / "cifar-100-python"), "utils.synthetic")
    assert list(tmp_path.iterdir()) == []  # the failed start left no run folder, nor the experiments folder


def test_a_mistyped_data_root_creates_nothing_and_names_the_folder_it_meant(capsys, exit_status, tmp_path,
                                                                             monkeypatch, synthetic_root):
    def offline(self):  # as torchvision does: the folder first, then the download that fails
        Path(self.root).mkdir(parents=True, exist_ok=True)
        (Path(self.root) / "cifar-100-python.tar.gz").write_bytes(b"partial")
        raise OSError("network is unreachable")

    monkeypatch.setattr("torchvision.datasets.CIFAR100.download", offline)
    data = tmp_path / "data"
    data.mkdir()
    (data / "synthetic").symlink_to(synthetic_root)
    argv = ["--arch", "resnet8", "--data-root", str(data / "synthtic"), "--experiments-dir", str(tmp_path / "e")]
    assert exit_status(teacher.main, argv) == 2
    one_error_line(capsys, f"{data / 'synthtic'} does not exist; did you mean {data / 'synthetic'}?",
                   f"--out {data / 'synthetic'}`")
    assert sorted(tmp_path.iterdir()) == [data] and sorted(data.iterdir()) == [data / "synthetic"]


@pytest.mark.parametrize("where", ["below a file", "read-only"])
def test_an_experiments_folder_that_cannot_be_written_is_one_error(where, capsys, exit_status, tmp_path,
                                                                   monkeypatch, synthetic_root):
    experiments = tmp_path / "e"
    if where == "below a file":
        (tmp_path / "file").write_text("")
        experiments = tmp_path / "file" / "e"
    else:  # chmod binds no root user: the lock file's open fails as a read-only folder makes it fail
        def read_only(path, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr("utils.runs.rundir.open", read_only, raising=False)
    argv = ["--arch", "resnet8", "--data-root", str(synthetic_root), "--experiments-dir", str(experiments)]
    assert exit_status(teacher.main, argv) == 2
    one_error_line(capsys, "cannot write the run folder", "--experiments-dir")
    assert sorted(path.name for path in tmp_path.iterdir()) == (["file"] if where == "below a file" else [])


def test_a_short_run_names_its_folder_and_warns_only_of_milestones_given(synthetic_root, tmp_path, capsys):
    argv = ["--arch", "resnet8", "--epochs", "1", "--data-root", str(synthetic_root), "--experiments-dir", str(tmp_path)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default milestones lie past the end: expected, no warning
        teacher.main(argv)
    lines = capsys.readouterr().out.splitlines()
    run = tmp_path / "teacher_resnet8"
    assert f"run folder: {run}" in lines[:2]  # at the start, beside the device line
    assert re.fullmatch(rf"finished {run}: best accuracy \d+\.\d\d, last \d+\.\d\d", lines[-1]), lines[-1]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["args"]["milestones"] == [150, 180, 210]
    assert summary["data"] == {"kind": "synthetic", "train_images": 1000, "test_images": 200}
    with pytest.warns(UserWarning, match=r"milestones \[5\] are not before the last epoch \(1\)"):
        teacher.parse_args([*argv, "--milestones", "5"])


def test_non_finite_loss_stops_with_epoch_and_iteration_and_keeps_the_last_good_checkpoint(
        synthetic_root, tmp_path, capsys, exit_status, monkeypatch):
    healthy = SupervisedStep.__call__
    calls = {"n": 0}

    def diverge_in_epoch_two(self, x, y, idx):
        out = healthy(self, x, y, idx)
        calls["n"] += 1
        if calls["n"] == 16 + 3:  # iteration 2 of epoch 2 (16 batches an epoch)
            out.losses["ce"] = out.losses["ce"] * float("nan")
        return out

    monkeypatch.setattr(SupervisedStep, "__call__", diverge_in_epoch_two)
    argv = ["--arch", "resnet8", "--epoch", "3", "--milestones", "2", "--data-root", str(synthetic_root),
            "--experiments-dir", str(tmp_path)]
    assert exit_status(teacher.main, argv) == 1
    err = capsys.readouterr().err
    assert "non-finite at epoch 2, iteration 2" in err
    last = torch.load(tmp_path / "teacher_resnet8" / "ckpt" / "last.pth", weights_only=True)
    assert last["epoch"] == 1 and all(torch.isfinite(t).all() for t in last["state_dict"].values())


def test_a_real_process_prints_no_traceback():
    done = subprocess.run([sys.executable, "teacher.py", "--arch", "resnet9"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("error: unknown --arch 'resnet9'") and "Traceback" not in done.stderr



@pytest.mark.parametrize("only", ["", "^teacher resnet56$"], ids=["long listing", "short listing"])
def test_a_closed_pipe_ends_a_listing_quietly(only):
    """`python -m utils.runlist | head`: a reader that stops early (here at once) gets no traceback."""
    done = subprocess.run(f"set -o pipefail; {sys.executable} -m utils.runlist | true", shell=True, cwd=REPO,
                          executable="/bin/bash", env={**os.environ, "ONLY": only}, capture_output=True, text=True)
    assert done.stderr == "" and done.returncode == 141


def test_help_gives_the_paper_commands(capsys, exit_status):
    assert exit_status(student_v0.main, ["--help"]) == 0
    out = capsys.readouterr().out
    assert "--strategy 0 --k 64 --b 64 --w 1000" in out and "--strategy 3 --k 48 --b 32 --w 10" in out
    assert "lr 0.01 for MobileNetV2, ShuffleV1 and ShuffleV2" in out


@pytest.mark.parametrize("script, argv", [("teacher", ["--arch", "resnet8", "--epoch", "0"]),
                                          ("student_v0", ["--teacher-path", "t.pth", "--student-arch", "resnet8",
                                                          "--k", "65"]),
                                          ("student_v0", ["--teacher-path", "t.pth", "--student-arch", "resnet8",
                                                          "--resume", "--k", "24"]),
                                          ("student_v0", ["--teacher-path", "t.pth", "--student-arch", "resnet8",
                                                          "--resume", "--batch-size", "32", "--k", "48"])])
def test_bad_flags_are_answered_before_torch_is_imported(script, argv):
    """torch takes seconds to import: a mistyped or bad flag answers without it, a --resume's too (CIFAR-100's
    --b 32 above --k 24 whatever the run's batch; --k 48 above the --batch-size 32 given)."""
    code = (f"import sys, pytest, {script}\n"
            f"with pytest.raises(Exception, match='--'):\n"
            f"    {script}.parse_args({argv!r})\n"
            f"assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_short_imagenet_run_neither_warns_of_its_default_milestones_nor_takes_more_workers_than_cores():
    argv = ["--dataset", "imagenet", "--arch", "imagenet_resnet18", "--epoch", "2"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        args = teacher.parse_args(argv)
    assert args.milestones == [30, 60, 90] and args.workers == min(8, len(os.sched_getaffinity(0)))
    assert teacher.parse_args([*argv, "--workers", "9"]).workers == 9  # given: as given


def test_an_abbreviated_flag_of_one_flag_under_two_names_is_that_flag():
    assert teacher.parse_args(["--arch", "resnet8", "--ep", "3"]).epoch == 3


def test_a_mistyped_flag_is_answered_with_the_closest_flag():
    with pytest.raises(UserError, match=r"unrecognized arguments: --epcoh 3; did you mean --epoch\? \(see --help\)"):
        teacher.parse_args(["--arch", "resnet8", "--epcoh", "3"])


def test_a_removed_flag_names_what_replaced_it():
    with pytest.raises(UserError, match=r"unrecognized arguments: --gpu-decode; --gpu-decode was removed: --loader "
                                        r"dali decodes on the GPU instead"):
        teacher.parse_args(["--dataset", "imagenet", "--arch", "imagenet_resnet18", "--gpu-decode"])


def test_help_states_every_default_and_the_other_benchmark(capsys, exit_status):
    from utils.table import computation
    from utils.tools import bench

    assert exit_status(teacher.main, ["--help"]) == 0
    assert "CUDA device index (default 0)" in " ".join(capsys.readouterr().out.split())
    assert exit_status(computation.main, ["--help"]) == 0
    assert "images per batch, B (default 64)" in " ".join(capsys.readouterr().out.split())
    assert exit_status(bench.main, ["--help"]) == 0
    assert "python -m utils.bench --dataset imagenet" in " ".join(capsys.readouterr().out.split())
    assert exit_status(computation.main, ["--teacher", "resnet9", "--student", "resnet8"]) == 2
    assert "--dataset" not in capsys.readouterr().err


class DeviceSetUp(Exception):
    """Raised by the stand-in torch.cuda.set_device: the command got as far as setting its device up."""


@pytest.fixture
def one_cuda_device(monkeypatch):
    """A machine with one CUDA device as the device set-up sees it; torch.cuda.set_device refuses a device
    without an index, as torch's does, and otherwise stops the command there."""
    for name, value in (("is_available", True), ("device_count", 1), ("current_device", 0)):
        monkeypatch.setattr(torch.cuda, name, lambda value=value: value)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "stand-in GPU")

    def set_device(device):
        if torch.device(device).index is None:
            raise ValueError(f"Expected a torch.device with a specified index or an integer, but got:{device}")
        raise DeviceSetUp(torch.device(device))

    monkeypatch.setattr(torch.cuda, "set_device", set_device)


def commands():
    from utils.tools import bench, graph_check

    return {"teacher.py": lambda: teacher.main(["--arch", "resnet8"]),
            "utils.bench": lambda: bench.main(["--teacher", "resnet8", "--student", "resnet8"]),
            "utils.bench --dataset imagenet": lambda: bench.main(["--dataset", "imagenet"]),
            "utils.bench --dataset imagenet --device cuda": lambda: bench.main(["--dataset", "imagenet", "--device", "cuda"]),
            "utils.graph_check": lambda: graph_check.main([])}


@pytest.mark.parametrize("command", list(commands()))
def test_every_command_sets_up_its_cuda_device_with_an_index(command, one_cuda_device):
    with pytest.raises(DeviceSetUp) as set_up:
        commands()[command]()
    assert set_up.value.args[0] == torch.device("cuda", 0)


@pytest.mark.parametrize("name, gpu_id, expected", [
    ("cuda", None, "cuda:0"), (None, None, "cuda:0"), (None, 1, "cuda:1"), ("cpu", 1, "cpu"),
])
def test_the_device_carries_an_index_as_torch_cuda_set_device_requires(name, gpu_id, expected, monkeypatch):
    from utils.process.cli import resolve_device

    for attribute, value in (("is_available", True), ("device_count", 2), ("current_device", 0)):
        monkeypatch.setattr(torch.cuda, attribute, lambda value=value: value)
    assert str(resolve_device(name, gpu_id)) == expected


def test_a_gpu_id_the_machine_lacks_and_cuda_without_cuda_are_one_line(monkeypatch):
    from utils.process.cli import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="^--device cuda: CUDA is not available on this machine; use --device cpu$"):
        resolve_device("cuda")
    assert str(resolve_device(None, 3)) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UserError, match=r"^--gpu-id 3 does not exist; this machine has CUDA devices 0\.\.1$"):
        resolve_device(None, 3)
