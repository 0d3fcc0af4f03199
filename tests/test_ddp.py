"""torchrun --nproc_per_node=2 on the CPU (gloo) over a small ImageFolder of JPEG files: teacher, KD and UNIXKD.

Each rank ends with the same weights; what is logged equals what all ranks' outputs give; a run stopped
after one epoch and resumed ends bit for bit where the uninterrupted run ends; bad input ends every rank.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils.data.synthetic_imagenet import write_image_folder
from utils.errors import NonFiniteLoss, UserError
from utils.process import distributed
from utils.process import ranks as places

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SMALL = ["--dataset", "imagenet", "--image-size", "32", "--workers", "0", "--batch-size", "16", "--milestones", "1"]
TRAIN_IMAGES, VAL_IMAGES = 80, 20


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("imagenet"), classes=10, train_per_class=8, val_per_class=2,
                              size=36)


def torchrun(script, probe, *flags):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "tests/ddp_probe.py", script, str(probe), *SMALL, *flags]
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


def ranks(probe):
    return [torch.load(probe / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def assert_every_rank_holds_the_same_weights(seen):
    first, second = (s["weights"] for s in seen)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


def assert_logged_metrics_are_all_ranks(seen):
    record = seen[0]["record"]
    logits, labels, indices = (torch.cat([part[i] for s in seen for part in s["val"]]) for i in range(3))
    assert sorted(indices.tolist()) == list(range(VAL_IMAGES))  # each val image scored once, on one rank
    assert record["val/acc"] == pytest.approx(100.0 * (logits.argmax(1) == labels).float().mean().item(), rel=1e-6)
    assert record["val/loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-4)
    steps = [step for s in seen for step in s["steps"]]
    for name in steps[0]:
        total, count = sum(step[name][0] for step in steps), sum(step[name][1] for step in steps)
        assert record[name] == pytest.approx(total / count, rel=1e-4, abs=1e-6), name


def finished(done, experiments):
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.count(": best accuracy ") == 1  # rank 0 alone prints
    [run] = [p for p in experiments.iterdir() if p.is_dir()]
    return run


@pytest.fixture(scope="module")
def teacher_run(image_root, tmp_path_factory):
    experiments, probe = tmp_path_factory.mktemp("experiments"), tmp_path_factory.mktemp("probe")
    done = torchrun("teacher", probe, "--data-root", str(image_root), "--arch", "imagenet_resnet18", "--epoch", "2",
                    "--experiments-dir", str(experiments))
    return finished(done, experiments), ranks(probe)


def test_teacher_ranks_agree_and_log_what_all_ranks_computed(teacher_run):
    run, seen = teacher_run
    assert_every_rank_holds_the_same_weights(seen)
    assert_logged_metrics_are_all_ranks(seen)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["last_acc"] == seen[0]["record"]["val/acc"] and summary["epochs_done"] == 2
    saved = torch.load(run / "ckpt" / "last.pth", weights_only=True)
    assert len(saved["rng_by_rank"]) == 2


def student(image_root, teacher_run, tmp_path, name, *flags):
    experiments, probe = tmp_path / f"experiments-{name}", tmp_path / f"probe-{name}"
    experiments.mkdir(exist_ok=True)
    done = torchrun("student", probe, "--data-root", str(image_root), "--teacher-path", str(teacher_run[0]),
                    "--student-arch", "imagenet_resnet18", "--experiments-dir", str(experiments), *flags)
    return finished(done, experiments), ranks(probe)


def test_kd_ranks_agree_and_log_what_all_ranks_computed(image_root, teacher_run, tmp_path):
    run, seen = student(image_root, teacher_run, tmp_path, "kd", "--epoch", "1", "--strategy", "0",
                        "--k", "8", "--b", "8", "--w", "1000")
    assert_every_rank_holds_the_same_weights(seen)
    assert_logged_metrics_are_all_ranks(seen)
    computation = json.loads((run / "summary.json").read_text())["computation"]
    assert computation["images"] == computation["teacher_images"] == TRAIN_IMAGES  # both ranks' batches


def test_unixkd_resumed_after_one_epoch_ends_where_the_whole_run_ends(image_root, teacher_run, tmp_path):
    whole, seen = student(image_root, teacher_run, tmp_path, "whole", "--epoch", "2")
    assert_every_rank_holds_the_same_weights(seen)
    assert_logged_metrics_are_all_ranks(seen)
    assert "select/entropy_selected" in seen[0]["record"]
    student(image_root, teacher_run, tmp_path, "parts", "--epoch", "1")
    resumed, seen_resumed = student(image_root, teacher_run, tmp_path, "parts", "--epoch", "2", "--resume")
    for rank in (0, 1):
        weights, weights_resumed = seen[rank]["weights"], seen_resumed[rank]["weights"]
        assert all(torch.equal(weights[key], weights_resumed[key]) for key in weights)
    assert seen[0]["record"]["train/loss"] == seen_resumed[0]["record"]["train/loss"]
    counts = np.load(whole / "counter.npy")
    assert np.array_equal(counts, np.load(resumed / "counter.npy"))
    batches_per_rank = -(-TRAIN_IMAGES // 2 // 8)
    assert counts.sum() == 2 * 2 * batches_per_rank * 4  # 2 epochs, 2 ranks, b = 4 of each batch of 8 (or of 4)
    summaries = [json.loads((run / "summary.json").read_text())["computation"] for run in (whole, resumed)]
    assert summaries[0] == summaries[1] and summaries[0]["images"] == 2 * TRAIN_IMAGES


def test_a_batch_that_the_world_size_does_not_divide_ends_every_rank_with_one_line(image_root, tmp_path):
    done = torchrun("teacher", tmp_path, "--data-root", str(image_root), "--arch", "imagenet_resnet18",
                    "--batch-size", "15", "--experiments-dir", str(tmp_path))
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error:")]
    assert done.returncode != 0
    assert errors == ["error: --batch-size 15 is not divisible by the world size 2 (processes started by torchrun); "
                      "use a multiple of 2"]


@pytest.mark.parametrize("error, status", [(UserError("bad flag"), 2), (NonFiniteLoss("nan"), 1)])
def test_another_rank_leaves_the_error_line_to_rank_0(monkeypatch, error, status):
    # torchrun stops every worker when one fails: a rank ending at once could get rank 0 killed unheard.
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # main_speaks silences this rank's stdout
    waits = []
    monkeypatch.setattr(places.time, "sleep", waits.append)
    with pytest.raises(SystemExit) as ended, distributed.main_speaks():
        raise error
    assert ended.value.code == status and waits == [places.RANK_0_GRACE_SECONDS]
