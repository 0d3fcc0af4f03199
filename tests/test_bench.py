"""The speed benchmark's report and its input checks, at tiny settings (no timing is asserted)."""
import json

import pytest
import torch

from utils.process.cli import run_main
from utils.tools import bench
from tests.graph_emulator import emulated_capture

# Batch 16 with k 12, b 8 keeps the UNIXKD path (k < B) at a quarter of the default cost.
TINY = ["--teacher", "resnet8", "--student", "resnet8", "--device", "cpu", "--steps", "2", "--rounds", "1",
        "--warmup", "0", "--train-per-class", "1", "--batch-size", "16", "--k", "12", "--b", "8"]


def test_report_has_the_three_pipelines_and_the_ratios(capsys):
    bench.main(TINY)
    report = capsys.readouterr().out.splitlines()
    assert report[0].startswith("UNIXKD speed benchmark: resnet8 -> resnet8, batch 16")
    assert report[1].startswith("device: cpu (") and f"torch {torch.__version__}" in report[1]
    rows = [line for line in report if line.startswith(("(a) classic", "(b) ours", "(c) ours"))]
    assert len(rows) == 3 and all("img/s" in row for row in rows)
    assert "UNIXKD k12 b8 w10" in rows[2]
    for start in ("speed-up (b) over (a): ", "wall time (c)/(b): ", "projected 240 epochs", "CPU used while timed: "):
        assert any(line.startswith(start) for line in report), start
    assert any("FLOP computation ratio: " in line for line in report if line.startswith("wall time (c)/(b): "))


def test_json_report_carries_the_figures(capsys):
    bench.main(TINY[:1] + ["resnet20"] + TINY[2:] + ["--json"])  # a real pair: resnet20 -> resnet8
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["images_per_second"]) == {"classic_kd", "ours_kd", "ours_unixkd"}
    assert all(s["median"] > 0 for s in summary["images_per_second"].values())
    # Ft 41,412,964 and Fs 12,757,348 MACs; B 16, k 12: (12 Ft + 16 Fs + 2 * 12 Fs) / (16 Ft + 2 * 16 Fs)
    # = 1,007,249,488 / 1,070,842,560 (teacher and student swapped, it would be 1.1833).
    assert summary["flop_ratio_c_over_b"] == pytest.approx(0.940614, abs=1e-6)
    assert list(summary["modes"]) == ["eager"]  # no CUDA graphs on a CPU
    eager = summary["modes"]["eager"]
    assert eager["wall_ratio_c_over_b"]["median"] > 0 and eager["speedup_b_over_a"]["median"] > 0
    assert eager["projected_hours"]["kd"] > 0 and eager["projected_hours"]["unixkd"] > 0
    assert 0 < summary["cpu_share"]["median"]


def test_with_a_graph_capture_the_report_adds_graph_pipelines_and_their_ratios(capsys, monkeypatch):
    captured = []

    def capture(fn, inputs):
        captured.append(fn)
        return emulated_capture(fn, inputs)

    monkeypatch.setattr(bench, "graph_capture_for", lambda device: capture)
    bench.main(TINY + ["--warmup", "3"])  # 2 eager calls, then the capture: the timed steps replay
    assert len(captured) == 2  # the KD and the UNIXKD pipelines were each recorded once
    report = capsys.readouterr().out.splitlines()
    rows = [line for line in report if line.startswith(("(b) ours + CUDA graphs, KD", "(c) ours + CUDA graphs"))]
    assert len(rows) == 2 and all("img/s" in row for row in rows)
    for start in ("with CUDA graphs: speed-up (b) over (a): ", "with CUDA graphs: wall time (c)/(b): ",
                  "with CUDA graphs: projected 240 epochs"):
        assert any(line.startswith(start) for line in report), start


@pytest.mark.parametrize("argv, named", [
    (["--teacher", "resnet9", "--student", "resnet8"], "'resnet9'"),
    (["--teacher", "resnet8", "--student", "resnet8", "--device", "tpu"], "'tpu'"),
    (["--teacher", "resnet8", "--student", "resnet8", "--steps", "0"], "--steps 0"),
    (["--teacher", "resnet8", "--student", "resnet8", "--steps", "-3"], "--steps -3"),
    (["--teacher", "resnet8", "--student", "resnet8", "--batch-size", "32"], "--k 48"),
])
def test_bad_input_is_one_error_line_and_exit_2(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: bench.main(argv))
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and named in err


def test_cuda_without_cuda_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: bench.main(["--teacher", "resnet8", "--student", "resnet8", "--device", "cuda"]))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: --device cuda: CUDA is not available on this machine; use --device cpu\n"
