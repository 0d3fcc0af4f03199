"""Running the run list's runs: one at a time, a job log, and how far the whole table is.

    python -m utils.jobs run NAME [--gpus "0 1" [--slot N] [--pin]] [--to-file | --tee] [--jobs J]
    python -m utils.jobs status [--jobs J] [--epochs N] [--experiments-dir DIR] [...]

command/command.sh and command/slurm.sh start every run through `run`: it looks the run up in the run
list (utils.table.runlist, same environment knobs), runs its command, appends one line to
EXPERIMENTS_DIR/jobs.log (host, GPU, start, seconds, exit status, run) and prints how many runs of the
list are done, failed and left, with an estimate of the time left. Every dispatcher keeps each run's output
in EXPERIMENTS_DIR/logs/<run folder>.log: --to-file there alone (GNU parallel, SLURM), --tee there and on
the terminal (command/command.sh, one run at a time). `status` prints that line and the failed runs.
"""
import fcntl
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from utils.errors import UserError
from utils.process.cli import ArgumentParser, exit_status, run_main
from utils.table.runlist import (add_settings_args, epochs_done, find_run, finished_its_own_length, selected_runs,
                                 settings_from_args)

JOB_LOG = "jobs.log"
LOG_COLUMNS = ("host", "gpu", "start", "seconds", "exit", "run")
OUTPUT_DIR = "logs"  # each run's output with --to-file or --tee: logs/<run folder>.log


@dataclass(frozen=True)
class Job:
    """One line of the job log."""

    host: str
    gpu: str
    start: str
    seconds: float
    exit: int
    run: str


def append_job(path: Path, job: Job) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = "\t".join((job.host, job.gpu, job.start, f"{job.seconds:.3f}", str(job.exit), job.run)) + "\n"
    with open(path, "a") as log:
        # Runs ending together on any host: one writer at a time, and one header.
        fcntl.flock(log, fcntl.LOCK_EX)
        log.write(line if log.tell() else "\t".join(LOG_COLUMNS) + "\n" + line)


def read_jobs(path: Path) -> list:
    if not path.is_file():
        return []
    jobs = []
    for number, line in enumerate(path.read_text().splitlines()[1:], 2):
        try:
            host, gpu, start, seconds, status, run = line.split("\t")
            jobs.append(Job(host, gpu, start, float(seconds), int(status), run))
        except ValueError:
            raise UserError(f"{path} line {number} is not {', '.join(LOG_COLUMNS)} separated by tabs: "
                            f"{line!r}; correct or delete that line") from None
    return jobs


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def seconds_left(settings, runs: list, progress: dict):
    """Training time the unfinished runs still need, or None before any run has finished an epoch.

    A run that has started goes on at its own pace; one that has not, at the mean pace of its phase's
    started runs (or of all of them): a rough figure, as the architectures differ in cost.
    """
    pace = {name: seconds / epochs for name, (epochs, seconds) in progress.items() if epochs and seconds}
    if not pace:
        return None
    phase_paces = {}
    for run in runs:
        if run.name in pace:
            phase_paces.setdefault(run.phase, []).append(pace[run.name])
    total = 0.0
    for run in runs:
        run_pace = pace.get(run.name) or statistics.mean(phase_paces.get(run.phase, pace.values()))
        total += max(settings.epochs - progress[run.name][0], 0) * run_pace
    return total


def table_status(settings, jobs_at_once: int) -> list:
    """A line with the runs done, failed and left and the time left; then a line per failed run."""
    runs = selected_runs(settings)
    progress = {run.name: epochs_done(settings, run) for run in runs}
    last_exit = {job.run: job.exit for job in read_jobs(settings.root / JOB_LOG)}  # the latest attempt wins
    short = [run for run in runs if progress[run.name][0] < settings.epochs and finished_its_own_length(settings, run)]
    left = [run for run in runs if progress[run.name][0] < settings.epochs and run not in short]
    failed = [run for run in left if last_exit.get(run.name, 0) != 0]
    line = f"runs: {len(runs) - len(left)} done"
    if short:  # trial runs (EPOCHS=1, say) looked at without EPOCHS: done at their length, not left
        line += f" ({len(short)} of them at fewer epochs than {settings.epochs}: --epochs or EPOCHS sets the length)"
    line += f", {len(failed)} failed, {len(left) - len(failed)} left of {len(runs)}"
    remaining = seconds_left(settings, [run for run in runs if run not in short], progress)
    if left and remaining is None:
        line += "; time left: unknown until a run has finished an epoch"
    elif left:
        line += f"; about {format_duration(remaining)} {time_left_label(len(left), len(failed))}"
        if jobs_at_once > 1:
            line += f", {format_duration(remaining / jobs_at_once)} at {jobs_at_once} runs at once"
    return [line] + [failure(settings, run, last_exit[run.name]) for run in failed]


def time_left_label(left: int, failed: int) -> str:
    """What the time left covers: the failed runs have epochs left too, but run only if started again."""
    if not failed:
        return "of training left"
    return "of training left with the failed runs" if left > failed else "of training if the failed runs run again"


