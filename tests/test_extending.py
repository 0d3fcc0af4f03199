"""Extending the project as a researcher would (docs/layout.md): a distiller, an architecture and an uncertainty
strategy, each declared here as one function and one declaration, nothing else touched, and each taken through
student_v0.py's flags, the training step, the run's folder name and the results table."""
import json
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import student_v0
from models import model_dict
from models.cost import model_cost, parameter_count
from tests import test_digits_comparison as digits_tests
from tests import test_distillers as distiller_tests
from utils import losses, unix
from utils.distillers import CIFAR100, DISTILLERS, TEMPERATURE, Distiller, Published, setting_help
from utils.errors import UserError
from utils.runs.runnames import student_run_name
from utils.table import summary
from utils.table.paper import protocol_lr
from utils.table.runlist import selected_runs, settings_from_env
from utils.tools import digits_comparison
from utils.training.computation_meter import ComputationMeter
from utils.training.selection import SelectionCounter
from utils.training.steps import UnixDistillStep
from utils.unix_settings import KD_FLAGS, STRATEGIES, UNIXKD_FLAGS, Strategy

CONVENTIONAL = [word for key, value in KD_FLAGS.items() for word in (f"--{key}", str(value))]


def parsed(*flags, student="resnet8"):
    return student_v0.parse_args(["--teacher-path", "t.pth", "--student-arch", student, *flags])


def one_step(args, teacher="resnet8"):
    """(the training step of the run `args` describes, its output on 8 random images, the images)."""
    torch.manual_seed(0)
    step = UnixDistillStep(model_dict[args.student_arch](num_classes=100),
                           model_dict[teacher](num_classes=100).eval(), student_v0.distill_config(args),
                           SelectionCounter(1, 8, "cpu"), ComputationMeter(10, 1))
    step.start_epoch(0)
    x = torch.randn(8, 3, 32, 32)
    return step, step(x, torch.randint(0, 100, (8,)), torch.arange(8)), x


def results_table(tmp_path, capsys, args, teacher="resnet8") -> str:
    """`python -m utils.summary --all` once the run `args` describes has finished, its summary.json as the script
    writes its flags."""
    folder = tmp_path / student_run_name(args, teacher, "best")
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({
        "args": vars(args), "teacher_arch": teacher, "student_arch": args.student_arch, "best_acc": 50.0,
        "last_acc": 49.0, "epochs_done": args.epoch, "finished": True, "computation": {"computation": 90.0},
        "flops": {"teacher": 2.0, "student": 1.0}}))
    assert summary.main([str(tmp_path), "--all"]) == 0
    return capsys.readouterr().out


def table_cells(table: str) -> set:
    """Every cell of the table's rows of runs (a method's name among them)."""
    return {cell for line in table.splitlines() if "(n=1)" in line for cell in re.split(r"\s{2,}", line.strip())}


@pytest.fixture
def mse(monkeypatch):
    """A distiller as a researcher adds one: a pure loss function of utils/losses.py and one declaration."""
    def mse_logits_loss(student_logits, teacher_logits):
        return F.mse_loss(student_logits, teacher_logits)

    monkeypatch.setattr(losses, "mse_logits_loss", mse_logits_loss, raising=False)
    monkeypatch.setitem(DISTILLERS, "MSE", Distiller(
        name="MSE", help="mean squared error of the logits", loss="mse_logits_loss", loss_args=(), loss_key="mse",
        settings=(), published={CIFAR100: Published({"ce_weight": 1.0, "kd_weight": 0.5}, "this test")}))


