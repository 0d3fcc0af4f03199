"""torchrun --nproc_per_node=2 on the CPU (gloo) over a small ImageFolder of JPEG files: teacher, KD and UNIXKD.

Each rank ends with the same weights but its own random state; what is logged equals what all ranks'
outputs give; a run stopped after one epoch and resumed ends bit for bit where the uninterrupted run
ends; a teacher continues on another number of processes (1 to 2, 2 to 1, 2 to 3), a student is refused; bad
input ends every rank.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler
from torchvision.datasets import ImageFolder

import student_v0
import teacher
from utils.data.synthetic_imagenet import write_image_folder
from utils.errors import NonFiniteLoss, UserError
from utils.process import distributed
from utils.process.seeding import derive_rng_state, rng_state, seed_everything
from utils.process import last_words
from utils.process import ranks as places
from utils.process.last_words import LAST_WORDS

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SMALL = ["--dataset", "imagenet", "--image-size", "32", "--workers", "0", "--batch-size", "32", "--milestones", "1"]
TRAIN_IMAGES, VAL_IMAGES = 80, 20
# 24 images per process on 2 and 16 on 3: a batch that both process counts divide, at the floor on 3.
SHARED_BATCH = ["--batch-size", "48"]


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("imagenet"), classes=10, train_per_class=8, val_per_class=2,
                              size=36)


def torchrun(script, probe, *flags, launcher="torch.distributed.run", env=ENV):
    """Two processes through the probe, started by plain torchrun or (launcher="utils.torchrun") the project's."""
    command = [sys.executable, "-m", launcher, "--standalone", "--nproc_per_node=2",
               "tests/ddp_probe.py", script, str(probe), *SMALL, *flags]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


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


def teacher_flags(image_root, experiments, epochs):
    return ["--data-root", str(image_root), "--arch", "imagenet_resnet18", "--epoch", str(epochs),
            "--experiments-dir", str(experiments), *SHARED_BATCH]


@pytest.fixture(scope="module")
def teacher_run(image_root, tmp_path_factory):
    """Epoch 1 in this process, epoch 2 resumed under torchrun on two: a teacher continues on more processes."""
    experiments, probe = tmp_path_factory.mktemp("experiments"), tmp_path_factory.mktemp("probe")
    teacher.main([*SMALL, *teacher_flags(image_root, experiments, 1)])
    done = torchrun("teacher", probe, *teacher_flags(image_root, experiments, 2), "--resume")
    return finished(done, experiments), ranks(probe), done


def test_teacher_ranks_agree_and_log_what_all_ranks_computed(teacher_run):
    run, seen, done = teacher_run
    assert not any(s["broadcast_buffers"] for s in seen)  # BatchNorm's statistics: from rank 0 at epoch ends only
    assert "deprecated" not in done.stderr  # DDP's broadcast_buffers is, from torch 2.13: forward_sync_buffers
    assert_every_rank_holds_the_same_weights(seen)
    assert_logged_metrics_are_all_ranks(seen)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["last_acc"] == seen[0]["record"]["val/acc"] and summary["epochs_done"] == 2
    assert summary["last_acc5"] == seen[0]["record"]["val/acc5"] and summary["world_size"] == 2
    saved = torch.load(run / "ckpt" / "last.pth", weights_only=True)
    assert len(saved["rng_by_rank"]) == saved["world_size"] == 2
    assert done.stdout.count(f"note: {run} ran on 1 process(es) and continues on 2: ") == 1


def test_a_teacher_started_on_two_processes_continues_on_one(image_root, teacher_run, tmp_path, capsys):
    experiments = tmp_path / "experiments"
    shutil.copytree(teacher_run[0].parent, experiments)
    teacher.main([*SMALL, *teacher_flags(image_root, experiments, 3), "--resume"])
    run = experiments / teacher_run[0].name
    assert f"note: {run} ran on 2 process(es) and continues on 1: " in capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] and summary["epochs_done"] == 3 and summary["world_size"] == 1


