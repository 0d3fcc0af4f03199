"""The job runner's bookkeeping: the job log, the counts of runs done, failed and left, and the time left."""
import json
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from utils.errors import UserError
from utils.table.jobs import (JOB_LOG, Job, append_job, format_duration, main, read_jobs, seconds_left,
                              table_status)
from utils.table.runlist import epochs_done, selected_runs, settings_from_env


def write_summary(root, folder, epochs, seconds):
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / "summary.json").write_text(json.dumps({"epochs_done": epochs, "wall_seconds": seconds}))


def test_job_log_round_trip_with_a_header(tmp_path):
    log = tmp_path / "experiments" / JOB_LOG
    jobs = [Job("node1", "0", "2024-01-01T10:00:00.000", 12.5, 0, "teacher resnet56"),
            Job("node2", "-", "2024-01-01T10:00:01.000", 3.25, 2, "KD resnet56 resnet20 seed0")]
    for job in jobs:
        append_job(log, job)
    assert log.read_text().splitlines()[0] == "host\tgpu\tstart\tseconds\texit\trun"
    assert read_jobs(log) == jobs


def test_time_left_at_each_runs_pace_or_its_phases_mean(tmp_path):
    settings = settings_from_env({"EXPERIMENTS_DIR": str(tmp_path), "EPOCHS": "4", "SEEDS": "0",
                                  "ONLY": "^alone (resnet20|wrn_16_2) seed0$|^KD resnet56 resnet20 seed0$"})
    runs = selected_runs(settings)  # teacher resnet56, alone wrn_16_2, alone resnet20, KD resnet56 resnet20
    write_summary(tmp_path, "teacher_resnet56", 4, 40.0)   # finished, 10 s an epoch
    write_summary(tmp_path, "teacher_wrn_16_2", 1, 30.0)   # 3 epochs left at 30 s
    progress = {run.name: epochs_done(settings, run) for run in runs}
    # alone resnet20 and the KD student have not started: 4 epochs at the teachers' mean pace, (10 + 30) / 2;
    # no student has a pace yet, so the KD run takes the mean of all paces, the same 20 s here.
    assert seconds_left(settings, runs, progress) == 3 * 30 + 4 * 20 + 4 * 20


def test_status_counts_done_failed_and_left_from_folders_and_the_latest_attempt(tmp_path):
    settings = settings_from_env({"EXPERIMENTS_DIR": str(tmp_path), "EPOCHS": "2", "ONLY": "^alone resnet20 seed[0-2]$"})
    write_summary(tmp_path, "teacher_resnet20", 2, 20.0)
    log = tmp_path / JOB_LOG
    append_job(log, Job("h", "0", "2024-01-01T10:00:00.000", 1.0, 1, "alone resnet20 seed1"))
    append_job(log, Job("h", "0", "2024-01-01T10:00:00.000", 1.0, 2, "alone resnet20 seed2"))
    append_job(log, Job("h", "0", "2024-01-01T10:01:00.000", 1.0, 0, "alone resnet20 seed2"))  # retried: running
    line, failed = table_status(settings, jobs_at_once=2)
    assert line == ("runs: 1 done, 1 failed, 1 left of 3; about 40s of training left with the failed runs, "
                    "20s at 2 runs at once")
    assert failed == "failed: alone resnet20 seed1 (exit status 1)"
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "teacher_resnet20_seed1.log").write_text("error: ...\n")  # as --to-file leaves it
    assert table_status(settings, jobs_at_once=2)[1] == (
        f"failed: alone resnet20 seed1 (exit status 1; its output: {tmp_path / 'logs' / 'teacher_resnet20_seed1.log'})")
    append_job(log, Job("h", "0", "2024-01-01T10:02:00.000", 1.0, 0, "alone resnet20 seed2"))
    write_summary(tmp_path, "teacher_resnet20_seed2", 2, 20.0)
    assert table_status(settings, jobs_at_once=1)[0] == (
        "runs: 2 done, 1 failed, 0 left of 3; about 20s of training if the failed runs run again")


def test_a_mistyped_flag_of_a_subcommand_is_answered_with_the_closest_one(exit_status, capsys):
    assert exit_status(main, ["status", "--experiment-dir", "x"]) == 2
    assert "did you mean --experiments-dir?" in capsys.readouterr().err


def test_status_takes_the_knobs_as_flags_and_counts_a_finished_trial_run_as_done(tmp_path, capsys, monkeypatch,
                                                                                exit_status):
    """A 1-epoch run, finished, looked at without EPOCHS: done at its own length, not one of 240 epochs left."""
    for name in ("EPOCHS", "EXPERIMENTS_DIR", "ONLY", "SEEDS"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "teacher_resnet20").mkdir()
    (tmp_path / "teacher_resnet20" / "summary.json").write_text(json.dumps(
        {"epochs_done": 1, "wall_seconds": 5.0, "finished": True}))
    knobs = ["--experiments-dir", str(tmp_path), "--seeds", "0", "--only", "^alone (resnet20|wrn_16_2) seed0$"]
    assert main(["status", *knobs]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "runs: 1 done (1 of them at fewer epochs than 240: --epochs or EPOCHS sets the length), 0 failed, 1 left "
        "of 2; about 20m00s of training left")
    assert main(["status", *knobs, "--epochs", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "runs: 1 done, 0 failed, 1 left of 2; about 5s of training left"
    assert exit_status(main, ["status", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in ("SEEDS", "EPOCHS", "DATA_ROOT", "EXPERIMENTS_DIR", "ONLY", "ABLATIONS", "EXTENSIONS"):
        assert f"environment: {name}" in text, name


def test_a_damaged_job_log_line_is_one_error_naming_it(tmp_path):
    log = tmp_path / JOB_LOG
    append_job(log, Job("h", "0", "2024-01-01T10:00:00.000", 1.0, 0, "teacher resnet56"))
    with open(log, "a") as file:
        file.write("h\t0\t2024-01-01T10:0")  # cut off
    with pytest.raises(UserError, match=f"{log} line 3 is not host, gpu, start, seconds, exit, run"):
        read_jobs(log)


def test_durations_read_at_a_glance():
    assert [format_duration(s) for s in (7, 65, 3 * 3600 + 120, 2 * 86400 + 5 * 3600)] == ["7s", "1m05s", "3h02m",
                                                                                           "2d05h"]


def test_a_run_stopped_by_ctrl_c_stops_the_runner_by_sigint_too(tiny_table, tmp_path):
    """Ctrl-C reaches the runner and its run; the runner must die of SIGINT too, or the dispatcher goes on."""
    python = tmp_path / "python"  # the training script, as Ctrl-C hits the whole process group
    python.write_text(f'#!{shutil.which("bash")}\ncase "$1" in teacher.py|student_v0.py) '
                      f'kill -INT $PPID; kill -INT $$;; esac\nexec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(0o755)
    env = {**tiny_table.env(tmp_path, ONLY="^alone resnet20 seed1$"), "PYTHON": str(python)}
    done = subprocess.run([sys.executable, "-m", "utils.jobs", "run", "alone resnet20 seed1"], env=env,
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGINT, done.stdout + done.stderr
    [job] = read_jobs(tmp_path / JOB_LOG)
    assert job.exit == 128 + signal.SIGINT  # logged before dying
