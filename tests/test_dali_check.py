"""python -m utils.dali_check: DALI's mixed pipeline against its CPU one, each split's mean difference judged
against what arithmetic explains for its kind of images (the pipelines themselves run in tests/test_gpu_checks.py)."""
import torch

from utils.tools import dali_check


def judged(monkeypatch, mean: float, *flags) -> int:
    """main's exit status where the train split differs from the CPU pipeline by `mean`/255 on every pixel."""
    difference = torch.full((2, 3, 4, 4), mean)
    monkeypatch.setattr(dali_check, "compare", lambda args, root, device: [
        f"train: 2 images, cpu against cpu: {dali_check.verdict(difference, args.images)}"])
    monkeypatch.setattr(dali_check, "corrupt_file", lambda args, root, device: "corrupt file: skipped by both")
    return dali_check.main(["--data-root", "unused", *flags])


def test_a_split_above_what_arithmetic_explains_fails_the_check(monkeypatch, capsys):
    assert judged(monkeypatch, 1.5) == 1
    assert "train: 2 images, cpu against cpu: mean 1.50/255, largest 2/255: ABOVE the 1/255 allowed for " \
           "photographs" in capsys.readouterr().out


def test_noise_jpegs_are_allowed_more_than_photographs(monkeypatch, capsys):
    assert judged(monkeypatch, 1.5, "--images", "noise") == 0 and judged(monkeypatch, 1.0) == 0
    assert "mean 1.50/255, largest 2/255: within the 2/255 allowed for noise" in capsys.readouterr().out