def test_a_teacher_started_on_two_processes_continues_bare_on_three(image_root, teacher_run, tmp_path):
    """A --resume without --batch-size under utils.torchrun on 3 processes: the run's own 48 images, 16 each."""
    experiments = tmp_path / "experiments"
    shutil.copytree(teacher_run[0].parent, experiments)
    run = experiments / teacher_run[0].name
    bare = ["--dataset", "imagenet", "--workers", "0", "--data-root", str(image_root), "--arch", "imagenet_resnet18",
            "--epoch", "3", "--experiments-dir", str(experiments), "--resume"]
    done = subprocess.run([sys.executable, "-m", "utils.torchrun", "--standalone", "--nproc_per_node=3", "teacher.py",
                           *bare], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"note: {run} ran on 2 process(es) and continues on 3: " in done.stdout
    assert "3 process(es) x batch 16" in done.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["epochs_done"], summary["world_size"], summary["batch_per_process"]) == (3, 3, 16)
    assert len(torch.load(run / "ckpt" / "last.pth", weights_only=True)["rng_by_rank"]) == 3


def student_flags(image_root, teacher_run, experiments):
    return ["--data-root", str(image_root), "--teacher-path", str(teacher_run[0]), "--student-arch", "imagenet_resnet18",
            "--experiments-dir", str(experiments)]


def student(image_root, teacher_run, tmp_path, name, *flags):
    experiments, probe = tmp_path / f"experiments-{name}", tmp_path / f"probe-{name}"
    experiments.mkdir(exist_ok=True)
    done = torchrun("student", probe, *student_flags(image_root, teacher_run, experiments), *flags)
    return finished(done, experiments), ranks(probe)


def test_kd_ranks_agree_and_log_what_all_ranks_computed(image_root, teacher_run, tmp_path):
    run, seen = student(image_root, teacher_run, tmp_path, "kd", "--epoch", "1", "--strategy", "0",
                        "--k", "16", "--b", "16", "--w", "1000")
    assert_every_rank_holds_the_same_weights(seen)
    assert_logged_metrics_are_all_ranks(seen)
    computation = json.loads((run / "summary.json").read_text())["computation"]
    assert computation["images"] == computation["teacher_images"] == TRAIN_IMAGES  # both ranks' batches


