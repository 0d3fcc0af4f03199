"""command/gpu_checks.sh dry-run on a CPU: every stage, with --cuda-graphs recorded and replayed by the stand-in.

Tiny settings throughout; only the graphs mode (on a CPU the eager mode repeats the same commands).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "command" / "gpu_checks.sh"


def stand_in_python(tmp_path) -> Path:
    """A PYTHON for the script whose --cuda-graphs record through tests/graph_stand_in.py."""
    python = tmp_path / "python"
    python.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" "{REPO / "tests" / "graph_stand_in.py"}" "$@"\n')
    python.chmod(0o755)
    return python


def gpu_checks(tmp_path, **knobs):
    env = {**os.environ, "PYTHON": str(stand_in_python(tmp_path)), "TEACHER": "resnet8", "STUDENT": "resnet8",
           "PER_CLASS": "1", "TEST_PER_CLASS": "1", "PACKING": "2", "MODES": "graphs", "OMP_NUM_THREADS": "1",
           "LOGS": str(tmp_path / "logs"), "WORK": str(tmp_path / "work"),
           "CHECK_ARGS": "--batch-size 4 --k 3 --b 2 --batches 2",
           "BENCH_ARGS": "--rounds 1 --steps 1 --warmup 3 --train-per-class 1 --batch-size 16 --k 12 --b 8",
           "IMAGENET_PER_CLASS": "2", "IMAGENET_SIZE": "36",
           "IMAGENET_BENCH_ARGS": "--batches 1 --steps 1 --batch-size 4 --image-size 32 --workers 0",
           "IMAGENET_RUN_ARGS": "--batch-size 8 --image-size 32 --workers 0", **knobs}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=900)
    return done, (tmp_path / "logs" / "summary.txt").read_text().splitlines()


def test_every_stage_runs_through_the_stand_in_and_says_so(tmp_path):
    done, summary = gpu_checks(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    outcomes = [line.split(":")[0] for line in summary if line.startswith("-- ")]
    assert outcomes == ["-- versions", "-- data", "-- check", "-- bench float32", "-- bench --amp",
                        "-- teacher graphs", "-- unixkd graphs", "-- kd graphs", "-- amp graphs", "-- packing 2",
                        "-- imagenet data", "-- imagenet bench float32", "-- imagenet bench --amp",
                        "-- imagenet teacher", "-- imagenet unixkd"]
    assert all(": ok in " in line for line in summary if line.startswith("-- "))
    assert summary[2].startswith("torch ") and "imports: all present" in summary
    assert "graph check: 7 of 7 cases as they must be" in summary  # the control among them, detected
    assert any(line.startswith("control: ") and "different, as it must be" in line for line in summary)
    assert sum(line.startswith("(b) ours + CUDA graphs") for line in summary) == 2  # replayed in both benches
    epochs = [line for line in summary if line.startswith("epoch ") and "/1 |" not in line]  # CIFAR's 2-epoch runs
    assert len(epochs) == 4 * 2 and sum("lr 0.005" in line for line in epochs) == 4  # the milestone, each run
    assert "running eagerly" not in done.stderr + done.stdout
    (packing,) = [line for line in summary if line.startswith("2 runs at once (2 finished): ")]
    assert int(packing.split()[6]) > 0
    assert sum(line.startswith("UNIXKD / KD per batch: wall time ") for line in summary) == 2  # float32, bf16
    assert sum(line.startswith("epoch   1/1 |") for line in summary) == 2  # the ImageNet teacher and student
    assert any(line.startswith("teacher: imagenet_resnet18 from ") for line in summary)
    assert sorted(path.name for path in (tmp_path / "logs").iterdir()) == sorted(
        ["summary.txt", "versions.log", "data.log", "check.log", "bench.log", "bench_amp.log", "teacher_graphs.log",
         "unixkd_graphs.log", "kd_graphs.log", "unixkd_amp.log", "packing2.log", "imagenet_data.log",
         "imagenet_bench.log", "imagenet_bench_amp.log", "imagenet_teacher.log", "imagenet_unixkd.log"])  # small files


@pytest.mark.parametrize("knobs, outcome", [
    (dict(STAGES="bench check", BENCH_ARGS="--rounds 0", CHECK_ARGS="--batches 0"),
     ["-- versions: ok", "-- check: FAILED with exit status 2", "-- bench float32: FAILED with exit status 2",
      "-- bench --amp: FAILED with exit status 2"]),
    (dict(BUDGET="4"), ["-- versions: SKIPPED", "-- data: SKIPPED", "-- check: SKIPPED", "-- bench float32: SKIPPED"]),
], ids=["failures", "budget"])
def test_a_failed_stage_is_recorded_and_the_next_one_runs(tmp_path, knobs, outcome):
    done, summary = gpu_checks(tmp_path, **knobs)
    assert done.returncode == 1
    outcomes = [line for line in summary if line.startswith("-- ")]
    assert [line[:len(start)] for line, start in zip(outcomes, outcome)] == outcome, outcomes
    failed = sum(" ok in " not in line for line in outcomes)
    assert summary[-1].startswith("== done in ") and f"{failed} stage(s) failed or skipped" in summary[-1]
