"""The run list: its sections, filters and knobs, and the folders it expects the scripts to write."""
import json
import shlex
from pathlib import Path

import pytest

import student_v0
import teacher
from utils.distillers import DISTILLERS, DKD, KD, LSKD
from utils.runs.runnames import teacher_run_name
from utils.table.paper import EXTENSION_PAIRS
from utils.table.runlist import STUDENTS, TEACHERS, main, selected_runs, settings_from_env
from utils.unix_settings import KD_FLAGS, UNIXKD_FLAGS

KNOBS = ("SEEDS", "EPOCHS", "DATA_ROOT", "EXPERIMENTS_DIR", "PYTHON", "GPU", "ONLY", "ABLATIONS", "EXTENSIONS")


def runs_for(**env):
    return selected_runs(settings_from_env(env))


def names(runs):
    return [run.name for run in runs]


def test_sections_count_teachers_students_alone_students_and_ablations():
    runs = runs_for(ABLATIONS="1")
    kinds = [run.name.split()[0] for run in runs]
    assert {kind: kinds.count(kind) for kind in set(kinds)} == {
        "teacher": 6, "alone": 8 * 4, "KD": 12 * 4, "UNIXKD": 12 * 4, "ablation": 8 * 4}
    assert [run.phase for run in runs] == [TEACHERS] * 38 + [STUDENTS] * (96 + 32)
    assert len(set(names(runs))) == len(runs) and len({run.folder for run in runs}) == len(runs)
    assert len(runs_for()) == 134  # ablations only when asked for


def test_ablations_change_one_setting_of_unixkd_on_resnet32x4_resnet8x4():
    ablations = [run for run in runs_for(ABLATIONS="1", SEEDS="0") if run.name.startswith("ablation")]
    settings = set()
    for run in ablations:
        args = student_v0.parse_args(list(run.argv[2:]))
        assert (args.teacher_path, args.student_arch) == ("./experiments/teacher_resnet32x4/", "resnet8x4")
        settings.add((args.strategy, args.mix_strategy, args.k, args.b, args.w))
    assert settings == {(0, 2, 48, 32, 10), (1, 2, 48, 32, 10), (2, 2, 48, 32, 10),  # uncertainty strategy
                        (3, 0, 48, 32, 10), (3, 1, 48, 32, 10),                      # mix strategy
                        (3, 2, 32, 32, 10), (3, 2, 40, 32, 10), (3, 2, 56, 32, 10)}  # k, with b 32
    main_unixkd = (UNIXKD_FLAGS["strategy"], 2, UNIXKD_FLAGS["k"], UNIXKD_FLAGS["b"], UNIXKD_FLAGS["w"])
    assert main_unixkd not in settings  # already in the main table: never listed twice


def test_each_run_folder_is_where_its_script_writes(tmp_path):
    """The list finds a run's summary.json in the folder the script itself names from the parsed command."""
    for run in runs_for(ABLATIONS="1", EXTENSIONS="1", SEEDS="0 3", EXPERIMENTS_DIR=str(tmp_path)):
        words = list(run.argv[2:])
        if run.argv[1] == "teacher.py":
            args = teacher.parse_args(words)
            assert run.folder == teacher_run_name(args.arch, args.seed)
        else:
            args = student_v0.parse_args(words)
            # The teacher's folder, as student_v0.py finds it once the teacher has been trained.
            (Path(args.teacher_path) / "ckpt").mkdir(parents=True, exist_ok=True)
            (Path(args.teacher_path) / "ckpt" / "best.pth").touch()
            assert run.folder == student_v0.teacher_and_run_name(args)[2]


def test_extensions_add_every_other_distiller_with_and_without_unix_on_four_pairs():
    extensions = [run for run in runs_for(EXTENSIONS="1") if run not in runs_for()]
    others = [name for name in DISTILLERS if name != KD]  # every declared distiller but the paper's
    assert {DKD, LSKD} <= set(others)
    count = len(EXTENSION_PAIRS) * len(others) * 2 * 4  # with and without UNIX, seeds 0-3: 64 today
    assert len(extensions) == count and len({run.folder for run in extensions}) == count
    cells = set()
    for run in extensions:
        args = student_v0.parse_args(list(run.argv[2:]))
        unix = all(getattr(args, key) == value for key, value in UNIXKD_FLAGS.items())
        assert unix or all(getattr(args, key) == value for key, value in KD_FLAGS.items())
        assert run.name.startswith(("UNIX" if unix else "") + args.distill + " ")
        cells.add((args.teacher_path.split("teacher_")[1].rstrip("/"), args.student_arch, args.distill, unix, args.seed))
    assert cells == {(t, s, d, u, seed) for t, s in EXTENSION_PAIRS for d in others for u in (False, True)
                     for seed in range(4)}


