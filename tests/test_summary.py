"""The results table from run directories: reading, grouping, statistics, printing, plotting."""

import json
import sys

import pytest

from utils.summary import Run, group_finished, load_runs, main, method_name, summarize

KD_ARGS = {"strategy": 0, "k": 64, "b": 64, "w": 1000.0, "batch_size": 64, "mix_strategy": 2, "other_distill": None}
UNIX_ARGS = {"strategy": 3, "k": 48, "b": 32, "w": 10.0, "batch_size": 64, "mix_strategy": 2, "other_distill": None}
UNIX = "UNIXKD (S3 k48 b32 w10)"


def summary_json(args, seed, best_acc, computation, epochs_done=240):
    return {
        "args": {**args, "teacher_path": "experiments/teacher_resnet32x4/ckpt/best.pth", "student_arch": "resnet8x4",
                 "seed": seed, "epoch": 240, "lr": 0.05},
        "teacher_arch": "resnet32x4",
        "student_arch": "resnet8x4",
        "teacher_acc": 79.4,
        "best_acc": best_acc,
        "last_acc": best_acc - 0.2,
        "epochs_done": epochs_done,
        "finished": epochs_done == 240,
        "wall_seconds": 1234.5,
        "images_per_second": 9876.0,
        "computation": {"computation": computation},
        "flops": {"teacher": 612, "student": 100},
    }


@pytest.fixture
def experiments(tmp_path):
    """KD and UNIXKD twice each (seeds 0, 1), one run half done, one file cut off mid-write."""
    runs = {
        "v0_student_kd_0": summary_json(KD_ARGS, 0, 73.0, 100.0),
        "v0_student_kd_1": summary_json(KD_ARGS, 1, 73.6, 100.0),
        "v0_student_unix_0": summary_json(UNIX_ARGS, 0, 74.5, 87.30),
        "v0_student_unix_1": summary_json(UNIX_ARGS, 1, 75.1, 87.34),
        "v0_student_unix_2": summary_json(UNIX_ARGS, 2, 70.0, 87.5, epochs_done=120),
    }
    for name, content in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(content))
    (tmp_path / "v0_student_broken").mkdir()
    (tmp_path / "v0_student_broken" / "summary.json").write_text('{"args": {"strategy"')
    return tmp_path


def run(method, best_acc, computation=100.0, finished=True, student="resnet8x4"):
    return Run(name=f"{method}-{best_acc}", teacher="resnet32x4", student=student, method=method, finished=finished,
               epochs_done=240 if finished else 10, epochs=240, best_acc=best_acc, computation=computation, ft_fs=6.12)


def test_method_name_tells_kd_from_unixkd_settings():
    assert method_name(KD_ARGS) == "KD"
    assert method_name(UNIX_ARGS) == UNIX
    assert method_name({**UNIX_ARGS, "other_distill": "AT"}) == UNIX + " + AT"
    assert method_name({**UNIX_ARGS, "mix_strategy": 1}) == UNIX + " mix1"
    # Random scoring with k < B still mixes and drops images: not conventional KD.
    assert method_name({**KD_ARGS, "k": 48}) == "UNIXKD (S0 k48 b64 w1000)"
    # So does every image kept in random order with a curve that really mixes (w 10: up to 0.48 lambda).
    assert method_name({**KD_ARGS, "w": 10.0}) == "UNIXKD (S0 k64 b64 w10)"
    assert method_name({**UNIX_ARGS, "other_distill": "SP"}) != method_name({**UNIX_ARGS, "other_distill": "SP-batch"})


def test_load_runs_skips_an_unreadable_file_with_a_warning(experiments):
    runs, warnings = load_runs(experiments)
    assert sorted(r.name for r in runs) == ["v0_student_kd_0", "v0_student_kd_1", "v0_student_unix_0",
                                             "v0_student_unix_1", "v0_student_unix_2"]
    assert len(warnings) == 1 and "v0_student_broken" in warnings[0]


def test_group_finished_by_pair_and_method_kd_first():
    runs = [run(UNIX, 74.5), run("KD", 73.0), run(UNIX, 75.1), run("KD", 73.6), run(UNIX, 60.0, finished=False),
            run("KD", 70.0, student="ShuffleV1")]
    groups = group_finished(runs)
    assert list(groups) == [("resnet32x4", "ShuffleV1"), ("resnet32x4", "resnet8x4")]  # the paper's order
    methods = groups[("resnet32x4", "resnet8x4")]
    assert list(methods) == ["KD", UNIX]
    assert [r.best_acc for r in methods[UNIX]] == [74.5, 75.1]


def test_summarize_mean_sample_std_and_mean_computation():
    result = summarize(UNIX, [run(UNIX, 74.5, 87.30), run(UNIX, 75.1, 87.34)])
    assert result.runs == 2
    assert result.acc_mean == pytest.approx(74.8)
    assert result.acc_std == pytest.approx(0.6 / 2**0.5)  # sqrt((0.3^2 + 0.3^2) / (2 - 1))
    assert result.computation == pytest.approx(87.32)


def test_summarize_one_run_has_zero_std():
    assert summarize("KD", [run("KD", 73.0)]).acc_std == 0.0


def test_main_prints_the_table_and_the_runs_in_progress(experiments, capsys):
    assert main([str(experiments)]) == 0
    out, err = capsys.readouterr()
    kd_row, unix_row = [line for line in out.splitlines() if "(n=2)" in line]
    assert kd_row.startswith("resnet32x4 -> resnet8x4") and "6.12" in kd_row
    assert "KD" in kd_row and "73.30 +- 0.42 (n=2)" in kd_row and "100.00 %" in kd_row
    assert UNIX in unix_row and "74.80 +- 0.42 (n=2)" in unix_row and "87.32 %" in unix_row
    assert "best_acc" in out.splitlines()[0]
    assert "v0_student_unix_2" in out and "in progress (120/240)" in out
    assert "warning: skipping" in err and "v0_student_broken" in err


def test_main_without_runs_says_so_and_succeeds(tmp_path, capsys):
    assert main([str(tmp_path)]) == 0
    assert "no student runs found" in capsys.readouterr().out


def test_plot_writes_a_png(experiments, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "accuracy.png"
    assert main([str(experiments), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_asks_to_install_it(experiments, tmp_path, monkeypatch, capsys, exit_status):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    assert exit_status(main, [str(experiments), "--plot", str(tmp_path / "accuracy.png")]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: ") and "pip install matplotlib" in err
