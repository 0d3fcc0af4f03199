"""The results table from run directories: reading, grouping, statistics, printing, plotting."""

import json
import re
import sys

import pytest
from tensorboardX.summary import hparams as tensorboardX_hparams

from tests.event_files import EXPERIMENT_TAG, hparams, scalars, tags
from tests.run_summaries import (KD_ARGS, UNIX, UNIX_ARGS, imagenet_json, imagenet_unix, summary_json,
                                 teacher_json, write_runs)
from utils.runs.report import HPARAMS_FOLDER
from utils.runs.rundir import RunDirectory
from utils.table.paper import DISTILLER_FIGURES
from utils.table.summary import (UNIXKD, Run, group_finished, load_runs, main, method_name, other_teacher_run,
                                 parse_run, summarize, teacher_run_folder)
from utils.unix_settings import KD_FLAGS, UNIXKD_FLAGS

def run(method, best_acc, computation=100.0, finished=True, student="resnet8x4"):
    return Run(name=f"{method}-{best_acc}", teacher="resnet32x4", student=student, method=method, finished=finished,
               epochs_done=240 if finished else 10, epochs=240, best_acc=best_acc, computation=computation, ft_fs=6.12)


def test_method_name_tells_kd_from_unixkd_settings():
    assert method_name({**KD_FLAGS, "batch_size": 64}) == "KD" and UNIXKD == UNIX  # the paper's two columns
    assert method_name({**UNIXKD_FLAGS, "batch_size": 64}) == UNIX
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
    assert sorted(r.name for r in runs) == ["teacher_resnet32x4", "teacher_resnet8x4", "teacher_resnet8x4_seed1",
                                             "teacher_resnet8x4_seed2", "v0_student_kd_0", "v0_student_kd_1",
                                             "v0_student_mix0_0", "v0_student_unix_0", "v0_student_unix_1",
                                             "v0_student_unix_2"]
    alone = [r for r in runs if r.teacher is None]
    assert {(r.student, r.best_acc, r.finished) for r in alone} == {
        ("resnet32x4", 79.0, True), ("resnet8x4", 72.0, True), ("resnet8x4", 73.0, True), ("resnet8x4", 50.0, False)}
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
    result = summarize([run(UNIX, 74.5, 87.30), run(UNIX, 75.1, 87.34)])
    assert result.runs == 2
    assert result.acc_mean == pytest.approx(74.8)
    assert result.acc_std == pytest.approx(0.6 / 2**0.5)  # sqrt((0.3^2 + 0.3^2) / (2 - 1))
    assert result.computation == pytest.approx(87.32)


def test_summarize_one_run_has_zero_std():
    assert summarize([run("KD", 73.0)]).acc_std == 0.0


