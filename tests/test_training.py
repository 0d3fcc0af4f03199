"""End to end on the synthetic set: teacher.py, then student_v0.py as KD and as UNIXKD."""
import hashlib
import json
import subprocess
from datetime import datetime, timedelta

import numpy as np
import pytest
import torch

import student_v0
import teacher
from models import model_dict
from models.cost import model_cost
from tests.event_files import EXPERIMENT_TAG, hparams, scalars, tags
from utils.distillers import fill_pair_defaults
from utils.runs.runnames import student_run_name
from utils.table.summary import parse_run

COMMON = ["--batch-size", "64", "--milestones", "100"]  # no lr drop in these short runs...
pytestmark = pytest.mark.filterwarnings("ignore:milestones")  # ...which the scripts rightly warn about


@pytest.fixture(scope="module")
def experiments(tmp_path_factory):
    return tmp_path_factory.mktemp("experiments")


@pytest.fixture(scope="module")
def teacher_dir(synthetic_root, experiments):
    teacher.main(["--arch", "resnet8", "--epoch", "4", "--data-root", str(synthetic_root),
                  "--experiments-dir", str(experiments), "--save-interval", "2", *COMMON])
    return experiments / "teacher_resnet8"


def load(path):
    return torch.load(path, weights_only=True)


def test_teacher_writes_best_and_snapshots_in_the_published_format(teacher_dir):
    best = load(teacher_dir / "ckpt" / "best.pth")
    assert set(best) == {"epoch", "state_dict", "acc"}
    model_dict["resnet8"](num_classes=100).load_state_dict(best["state_dict"], strict=True)
    assert sorted(p.name for p in (teacher_dir / "ckpt").glob("0*.pth")) == ["002.pth", "004.pth"]
    assert list((teacher_dir / "tensorboard").glob("events.*"))


def test_teacher_reports_its_accuracy_in_summary_json(teacher_dir):
    summary = json.loads((teacher_dir / "summary.json").read_text())
    assert summary["arch"] == "resnet8" and summary["args"]["seed"] == 0
    assert summary["best_acc"] == load(teacher_dir / "ckpt" / "best.pth")["acc"]
    assert summary["epochs_done"] == 4 and summary["finished"] and summary["wall_seconds"] > 0
    assert summary["method"] == "trained alone" and hparams(teacher_dir / "tensorboard" / "hparams")[0]["arch"] == "resnet8"


def logged_tags(run) -> set:
    """Scalar tags in a run's TensorBoard event files (per epoch: the folder itself)."""
    return set(scalars(run / "tensorboard"))


def distil(teacher_dir, synthetic_root, experiments, *extra):
    argv = ["--teacher-path", str(teacher_dir), "--student-arch", "resnet8", "--epoch", "2",
            "--data-root", str(synthetic_root), "--experiments-dir", str(experiments), *COMMON, *extra]
    student_v0.main(argv)
    runs = sorted(experiments.glob("v0_student_resnet8_teacher_resnet8-best_*"), key=lambda p: p.stat().st_mtime)
    return runs[-1]


@pytest.fixture(scope="module")
def unixkd_run(teacher_dir, synthetic_root, experiments):
    """UNIXKD for 2 epochs of 16 iterations (15 batches of 64, one of 40), TensorBoard's loss every 4 iterations."""
    return distil(teacher_dir, synthetic_root, experiments, "--log-freq", "4")


def test_unixkd_student_learns_and_leaves_all_outputs(unixkd_run):
    run = unixkd_run
    assert run.name == "v0_student_resnet8_teacher_resnet8-best_strategy3_k48_b32_w10_seed0"
    best = load(run / "ckpt" / "student_best.pth")
    assert best["best_acc"] > 4.0  # chance is 1 %
    model_dict["resnet8"](num_classes=100).load_state_dict(best["state_dict"], strict=True)
    counter = np.load(run / "counter.npy")
    # 1000 images in 15 full batches and one of 40: b = 32 of each counted once per epoch.
    assert counter.shape == (2, 1000) and counter.max() == 1
    assert counter.sum(axis=1).tolist() == [16 * 32, 16 * 32]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] and summary["epochs_done"] == 2 and summary["teacher_arch"] == "resnet8"
    assert summary["computation"]["teacher_images"] == 2 * (15 * 48 + 40)
    assert summary["computation"]["scoring_images"] == 2000
    expected_tags = {"train/loss", "train/acc", "train/loss_kd", "val/loss", "val/acc", "lr",
                     "computation/percent_of_kd", "select/entropy_selected", "select/confidence_rest",
                     "select/margin_all", "select/entropy_teacher_selected"}
    assert expected_tags <= logged_tags(run)
    # The paper's formula per batch: 15 full batches (k = 48 of 64) and a last one of 40 (all 40 kept).
    ft, fs = model_cost("resnet8")[1], model_cost("resnet8")[1]
    spent = 15 * (48 * ft + 64 * fs + 2 * 48 * fs) + (40 * ft + 40 * fs + 2 * 40 * fs)
    assert summary["computation"]["computation"] == pytest.approx(100 * spent / (1000 * (ft + 2 * fs)))


