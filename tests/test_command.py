"""command/command.sh, dry run: exactly the runs behind paper-results.md, each with the protocol's flags.

The printed commands are parsed by the training scripts' own parsers, so a flag they would reject fails here.
"""
import itertools
import os
import re
import shlex
import subprocess
from collections import Counter
from pathlib import Path

import pytest

import student_v0
import teacher
from utils.distillers import DISTILLERS, DKD, KD, LSKD
from utils.table.paper import EXTENSION_PAIRS, PAPER_PAIRS
from utils.teachers.importing import arch_from_name

SCRIPT = Path(__file__).resolve().parent.parent / "command" / "command.sh"
SEEDS = (0, 1, 2, 3)
TABLE_TEACHERS = {pair.teacher for pair in PAPER_PAIRS}
TABLE_STUDENTS = {pair.student for pair in PAPER_PAIRS}
LOW_LR_ARCHS = {"MobileNetV2", "ShuffleV1", "ShuffleV2"}  # lr 0.01 in the table; every other model 0.05
METHOD_FLAGS = {
    "KD": {"strategy": 0, "k": 64, "b": 64, "w": 1000.0},
    "UNIXKD": {"strategy": 3, "k": 48, "b": 32, "w": 10.0},
}
# What the table's runs leave at the protocol's defaults.
PROTOCOL_DEFAULTS = {"epoch": 240, "batch_size": 64, "milestones": [150, 180, 210], "gamma": 0.1, "momentum": 0.9,
                     "weight_decay": 5e-4, "data_root": "./data", "experiments_dir": "./experiments", "amp": False,
                     "force": False, "resume": True}
STUDENT_DEFAULTS = {"T": 4.0, "ce_weight": 0.0, "kd_weight": 1.0, "mix_strategy": 2, "other_distill": None,
                    "teacher_ckpt": "best", "teacher_arch": None}


