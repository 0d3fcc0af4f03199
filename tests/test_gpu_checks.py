"""command/gpu_checks.sh runs through on a CPU with tiny settings (--cuda-graphs then runs eagerly, and says so).

Only the graphs mode: on a CPU the eager mode would run the same commands without the flag a second time.
"""
import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "command" / "gpu_checks.sh"


def test_the_gpu_checks_run_every_stage_and_log_each_epoch(tmp_path):
    env = {**os.environ, "TEACHER": "resnet8", "STUDENT": "resnet8", "PER_CLASS": "1", "PACKING": "2",
           "MODES": "graphs", "LOGS": str(tmp_path), "OMP_NUM_THREADS": "1",
           "BENCH_ARGS": "--rounds 1 --steps 1 --warmup 0 --train-per-class 1 --batch-size 16 --k 12 --b 8"}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "summary.txt").read_text().splitlines()
    stages = [line for line in summary if line.startswith("== ")]
    assert stages == ["== data: 1 training images per class",
                      "== benchmark resnet8 -> resnet8 float32", "== benchmark resnet8 -> resnet8 --amp",
                      *[f"== {run}, graphs" for run in (
                          "teacher.py resnet8", "student_v0.py resnet8 --strategy 3 --k 48 --b 32 --w 10",
                          "student_v0.py resnet8 --strategy 0 --k 64 --b 64 --w 1000")],
                      "== packing: 2 UNIXKD runs at once, resnet8 from resnet8, eager"]
    epochs = [line for line in summary if line.startswith("epoch ")]
    assert len(epochs) == 3 * 2 and sum("lr 0.005" in line for line in epochs) == 3  # the milestone, each run
    (packing,) = [line for line in summary if line.startswith("2 runs at once: ")]
    assert int(packing.split()[4]) > 0 and packing.endswith(" img/s in all")
    assert "--cuda-graphs needs a CUDA device" in done.stderr
