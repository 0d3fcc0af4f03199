"""command/command.sh on a tiny table, for real: GNU parallel on two CPU "GPUs", one run at a time, resuming."""
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from utils.table.jobs import JOB_LOG, OUTPUT_DIR, read_jobs
from utils.table.runlist import is_finished, settings_from_env

SCRIPT = Path(__file__).resolve().parent.parent / "command" / "command.sh"
BASH = shutil.which("bash")  # by its full path: some tests hide GNU parallel by narrowing PATH
needs_parallel = pytest.mark.skipif(shutil.which("parallel") is None,
                                    reason="GNU parallel is not installed (Debian/Ubuntu package: parallel)")


def command_sh(env):
    return subprocess.run([BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def parallel_table(tiny_table, tmp_path_factory):
    """The tiny table with GPUS="0 1": two runs at once, each pinned to its "GPU" (the CPU here)."""
    experiments = tmp_path_factory.mktemp("parallel") / "experiments"
    env = tiny_table.env(experiments, GPUS="0 1", JOBS_PER_GPU="1")
    return experiments, env, command_sh(env)


@needs_parallel
def test_every_run_finishes_and_the_job_log_has_each_once(parallel_table, tiny_table):
    experiments, env, done = parallel_table
    assert done.returncode == 0, done.stdout + done.stderr
    runs = tiny_table.runs(env)
    assert len(runs) == 8 and all(is_finished(settings_from_env(env), run) for run in runs)
    jobs = read_jobs(experiments / JOB_LOG)
    assert sorted(job.run for job in jobs) == sorted(run.name for run in runs)
    assert all(job.exit == 0 for job in jobs)
    assert {job.gpu for job in jobs} == {"0", "1"}
    for run in runs:  # each run's output in its own file; "device: cpu": the CPU stood in for the GPU
        assert "device: cpu" in (experiments / OUTPUT_DIR / f"{run.folder}.log").read_text()
    assert "runs: 8 done, 0 failed, 0 left of 8" in done.stdout


@needs_parallel
def test_teachers_finish_before_students_start_and_runs_overlap(parallel_table, tiny_table):
    experiments, env, _ = parallel_table
    jobs = read_jobs(experiments / JOB_LOG)
    last_teacher_end, first_student_start = tiny_table.phase_bounds(env, jobs)
    assert last_teacher_end <= first_student_start
    spans = sorted((datetime.fromisoformat(job.start), job.seconds) for job in jobs)
    assert any(later < start + timedelta(seconds=seconds) for (start, seconds), (later, _) in zip(spans, spans[1:])), \
        "no two runs ever ran at once"


@needs_parallel
def test_the_summary_shows_every_column_of_the_tiny_table(parallel_table, tiny_table):
    experiments, _, _ = parallel_table
    for pair, rows in tiny_table.table_rows(experiments).items():
        assert len(rows) == 4, rows
        for row, label in zip(rows, ("teacher", "student alone", "KD", "UNIXKD (S3 k48 b32 w10)")):
            assert label in row and "(n=1)" in row, row


@needs_parallel
def test_run_again_nothing_runs_twice(parallel_table):
    experiments, env, _ = parallel_table
    log_before = (experiments / JOB_LOG).read_text()
    checkpoints = {path: path.stat().st_mtime_ns for path in experiments.glob("*/ckpt/*.pth")}
    again = command_sh(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (experiments / JOB_LOG).read_text() == log_before
    assert {path: path.stat().st_mtime_ns for path in experiments.glob("*/ckpt/*.pth")} == checkpoints
    assert "runs: 8 done, 0 failed, 0 left of 8" in again.stdout and "start " not in again.stdout


def test_one_gpu_runs_one_at_a_time_on_the_terminal_without_parallel(tiny_table, tmp_path):
    env = tiny_table.env(tmp_path, GPU="3", ONLY="^alone resnet20 seed1$")  # one run, no teacher needed
    env["PATH"] = str(tools_without_parallel(tmp_path))
    done = command_sh(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "epoch   1/1" in done.stdout  # the run's own output, here, as it comes
    [job] = read_jobs(tmp_path / JOB_LOG)
    [log] = (tmp_path / OUTPUT_DIR).iterdir()  # and in its log, as every dispatcher keeps one
    assert log.name == "teacher_resnet20_seed1.log" and "epoch   1/1" in log.read_text()
    assert (job.run, job.gpu, job.exit) == ("alone resnet20 seed1", "3", 0)
    assert done.stdout.count("runs: 1 done, 0 failed, 0 left of 1") == 1  # once, after the run, not again at the end
    assert "== phase 1, teacher.py: teachers and students trained alone: 1 to run" in done.stdout


def test_several_jobs_without_gnu_parallel_is_one_error_line(tiny_table, tmp_path):
    env = tiny_table.env(tmp_path, GPUS="0 1")
    env["PATH"] = str(tools_without_parallel(tmp_path))
    done = command_sh(env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and "GNU parallel" in done.stderr
    assert not (tmp_path / JOB_LOG).exists()


def tools_without_parallel(tmp_path) -> Path:
    """A PATH folder with what command.sh needs besides bash builtins, and no GNU parallel."""
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    for tool in ("dirname", "wc", "grep"):
        (tools / tool).symlink_to(shutil.which(tool))
    return tools


def recording_python(tmp_path, body: str) -> Path:
    """A stand-in PYTHON: the training scripts run `body` instead; every other use is the real interpreter."""
    script = tmp_path / "python"
    script.write_text(f'#!{BASH}\ncase "$1" in teacher.py|student_v0.py) {body};; esac\n'
                      f'exec {shlex.quote(sys.executable)} "$@"\n')
    script.chmod(0o755)
    return script


@needs_parallel
def test_each_run_of_several_sees_only_its_own_gpu(tiny_table, tmp_path):
    """What a run actually receives, not the job log's label: CUDA_VISIBLE_DEVICES set to its job's GPU."""
    record = tmp_path / "seen.txt"
    python = recording_python(tmp_path, f'echo "$1 ${{CUDA_VISIBLE_DEVICES-unset}}" >> {record}; exit 0')
    env = {**tiny_table.env(tmp_path / "experiments", GPUS="0 1", JOBS_PER_GPU="1"), "PYTHON": str(python)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    command_sh(env)
    seen = record.read_text().splitlines()
    jobs = read_jobs(tmp_path / "experiments" / JOB_LOG)
    assert len(seen) == len(jobs) == 8
    gpus_seen = sorted(line.split()[1] for line in seen)
    # How many runs each GPU takes depends on which of parallel's slots frees first; both are used.
    assert gpus_seen == sorted(job.gpu for job in jobs) and set(gpus_seen) == {"0", "1"}


@needs_parallel
def test_ctrl_c_under_gnu_parallel_gives_each_run_the_time_to_save(tiny_table, tmp_path):
    """The terminal's Ctrl-C reaches command.sh and GNU parallel, whose jobs each run in a process group of their
    own: parallel passes it on to the runs, which take a moment to save (here 1.5 s) and stop, not SIGTERM then
    SIGKILL within a second (its default), which would lose the epoch's work."""
    record, started = tmp_path / "signals.txt", tmp_path / "started"
    started.mkdir()
    python = recording_python(tmp_path, f"trap 'echo \"$$ INT\" >> {record}; sleep 1.5; echo \"$$ saved\" >> {record}; "
                                        f"exit 130' INT; trap 'echo \"$$ TERM\" >> {record}' TERM; "
                                        f"touch {started}/$$; while :; do sleep 0.05; done")
    env = {**tiny_table.env(tmp_path / "experiments", GPUS="0 1", JOBS_PER_GPU="1"), "PYTHON": str(python)}
    dispatcher = subprocess.Popen([BASH, str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while len(list(started.iterdir())) < 2:
        assert time.monotonic() < deadline and dispatcher.poll() is None
        time.sleep(0.05)
    os.killpg(dispatcher.pid, signal.SIGINT)  # Ctrl-C: to the terminal's foreground process group
    _, err = dispatcher.communicate(timeout=60)
    said = sorted(line.split()[1] for line in record.read_text().splitlines())
    assert said == ["INT", "INT", "saved", "saved"] and dispatcher.returncode == 130
    assert err.endswith("interrupted: the same command continues every unfinished run\n")