def test_unixkd_resumed_after_one_epoch_ends_where_the_whole_run_ends(image_root, teacher_run, tmp_path):
    whole, seen = student(image_root, teacher_run, tmp_path, "whole", "--epoch", "2", *SHARED_BATCH)
    assert_every_rank_holds_the_same_weights(seen)
    assert_logged_metrics_are_all_ranks(seen)
    assert "select/entropy_selected" in seen[0]["record"]
    part = student(image_root, teacher_run, tmp_path, "parts", "--epoch", "1", *SHARED_BATCH)[0]
    summary = json.loads((part / "summary.json").read_text())
    assert (summary["world_size"], summary["batch_per_process"], summary["args"]["k"]) == (2, 24, 18)
    assert_another_process_count_may_not_resume_it(image_root, teacher_run, part)
    resumed, seen_resumed = student(image_root, teacher_run, tmp_path, "parts", "--epoch", "2", "--resume",
                                    *SHARED_BATCH)
    for rank in (0, 1):
        weights, weights_resumed = seen[rank]["weights"], seen_resumed[rank]["weights"]
        assert all(torch.equal(weights[key], weights_resumed[key]) for key in weights)
    assert seen[0]["record"]["train/loss"] == seen_resumed[0]["record"]["train/loss"]
    rng = [state["torch"] for state in torch.load(whole / "ckpt" / "last.pth", weights_only=True)["rng_by_rank"]]
    assert not torch.equal(*rng)  # each rank drew its own lambdas and partners
    counts = np.load(whole / "counter.npy")
    assert np.array_equal(counts, np.load(resumed / "counter.npy"))
    batches_per_rank = -(-TRAIN_IMAGES // 2 // 24)
    assert counts.sum() == 2 * 2 * batches_per_rank * 12  # 2 epochs, 2 ranks, b = 12 of each batch of 24 (or of 16)
    summaries = [json.loads((run / "summary.json").read_text())["computation"] for run in (whole, resumed)]
    assert summaries[0] == summaries[1] and summaries[0]["images"] == 2 * TRAIN_IMAGES


def assert_another_process_count_may_not_resume_it(image_root, teacher_run, run):
    """k and b follow each process's batch: a bare --resume on 1 process, or on 3 (told by WORLD_SIZE, in this
    process: the refusal comes before the processes meet; utils.torchrun's error line: tests/test_launch.py),
    finds the run's folder (its name holds no process count) and is refused in one line with the counts recorded."""
    before = (run / "ckpt" / "last.pth").read_bytes()
    resume = ["--dataset", "imagenet", "--workers", "0", *student_flags(image_root, teacher_run, run.parent),
              "--epoch", "2", "--resume"]  # no --batch-size: the run's own
    started = f"{run} was started on 2 process(es) with 24 images each (--batch-size 48) and would resume on "
    with pytest.MonkeyPatch.context() as patch:
        for world, each in (("1", 48), ("3", 16)):
            patch.setenv("WORLD_SIZE", world)
            patch.setattr(distributed, "start", lambda device_type: None)  # no other process to meet
            with pytest.raises(UserError) as refused:
                student_v0.main(resume)
            assert str(refused.value).startswith(f"{started}{world} with {each} images each: ")
            assert "resume it on 2 process(es)" in str(refused.value)
    assert (run / "ckpt" / "last.pth").read_bytes() == before


def test_an_error_on_rank_1_alone_is_the_launchers_last_line_once_with_its_status(image_root, teacher_run, tmp_path):
    """Rank 1 alone reads a damaged last.pth (its node sees a bad copy): its `error:` line ends the output, once,
    with its status; rank 0, which lost its peer, ends without a traceback."""
    experiments, broken = tmp_path / "experiments", tmp_path / "last.pth"
    shutil.copytree(teacher_run[0].parent, experiments)
    whole = (teacher_run[0] / "ckpt" / "last.pth").read_bytes()
    broken.write_bytes(whole[:len(whole) // 2])
    done = torchrun("teacher", tmp_path / "probe", *teacher_flags(image_root, experiments, 3), "--resume",
                    launcher="utils.torchrun", env={**ENV, "PROBE_RANK1_READS": str(broken)})
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert done.stderr.splitlines()[-1] == (f"error: cannot read checkpoint {broken}: a zip archive cut short "
                                            f"({len(whole) // 2} bytes), an interrupted download or copy, or a "
                                            f"damaged disk")
    assert output.count("error: ") == 1 and "Traceback" not in output, output[-3000:]


@pytest.mark.parametrize("loader", ["torchvision", "dali"])
def test_a_batch_of_unreadable_files_on_rank_1_neither_ends_the_run_nor_puts_the_ranks_out_of_step(loader, tmp_path):
    """34 training images: 17 per rank, in batches of 16 and 1 (the one image of a rank's last batch is real: a
    split's size seldom divides). Rank 1's one-image batch and a file of its first batch are unreadable: each rank still takes 2 steps (the empty batch takes a stand-in image), and the pass's
    line counts both files, summed over the ranks."""
    if loader == "dali":
        pytest.importorskip("nvidia.dali")
    root = write_image_folder(tmp_path / "data", classes=2, train_per_class=17, val_per_class=1, size=36)
    share = list(DistributedSampler(range(34), num_replicas=2, rank=1, shuffle=True, seed=0))  # epoch 1's
    paths = [Path(path) for path, _ in ImageFolder(root / "train").samples]
    alone, other = paths[share[16]], paths[share[0]]
    alone.write_bytes(alone.read_bytes()[:len(alone.read_bytes()) // 2])
    other.write_bytes(b"")
    done = torchrun("teacher", tmp_path / "probe", "--data-root", str(root), "--arch", "imagenet_mobilenet_v2",
                    "--image-size", "64",  # a one-image batch trains at 64: the last BatchNorm sees 2 x 2 values
                    "--epoch", "1", "--loader", loader, "--experiments-dir", str(tmp_path / "e"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"train: 2 unreadable image file(s) skipped in this pass: {', '.join(sorted(map(str, (alone, other))))}" in \
        done.stdout
    assert [seen["step_count"] for seen in ranks(tmp_path / "probe")] == [2, 2]


def test_a_batch_that_the_world_size_does_not_divide_ends_every_rank_with_one_line(image_root, tmp_path):
    """Plain torchrun on teacher.py itself (not the probe, which imports torch first: the flags are checked before)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "teacher.py",
               *SMALL, "--data-root", str(image_root), "--arch", "imagenet_resnet18", "--batch-size", "31",
               "--experiments-dir", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error:")]
    assert done.returncode != 0
    assert errors == ["error: --batch-size 31 is not divisible by the world size 2 (processes started by torchrun); "
                      "use a multiple of 2"]


@pytest.mark.parametrize("error, status", [(UserError("bad flag"), 2), (NonFiniteLoss("nan"), 1)])
def test_under_plain_torchrun_another_rank_says_its_error_after_rank_0_had_time_to(monkeypatch, capsys, error, status):
    """torchrun stops every worker when one fails: a rank ending at once could get rank 0 killed unheard. An error
    every rank meets is rank 0's to say (its exit ends this rank in the wait); this rank's own is said after it."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv(LAST_WORDS, raising=False)
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # main_speaks silences this rank's stdout
    waits = []
    monkeypatch.setattr(places.time, "sleep", waits.append)
    with pytest.raises(SystemExit) as ended, distributed.main_speaks():
        raise error
    assert ended.value.code == status and waits == [places.RANK_0_GRACE_SECONDS]
    assert capsys.readouterr().err == f"error: {error}\n"


def test_under_the_launcher_a_rank_leaves_its_error_at_once_and_a_lost_peer_ends_quietly(monkeypatch, tmp_path, capsys):
    """utils.torchrun prints the first rank's line: rank 1 leaves its own without waiting; rank 0, whose next
    collective then fails (gloo: "Connection closed by peer"), ends with status 1 and no traceback."""
    monkeypatch.setenv(LAST_WORDS, str(tmp_path))
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(places.time, "sleep", lambda seconds: pytest.fail("waited"))
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(SystemExit) as ended, distributed.main_speaks():
        raise UserError("cannot read checkpoint last.pth")
    assert ended.value.code == 2 and last_words.first(tmp_path) == (2, "error: cannot read checkpoint last.pth")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit) as ended, distributed.main_speaks():
        raise RuntimeError("Connection closed by peer")
    assert ended.value.code == 1 and capsys.readouterr().err == ""
    (tmp_path / "rank1").unlink()  # no other rank's word: an error of rank 0's own, shown whole
    with pytest.raises(RuntimeError), distributed.main_speaks():
        raise RuntimeError("a bug")


def test_each_rank_seeds_its_own_random_draws_and_rank_0_those_of_one_process(monkeypatch):
    monkeypatch.setattr(distributed, "start", lambda device_type: None)  # the seeding alone, no process group
    monkeypatch.setattr("utils.process.cli.choose_device", lambda gpu_id: torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    draws = {}
    with torch.random.fork_rng(devices=[]):
        for rank in ("0", "1"):
            monkeypatch.setenv("RANK", rank)
            monkeypatch.setenv("LOCAL_RANK", rank)
            distributed.prepare_device(SimpleNamespace(seed=3, gpu_id=0))
            draws[rank] = torch.rand(4)
        seed_everything(3)
        alone = torch.rand(4)
    assert torch.equal(draws["0"], alone) and not torch.equal(draws["0"], draws["1"])


def test_ranks_resumed_on_another_process_count_draw_apart_and_alike_from_the_same_checkpoint():
    """derive_rng_state: three ranks from a two-process checkpoint each draw their own numbers, and the
    same ones when the same checkpoint is resumed again."""
    with torch.random.fork_rng(devices=[]):
        saved = rng_state()
        draws = []
        for rank in (0, 1, 2, 0):
            derive_rng_state(saved, rank)
            draws.append(torch.rand(4))
    assert len({tuple(draw.tolist()) for draw in draws[:3]}) == 3 and torch.equal(draws[0], draws[3])