def test_main_prints_every_column_beside_the_paper_and_the_runs_in_progress(experiments, capsys):
    assert main([str(experiments)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("resnet32x4 -> resnet8x4"))
    teacher_row, alone_row, kd_row, unix_row, ablation_row = lines[first:first + 5]
    assert not lines[first + 5].startswith(" ")  # the pair's last row
    # Paper, resnet32x4 -> resnet8x4: teacher 79.63, student alone 72.51, Ft/Fs 6.12, KD 73.34, UNIXKD 74.86 at 87.32 %.
    assert teacher_row.startswith("resnet32x4 -> resnet8x4") and "6.12 (6.12, +0.00)" in teacher_row
    # best, the paper's figure and our difference, then last (each fixture run's last epoch: best - 0.2 or - 0.1).
    assert "teacher (trained here)" in teacher_row and teacher_row.endswith("79.00 +- 0.00 (n=1)    79.63  -0.63   78.90 +- 0.00")
    assert "student alone" in alone_row and "72.50 +- 0.71 (n=2)    72.51  -0.01   72.40 +- 0.71" in alone_row
    assert "KD" in kd_row and "73.30 +- 0.42 (n=2)    73.34  -0.04   73.10 +- 0.42" in kd_row
    assert "100.00 % (100.00, +0.00)" in kd_row
    assert UNIX in unix_row and "74.80 +- 0.42 (n=2)    74.86  -0.06   74.60 +- 0.42" in unix_row
    assert "87.32 % (87.32, +0.00)" in unix_row
    # An ablation keeps its own row, without a published figure to compare with.
    assert UNIX + " mix0" in ablation_row and "72.00 +- 0.00 (n=1)" in ablation_row and "87.32 %" in ablation_row
    assert "(87.32" not in ablation_row
    assert "best_acc" in out.splitlines()[0]
    in_progress = out[out.index("in progress:"):]
    assert "v0_student_unix_2" in in_progress and "in progress (120/240)" in in_progress
    assert "teacher_resnet8x4_seed2: resnet8x4 trained alone: in progress (30/240)" in in_progress
    assert "warning: skipping" in err and "v0_student_broken" in err


def imported_json(arch, accuracy):
    """What `python -m utils.teachers import` writes (utils.teachers.importing.write_teacher)."""
    return {"arch": arch, "imported": {"source": f"{arch}_vanilla/ckpt_epoch_240.pth", "sha256": "0" * 64,
                                       "stored_acc": accuracy, "stored_epoch": 240, "measured": None},
            "best_acc": accuracy, "last_acc": None, "finished": True}


def test_a_pair_shows_once_a_student_is_distilled_and_a_published_teacher_is_labelled(tmp_path, capsys):
    write_runs(tmp_path, {"teacher_resnet32x4": imported_json("resnet32x4", 79.42),
                          "v0_student_unix_2": summary_json(UNIX_ARGS, 2, 70.0, 87.5, epochs_done=120)})
    assert main([str(tmp_path)]) == 0
    teacher_row = capsys.readouterr().out.splitlines()[4]
    # Its student is still training: the pair's rows are there, with no Ft/Fs measured yet and no method row.
    assert teacher_row.startswith("resnet32x4 -> resnet8x4") and "teacher (published checkpoint)" in teacher_row
    assert teacher_row.endswith("79.42 +- 0.00 (n=1)    79.63  -0.21   -")  # best beside the paper; no last epoch


def test_phase_one_runs_of_no_distilled_pair_are_listed_below_not_under_a_paper_pair(tmp_path, capsys):
    # As in quickstart: a resnet20 teacher distilled into resnet8. The paper's resnet56 -> resnet20 has no
    # student here, so its rows would show this teacher as "student alone": that pair gets no rows.
    write_runs(tmp_path, {"teacher_resnet20": teacher_json("resnet20", 0, 69.0),
                          "teacher_resnet56": imported_json("resnet56", 72.34),
                          "v0_student_kd_0": {**summary_json(KD_ARGS, 0, 60.0, 100.0), "teacher_arch": "resnet20",
                                              "student_arch": "resnet8"}})
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table, unpaired = out.split("teacher.py runs and published teachers of no pair above:")
    rows = table.splitlines()[4:]  # below the header
    assert not any("resnet56 -> resnet20" in row or "student alone" in row for row in rows)
    assert "resnet20 -> resnet8" in table and "teacher (trained here)" in table and "69.00 +- 0.00 (n=1)" in table
    assert unpaired.split() == ["resnet56", "teacher", "(published", "checkpoint)", "best", "72.34", "+-", "0.00",
                                "(n=1)", "last", "-"]


def test_a_published_teacher_measured_on_other_data_stays_off_the_teacher_row(tmp_path, capsys):
    """`utils.teachers import --data-root data/synthetic`: its accuracy there is no teacher's accuracy."""
    synthetic = imported_json("resnet32x4", 1.1)
    synthetic["imported"]["measured"] = {"test_acc": 1.1, "data_root": "data/synthetic", "kind": "synthetic",
                                         "test_images": 200}
    write_runs(tmp_path, {"teacher_resnet32x4": synthetic,
                          "v0_student_unix_0": summary_json(UNIX_ARGS, 0, 74.5, 87.3)})
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = out.split("left out:")[0]
    assert "teacher (published checkpoint)" not in table and "1.10" not in table and "74.50" in table
    assert "left out: 1 finished run outside their dataset's protocol (synthetic data (200 test images): 1)" in out


def test_main_without_runs_says_so_and_succeeds(tmp_path, capsys):
    assert main([str(tmp_path)]) == 0
    assert "no runs found" in capsys.readouterr().out


def test_the_folder_may_be_given_as_the_training_scripts_flag(tmp_path, capsys, exit_status):
    assert main(["--experiments-dir", str(tmp_path)]) == 0
    assert "no runs found" in capsys.readouterr().out
    assert exit_status(main, [str(tmp_path), "--experiments-dir", str(tmp_path / "other")]) == 2
    assert "two experiments folders" in capsys.readouterr().err


def test_a_missing_folder_is_one_error(tmp_path, capsys, exit_status):
    assert exit_status(main, [str(tmp_path / "experimnets")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'experimnets'} is not a folder; give the experiments " \
                                      "folder the runs wrote to (default $EXPERIMENTS_DIR, else ./experiments)\n"


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


def test_a_trial_run_is_left_out_of_the_protocol_rows_or_shown_apart_with_all(tmp_path, capsys):
    cifar = {"kind": "CIFAR-100", "train_images": 50000, "test_images": 10000}
    trial = {**summary_json(KD_ARGS, 1, 1.0, 100.0), "data": {"kind": "synthetic", "train_images": 1000,
                                                              "test_images": 200}}
    trial["args"]["epoch"] = trial["epochs_done"] = 1
    runs = {"v0_student_kd_0": {**summary_json(KD_ARGS, 0, 73.0, 100.0), "data": cifar}, "v0_student_trial": trial}
    for name, content in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(content))
    assert main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    (kd_row,) = [line for line in lines if "(n=" in line]
    assert "73.00 +- 0.00 (n=1)" in kd_row
    assert lines[-1] == ("left out: 1 finished run outside their dataset's protocol "
                         "(--epoch 1, synthetic data (1,000 training images): 1); --all shows them in tables of their own")
    assert main([str(tmp_path), "--all"]) == 0
    out = capsys.readouterr().out
    protocol, apart = out.split("\n* not the protocol (--epoch 1, synthetic data (1,000 training images)): ")
    assert "73.00 +- 0.00 (n=1)" in protocol and "1.00" not in protocol
    (trial_row,) = [line for line in apart.splitlines() if "(n=" in line]
    assert trial_row.startswith("resnet32x4 -> resnet8x4 *") and "1.00 +- 0.00 (n=1)" in trial_row
    assert "73.34" not in trial_row  # no published figure to set against a trial


NOW = {"settings_revision": 2}  # what student_v0.py records for CIFAR-100 DKD and LSKD since the settings table


def test_method_name_of_the_other_distillers():
    assert method_name({**KD_ARGS, **NOW, "distill": "DKD"}) == "DKD"
    assert method_name({**UNIX_ARGS, **NOW, "distill": "LSKD"}) == "UNIX + LSKD"
    assert method_name({**UNIX_ARGS, "distill": "KD"}) == UNIX  # KD's rows as before --distill
    assert method_name({**UNIX_ARGS, **NOW, "k": 56, "distill": "DKD"}) == "UNIX (S3 k56 b32 w10) + DKD"
    # The published settings of the pair stay unnamed (beta 6 for wrn_40_2 -> wrn_16_2), others are named.
    dkd = {**KD_ARGS, **NOW, "distill": "DKD", "student_arch": "wrn_16_2", "alpha": 1.0, "beta": 6.0, "warmup": 20}
    assert method_name(dkd, "wrn_40_2") == "DKD"
    assert method_name({**dkd, "beta": 8.0}, "wrn_40_2") == "DKD beta8"
    assert method_name({**dkd, "dkd_mix": "split"}, "wrn_40_2") == "DKD dkdmixsplit"


def test_runs_made_before_the_settings_table_get_rows_of_their_own():
    # Conventional DKD before it: the same flags, but BatchNorm updated twice per batch; LSKD: cross-entropy 1.
    assert method_name({**KD_ARGS, "distill": "DKD"}) == "DKD r1"
    assert method_name({**UNIX_ARGS, "distill": "LSKD", "ce_weight": 1.0}) == "UNIX + LSKD ce1 r1"
    # A run made now with the old cross-entropy weight is named by it, and apart from the old runs too.
    assert method_name({**UNIX_ARGS, **NOW, "distill": "LSKD", "ce_weight": 1.0}) == "UNIX + LSKD ce1"


def test_distiller_figures_are_the_primary_sources():
    # mdistiller's README (a08d46f), not the LS README's copy (76.24); the ShuffleV1 figures are there too.
    assert DISTILLER_FIGURES["wrn_40_2", "wrn_16_2"]["DKD"] == 76.23
    assert DISTILLER_FIGURES["resnet32x4", "ShuffleV1"]["DKD"] == 76.45
    assert DISTILLER_FIGURES["wrn_40_2", "ShuffleV1"]["DKD"] == 76.70
    # The LS README's "KD+Ours" of the pairs whose logs name another base temperature or weight.
    assert DISTILLER_FIGURES["vgg13", "vgg8"]["LSKD"] == 74.36
    assert DISTILLER_FIGURES["ResNet50", "MobileNetV2"]["LSKD"] == 69.02
    assert DISTILLER_FIGURES["resnet110", "resnet20"] == {"LSKD": 71.48}


def test_dkd_and_lskd_rows_sit_beside_their_papers_figures(tmp_path, capsys):
    for i, (distiller, args, acc, computation) in enumerate([
            ("DKD", KD_ARGS, 76.0, 100.0), ("DKD", UNIX_ARGS, 76.5, 87.3),
            ("LSKD", KD_ARGS, 76.62, 100.0), ("LSKD", UNIX_ARGS, 76.1, 87.3), ("DKD", KD_ARGS, 70.0, 100.0)]):
        (tmp_path / f"v0_student_{i}").mkdir()
        made_now = NOW if i < 4 else {}  # the last one was made before the settings table
        content = summary_json({**args, **made_now, "distill": distiller}, 0, acc, computation)
        (tmp_path / f"v0_student_{i}" / "summary.json").write_text(json.dumps(content))
    assert main([str(tmp_path)]) == 0
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        for row in ("DKD", "UNIX + DKD", "LSKD", "UNIX + LSKD", "DKD r1"):
            if row in re.split(r"\s{2,}", line):
                rows[row] = line
    assert "76.00 +- 0.00 (n=1)" in rows["DKD"] and "76.32  -0.32" in rows["DKD"]
    assert "100.00 % (100.00, +0.00)" in rows["DKD"]
    assert "70.00 +- 0.00 (n=1)" in rows["DKD r1"] and "76.32" not in rows["DKD r1"]  # apart, no published figure
    assert "87.30 %" in rows["UNIX + DKD"] and "76.32" not in rows["UNIX + DKD"]  # no published UNIX + DKD
    assert "76.62  +0.00" in rows["LSKD"]
    assert "76.10 +- 0.00" in rows["UNIX + LSKD"]


def test_imagenet_rows_show_top5_beside_top1(tmp_path, capsys):
    imagenet = {"kind": "imagenet", "train_images": 1281167, "test_images": 50000}
    runs = {"v0_student_in_0": {**summary_json(KD_ARGS, 0, 71.0, 100.0), "best_acc5": 90.0, "last_acc5": 89.5,
                                "data": imagenet},
            "v0_student_in_1": {**summary_json(KD_ARGS, 1, 71.4, 100.0), "best_acc5": 90.4, "last_acc5": 89.9,
                                "data": imagenet},
            "teacher_in": {**teacher_json("resnet8x4", 1, 70.0), "best_acc5": 89.0, "last_acc5": 88.8, "data": imagenet}}
    for name, content in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(content))
    assert main([str(tmp_path), "--all"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "(n=" in line]
    assert rows[0].endswith("top-5 best 89.00 +- 0.00, last 88.80 +- 0.00")  # the student alone
    assert rows[1].endswith("top-5 best 90.20 +- 0.28, last 89.70 +- 0.28")  # KD, two seeds


def test_imagenet_kd_on_several_processes_is_named_kd():
    # --k and --b count each process's images: 32 of 32 on each of 8 GPUs is every image, no mixing.
    kd = {**KD_ARGS, "batch_size": 256, "local_batch": 32, "k": 32, "b": 32, "dataset": "imagenet"}
    assert method_name(kd) == "KD"
    assert method_name({**kd, **UNIXKD_FLAGS, "k": 24, "b": 16}) == "UNIXKD (S3 k24 b16 w10)"
    # Today's runs record each process's batch beside their args (batch_per_process), not in them.
    recorded = {**summary_json({key: value for key, value in kd.items() if key != "local_batch"}, 0, 70.0, 100.0),
                "batch_per_process": 32, "world_size": 8}
    assert parse_run("v0_student_kd", recorded).method == "KD"


def rows_of(out, *labels) -> dict:
    """{label: the table's line whose row column is that label}."""
    return {label: line for line in out.splitlines() for label in labels if label in re.split(r"\s{2,}", line)}


def test_a_tagged_student_has_a_row_of_its_own_named_by_its_tag(tmp_path, capsys):
    tagged = summary_json(KD_ARGS, 0, 40.0, 100.0)
    tagged["args"]["tag"] = "lr0.1"
    write_runs(tmp_path, {"v0_student_kd_0": summary_json(KD_ARGS, 0, 73.0, 100.0),
                          "v0_student_kd_1": summary_json(KD_ARGS, 1, 73.6, 100.0), "v0_student_kd_0_lr0.1": tagged})
    assert main([str(tmp_path)]) == 0
    rows = rows_of(capsys.readouterr().out, "KD", "KD --tag lr0.1")
    assert "73.30 +- 0.42 (n=2)    73.34  -0.04" in rows["KD"]  # seeds 0 and 1, without the tagged run
    assert "40.00 +- 0.00 (n=1)    -" in rows["KD --tag lr0.1"]  # no published figure for other settings


def test_a_tagged_teacher_py_run_has_a_row_of_its_own(tmp_path, capsys):
    dali = teacher_json("resnet8x4", 0, 20.0)
    dali["args"]["tag"] = "dali"
    write_runs(tmp_path, {"teacher_resnet8x4": teacher_json("resnet8x4", 0, 30.0), "teacher_resnet8x4_dali": dali,
                          "v0_student_kd_0": summary_json(KD_ARGS, 0, 73.0, 100.0)})
    assert main([str(tmp_path)]) == 0
    rows = rows_of(capsys.readouterr().out, "student alone", "student alone --tag dali")
    assert "30.00 +- 0.00 (n=1)    72.51" in rows["student alone"]
    assert "20.00 +- 0.00 (n=1)    -" in rows["student alone --tag dali"]
    write_runs(tmp_path, {"teacher_wrn_40_1": teacher_json("wrn_40_1", 0, 30.0),
                          "teacher_wrn_40_1_dali": {**teacher_json("wrn_40_1", 0, 20.0), "args": dali["args"]}})
    assert main([str(tmp_path)]) == 0  # of no pair: listed below the table, still apart
    unpaired = capsys.readouterr().out.split("of no pair above:")[1].splitlines()
    assert [line.split("best")[0].split() for line in unpaired if "wrn_40_1" in line] == [
        ["wrn_40_1", "trained", "alone"], ["wrn_40_1", "trained", "alone", "--tag", "dali"]]


def test_students_of_a_tagged_teacher_are_apart_from_those_of_teacher_arch(tmp_path, capsys):
    of_tagged = summary_json(KD_ARGS, 0, 60.0, 100.0)
    of_tagged["args"]["teacher_path"] = "experiments/teacher_resnet32x4_dali/ckpt/best.pth"
    write_runs(tmp_path, {"v0_student_kd_0": summary_json(KD_ARGS, 0, 73.0, 100.0), "v0_student_kd_0_dali": of_tagged})
    assert main([str(tmp_path)]) == 0
    rows = rows_of(capsys.readouterr().out, "KD", "KD from teacher_resnet32x4_dali")
    assert "73.00 +- 0.00 (n=1)" in rows["KD"] and "60.00 +- 0.00 (n=1)" in rows["KD from teacher_resnet32x4_dali"]


def test_the_teacher_run_a_student_names(tmp_path):
    assert teacher_run_folder("./experiments/teacher_wrn_40_2/") == "teacher_wrn_40_2"
    assert teacher_run_folder("experiments/teacher_wrn_40_2_seed1/ckpt/last.pth") == "teacher_wrn_40_2_seed1"
    assert teacher_run_folder("~/Downloads/resnet32x4_vanilla/ckpt_epoch_240.pth") is None  # a file of no run
    assert teacher_run_folder("torchvision:resnet34:IMAGENET1K_V1") is None
    assert other_teacher_run("e/teacher_wrn_40_2/ckpt/best.pth", "wrn_40_2") is None  # the dispatchers' teacher
    assert other_teacher_run("e/teacher_wrn_40_2_seed1", "wrn_40_2") == "teacher_wrn_40_2_seed1"


def test_a_checkpoint_in_a_folder_of_no_teacher_run_names_no_run(tmp_path):
    # A file laid out by hand in some ckpt/ folder: 'data' is no teacher run.
    assert teacher_run_folder("/data/ckpt/resnet32x4.pth") is None
    renamed = tmp_path / "my_resnet32x4"  # a teacher.py run moved to another name still holds its summary.json
    write_runs(tmp_path, {renamed.name: teacher_json("resnet32x4", 0, 79.0)})
    assert teacher_run_folder(str(renamed / "ckpt" / "best.pth")) == "my_resnet32x4"


def test_a_row_never_holds_two_runs_of_one_seed(tmp_path, capsys):
    write_runs(tmp_path, {"v0_student_kd_0": summary_json(KD_ARGS, 0, 73.0, 100.0),
                          "v0_student_kd_0_copy": summary_json(KD_ARGS, 0, 10.0, 100.0),
                          "v0_student_kd_1": summary_json(KD_ARGS, 1, 73.6, 100.0),
                          "teacher_resnet8x4": teacher_json("resnet8x4", 0, 72.0),
                          "teacher_resnet8x4_copy": teacher_json("resnet8x4", 0, 12.0)})
    assert main([str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    rows = rows_of(out, "KD", "KD (v0_student_kd_0)", "KD (v0_student_kd_0_copy)", "student alone (teacher_resnet8x4)",
                   "student alone (teacher_resnet8x4_copy)")
    assert "73.60 +- 0.00 (n=1)" in rows["KD"]  # seed 1 alone: neither seed-0 run is averaged in
    assert "73.00 +- 0.00 (n=1)" in rows["KD (v0_student_kd_0)"] and "10.00" in rows["KD (v0_student_kd_0_copy)"]
    assert "72.00" in rows["student alone (teacher_resnet8x4)"] and "12.00" in rows["student alone (teacher_resnet8x4_copy)"]
    assert "student alone" not in rows  # the architecture trained alone has no row of seed 0 twice
    warnings = err.splitlines()
    assert ("warning: 2 runs of seed 0 in one row (resnet32x4 -> resnet8x4, KD): v0_student_kd_0, v0_student_kd_0_copy; "
            "each is shown in a row of its own, named by its folder") in warnings
    assert any("(resnet8x4 trained alone): teacher_resnet8x4, teacher_resnet8x4_copy" in line for line in warnings)


def test_imagenet_runs_follow_imagenets_protocol_and_a_generated_folder_stays_off_it(tmp_path, capsys):
    write_runs(tmp_path, {"v0_student_in_0": imagenet_json(0), "v0_student_in_1": imagenet_json(1),
                          "v0_student_in_synthetic": imagenet_json(2, "synthetic", 120)})
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    (kd_row,) = [line for line in out.splitlines() if line.startswith("imagenet_resnet34 -> imagenet_resnet18")]
    assert " KD " in kd_row and "70.50 +- 0.71 (n=2)" in kd_row  # on the protocol rows: its defaults are no departure
    assert out.splitlines()[-1].startswith("left out: 1 finished run outside their dataset's protocol "
                                           "(synthetic data (120 training images): 1)")


def test_the_folder_comes_from_experiments_dir_as_the_dispatchers_read_it(experiments, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXPERIMENTS_DIR", str(experiments))
    assert main([]) == 0 and "resnet32x4 -> resnet8x4" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    for given in ([str(empty)], ["--experiments-dir", str(empty)]):  # a folder given wins over the variable
        assert main(given) == 0 and "no runs found" in capsys.readouterr().out


def test_a_missing_folder_from_experiments_dir_says_it_came_from_the_variable(tmp_path, monkeypatch, capsys,
                                                                            exit_status):
    monkeypatch.setenv("EXPERIMENTS_DIR", str(tmp_path / "nope"))
    assert exit_status(main, []) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'nope'} (the EXPERIMENTS_DIR variable) is not a "
                                              "folder; ")


def test_a_run_folder_given_as_the_experiments_folder_is_one_error(experiments, capsys, exit_status):
    assert exit_status(main, [str(experiments / "v0_student_kd_0")]) == 2
    assert capsys.readouterr() == ("", f"error: {experiments / 'v0_student_kd_0'} is a run folder (it holds summary.json); "
                                       f"give the experiments folder that holds the run folders, here {experiments}\n")


def test_a_ddp_kd_run_is_kd_judged_on_each_processs_batch_as_its_step_was():
    """KD on 4 GPUs: a global batch of 256, each process's step sees all 64 of its own images."""
    assert method_name({**KD_ARGS, "batch_size": 256, "local_batch": 64}) == "KD"
    assert method_name({**KD_ARGS, "batch_size": 256, "local_batch": 128}) == "UNIXKD (S0 k64 b64 w1000)"


def test_an_unfinished_run_in_progress_is_named_with_its_variant(tmp_path, capsys):
    tagged = summary_json(KD_ARGS, 0, 40.0, 100.0, epochs_done=12)
    tagged["args"]["tag"] = "lr0.1"
    write_runs(tmp_path, {"v0_student_kd_0_lr0.1": tagged})
    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == ("v0_student_kd_0_lr0.1: resnet8x4 from resnet32x4, KD --tag lr0.1: "
                                                        "in progress (12/240)")


def test_imagenet_k_and_b_given_for_another_batch_name_it_so_the_row_never_mixes_shares(tmp_path, capsys):
    # --k 24 --b 16 are the defaults of 32 images a process (3/4 and 1/2), a quarter kept unmixed of 64.
    write_runs(tmp_path, {"v0_student_32": imagenet_unix(0, 24, 16, 256), "v0_student_64": imagenet_unix(0, 24, 16, 512),
                          "v0_student_64_defaults": imagenet_unix(0, 48, 32, 512)})
    assert main([str(tmp_path)]) == 0
    rows = rows_of(capsys.readouterr().out, "UNIXKD (S3 k24 b16 w10)", "UNIXKD (S3 k24 b16 w10) of 64 per process",
                   "UNIXKD (S3 k48 b32 w10)")
    assert all("(n=1)" in row for row in rows.values()) and len(rows) == 3


def test_rewrite_hparams_writes_each_finished_runs_anew_from_its_summary_without_an_experiment_summary(tmp_path,
                                                                                                       capsys):
    """A run finished by an earlier version holds an experiment summary in tensorboard/hparams/, which TensorBoard
    takes for every run's columns: --rewrite-hparams writes the file anew from summary.json; a run extended and
    not finished again keeps its file until it finishes."""
    done = {**summary_json(UNIX_ARGS, 0, 70.0, 40.0), "method": UNIX, "data": {"kind": "CIFAR-100"}}
    write_runs(tmp_path, {"v0_student_done": done, "v0_student_extended": {**done, "finished": False}})
    for name in ("v0_student_done", "v0_student_extended"):
        with RunDirectory(tmp_path / name).events_writer(HPARAMS_FOLDER) as writer:
            for event in tensorboardX_hparams({"lr": 0.05}, {"hparams/best_acc": 70.0}):
                writer.add_summary(event)
    extended = sorted((tmp_path / "v0_student_extended" / "tensorboard" / HPARAMS_FOLDER).iterdir())
    assert main(["--rewrite-hparams", str(tmp_path)]) == 0
    folder = tmp_path / "v0_student_done" / "tensorboard" / HPARAMS_FOLDER
    assert EXPERIMENT_TAG not in tags(folder)
    settings, metrics = hparams(folder)
    assert (settings["method"], settings["data"], settings["k"], settings["teacher_arch"]) == (
        UNIX, "CIFAR-100", 48, "resnet32x4")
    assert scalars(folder) == {"hparams/best_acc": {240: 70.0}, "hparams/last_acc": {240: pytest.approx(69.8)}}
    assert sorted((tmp_path / "v0_student_extended" / "tensorboard" / HPARAMS_FOLDER).iterdir()) == extended
    assert capsys.readouterr().out == (f"rewrote tensorboard/hparams/ of 1 finished run(s) from their summary.json\n"
                                       f"  {tmp_path / 'v0_student_done'}\n")
