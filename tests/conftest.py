"""Shared fixtures: small synthetic CIFAR-100 sets in the official file format, written once per session; a folder of
finished and unfinished runs for the results table and its plot."""
import itertools
import os
import sys
from datetime import datetime, timedelta

import pytest

from tests.run_summaries import ABLATION_ARGS, KD_ARGS, UNIX_ARGS, summary_json, teacher_json, write_runs
from utils.data.synthetic import write_synthetic_cifar100
from utils.process.cli import run_main
from utils.table import summary
from utils.table.runlist import STUDENTS, TEACHERS, selected_runs, settings_from_env


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """Root folder holding cifar-100-python/{train,test,meta}: 10 train and 2 test images per class."""
    return write_synthetic_cifar100(tmp_path_factory.mktemp("cifar"), train_per_class=10, test_per_class=2, seed=0)


@pytest.fixture
def exit_status():
    """Run a command's main(argv) as `python -m` does, through run_main, and return its exit status."""

    def run(main, argv):
        with pytest.raises(SystemExit) as exited:
            run_main(lambda: main(argv))
        return exited.value.code

    return run


class TinyTable:
    """The dispatchers' test table: two of the paper's teachers (resnet56, wrn_40_2), one student each, one seed,
    1 epoch on 100 synthetic images: 4 teacher.py runs (2 teachers, 2 students alone), then 4 students."""

    KNOBS = {"ONLY": "resnet20|wrn_16_2", "SEEDS": "1", "EPOCHS": "1"}
    PAIRS = ("wrn_40_2 -> wrn_16_2", "resnet56 -> resnet20")
    CLEARED = ("GPU", "GPUS", "JOBS_PER_GPU", "ABLATIONS", "EXTENSIONS", "DRY_RUN", "GRES", "SBATCH_ARGS")

    def __init__(self, data_root):
        self.data_root = data_root

    def env(self, experiments, **extra) -> dict:
        """The environment of a dispatcher run: this table, this interpreter, one thread per run."""
        env = {name: value for name, value in os.environ.items() if name not in self.CLEARED}
        env.update(self.KNOBS, PYTHON=sys.executable, DATA_ROOT=str(self.data_root), EXPERIMENTS_DIR=str(experiments),
                   OMP_NUM_THREADS="1", **extra)
        return env

    def runs(self, env) -> list:
        return selected_runs(settings_from_env(env))

    def phase_bounds(self, env, jobs) -> tuple:
        """(when the last teacher.py run ended, when the first student run started), from the job log."""
        phase = {run.name: run.phase for run in self.runs(env)}
        starts = {job: datetime.fromisoformat(job.start) for job in jobs}
        last_teacher_end = max(starts[job] + timedelta(seconds=job.seconds) for job in jobs
                               if phase[job.run] == TEACHERS)
        return last_teacher_end, min(starts[job] for job in jobs if phase[job.run] == STUDENTS)

    def table_rows(self, experiments, pairs=PAIRS) -> dict:
        """{pair: its rows of the results table (python -m utils.summary)}."""
        table = summary.format_table(summary.table_results(summary.load_runs(experiments)[0]))
        firsts = {pair: next(i for i, line in enumerate(table) if line.startswith(pair)) for pair in pairs}
        return {pair: [table[first]] + list(itertools.takewhile(lambda line: line.startswith(" "), table[first + 1:]))
                for pair, first in firsts.items()}


@pytest.fixture(scope="session")
def tiny_table(tmp_path_factory):
    return TinyTable(write_synthetic_cifar100(tmp_path_factory.mktemp("tiny"), train_per_class=1, test_per_class=1))


@pytest.fixture
def experiments(tmp_path):
    """KD and UNIXKD twice each (seeds 0, 1), one run half done, one file cut off mid-write; the teacher,
    the student architecture trained alone twice (one more half done), and an ablation."""
    write_runs(tmp_path, {
        "v0_student_kd_0": summary_json(KD_ARGS, 0, 73.0, 100.0),
        "v0_student_kd_1": summary_json(KD_ARGS, 1, 73.6, 100.0),
        "v0_student_unix_0": summary_json(UNIX_ARGS, 0, 74.5, 87.30),
        "v0_student_unix_1": summary_json(UNIX_ARGS, 1, 75.1, 87.34),
        "v0_student_unix_2": summary_json(UNIX_ARGS, 2, 70.0, 87.5, epochs_done=120),
        "v0_student_mix0_0": summary_json(ABLATION_ARGS, 0, 72.0, 87.32),
        "teacher_resnet32x4": teacher_json("resnet32x4", 0, 79.0),
        "teacher_resnet8x4": teacher_json("resnet8x4", 0, 72.0),
        "teacher_resnet8x4_seed1": teacher_json("resnet8x4", 1, 73.0),
        "teacher_resnet8x4_seed2": teacher_json("resnet8x4", 2, 50.0, epochs_done=30),
    })
    (tmp_path / "v0_student_broken").mkdir()
    (tmp_path / "v0_student_broken" / "summary.json").write_text('{"args": {"strategy"')
    return tmp_path
