"""Computation as the paper counts it: the formula, the meter a training run keeps, and the CLI."""

import json
import subprocess
import sys

import pytest

from utils.table.computation import main
from utils.table.paper import PAPER_PAIRS
from utils.training.computation_meter import ComputationMeter, relative_computation

# Ft/Fs = 6.12, resnet32x4 -> resnet8x4 in the paper.
FT, FS = 612, 100


def test_relative_computation_by_hand():
    # UNIX = 48*612 + 64*100 + 2*48*100 = 29376 + 6400 + 9600 = 45376
    # KD   = 64*612 + 2*64*100          = 39168 + 12800       = 51968
    assert relative_computation(FT, FS, batch_size=64, k=48) == 45376 / 51968
    assert round(100 * relative_computation(FT, FS), 2) == 87.32


@pytest.mark.parametrize("teacher, student, ft_fs, paper_percent", [pair[:4] for pair in PAPER_PAIRS])
def test_relative_computation_reproduces_the_published_row_from_the_published_ratio(
    teacher, student, ft_fs, paper_percent
):
    # The paper's Ft/Fs is rounded to two decimals, hence a few hundredths of a point.
    assert 100 * relative_computation(ft_fs, 1) == pytest.approx(paper_percent, abs=0.03)


def test_meter_conventional_kd_costs_exactly_100_percent():
    meter = ComputationMeter(FT, FS)
    for n in (64, 64, 16):
        meter.add_batch(n, teacher_images=n, scoring_images=0, student_images=n)
    result = meter.as_dict()
    assert result["macs_spent"] == result["macs_kd"]
    assert result["computation"] == 100.0


def test_meter_unix_on_full_batches_equals_the_formula():
    meter = ComputationMeter(FT, FS)
    for _ in range(5):
        meter.add_batch(64, teacher_images=48, scoring_images=64, student_images=48)
    assert meter.as_dict()["computation"] == pytest.approx(100 * relative_computation(FT, FS, 64, 48))


def test_meter_counts_a_smaller_last_batch():
    meter = ComputationMeter(FT, FS)
    meter.add_batch(64, 48, 64, 48)
    meter.add_batch(64, 48, 64, 48)
    meter.add_batch(16, 16, 16, 16)  # last batch: n < k, all 16 are trained on
    result = meter.as_dict()
    assert {key: result[key] for key in ComputationMeter.COUNTS} == {
        "batches": 3,
        "images": 144,
        "teacher_images": 112,
        "scoring_images": 144,
        "student_images": 112,
    }
    # spent = 112*612 + 144*100 + 2*112*100 = 68544 + 14400 + 22400 = 105344
    # KD    = 144*612 + 2*144*100          = 88128 + 28800         = 116928
    assert result["macs_spent"] == 105344
    assert result["macs_kd"] == 116928
    assert result["computation"] == pytest.approx(100 * 105344 / 116928)


def test_meter_as_dict_is_plain_json():
    meter = ComputationMeter(FT, FS)
    meter.add_batch(64, 48, 64, 48)
    result = meter.as_dict()
    assert json.loads(json.dumps(result)) == result
    assert all(type(result[key]) is int for key in (*ComputationMeter.COUNTS, "macs_spent", "macs_kd"))


def test_meter_before_any_batch_reports_zero():
    assert ComputationMeter(FT, FS).as_dict()["computation"] == 0.0


def test_meter_rejects_more_images_in_a_pass_than_the_batch_holds():
    with pytest.raises(ValueError, match="student_images=65"):
        ComputationMeter(FT, FS).add_batch(64, 48, 64, 65)


def test_meter_state_round_trip_keeps_counting():
    whole = ComputationMeter(FT, FS)
    first = ComputationMeter(FT, FS)
    for meter in (whole, first):
        meter.add_batch(64, 48, 64, 48)
        meter.add_batch(64, 48, 64, 48)
    resumed = ComputationMeter(FT, FS)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    for meter in (whole, resumed):
        meter.add_batch(16, 16, 16, 16)
    assert resumed.as_dict() == whole.as_dict()


