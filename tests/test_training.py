"""End to end on the synthetic set: teacher.py, then student_v0.py as KD and as UNIXKD."""
import json
import struct

import numpy as np
import pytest
import torch

import student_v0
import teacher
from models import model_dict
from models.cost import model_cost
from utils.distillers import fill_pair_defaults
from utils.runs.runnames import student_run_name

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


def logged_tags(run) -> set:
    """Scalar tags in a run's TensorBoard event files (TFRecord framing: length, crc, event, crc)."""
    from tensorboardX.proto import event_pb2

    tags = set()
    for path in (run / "tensorboard").glob("events.*"):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            length = struct.unpack("<Q", data[offset:offset + 8])[0]
            event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            tags.update(value.tag for value in event.summary.value)
            offset += 16 + length
    return tags


def distil(teacher_dir, synthetic_root, experiments, *extra):
    argv = ["--teacher-path", str(teacher_dir), "--student-arch", "resnet8", "--epoch", "2",
            "--data-root", str(synthetic_root), "--experiments-dir", str(experiments), *COMMON, *extra]
    student_v0.main(argv)
    runs = sorted(experiments.glob("v0_student_resnet8_teacher_resnet8-best_*"), key=lambda p: p.stat().st_mtime)
    return runs[-1]


def test_unixkd_student_learns_and_leaves_all_outputs(teacher_dir, synthetic_root, experiments):
    run = distil(teacher_dir, synthetic_root, experiments)
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


def test_sp_variants_get_their_own_run_directories():
    argv = ["--teacher-path", "t.pth", "--student-arch", "resnet8", "--other-distill"]
    names = {student_run_name(student_v0.parse_args([*argv, sp]), "resnet8", "t") for sp in ("SP", "SP-batch")}
    assert {name.rsplit("_", 1)[1] for name in names} == {"SP", "SP-batch"}


def test_kd_baseline_skips_scoring_and_shows_the_teacher_every_image(teacher_dir, synthetic_root, experiments):
    run = distil(teacher_dir, synthetic_root, experiments, "--strategy", "0", "--k", "64", "--b", "64", "--w", "1000")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["computation"]["scoring_images"] == 0
    assert summary["computation"]["teacher_images"] == 2000
    assert summary["computation"]["computation"] == pytest.approx(100.0)
    assert np.load(run / "counter.npy").all()  # with b = B every image counts



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
