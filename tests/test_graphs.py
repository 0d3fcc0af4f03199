"""Replayed iterations compute what eager ones do (utils/training/graphs.py, utils/training/iteration.py).

CUDA is not needed: tests/graph_emulator.py records and replays the operations of a call with a CUDA
graph's semantics (Python does not run again, host reads are refused), so these tests check everything
about the replayed path except the CUDA driver's own capture.
"""
import copy
import json

import numpy as np
import pytest
import torch

import student_v0
from models import model_dict
from tests.event_files import scalars
from tests.graph_emulator import CaptureError, GeneratorState, emulated_capture, meta_trace
from utils import unix
from utils.data.loader import DeviceLoader
from utils.data.synthetic import write_synthetic_cifar100
from utils.training.build import make_optimizer
from utils.training.computation_meter import ComputationMeter
from utils.training import graphs as graphs_module
from utils.training.graphs import CapturedCall, capture_cuda_graph, graph_capture
from utils.training.iteration import Evaluation, TrainIteration
from utils.training.selection import SelectionCounter
from utils.training.steps import DistillConfig, SupervisedStep, UnixDistillStep

SGD = type("Args", (), dict(lr=0.05, momentum=0.9, weight_decay=5e-4, milestones=[2], gamma=0.1))


def test_the_stand_in_refuses_a_host_read_as_capture_does():
    with pytest.raises(CaptureError, match="_local_scalar_dense"):
        emulated_capture(lambda t: t.add(t.sum().item()), (torch.ones(2),))


def test_a_replay_keeps_the_python_values_of_its_capture():
    scale = {"value": 2.0}
    out, inputs = torch.zeros(2), (torch.ones(2),)  # a recording's inputs and outputs live as long as it does
    replay, _ = emulated_capture(lambda t: out.copy_(t * scale["value"]), inputs)
    scale["value"] = 5.0
    replay()
    assert out.tolist() == [2.0, 2.0]


def test_each_shape_is_recorded_once_after_its_warm_up_calls():
    calls = []
    call = CapturedCall(lambda t: calls.append(t.shape[0]) or t * 2, emulated_capture, warmup=2)
    # A replay's output lives in the recording's memory, overwritten by the next replay: read it at once.
    results = [call(torch.full((n,), float(i)))[0].item() for i, n in enumerate([4, 4, 4, 3, 4, 3, 3, 3])]
    assert calls == [4, 4, 4, 3, 3, 3]  # python ran for 2 warm-ups and the capture of each shape only
    assert call.recordings == 2
    assert results == [2 * i for i in range(8)]  # replays read the new inputs
    call.reset()
    call(torch.ones(4))
    assert call.recordings == 0 and calls[-1] == 4


def random_images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 100, n)


def loader(n=40, batch=16, device="cpu"):
    images, labels = random_images(n, seed=0)
    return DeviceLoader(images, labels, batch, torch.device(device), train=True, seed=0, channels_last=True)


def resnet8(device):
    return model_dict["resnet8"](num_classes=100).to(device, memory_format=torch.channels_last)


def distill_iteration(capture, other_distill=None, device="cpu", amp=False, **config):
    torch.manual_seed(0)
    teacher, student = resnet8(device).eval(), resnet8(device)
    cfg = DistillConfig(batch_size=16, other_distill=other_distill, **config)
    step = UnixDistillStep(student, teacher, cfg, SelectionCounter(6, 40, device), ComputationMeter(10, 1))
    optimizer, scheduler = make_optimizer(student, SGD)
    return TrainIteration(step, optimizer, loader(device=device), amp, capture), student, scheduler


def supervised_iteration(capture, device="cpu"):
    torch.manual_seed(0)
    model = resnet8(device)
    optimizer, scheduler = make_optimizer(model, SGD)
    return TrainIteration(SupervisedStep(model), optimizer, loader(device=device), capture=capture), model, scheduler


def train(iteration, model, scheduler, epochs=6, reset_on_lr_change=True):
    """Epochs of 40 images in batches of 16 (the last has 8), lr x0.1 from epoch 2 on, as the trainer runs them.

    Full batches are recorded in epoch 1 and, after the lr change, again in epoch 3; the last batch is
    recorded in epoch 4 and replayed in epoch 5.
    """
    torch.manual_seed(1)
    means = []
    for epoch in range(epochs):
        model.train()
        iteration.start_epoch(epoch)
        for plan in iteration.loader.plans():
            iteration(plan)
        means.append(iteration.sums.means())
        scheduler.step()
        if reset_on_lr_change and epoch == 1:
            iteration.learning_rate_changed()
    return means


