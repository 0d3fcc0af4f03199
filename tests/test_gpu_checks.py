"""command/gpu_checks.sh dry-run on a CPU: every stage, with --cuda-graphs recorded and replayed by the stand-in.

Tiny settings throughout; only the graphs mode (on a CPU the eager mode repeats the same commands). PYTHON
is tests/warm_python.py: each command a fork of one process that imported torch once (tests/warm_python.py
says why that changes nothing else). The inventory of CUDA-only lines in docs/cuda-graphs.md is kept in step
with the code here too.
"""
import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "command" / "gpu_checks.sh"
STAGE_LOGS = ["summary.txt", "versions.log", "data.log", "check.log", "bench.log", "bench_amp.log", "teacher_graphs.log",
              "unixkd_graphs.log", "kd_graphs.log", "resume_first.log", "resume.log", "resume_compare.log",
              "unixkd_amp.log", "packing2.log", "imagenet_data.log", "imagenet_bench.log", "imagenet_bench_amp.log",
              "imagenet_teacher.log", "imagenet_unixkd.log", "dali_check.log", "dali_run.log", "nccl.log"]


@pytest.fixture(scope="module")
def warm_python(tmp_path_factory):
    """A PYTHON for the script: each command a fork of one server that imported torch and the project once."""
    folder = tmp_path_factory.mktemp("warm")
    socket = folder / "python.sock"
    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "warm_python.py"), "serve", str(socket)],
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline() == "ready\n"
        python = folder / "python"
        python.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" "{REPO / "tests" / "warm_python.py"}" run '
                          f'"{socket}" "$@"\n')
        python.chmod(0o755)
        yield python
    finally:
        server.kill()
        server.wait()


def gpu_checks(tmp_path, python, **knobs):
    env = {**os.environ, "PYTHON": str(python), "TEACHER": "resnet8", "STUDENT": "resnet8",
           "PER_CLASS": "1", "TEST_PER_CLASS": "1", "PACKING": "2", "MODES": "graphs", "OMP_NUM_THREADS": "1",
           "LOGS": str(tmp_path / "logs"), "WORK": str(tmp_path / "work"),
           "CHECK_ARGS": "--batch-size 4 --k 3 --b 2 --batches 2",
           "BENCH_ARGS": "--rounds 1 --steps 1 --warmup 3 --train-per-class 1 --batch-size 16 --k 12 --b 8",
           "IMAGENET_PER_CLASS": "2", "IMAGENET_SIZE": "36",
           "IMAGENET_BENCH_ARGS": "--batches 1 --steps 1 --batch-size 4 --image-size 32 --workers 0",
           "IMAGENET_RUN_ARGS": "--batch-size 8 --image-size 32 --workers 0",
           "DALI_ARGS": "--batches 1 --batch-size 4 --image-size 32 --threads 1",
           "NCCL_ARGS": "--batch-size 32 --image-size 32 --workers 0", **knobs}
    env.pop("CEILING", None)
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=900)
    return done, (tmp_path / "logs" / "summary.txt").read_text().splitlines()


def test_every_stage_runs_through_the_stand_in_and_says_so(tmp_path, warm_python):
    pytest.importorskip("nvidia.dali")
    done, summary = gpu_checks(tmp_path, warm_python)
    assert done.returncode == 0, done.stdout + done.stderr
    outcomes = [line.split(":")[0] for line in summary if line.startswith("-- ")]
    assert outcomes == ["-- versions", "-- data", "-- check", "-- bench float32", "-- bench --amp",
                        "-- teacher graphs", "-- unixkd graphs", "-- kd graphs", "-- resume first epoch", "-- resume",
                        "-- resume compare", "-- amp graphs", "-- packing 2", "-- imagenet data",
                        "-- imagenet bench float32", "-- imagenet bench --amp", "-- imagenet teacher",
                        "-- imagenet unixkd", "-- dali check", "-- dali run", "-- nccl", "-- ceiling"]
    assert all(": ok in " in line for line in summary if line.startswith("-- ") and not line.startswith("-- ceiling"))
    assert "-- ceiling: not run, no CEILING script given" in summary
    assert summary[2].startswith("torch ") and "imports: all present" in summary and "CUDA devices: 0" in summary
    assert "graph check: 8 of 8 cases as they must be" in summary  # the control among them, detected
    assert any(line.startswith("control: ") and "different, as it must be" in line for line in summary)
    assert any(line.startswith("draws: identical (6 steps, ") for line in summary)  # UNIX's draws, call by call
    assert sum(line.startswith("(b) ours + CUDA graphs") for line in summary) == 2  # replayed in both benches
    epochs = [line for line in summary if line.startswith("epoch ") and "/1 |" not in line]  # CIFAR's 2-epoch runs
    assert len(epochs) == 4 * 2 and sum("lr 0.005" in line for line in epochs) == 4  # the milestone, each run
    syncs = [line for line in summary if line.startswith("host syncs: ")]
    assert len(syncs) == 7 and all(line.startswith("host syncs: 0 inside ") for line in syncs)  # 4 CIFAR, 3 ImageNet
    assert "random state after the resumed run (rng: torch): identical to the uninterrupted run's; " \
           "largest weight difference 0 (cuDNN autotuning may pick other kernels: not asserted)" in summary
    assert "running eagerly" not in done.stderr + done.stdout
    (packing,) = [line for line in summary if line.startswith("2 runs at once (2 finished): ")]
    assert int(packing.split()[6]) > 0
    assert sum(line.startswith("UNIXKD / KD per batch: wall time ") for line in summary) == 2  # float32, bf16
    assert sum(line.startswith("epoch   1/1 |") for line in summary) == 4  # ImageNet: teacher, student, dali, nccl
    assert any(line.startswith("teacher: imagenet_resnet18 from ") for line in summary)
    assert {f"{split}: 4 images, cpu against cpu: mean 0.00/255, largest 0/255: within the 2/255 allowed for noise"
            for split in ("train", "val")} <= set(summary)  # the stage's own JPEGs: noise
    assert any(line.startswith("corrupt file: skipped by both (cpu: 9 of 10 read, named; ") for line in summary)
    assert any("; 2 process(es) x batch 16; torchvision loader)" in line for line in summary)  # the nccl stage (gloo)
    assert sorted(path.name for path in (tmp_path / "logs").iterdir()) == sorted(STAGE_LOGS)  # small files