def test_seeded_students_alone_get_their_own_folders_and_seed_0_keeps_the_teachers():
    runs = {run.name: run for run in runs_for(SEEDS="0 2")}
    assert runs["teacher resnet56"].folder == "teacher_resnet56"
    assert runs["alone resnet20 seed0"].folder == "teacher_resnet20"
    assert runs["alone resnet20 seed2"].folder == "teacher_resnet20_seed2"
    assert " --seed 2 " in runs["alone resnet20 seed2"].command


def test_lr_per_architecture():
    for run in runs_for(SEEDS="0"):
        words = run.argv
        arch = words[words.index("--arch" if "--arch" in words else "--student-arch") + 1]
        lr = float(words[words.index("--lr") + 1])
        assert lr == (0.01 if arch in ("MobileNetV2", "ShuffleV1", "ShuffleV2") else 0.05), run.name


def test_every_teacher_comes_before_the_students_that_need_it():
    runs = runs_for(ONLY="resnet8x4|vgg8", SEEDS="1")
    position = {run.name: i for i, run in enumerate(runs)}
    students = [run for run in runs if run.needs]
    assert students and all(position[run.needs] < position[run.name] for run in students)


def test_only_keeps_matching_runs_and_the_teachers_they_need():
    runs = runs_for(ONLY="resnet8x4")
    assert names(runs) == ["teacher resnet32x4"] + [f"alone resnet8x4 seed{s}" for s in range(4)] + [
        f"{method} resnet32x4 resnet8x4 seed{s}" for s in range(4) for method in ("KD", "UNIXKD")]
    assert names(runs_for(ONLY="^UNIXKD wrn_40_2 wrn_16_2 seed3$")) == [
        "teacher wrn_40_2", "UNIXKD wrn_40_2 wrn_16_2 seed3"]
    assert names(runs_for(ONLY="^alone resnet20 seed1$")) == ["alone resnet20 seed1"]  # nothing else needed


def test_seeds_choose_the_seeds_of_students_and_students_alone_not_of_teachers():
    runs = runs_for(SEEDS="2")
    assert all(run.name.endswith(" seed2") for run in runs if not run.name.startswith("teacher"))
    assert len([run for run in runs if run.name.startswith("teacher")]) == 6
    assert len(runs) == 6 + 8 + 24


def test_knobs_reach_every_command():
    runs = runs_for(EPOCHS="3", DATA_ROOT="/data/c100", EXPERIMENTS_DIR="/scratch/exp/", PYTHON="/opt/py/bin/python3",
                    GPU="2")
    for run in runs:
        command = f"{run.command} "
        assert run.argv[0] == "/opt/py/bin/python3"
        assert all(flag in command for flag in
                   ("--epoch 3 ", "--data-root /data/c100 ", "--experiments-dir /scratch/exp/ ", "--gpu-id 2 "))
        assert " --resume " in command
    assert {shlex.split(run.command)[shlex.split(run.command).index("--teacher-path") + 1]
            for run in runs if run.needs} >= {"/scratch/exp/teacher_resnet32x4/"}


@pytest.mark.parametrize("env, fragment", [
    ({"SEEDS": "0 x"}, "SEEDS='x'"),
    ({"SEEDS": "1 1"}, "names a seed twice"),
    ({"EPOCHS": "0"}, "EPOCHS='0': must be a positive integer"),
    ({"GPU": "-1"}, "GPU='-1'"),
    ({"ONLY": "("}, "ONLY='(' is not a regular expression"),
    ({"ONLY": "resnet1000"}, "ONLY='resnet1000' matches none of the 134 run names (such as 'UNIXKD vgg16 vgg8 seed3'; "
                              "`python -m utils.runlist --names` without ONLY lists them)"),
    ({"ABLATIONS": "yes"}, "ABLATIONS='yes'"),
    ({"EXTENSIONS": "dkd"}, "EXTENSIONS='dkd': must be 1"),
])
def test_bad_knob_is_one_error_line(env, fragment, monkeypatch, capsys, exit_status):
    for knob in KNOBS:
        monkeypatch.delenv(knob, raising=False)
    for knob, value in env.items():
        monkeypatch.setenv(knob, value)
    assert exit_status(main, []) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("error: ") and fragment in err


def test_pending_leaves_out_finished_runs(tmp_path, monkeypatch, capsys):
    for knob in KNOBS:
        monkeypatch.delenv(knob, raising=False)
    monkeypatch.setenv("EXPERIMENTS_DIR", str(tmp_path))
    monkeypatch.setenv("ONLY", "^alone resnet20 seed[01]$")
    monkeypatch.setenv("EPOCHS", "2")
    for folder, epochs_done in (("teacher_resnet20", 2), ("teacher_resnet20_seed1", 1)):  # one finished, one not
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "summary.json").write_text(json.dumps({"epochs_done": epochs_done, "wall_seconds": 9.0}))
    assert main(["--pending", "--names"]) == 0
    assert capsys.readouterr().out == "alone resnet20 seed1\n"
    assert main([]) == 0
    assert "2 runs, 1 finished" in capsys.readouterr().out.splitlines()[0]