def assert_same_run(eager, replayed):
    (_, model_e, means_e), (_, model_r, means_r) = eager, replayed
    assert means_e == means_r
    for (name, a), b in zip(model_e.state_dict().items(), model_r.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("config", [
    dict(),                                             # UNIXKD: entropy, k 48 of 64 scaled to k 12 of 16
    dict(k=12, b=8, strategy=0, mix_strategy=1),        # random ranking, plain mixup
    dict(k=16, b=16, w=1000.0, strategy=0),             # conventional KD: no scoring pass
    dict(k=12, b=8, other_distill="AT", ce_weight=0.5),
    dict(k=12, b=8, other_distill="SP"),
    dict(amp=True),                                     # UNIXKD under bf16 autocast
    # DKD's weight changes every epoch of its 6-epoch warm-up: the full batches recorded in epoch 4 are
    # replayed in epochs 5 and 6 with new weights.
    dict(k=12, b=8, distill="DKD", ce_weight=1.0, settings={"warmup": 6}),
    dict(k=12, b=8, distill="LSKD", ce_weight=1.0, kd_weight=9.0, settings={"T": 2.0}),
], ids=["unixkd", "mixup", "kd", "at", "sp", "unixkd-amp", "dkd", "lskd"])
def test_a_replayed_distillation_run_equals_the_eager_one(config):
    runs = []
    for capture in (None, emulated_capture):
        config = {"k": 12, "b": 8, **config}
        iteration, student, scheduler = distill_iteration(capture, **config)
        means = train(iteration, student, scheduler)
        runs.append((iteration, student, means))
        if capture is not None:
            assert iteration._run.recordings == 2  # full batches and the last batch of 8, after the lr change
    assert_same_run(*runs)
    (eager, _, _), (replayed, _, _) = runs
    assert torch.equal(eager.step.counter.counts, replayed.step.counter.counts)
    assert replayed.step.counter.counts.sum(dim=1).tolist() == [config["b"] * 2 + min(config["b"], 8)] * 6
    assert eager.step.meter.counts == replayed.step.meter.counts


def test_a_replayed_teacher_run_equals_the_eager_one():
    runs = []
    for capture in (None, emulated_capture):
        iteration, model, scheduler = supervised_iteration(capture)
        runs.append((iteration, model, train(iteration, model, scheduler)))
    assert_same_run(*runs)


def test_a_recording_made_before_a_milestone_would_keep_the_old_learning_rate():
    """Why learning_rate_changed() exists: without it the replayed run drifts from the eager one."""
    eager = supervised_iteration(None)
    stale = supervised_iteration(emulated_capture)
    means_e = train(*eager)
    means_s = train(*stale, reset_on_lr_change=False)
    assert means_e[:2] == means_s[:2] and means_e[2] != means_s[2]


def test_the_non_finite_watch_names_the_step_in_a_replayed_run():
    iteration, model, scheduler = supervised_iteration(emulated_capture)
    iteration.start_epoch(0)
    plans = list(iteration.loader.plans())
    for plan in plans[:2]:
        iteration(plan)  # two eager warm-ups
    iteration(plans[0])  # the capture
    iteration(plans[1])  # a replay
    with torch.no_grad():
        model.fc.weight.fill_(float("nan"))
    iteration(plans[0])  # step 4, a replay: a step index frozen at the capture would say 2
    assert iteration.watch.first_bad_step() == 4


def eval_loader(device="cpu"):
    images, labels = random_images(40, seed=1)
    return DeviceLoader(images, labels, 16, torch.device(device), train=False, channels_last=True)


@pytest.mark.parametrize("amp", [False, True], ids=["float32", "amp"])
def test_a_replayed_evaluation_equals_the_eager_one(amp):
    torch.manual_seed(0)
    model, test = resnet8("cpu"), eval_loader()
    eager, replayed = Evaluation(model, test, amp), Evaluation(copy.deepcopy(model), test, amp, emulated_capture)
    for _ in range(4):  # two warm-ups, the capture, a replay
        assert eager() == replayed()
    assert replayed._run.recordings == 2


@pytest.fixture
def fresh_generator():
    """The process's first capture is the test's: the CUDA generator registers its state then."""
    GeneratorState.forget()
    yield
    GeneratorState.forget()


def test_the_first_recording_of_a_process_may_be_an_evaluation(fresh_generator):
    iteration, model, scheduler = supervised_iteration(emulated_capture)
    evaluation = Evaluation(model, eval_loader(), capture=emulated_capture)
    for _ in range(3):  # two warm-ups, then the process's first recordings
        evaluation()
    # Training records its full batches in epoch 2 and replays them after the evaluation's recordings.
    train(iteration, model, scheduler, epochs=2, reset_on_lr_change=False)
    assert iteration._run.recordings == 1 and evaluation._run.recordings == 2


def test_the_stand_in_refuses_a_first_recording_under_inference_mode(fresh_generator):
    """What the test above guards against: the generator's state made an inference tensor."""
    inputs = (torch.ones(2),)
    with torch.inference_mode():
        emulated_capture(lambda t: t * 2, inputs)
    with pytest.raises(RuntimeError, match="Inplace update to inference tensor"):
        emulated_capture(lambda t: t * 2, inputs)


ITERATIONS = {
    "unixkd": lambda: distill_iteration(None, device="meta", k=12, b=8),
    "kd": lambda: distill_iteration(None, device="meta", k=16, b=16, w=1000.0, strategy=0),
    "at": lambda: distill_iteration(None, device="meta", k=12, b=8, other_distill="AT", ce_weight=0.5),
    "teacher": lambda: supervised_iteration(None, device="meta"),
}


@pytest.mark.parametrize("name", ITERATIONS)
def test_an_iteration_is_device_work_only(name):
    """On the meta device every host read fails and every host tensor shows: what a real graph would skip."""
    iteration, _, _ = ITERATIONS[name]()
    iteration.start_epoch(0)
    for plan in iteration.loader.plans():  # full batches, then the last, smaller one
        meta_trace(iteration._device_work, (plan,))


def test_an_evaluation_is_device_work_only():
    evaluation = Evaluation(resnet8("meta").eval(), eval_loader("meta"))
    with torch.no_grad():
        for plan in evaluation.loader.plans():
            meta_trace(evaluation._device_work, (plan,))


def test_the_meta_trace_catches_a_partner_drawn_on_the_host(monkeypatch):
    monkeypatch.setattr(unix, "random_permutation", lambda n, device: torch.randperm(n).to(device))
    iteration, _, _ = ITERATIONS["unixkd"]()
    iteration.start_epoch(0)
    with pytest.raises(CaptureError, match="randperm.* cpu tensor"):
        meta_trace(iteration._device_work, (next(iteration.loader.plans()),))


def test_student_v0_with_graphs_ends_where_the_eager_run_does(tmp_path, monkeypatch):
    """The scripts' wiring: recorded train and test steps, a new recording after the milestone, same files."""
    torch.manual_seed(1)
    teacher_file = tmp_path / "resnet8.pth"
    torch.save({"state_dict": model_dict["resnet8"](num_classes=100).state_dict()}, teacher_file)
    data = write_synthetic_cifar100(tmp_path / "data", train_per_class=3, test_per_class=1)  # 5 batches an epoch
    runs = {}
    for name, capture in (("eager", None), ("graphs", emulated_capture)):
        monkeypatch.setattr(graphs_module, "graph_capture", lambda requested, device: capture)  # student_v0 imports it late
        student_v0.main(["--teacher-path", str(teacher_file), "--student-arch", "resnet8", "--epoch", "3",
                         "--milestones", "2", "--log-freq", "2", "--data-root", str(data),
                         "--experiments-dir", str(tmp_path / name)])
        (runs[name],) = (tmp_path / name).glob("v0_student_*")
    eager, graphs = (torch.load(runs[n] / "ckpt" / "last.pth", weights_only=True) for n in ("eager", "graphs"))
    for key, tensor in eager["state_dict"].items():
        assert torch.equal(tensor, graphs["state_dict"][key]), key
    assert np.array_equal(*(np.load(runs[n] / "counter.npy") for n in ("eager", "graphs")))
    summaries = [json.loads((runs[n] / "summary.json").read_text()) for n in ("eager", "graphs")]
    for key in ("best_acc", "last_acc", "computation"):
        assert summaries[0][key] == summaries[1][key], key
    # TensorBoard's per-iteration loss, read from the sums a replayed graph adds into, every 2 of 15 iterations.
    iterations = [scalars(runs[n] / "tensorboard" / "iterations") for n in ("eager", "graphs")]
    assert sorted(iterations[1]["iteration/train_loss"]) == list(range(2, 15, 2)) and iterations[0] == iterations[1]


def test_cuda_graphs_are_opt_in_and_a_cpu_run_says_it_runs_eagerly():
    assert student_v0.parse_args(["--teacher-path", "x", "--student-arch", "resnet8"]).cuda_graphs is False
    assert graph_capture(False, torch.device("cuda", 0)) is None
    assert graph_capture(True, torch.device("cuda", 0)) is capture_cuda_graph
    with pytest.warns(UserWarning, match="--cuda-graphs needs a CUDA device; running eagerly on the cpu"):
        assert graph_capture(True, torch.device("cpu")) is None


def test_the_graph_check_compares_unixs_draws_call_by_call(capsys):
    """Replayed, UNIX's lambda and partners are the eager calls' own draws (torch's CUDA Graph-safe RNG note);
    a replay that drew nothing new would be seen."""
    from utils.tools import graph_check

    args = graph_check.parse_args(["--batch-size", "8", "--k", "6", "--b", "4"])
    cpu = torch.device("cpu")
    eager = graph_check.draws_copy(args, cpu, None)
    assert graph_check.compare("draws", eager, graph_check.draws_copy(args, cpu, emulated_capture))
    frozen = lambda fn, inputs: ((lambda: None), fn(*inputs))  # noqa: E731  (a replay that draws nothing)
    assert not graph_check.compare("draws", eager, graph_check.draws_copy(args, cpu, frozen))
    assert capsys.readouterr().out.splitlines()[-1].startswith("draws: DIFFERENT (6 steps, ")
