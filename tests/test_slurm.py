"""command/slurm.sh: the sbatch calls it makes, and the tiny table on a real one-node SLURM cluster on this host."""
import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from utils.distillers import DISTILLERS, DKD, KD, LSKD
from utils.table.jobs import JOB_LOG, read_jobs
from utils.table.paper import EXTENSION_PAIRS
from utils.table.runlist import is_finished, settings_from_env

SCRIPT = Path(__file__).resolve().parent.parent / "command" / "slurm.sh"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")
MISSING = [tool for tool in DAEMONS if shutil.which(tool) is None]
needs_slurm = pytest.mark.skipif(bool(MISSING), reason=f"no SLURM here ({', '.join(MISSING)} not found): "
                                 "needs the Debian/Ubuntu packages slurm-wlm and munge")


def slurm_sh(env):
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)


def sbatch_calls(out):
    return [line for line in out.splitlines() if line.startswith("sbatch ")]


def test_dry_run_prints_two_arrays_the_second_after_the_first_and_the_run_list(tiny_table, tmp_path):
    env = tiny_table.env(tmp_path / "experiments", DRY_RUN="1", ONLY="", SEEDS="",
                         SBATCH_ARGS="--partition=gpu --time=04:00:00")
    done = slurm_sh(env)
    assert done.returncode == 0, done.stderr
    teachers, students = sbatch_calls(done.stdout)
    for call in (teachers, students):
        assert " --requeue " in call and " --gres=gpu:1 " in call and " --partition=gpu --time=04:00:00 " in call
        assert call.split()[-2] == "command/slurm_task.sh"
    assert " --array 0-37 " in teachers and " --dependency" not in teachers  # 6 teachers, 8 x 4 students alone
    assert " --array 0-95 " in students and " --dependency=afterany:JOB_ID_OF_TEACHERS " in students
    commands = [line for line in done.stdout.splitlines() if line.startswith(tiny_table.env(tmp_path)["PYTHON"])]
    assert len(commands) == 134
    assert not (tmp_path / "experiments").exists()  # nothing submitted, nothing written


def test_gres_can_be_dropped_for_a_cpu_cluster(tiny_table, tmp_path):
    done = slurm_sh(tiny_table.env(tmp_path, DRY_RUN="1", GRES=""))
    assert done.returncode == 0 and len(sbatch_calls(done.stdout)) == 2
    assert "--gres" not in done.stdout


class LocalSlurm:
    """munged, slurmctld and slurmd on this host, CPUs only, every file in one folder; stopped by stop()."""

    def __init__(self, home: Path):
        self.home, self.host = home, socket.gethostname().split(".")[0]
        self.conf, self.socket = home / "slurm.conf", home / "run" / "munge.socket"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.daemons = []

    def start(self):
        for name, mode in (("key", 0o700), ("run", 0o755), ("state", 0o700), ("spool", 0o700), ("log", 0o755)):
            (self.home / name).mkdir(mode=mode)
        key = self.home / "key" / "munge.key"
        key.write_bytes(os.urandom(1024))  # a fresh key: this cluster trusts no other
        key.chmod(0o400)
        self.launch("munged", "-F", f"--key-file={key}", f"--socket={self.socket}",
                    f"--pid-file={self.home / 'run' / 'munged.pid'}", f"--log-file={self.home / 'log' / 'munged.log'}",
                    f"--seed-file={self.home / 'key' / 'munged.seed'}")
        self.wait_for(self.socket.exists, "munged's socket")
        self.conf.write_text(self.slurm_conf())
        self.launch("slurmctld", "-D")
        self.launch("slurmd", "-D", "-N", self.host)
        self.wait_for(lambda: self.command("sinfo", "-h", "-o", "%T").strip() == "idle", "an idle node")

    def slurm_conf(self) -> str:
        user, home = getpass.getuser(), self.home
        ports = free_ports(2)
        return "\n".join([
            "ClusterName=unixkdtest", f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={ports[0]}", f"SlurmdPort={ports[1]}", f"SlurmUser={user}", f"SlurmdUser={user}",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={self.socket}",
            f"StateSaveLocation={home / 'state'}", f"SlurmdSpoolDir={home / 'spool'}",
            f"SlurmctldPidFile={home / 'run' / 'slurmctld.pid'}", f"SlurmdPidFile={home / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={home / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={home / 'log' / 'slurmd.log'}",
            # No cgroups, accounting or MPI: plain processes on one node. proctrack/pgid: a signal to a task reaches
            # its process group only, not torchrun's workers (each in a session of its own), as on such clusters.
            "ProctrackType=proctrack/pgid", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "MpiDefault=none", "ReturnToService=2",
            "SchedulerType=sched/builtin", "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN",
            "PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP", "",
        ])

    def launch(self, daemon, *args):
        log = open(self.home / "log" / f"{daemon}.out", "w")
        self.daemons.append(subprocess.Popen([daemon, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT))

    def command(self, *argv) -> str:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=30).stdout

    def wait_for(self, condition, what, timeout=60):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline or any(daemon.poll() is not None for daemon in self.daemons):
                logs = "\n".join(f"--- {path.name}\n{path.read_text()[-2000:]}" for path in (self.home / "log").iterdir())
                raise RuntimeError(f"the test's SLURM cluster gave no {what}\n{logs}")
            time.sleep(0.5)

    def stop(self):
        if len(self.daemons) == 3:
            self.command("scancel", "--user", getpass.getuser())  # on this cluster only (SLURM_CONF)
        for daemon in reversed(self.daemons):
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(scope="module")
def cluster():
    # munged wants every folder above its socket open to all (pytest's temporary folders are not): a folder of its own.
    home = Path(tempfile.mkdtemp(prefix="unixkd-slurm-"))
    home.chmod(0o755)
    slurm = LocalSlurm(home)
    try:
        slurm.start()
        yield slurm
    finally:
        slurm.stop()
        shutil.rmtree(home)