def test_a_new_distiller_is_one_loss_function_and_one_declaration(mse, tmp_path, capsys):
    args = parsed("--distill", "MSE", *CONVENTIONAL)
    assert (args.ce_weight, args.kd_weight, args.T, args.settings_revision) == (1.0, 0.5, None, 1)
    # It has no temperature: --T is refused, not silently dropped from the folder's name.
    with pytest.raises(UserError, match="--T is a setting of --distill KD, DKD and LSKD, not of --distill MSE"):
        parsed("--distill", "MSE", "--T", "3")
    with pytest.raises(UserError, match="--distill MSE has no published settings for --dataset imagenet"):
        parsed("--distill", "MSE", "--dataset", "imagenet", student="imagenet_resnet18")

    step, out, x = one_step(args)
    assert set(out.losses) == {"ce", "mse"}
    with torch.no_grad():
        expected = 0.5 * F.mse_loss(out.logits, step.teacher(x))
    assert out.losses["mse"].item() == pytest.approx(expected.item(), rel=1e-5)
    bns = [m for m in step.student.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {m.momentum for m in bns} == {0.1}  # BatchNorm as its declaration says: one update per batch

    assert student_run_name(args, "resnet8", "best").endswith("_seed0_MSE_r1")  # its own first revision
    assert student_run_name(parsed("--distill", "MSE", "--kd-weight", "2"), "resnet8", "best").endswith("_MSE_r1_kd2")
    names = {run.name for run in selected_runs(settings_from_env({"EXTENSIONS": "1", "SEEDS": "0"}))}
    assert {"MSE resnet56 resnet20 seed0", "UNIXMSE resnet56 resnet20 seed0"} <= names
    assert {"MSE", "UNIX + MSE kd2"} <= table_cells(
        results_table(tmp_path, capsys, args) + results_table(tmp_path, capsys, parsed("--distill", "MSE",
                                                                                         "--kd-weight", "2")))

    # The flags' help and the digits comparison follow, and the tests that pin them still pass with it declared.
    assert "MSE" not in setting_help(TEMPERATURE)  # it has no temperature
    distiller_tests.test_the_temperature_help_lists_every_published_temperature_so_it_cannot_drift_from_them()
    distiller_tests.test_every_setting_is_one_flag_with_its_help_and_no_default_of_its_own()
    assert ("UNIX + MSE", "MSE", UNIXKD_FLAGS) in digits_comparison.methods()
    digits_tests.test_the_methods_are_each_declared_distiller_conventional_with_unix_and_under_its_other_rules()


class TinyNet(nn.Module):
    """The zoo's contract (models/__init__.py): model(x) -> logits; model(x, is_feat=True) -> (feats, logits)."""

    def __init__(self, num_classes=100):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x, is_feat=False, preact=False):
        stem = self.stem(x)
        stage = self.stage(stem)
        pooled = stage.mean(dim=(2, 3))
        logits = self.fc(pooled)
        return ([stem, stage, pooled], logits) if is_feat else logits


@pytest.fixture
def tinynet(monkeypatch):
    """An architecture as a researcher adds one: a network and its line in models.model_dict."""
    monkeypatch.setitem(model_dict, "tinynet", TinyNet)
    yield
    model_cost.cache_clear()  # priced while it was in the zoo


def test_a_new_architecture_is_one_network_and_one_line_of_the_zoo(tinynet, tmp_path, capsys):
    args = parsed(student="tinynet")
    params, flops = model_cost("tinynet")  # priced by running it
    assert params == parameter_count(TinyNet()) and flops > 0
    assert protocol_lr("tinynet") == 0.05  # the paper's lr list names none but its own light networks

    _, out, _ = one_step(args)
    assert out.logits.shape == (8, 100) and set(out.losses) == {"kd"}

    assert student_run_name(args, "resnet8", "best").startswith("v0_student_tinynet_teacher_resnet8-best_strategy3")
    table = results_table(tmp_path, capsys, args)
    assert "resnet8 -> tinynet" in table and "UNIXKD (S3 k48 b32 w10)" in table_cells(table)


def test_a_new_uncertainty_strategy_is_one_scoring_function_and_one_line(monkeypatch, tmp_path, capsys, exit_status):
    scored = []

    def largest_logit_scores(logits):
        """The lower the student's largest logit, the more uncertain."""
        scored.append(-logits.float().max(dim=1).values)
        return scored[-1]

    new = max(STRATEGIES) + 1
    monkeypatch.setattr(unix, "largest_logit_scores", largest_logit_scores, raising=False)
    monkeypatch.setitem(STRATEGIES, new, Strategy("largest logit", "largest_logit_scores"))

    assert exit_status(student_v0.main, ["--help"]) == 0 and f"{new} largest logit" in capsys.readouterr().out
    args = parsed("--strategy", str(new), "--batch-size", "8", "--k", "4", "--b", "2")
    step, out, _ = one_step(args)
    most_uncertain = set(scored[0].argsort(descending=True)[:2].tolist())  # by its own scores
    assert set(step.counter.to_numpy()[0].nonzero()[0].tolist()) == most_uncertain and out.logits.shape == (4, 100)

    assert f"_strategy{new}_k4_b2_" in student_run_name(args, "resnet8", "best")
    assert f"UNIXKD (S{new} k4 b2 w10)" in table_cells(results_table(tmp_path, capsys, args))