def test_summary_json_names_the_method_and_keeps_the_history_best_epoch_commit_and_date(unixkd_run):
    summary = json.loads((unixkd_run / "summary.json").read_text())
    assert summary["method"] == "UNIXKD (S3 k48 b32 w10)" == parse_run(unixkd_run.name, summary).method
    # The method, not the row: the table adds what sets a row apart (--tag, a teacher run of its own) from args.
    tagged = parse_run(unixkd_run.name, {**summary, "args": {**summary["args"], "tag": "lr0.1"}})
    assert (tagged.method, tagged.variant) == (summary["method"], " --tag lr0.1")
    assert "resume" not in summary["args"] and "force" not in summary["args"]  # how it started, not what it computed
    history = summary["history"]
    assert [entry["epoch"] for entry in history] == [1, 2]
    per_epoch = scalars(unixkd_run / "tensorboard")
    for entry in history:
        assert set(entry) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "macs_spent"}
        assert entry["val_acc"] == pytest.approx(per_epoch["val/acc"][entry["epoch"]])
        assert entry["lr"] == 0.05 and entry["seconds"] > 0
    assert history[-1]["val_acc"] == summary["last_acc"]
    assert history[summary["best_epoch"] - 1]["val_acc"] == summary["best_acc"] == max(e["val_acc"] for e in history)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert summary["commit"] in (head, f"{head}-dirty")
    assert abs(datetime.now().astimezone() - datetime.fromisoformat(summary["date"])) < timedelta(hours=1)


def test_costs_are_named_multiply_accumulates_and_old_summaries_still_read(unixkd_run):
    summary = json.loads((unixkd_run / "summary.json").read_text())
    fs = model_cost("resnet8")[1]
    assert summary["macs"] == {"teacher": fs, "student": fs} and "flops" not in summary
    assert summary["history"][-1]["macs_spent"] == summary["computation"]["macs_spent"]
    macs = summary.pop("macs")
    old = {**summary, "flops": macs}  # as written before the costs were named MACs
    assert parse_run("old", old).ft_fs == parse_run("new", {**summary, "macs": macs}).ft_fs == 1.0


def test_counter_columns_say_which_image_each_column_is(unixkd_run, synthetic_root):
    columns = json.loads((unixkd_run / "counter_columns.json").read_text())
    train_file = synthetic_root / "cifar-100-python" / "train"
    assert columns["images"] == np.load(unixkd_run / "counter.npy").shape[1] == 1000
    assert columns["file"] == str(train_file.resolve())
    assert columns["sha256"] == hashlib.sha256(train_file.read_bytes()).hexdigest()
    assert columns["rows"].startswith("row e is epoch e + 1") and "column i is image i" in columns["columns"]


def test_tensorboard_gets_the_loss_and_lr_every_n_iterations(unixkd_run):
    iterations = scalars(unixkd_run / "tensorboard" / "iterations")
    points = list(range(4, 33, 4))  # --log-freq 4 over 2 epochs of 16 iterations
    for tag in ("iteration/train_loss", "iteration/train_loss_kd", "iteration/lr"):
        assert sorted(iterations[tag]) == points, tag
    assert list(iterations["iteration/lr"].values()) == pytest.approx([0.05] * len(points))
    # Each point averages the iterations since the one before (48 images each, the last batch 40): together
    # the epoch's four points are its training loss.
    images = [4 * 48, 4 * 48, 4 * 48, 3 * 48 + 40]
    per_epoch = scalars(unixkd_run / "tensorboard")["train/loss"]
    for epoch in (1, 2):
        losses = [iterations["iteration/train_loss"][16 * (epoch - 1) + point] for point in (4, 8, 12, 16)]
        assert sum(n * loss for n, loss in zip(images, losses)) / sum(images) == pytest.approx(per_epoch[epoch])


def test_tensorboard_gets_the_cost_so_far_the_teachers_accuracy_and_the_mixing(unixkd_run):
    summary = json.loads((unixkd_run / "summary.json").read_text())
    per_epoch = scalars(unixkd_run / "tensorboard")
    spent = per_epoch["computation/macs_spent"]
    assert spent[2] == pytest.approx(2 * spent[1]) and spent[2] == pytest.approx(summary["computation"]["macs_spent"])
    assert per_epoch["teacher/acc"] == {1: pytest.approx(summary["teacher_acc"]), 2: pytest.approx(summary["teacher_acc"])}
    assert all(0 < weight < 1 for weight in per_epoch["select/mix_weight_kept"].values())
    counter = np.load(unixkd_run / "counter.npy").astype(bool)
    new = (counter[1] & ~counter[0]).sum() / counter[1].sum()
    assert per_epoch["select/changed_percent"] == {2: pytest.approx(100 * new)}  # none for the first epoch