@needs_slurm
def test_the_tiny_table_runs_on_a_slurm_cluster(cluster, tiny_table, tmp_path):
    """One pair of the tiny table (GNU parallel's test runs both): its teacher and student alone, then its KD and
    UNIXKD students, an array each."""
    experiments, pair = tmp_path / "experiments", "resnet56 -> resnet20"
    env = {**tiny_table.env(experiments, GRES="", ONLY="resnet20"), "SLURM_CONF": str(cluster.conf)}
    submitted = slurm_sh(env)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "submitted 2 teachers runs" in submitted.stdout and "submitted 2 students runs" in submitted.stdout
    cluster.wait_for(lambda: cluster.command("squeue", "-h", "-o", "%i").strip() == "", "empty queue", timeout=600)

    runs = tiny_table.runs(env)
    assert len(runs) == 4 and all(is_finished(settings_from_env(env), run) for run in runs)
    jobs = read_jobs(experiments / JOB_LOG)
    assert sorted(job.run for job in jobs) == sorted(run.name for run in runs)
    assert all(job.exit == 0 and job.host == socket.gethostname() for job in jobs)
    last_teacher_end, first_student_start = tiny_table.phase_bounds(env, jobs)
    assert last_teacher_end <= first_student_start  # the students' array waited for the teachers'
    rows = tiny_table.table_rows(experiments, pairs=(pair,))[pair]
    assert len(rows) == 4 and all("(n=1)" in row for row in rows), rows

    again = slurm_sh(env)
    assert again.returncode == 0 and "nothing to submit" in again.stdout


def test_extensions_add_their_runs_to_the_students_array(tiny_table, tmp_path):
    done = slurm_sh(tiny_table.env(tmp_path / "experiments", DRY_RUN="1", ONLY="", SEEDS="", EXTENSIONS="1"))
    assert done.returncode == 0, done.stderr
    _, students = sbatch_calls(done.stdout)
    per_distiller = len(EXTENSION_PAIRS) * 2 * 4  # with and without UNIX, seeds 0-3: 32
    others = [name for name in DISTILLERS if name != KD]  # every declared distiller but the paper's
    assert {DKD, LSKD} <= set(others)
    assert f" --array 0-{96 + len(others) * per_distiller - 1} " in students  # 96 + 64 today
    assert Counter(re.findall(r"--distill (\S+)", done.stdout)) == {name: per_distiller for name in others}


IMAGENET_SCRIPT = SCRIPT.parent / "imagenet_slurm.sh"