def test_meter_refuses_state_of_another_pair():
    state = ComputationMeter(FT, FS).state_dict()
    with pytest.raises(ValueError, match="Ft=612"):
        ComputationMeter(FT, 2 * FS).load_state_dict(state)


@pytest.fixture
def run_cli(capsys, exit_status):
    return lambda *argv: (exit_status(main, list(argv)), *capsys.readouterr())



@pytest.mark.parametrize(
    "argv, named",
    [
        (["--paper-table", "--k", "0"], "--k 0"),
        (["--paper-table", "--k", "65"], "--k 65"),
        (["--paper-table", "--b", "0"], "--b 0"),
        (["--paper-table", "--batch-size", "0"], "--batch-size 0"),
        (["--paper-table", "--batch-size", "32"], "--k 48"),  # default k no longer fits
        (["--paper-table", "--k", "many"], "'many'"),
        (["--teacher", "resnet32x4"], "--student"),
    ],
)
def test_cli_bad_numbers_are_one_error_line_and_exit_2(run_cli, argv, named):
    code, out, err = run_cli(*argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert named in err


def test_cli_unknown_architecture_lists_the_valid_ones(run_cli):
    code, _, err = run_cli("--teacher", "resnet33x4", "--student", "resnet8x4")
    assert code == 2
    assert err.count("\n") == 1
    assert "'resnet33x4'" in err and "resnet32x4" in err and "wrn_40_2" in err


def test_cli_a_pair_across_the_two_zoos_is_refused_naming_the_teachers(run_cli):
    code, _, err = run_cli("--teacher", "imagenet_resnet34", "--student", "resnet8")
    assert code == 2 and err.count("\n") == 1
    assert "'resnet8' is not one of the ImageNet architectures" in err and "imagenet_resnet18" in err


def test_cli_bad_input_as_a_process_exits_2_without_traceback():
    completed = subprocess.run(
        [sys.executable, "-m", "utils.computation", "--teacher", "x", "--student", "y", "--k", "100"],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2
    assert completed.stderr == "error: --k 100: must be between 1 and the batch size 64\n"


def test_cli_paper_table_json_is_within_1pp_of_the_paper(run_cli):
    code, out, _ = run_cli("--paper-table", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(row["teacher"], row["student"]) for row in rows] == [pair[:2] for pair in PAPER_PAIRS]
    for row, pair in zip(rows, PAPER_PAIRS):
        assert row["computation"] == pytest.approx(pair.computation, abs=1.0), row


def test_cli_one_pair_prints_flops_ratio_and_percent(run_cli):
    code, out, _ = run_cli("--teacher", "resnet32x4", "--student", "resnet8x4")
    assert code == 0
    assert "M MACs" in out and "Ft/Fs = " in out
    assert out.rstrip().endswith("%")


def test_cli_knows_the_imagenet_pairs_priced_at_224(run_cli):
    code, out, _ = run_cli("--imagenet-table")
    assert code == 0
    lines = out.splitlines()
    assert "224x224 image" in lines[0]
    # ResNet-34 3.68 and ResNet-18 1.82 GMACs (torchvision publishes 3.66 and 1.81): Ft/Fs 2.02, so UNIX's
    # scoring pass costs about what its smaller teacher share saves.
    assert lines[2].split() == ["imagenet_resnet34", "->", "imagenet_resnet18", "3.68", "1.82", "2.02", "99.89", "%"]
    assert lines[3].split()[:6] == ["imagenet_resnet50", "->", "imagenet_mobilenet_v2", "4.12", "0.31", "13.12"]
    assert "summary.json" in lines[-1]
    code, out, _ = run_cli("--teacher", "imagenet_resnet34", "--student", "imagenet_resnet18")
    assert code == 0 and "(forward, one 224x224 image)" in out and "99.89 %" in out