def test_a_finished_run_gives_tensorboard_its_settings_and_accuracy_as_hparams(unixkd_run):
    summary = json.loads((unixkd_run / "summary.json").read_text())
    folder = unixkd_run / "tensorboard" / "hparams"
    settings, metrics = hparams(folder)
    assert (settings["method"], settings["data"], settings["teacher_arch"]) == ("UNIXKD (S3 k48 b32 w10)", "synthetic",
                                                                                "resnet8")
    assert (settings["lr"], settings["k"], settings["milestones"], settings["amp"], settings["epoch"]) == (
        0.05, 48, "100", False, 2)
    # Where and how it ran, how often it reported, and paths are not what runs are compared by.
    left_out = {"gpu_id", "experiments_dir", "data_root", "teacher_path", "log_freq", "print_freq", "workers",
                "settings_revision"}
    assert left_out <= set(summary["args"]) and not left_out & set(settings)
    # No experiment summary: TensorBoard would take one run's for every run (teachers' and students' settings
    # differ); without one it builds the HParams view's columns from every run's settings.
    assert EXPERIMENT_TAG not in tags(folder)
    assert metrics == ["hparams/best_acc", "hparams/last_acc"]
    assert scalars(folder) == {"hparams/best_acc": {2: pytest.approx(summary["best_acc"])},
                               "hparams/last_acc": {2: pytest.approx(summary["last_acc"])}}


def test_sp_variants_get_their_own_run_directories():
    argv = ["--teacher-path", "t.pth", "--student-arch", "resnet8", "--other-distill"]
    names = {student_run_name(student_v0.parse_args([*argv, sp]), "resnet8", "t") for sp in ("SP", "SP-batch")}
    assert {name.rsplit("_", 1)[1] for name in names} == {"SP", "SP-batch"}


def test_kd_baseline_skips_scoring_and_shows_the_teacher_every_image(teacher_dir, synthetic_root, experiments):
    stale = experiments / "v0_student_resnet8_teacher_resnet8-best_strategy0_k64_b64_w1000_seed0" / "counter.npy"
    stale.parent.mkdir()
    np.save(stale, np.ones((2, 1000), dtype=np.uint8))  # what an earlier version left in a KD run's folder
    run = distil(teacher_dir, synthetic_root, experiments, "--strategy", "0", "--k", "64", "--b", "64", "--w", "1000")
    assert run == stale.parent
    summary = json.loads((run / "summary.json").read_text())
    assert summary["computation"]["scoring_images"] == 0
    assert summary["computation"]["teacher_images"] == 2000
    assert summary["computation"]["computation"] == pytest.approx(100.0)
    assert not (run / "counter.npy").exists()  # with b = B every image counts: an all-ones counter says nothing
    assert summary["method"] == "KD" and "select/changed_percent" not in logged_tags(run)



def test_distillers_get_their_own_directories_and_their_published_settings_stay_unnamed():
    def name(*flags):
        args = student_v0.parse_args(["--teacher-path", "t.pth", "--student-arch", "wrn_16_2", *flags])
        fill_pair_defaults(args, "wrn_40_2")  # as main() does once it knows the teacher
        return student_run_name(args, "wrn_40_2", "best").split("_seed0")[1]

    assert name() == "" and name("--ce-weight", "1") == "_ce1"  # KD's names as before --distill
    # The settings' revision follows the distiller: runs made with the earlier settings keep their own folders.
    assert name("--distill", "DKD") == "_DKD_r2" and name("--distill", "LSKD") == "_LSKD_r2"
    assert name("--distill", "DKD", "--beta", "8") == "_DKD_r2_beta8"  # 6 is the DKD authors' beta for this pair
    assert name("--distill", "LSKD", "--ce-weight", "0", "--T", "4") == "_LSKD_r2_ce0_T4"
    assert name("--distill", "DKD", "--dkd-mix", "split") == "_DKD_r2_dkdmixsplit"


@pytest.mark.parametrize("distiller", ["DKD", "LSKD"])
def test_distillers_train_end_to_end_with_and_without_unix(distiller, teacher_dir, synthetic_root, experiments):
    for unix, flags in ((False, ["--strategy", "0", "--k", "64", "--b", "64", "--w", "1000"]), (True, [])):
        run = distil(teacher_dir, synthetic_root, experiments, "--epoch", "1", "--distill", distiller, *flags)
        assert run.name.endswith(f"_seed0_{distiller}_r2")
        summary = json.loads((run / "summary.json").read_text())
        assert summary["finished"] and summary["args"]["distill"] == distiller
        # Both bring cross-entropy, unlike the paper's UNIXKD: DKD's 1, the LS authors' 0.1 (Hinton's, kept for KD).
        assert summary["args"]["ce_weight"] == {"DKD": 1.0, "LSKD": 0.1}[distiller]
        assert summary["args"]["settings_revision"] == 2
        assert (summary["computation"]["scoring_images"] > 0) == unix  # UNIX scores the batch; KD does not
        assert {"train/loss_ce", f"train/loss_{distiller.lower()}"} <= logged_tags(run)