def imagenet_dry_run(*flags, cwd=None, **knobs):
    env = {**os.environ, "DRY_RUN": "1", **knobs}
    return subprocess.run(["bash", str(IMAGENET_SCRIPT), "teacher.py", *flags], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_imagenet_dry_run_prints_one_multi_node_job_with_its_cpus_memory_and_signal(tmp_path):
    """Whole nodes: each task takes its node's CPUs (the job derives its share); CPUS_PER_GPU asks a number."""
    done = imagenet_dry_run("--dataset", "imagenet", NODES="4", SBATCH_ARGS="--partition=gpu --time=48:00:00")
    assert done.returncode == 0, done.stderr
    call, task = done.stdout.splitlines()
    assert " --nodes 4 --ntasks 4 --mem 0 --exclusive --export=ALL --signal B:USR1@180 --requeue " in call
    assert " --gres=gpu:8 --partition=gpu --time=48:00:00 " in call
    assert "--nproc_per_node=8 --rdzv_backend=c10d" in task and task.endswith("--dataset imagenet --resume")
    asked = imagenet_dry_run(NODES="4", CPUS_PER_GPU="6").stdout.splitlines()[0]
    assert " --ntasks 4 --cpus-per-task 48 --mem 0 " in asked


def test_imagenet_relative_paths_are_where_the_job_was_submitted_not_the_repository(tmp_path):
    done = imagenet_dry_run("--data-root", "data/imagenet", "--experiments-dir=./exp", "--teacher-path", "t.pth",
                            cwd=tmp_path, LOG_DIR="logs")
    (tmp_path / "t.pth").touch()
    found = imagenet_dry_run("--teacher-path", "t.pth", "--teacher-path=./t.pth", "--teacher-path",
                             "torchvision:resnet34", "--teacher-path=torchvision:resnet34", cwd=tmp_path)
    call, task = done.stdout.splitlines()
    assert f" --output {tmp_path}/logs/slurm-imagenet-%j.out " in call
    assert task.endswith(f" teacher.py --data-root {tmp_path}/data/imagenet --experiments-dir={tmp_path}/exp "
                         f"--teacher-path t.pth --resume")  # no such file: left as given
    # Without --experiments-dir, the scripts' default ./experiments, where the job was submitted too.
    assert found.stdout.splitlines()[1].endswith(
        f" teacher.py --experiments-dir {tmp_path}/experiments --teacher-path {tmp_path}/t.pth "
        f"--teacher-path={tmp_path}/t.pth --teacher-path torchvision:resnet34 --teacher-path=torchvision:resnet34 "
        f"--resume")


def test_imagenet_dry_run_expands_each_array_that_may_be_empty_as_bash_before_4_4_allows():
    """bash before 4.4 takes an empty array for an unbound variable under set -u: `${a[@]+"${a[@]}"}` is the safe
    form (no --experiments-dir default when one is given, no --cpus-per-task, --exclusive or SBATCH_ARGS)."""
    script = IMAGENET_SCRIPT.read_text()
    guarded = re.sub(r'\$\{(\w+)\[@\]\+"\$\{\1\[@\][^}]*\}"\}', "", script)
    assert re.findall(r'"\$\{\w+\[@\][^}]*\}"', guarded) == ['"${call[@]:1}"', '"${call[@]}"']  # never empty
    done = imagenet_dry_run("--experiments-dir", "/e", EXCLUSIVE="1", SBATCH_ARGS="")
    assert done.returncode == 0 and done.stdout.splitlines()[1].endswith(" teacher.py --experiments-dir /e --resume")


def test_imagenet_more_tasks_than_nodes_on_gpus_is_refused_in_one_line():
    """Two torchruns on one node would both take its GPUs 0..7; without GPUs (GRES=) they are a CPU trial."""
    done = imagenet_dry_run(NODES="1", TASKS="2")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("error: TASKS=2 on NODES=1 would start several torchruns on a node, each on its GPUs 0..7: "
                           "leave TASKS unset (one torchrun per node), set NODES=2, or GRES= for a trial without "
                           "GPUs\n")
    assert imagenet_dry_run(NODES="1", TASKS="2", GRES="").returncode == 0


FAKE_SRUN = """#!/usr/bin/env bash
# srun standing in for a run: waits for the job's stop file, then stops as the run would (STOPS=1: it marks the
# file and exits 75, once $LOG_DIR/exit is there) or ends as if it had finished meanwhile (exits 0).
# Each wait ends after 60 s, so that a test failing before the file appears leaves no srun looping behind it.
wait_for() { for _ in $(seq 1200); do [[ -e "$1" ]] && return; sleep 0.05; done; exit 1; }
[[ -d "$UNIXKD_LAST_WORDS" ]] && echo "$UNIXKD_LAST_WORDS" > "$LOG_DIR/srun-started"
wait_for "$UNIXKD_STOP_FILE"
[[ "$STOPS" == 1 ]] || exit 0
echo stopped > "$UNIXKD_STOP_FILE"
wait_for "$LOG_DIR/exit"
exit 75
"""


@pytest.mark.parametrize("stops, signals", [(True, 1), (False, 1), (True, 2)],
                         ids=["stopped", "ended", "signalled-twice"])
def test_imagenet_job_shell_passes_the_signal_through_the_stop_file_and_requeues_only_a_stopped_run(stops, signals,
                                                                                                    tmp_path):
    """SLURM signals the job's shell; the shell writes the stop file (a signal to the tasks need not reach
    torchrun's workers) and requeues the job only where the run marked it stopped, not where it ended otherwise.
    A second signal (a preemption notice after the time limit's) leaves the run's mark alone. Each start of the
    job (the requeued one: signalled-twice) gets a folder of its own for the ranks' last words."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "scontrol").write_text(f'#!/usr/bin/env bash\necho "$@" >> {tmp_path}/scontrol\n')
    for tool in ("srun", "scontrol"):
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG_DIR": str(tmp_path), "STOPS": str(int(stops)),
           "SLURM_JOB_ID": "42", "SLURM_NTASKS": "2", "SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_CPUS_PER_NODE": "8",
           "SLURM_RESTART_COUNT": str(signals - 1)}
    job = subprocess.Popen(["bash", str(IMAGENET_SCRIPT), "--job", "teacher.py"], env=env, stdout=subprocess.PIPE,
                           text=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / "srun-started").exists():
        assert time.monotonic() < deadline and job.poll() is None
        time.sleep(0.05)
    job.send_signal(signal.SIGUSR1)
    stop_file = tmp_path / "slurm-imagenet-42.stop"
    if signals == 2:
        while not (stop_file.exists() and stop_file.read_text() == "stopped\n"):
            assert time.monotonic() < deadline and job.poll() is None
            time.sleep(0.05)
        job.send_signal(signal.SIGUSR1)
        time.sleep(0.2)  # bash runs the trap once the command under way (sleep 0.05) ends
    (tmp_path / "exit").touch()
    out, _ = job.communicate(timeout=30)
    assert f"start {signals}: 2 task(s) of 4 CPU(s) (SLURM_JOB_CPUS_PER_NODE=8)" in out  # the node's 8 CPUs, shared
    requeued = (tmp_path / "scontrol").read_text() if (tmp_path / "scontrol").exists() else ""
    assert job.returncode == (75 if stops else 0) and not stop_file.exists()
    words = tmp_path / f"slurm-imagenet-42-restart{signals - 1}.words"  # every node's launcher's, for the last lines
    assert (tmp_path / "srun-started").read_text() == f"{words}\n" and not words.exists()
    if stops:
        assert requeued == "requeue 42\n" and "requeueing job 42" in out
    else:
        assert requeued == "" and "the run ended (status 0) before it stopped on the preemption signal: not requeued" in out


def log_shows(log: Path, text: str) -> bool:
    return log.is_file() and text in log.read_text()


def submit_imagenet(env, *flags) -> str:
    submitted = subprocess.run(["bash", str(IMAGENET_SCRIPT), "teacher.py", *flags], env=env, capture_output=True,
                               text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    return submitted.stdout.split()[2].rstrip(":")  # "submitted job <id>: ..."


@needs_slurm
def test_imagenet_asking_more_cpus_than_a_node_has_says_what_to_set(cluster, tmp_path):
    """SLURM (without EnforcePartLimits) would queue such a job for ever: it is refused in one line instead."""
    env = {**os.environ, "SLURM_CONF": str(cluster.conf), "GPUS_PER_NODE": "1", "GRES": "", "CPUS_PER_GPU": "9",
           "EXCLUSIVE": "0", "LOG_DIR": str(tmp_path)}
    refused = subprocess.run(["bash", str(IMAGENET_SCRIPT), "teacher.py"], env=env, capture_output=True, text=True,
                             timeout=60)
    cores = os.cpu_count()
    assert refused.returncode == 2 and refused.stdout == "" and cluster.command("squeue", "-h") == ""
    assert refused.stderr == (f"error: each task would ask 9 CPUs (GPUS_PER_NODE 1 x CPUS_PER_GPU 9), more than any "
                              f"node has ({cores}): set CPUS_PER_GPU={cores}, or leave it unset with EXCLUSIVE=1 "
                              f"(each node's own)\n")


@needs_slurm
def test_imagenet_job_gets_its_cpus_resumes_after_the_preemption_signal_and_on_fewer_tasks(cluster, tmp_path):
    """Two torchrun tasks on a whole node, sharing its CPUs; SIGUSR1 to the job's shell mid-epoch (what
    --signal=B:USR1@180 sends), under proctrack/pgid: the stop file reaches the run, which saves and stops, and the
    job requeues itself and continues mid-epoch; submitted again on one task, it continues on one process."""
    from utils.data.synthetic_imagenet import write_image_folder

    root = write_image_folder(tmp_path / "imagenet", classes=4, train_per_class=40, val_per_class=2, size=36)
    env = {**os.environ, "SLURM_CONF": str(cluster.conf), "TASKS": "2", "GPUS_PER_NODE": "1", "GRES": "",
           "NCCL_DEBUG": "WARN", "LOG_DIR": str(tmp_path), "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    flags = ["--dataset", "imagenet", "--data-root", str(root), "--arch", "imagenet_resnet18", "--image-size", "32",
             "--workers", "0", "--milestones", "2", "--batch-size", "32", "--print-freq", "1",
             "--experiments-dir", str(tmp_path / "exp")]
    job = submit_imagenet(env, *flags, "--epoch", "2")
    log = tmp_path / f"slurm-imagenet-{job}.out"
    cluster.wait_for(lambda: log_shows(log, "epoch 1/2 [1/5]"), "progress line", timeout=180)
    cluster.command("scancel", "--batch", "--signal=USR1", job)
    cluster.wait_for(lambda: "BeginTime" in cluster.command("squeue", "-h", "-j", job, "-o", "%r"), "requeue", timeout=120)
    # SLURM holds a requeued job a while; started again within the second of its requeue, slurmd would refuse
    # its revoked credential (seen here), so wait past it.
    time.sleep(2)
    cluster.command("scontrol", "update", f"jobid={job}", "StartTime=now")
    cluster.wait_for(lambda: cluster.command("squeue", "-h", "-o", "%i").strip() == "", "empty queue", timeout=300)
    fewer = submit_imagenet({**env, "TASKS": "1", "CPUS_PER_GPU": "2", "EXCLUSIVE": "0"}, *flags, "--epoch", "3")
    cluster.wait_for(lambda: cluster.command("squeue", "-h", "-o", "%i").strip() == "", "empty queue", timeout=300)

    text = log.read_text() + (tmp_path / f"slurm-imagenet-{fewer}.out").read_text()
    run = tmp_path / "exp" / "teacher_imagenet_resnet18"
    # The ranks check for a stop about once a second (utils.process.preemption), here every few of the epoch's 5
    # iterations: the signal may be taken at the next iteration checked or at the epoch's end, both saved.
    stop = re.search(r"stopped on the preemption signal after (iteration \d/5 of )?epoch 1, saved in ", text)
    assert stop, text[-4000:]
    continued = " iterations into epoch 1" if stop[1] else "continues with epoch 2, iteration 1 of 5"
    for expected in (f"start 1: 2 task(s) of {os.cpu_count() // 2} CPU(s) (SLURM_JOB_CPUS_PER_NODE={os.cpu_count()}); "
                     "NCCL settings: NCCL_DEBUG=WARN",
                     "2 process(es) x batch 16", "requeueing job", "start 2: 2 task(s)", continued,
                     "1 task(s) of 2 CPU(s) (SLURM_JOB_CPUS_PER_NODE=2)",
                     f"note: {run} ran on 2 process(es) and continues on 1: ", "1 process(es) x batch 32"):
        assert expected in text, text[-4000:]
    assert "Traceback" not in text, text[-4000:]  # utils.torchrun: the stop's line, not torchrun's failure report
    assert not (tmp_path / f"slurm-imagenet-{job}.stop").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] and summary["epochs_done"] == 3 and summary["world_size"] == 1