def failure(settings, run, status: int) -> str:
    output = settings.root / OUTPUT_DIR / f"{run.folder}.log"
    return f"failed: {run.name} (exit status {status}" + (f"; its output: {output})" if output.is_file() else ")")


def run_job(run, gpu: str, pin: bool, output_file, tee: bool = False) -> tuple:
    """(the Job, whether Ctrl-C stopped it). output_file: where the run's output goes (here too with tee)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu} if pin else None
    host, start, began = socket.gethostname(), datetime.now().isoformat(timespec="milliseconds"), time.monotonic()
    where = f" (output: {output_file})" if output_file else ""
    print(f"start {run.name} on {host}, GPU {gpu}{where}: {run.command}", flush=True)
    # Ctrl-C reaches the run too, which stops at once; this process waits for it, to log how it ended.
    interrupted = []
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    try:
        if output_file:
            output_file.parent.mkdir(parents=True, exist_ok=True)
            with open(output_file, "ab") as output:
                returncode = (call_teeing(run.argv, env, output) if tee else
                              subprocess.call(run.argv, env=env, stdout=output, stderr=subprocess.STDOUT))
        else:
            returncode = subprocess.call(run.argv, env=env)
    finally:
        signal.signal(signal.SIGINT, previous)
    return Job(host, gpu, start, time.monotonic() - began, exit_status(returncode), run.name), bool(interrupted)


def call_teeing(argv, env, log) -> int:
    """Run argv with its output and errors copied, as they come, to the binary file `log` and to stdout."""
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}  # the run's lines as they are printed, not at its end
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process:
        for chunk in iter(lambda: os.read(process.stdout.fileno(), 1 << 16), b""):
            for stream in (sys.stdout.buffer, log):
                stream.write(chunk)
                stream.flush()
    return process.returncode


def gpu_of(args) -> str:
    """The GPU of this job slot (GNU parallel's {%}), or the one SLURM gave the task."""
    if args.gpus:
        gpus = args.gpus.split()
        return gpus[(args.slot - 1) % len(gpus)]
    return os.environ.get("CUDA_VISIBLE_DEVICES", "-")


def parse_args(argv):
    parser = ArgumentParser(prog="python -m utils.jobs", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one run of the list and log it")
    run.add_argument("name", help="the run's name in the run list (python -m utils.runlist --names)")
    run.add_argument("--gpus", help="the GPUs, e.g. '0 1'; the job's GPU is the slot's (default: CUDA_VISIBLE_DEVICES)")
    run.add_argument("--slot", type=int, default=1, help="job slot from 1 (GNU parallel's {%%}); default 1")
    run.add_argument("--pin", action="store_true", help="show the run only its GPU (CUDA_VISIBLE_DEVICES)")
    output = run.add_mutually_exclusive_group()
    output.add_argument("--to-file", action="store_true",
                        help=f"write the run's output to EXPERIMENTS_DIR/{OUTPUT_DIR}/<run folder>.log, not here")
    output.add_argument("--tee", action="store_true",
                        help=f"write the run's output to EXPERIMENTS_DIR/{OUTPUT_DIR}/<run folder>.log and here")
    status = commands.add_parser("status", help="done, failed and left runs, and the time left")
    add_settings_args(status)
    status.add_argument("--failed-only", action="store_true",
                        help="only the failed runs, without the counts (command/command.sh, after its runs have "
                             "each printed them)")
    for command in (run, status):
        command.add_argument("--jobs", type=int, default=1, help="runs at once, for the time left (default 1)")
    args = parser.parse_args(argv)
    for flag in ("jobs", "slot"):
        if getattr(args, flag, 1) < 1:
            raise UserError(f"--{flag} must be a positive integer, got {getattr(args, flag)}")
    if getattr(args, "gpus", None) is not None and not args.gpus.split():
        raise UserError("--gpus is empty; give GPU indices such as '0 1'")
    return args


def main(argv=None):
    args = parse_args(argv)
    settings = settings_from_args(args)
    if args.command == "status":
        lines = table_status(settings, args.jobs)[1 if args.failed_only else 0:]
        if lines:
            print("\n".join(lines))
        return 0
    run = find_run(settings, args.name)
    output_file = settings.root / OUTPUT_DIR / f"{run.folder}.log" if args.to_file or args.tee else None
    job, interrupted = run_job(run, gpu_of(args), args.pin, output_file, args.tee)
    append_job(settings.root / JOB_LOG, job)
    outcome = "done" if job.exit == 0 else f"FAILED with exit status {job.exit}"
    print(f"{outcome}: {run.name} after {format_duration(job.seconds)}"
          + (f"; its output: {output_file}" if job.exit and output_file else ""), flush=True)
    if interrupted:
        # Die of SIGINT as the run did, so that the shell or GNU parallel that started this stops too
        # (a child that exits normally after Ctrl-C tells a shell the key was handled: it would go on).
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    print(table_status(settings, args.jobs)[0], flush=True)
    return job.exit


if __name__ == "__main__":
    run_main(main)