def dry_run(gpu=None, cwd=None):
    knobs = ("GPU", "GPUS", "JOBS_PER_GPU", "PYTHON", "SEEDS", "EPOCHS", "DATA_ROOT", "EXPERIMENTS_DIR", "ONLY",
             "ABLATIONS", "EXTENSIONS")
    env = {name: value for name, value in os.environ.items() if name not in knobs}
    env.update(DRY_RUN="1", **({"GPU": str(gpu)} if gpu is not None else {}))
    result = subprocess.run(["bash", str(SCRIPT)], env=env, cwd=cwd, capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def parsed(lines, script_name, parse_args):
    """The arguments of every printed `python <script_name> ...` line, as the script itself parses them."""
    commands = [shlex.split(line) for line in lines]
    return [parse_args(words[2:]) for words in commands if words[:2] == ["python", script_name]]


def lr_for(arch):
    return 0.01 if arch in LOW_LR_ARCHS else 0.05


def method_of(args):
    for method, flags in METHOD_FLAGS.items():
        if all(getattr(args, name) == value for name, value in flags.items()):
            return method
    raise AssertionError(f"neither KD nor UNIXKD flags: {vars(args)}")


@pytest.fixture(scope="module")
def lines():
    return dry_run()


@pytest.fixture(scope="module")
def teacher_py_runs(lines):
    return parsed(lines, "teacher.py", teacher.parse_args)


@pytest.fixture(scope="module")
def teachers(teacher_py_runs):
    return [args for args in teacher_py_runs if args.arch in TABLE_TEACHERS]


@pytest.fixture(scope="module")
def students_alone(teacher_py_runs):
    return [args for args in teacher_py_runs if args.arch in TABLE_STUDENTS]


@pytest.fixture(scope="module")
def students(lines):
    return parsed(lines, "student_v0.py", student_v0.parse_args)


def test_prints_only_the_teachers_the_students_alone_and_the_distilled_students(lines, teacher_py_runs, teachers,
                                                                                students_alone, students):
    command_lines = [line for line in lines if line.startswith("python ")]
    assert len(teachers) == 6 and len(students_alone) == 8 * 4 and len(students) == 12 * 2 * 4
    assert len(teacher_py_runs) == len(teachers) + len(students_alone)
    assert len(command_lines) == len(teacher_py_runs) + len(students)
    assert not any(line.startswith(("device:", "data:", "epoch")) for line in lines)  # nothing was run


def test_teachers_are_the_tables_teachers_with_the_protocol_lr(teachers):
    assert sorted(args.arch for args in teachers) == sorted(TABLE_TEACHERS)
    for args in teachers:
        assert args.lr == lr_for(args.arch) == 0.05, args.arch
        assert args.seed == 0 and args.gpu_id == 0
        assert {name: getattr(args, name) for name in PROTOCOL_DEFAULTS} == PROTOCOL_DEFAULTS


def test_students_alone_are_every_student_architecture_and_seed_with_its_lr(students_alone):
    assert sorted((args.arch, args.seed) for args in students_alone) == sorted(
        itertools.product(TABLE_STUDENTS, SEEDS))
    for args in students_alone:
        assert args.lr == lr_for(args.arch), args.arch
        assert args.gpu_id == 0
        assert {name: getattr(args, name) for name in PROTOCOL_DEFAULTS} == PROTOCOL_DEFAULTS


def test_every_teacher_comes_before_its_students(lines):
    commands = [line for line in lines if line.startswith("python ")]
    last_teacher_py = max(i for i, line in enumerate(commands) if " teacher.py " in line)
    first_student = min(i for i, line in enumerate(commands) if " student_v0.py " in line)
    assert last_teacher_py < first_student
    for i, line in enumerate(commands):
        if " student_v0.py " in line:
            teacher_path = shlex.split(line)[shlex.split(line).index("--teacher-path") + 1]
            arch = arch_from_name(Path(teacher_path) / "ckpt" / "best.pth")
            assert any(f" --arch {arch} " in commands[j] and " --seed " not in commands[j] for j in range(i)), line


def test_students_cover_every_pair_method_and_seed_once(students):
    runs = [(args.student_arch, arch_from_name(Path(args.teacher_path) / "ckpt" / "best.pth"), method_of(args),
             args.seed) for args in students]
    expected = [(pair.student, pair.teacher, method, seed) for pair, method, seed
                in itertools.product(PAPER_PAIRS, METHOD_FLAGS, SEEDS)]
    assert sorted(runs) == sorted(expected)


def test_students_use_the_tables_lr_and_flags(students):
    for args in students:
        assert args.lr == lr_for(args.student_arch), args.student_arch
        assert args.gpu_id == 0
        assert {name: getattr(args, name) for name in PROTOCOL_DEFAULTS} == PROTOCOL_DEFAULTS
        assert {name: getattr(args, name) for name in STUDENT_DEFAULTS} == STUDENT_DEFAULTS
        assert {name: getattr(args, name) for name in METHOD_FLAGS[method_of(args)]} == METHOD_FLAGS[method_of(args)]


def test_every_teacher_path_is_a_teacher_the_script_trains(teachers, students):
    trained = {f"./experiments/teacher_{args.arch}/" for args in teachers}
    assert {args.teacher_path for args in students} <= trained


def test_gpu_variable_reaches_every_command_from_any_directory(tmp_path):
    lines = dry_run(gpu=3, cwd=tmp_path)
    commands = [line for line in lines if line.startswith("python ")]
    assert len(commands) == 134 and all(" --gpu-id 3 " in f"{line} " for line in commands)


def test_ends_with_how_to_print_the_table(lines):
    assert "python -m utils.summary ./experiments" in lines[-1]


def test_extensions_reach_the_run_list():
    env = {name: value for name, value in os.environ.items() if name not in ("ONLY", "SEEDS", "ABLATIONS")}
    out = subprocess.run(["bash", str(SCRIPT)], env={**env, "DRY_RUN": "1", "EXTENSIONS": "1"}, capture_output=True,
                         text=True, check=True).stdout
    per_distiller = len(EXTENSION_PAIRS) * 2 * 4  # with and without UNIX, seeds 0-3: 32
    distilled = Counter(re.findall(r"--distill (\S+)", out))
    assert {DKD, LSKD} <= set(distilled)
    assert distilled == {distiller: per_distiller for distiller in DISTILLERS if distiller != KD}