def test_a_machine_with_one_gpu_and_no_dali_says_what_it_does_not_run(tmp_path):
    """Not this machine's to run, not failures: NCCL on one GPU, DALI where it is not installed."""
    (tmp_path / "fake").mkdir()
    versions = tmp_path / "fake" / "python"  # the real one, but reporting one CUDA device and no DALI
    versions.write_text(f'#!/usr/bin/env bash\nif [[ $1 == -c && $2 == *"imports missing"* ]]; then\n'
                        f'  printf "torch x\\nCUDA devices: 1\\nimports: all present\\nDALI: not installed\\n"; exit 0\nfi\n'
                        f'exec "{sys.executable}" "$@"\n')
    versions.chmod(0o755)
    done, summary = gpu_checks(tmp_path, versions, STAGES="dali nccl")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line for line in summary if line.startswith("-- ")] == [
        "-- versions: ok in 0s", "-- dali: not run, DALI is not installed (pip install nvidia-dali-cuda130; its wheel "
        "is larger than a device call carries)", "-- nccl: not run, one CUDA device (NCCL between two needs two)"]
@pytest.mark.parametrize("knobs, outcome", [
    (dict(STAGES="bench check", BENCH_ARGS="--rounds 0", CHECK_ARGS="--batches 0"),
     ["-- versions: ok", "-- check: FAILED with exit status 2", "-- bench float32: FAILED with exit status 2",
      "-- bench --amp: FAILED with exit status 2"]),
    (dict(BUDGET="4"), ["-- versions: SKIPPED", "-- data: SKIPPED", "-- check: SKIPPED", "-- bench float32: SKIPPED"]),
], ids=["failures", "budget"])
def test_a_failed_stage_is_recorded_and_the_next_one_runs(tmp_path, warm_python, knobs, outcome):
    done, summary = gpu_checks(tmp_path, warm_python, **knobs)
    assert done.returncode == 1
    outcomes = [line for line in summary if line.startswith("-- ")]
    assert [line[:len(start)] for line, start in zip(outcomes, outcome)] == outcome, outcomes
    failed = sum(any(word in line for word in ("FAILED", "SKIPPED", "TIMED OUT")) for line in outcomes)
    assert summary[-1].startswith("== done in ") and f"{failed} stage(s) failed or skipped" in summary[-1]


CUDA_ONLY = re.compile(r'torch\.cuda\b|"cuda"|"mixed"|\bnccl\b|pin_memory|non_blocking|cuda_stream|[!=]= "cpu"|'
                       r'torch\.autocast|backends\.cudnn|device\.index')
ROW = re.compile(r"^\| `([^`]+)` \| .+ \| ([a-z, ]+) \|$")


def cuda_only_functions() -> set:
    """'path: [Class.]function' of every function of utils/ and the scripts whose code mentions CUDA-only things."""
    found = set()
    for path in sorted([*REPO.glob("utils/**/*.py"), REPO / "teacher.py", REPO / "student_v0.py"]):
        source = path.read_text()
        scopes = [(node, "") for node in ast.parse(source).body]
        while scopes:
            node, prefix = scopes.pop()
            if isinstance(node, ast.ClassDef):
                scopes += [(child, f"{prefix}{node.name}.") for child in node.body]
            elif isinstance(node, ast.FunctionDef) and CUDA_ONLY.search(ast.get_source_segment(source, node)):
                found.add(f"{path.relative_to(REPO)}: {prefix}{node.name}")
    return found


def test_every_cuda_only_function_is_in_the_inventory_with_a_stage_that_runs_it():
    rows = [ROW.match(line) for line in (REPO / "docs" / "cuda-graphs.md").read_text().splitlines()]
    inventory = {row[1]: row[2].split(", ") for row in rows if row}
    assert set(inventory) == cuda_only_functions()
    stages = re.search(r'STAGES="\$\{STAGES:-([a-z ]+)\}"', SCRIPT.read_text())[1].split()
    assert all(stage in stages for named in inventory.values() for stage in named), inventory
