"""CUDA graphs against eager, step by step, in one process: python -m utils.graph_check [--teacher A --student B]

Each case trains two identical copies on the same batch plans from the same random state, with
deterministic cuDNN: one eagerly, one through the recording (utils/training/graphs.py). The running sums are
compared after every step and the weights at the end; they must be equal bit for bit, as both copies run
the same kernels in the same order (the printout gives the largest difference either way). Six epochs
with the lr dropped after the second: full batches are recorded in epoch 1 and again after the drop,
the last, smaller batch is recorded in epoch 5 and replayed in epoch 6. The control keeps the old
recording across the drop and must come out different, or the check could not see a replay bug.
Evaluation cases compare four passes (two warm-ups, the recording, a replay). Each training copy's random
state at the end is compared too, and the draws case compares UNIX's own draws (lambda and the partner
permutation) call by call: torch's note "CUDA Graph-safe RNG states" (ATen/cuda/CUDAGeneratorImpl.h) has
a replay read and advance the generator as the eager calls would, so a graphed run draws what an eager
one draws.
"""
from types import SimpleNamespace

import numpy as np
import torch

from utils.data.loader import DeviceLoader
from utils.errors import UserError
from utils.process.cli import ArgumentParser, run_main, select_device
from utils.training.build import check_arch, make_model, make_optimizer
from utils.training.computation_meter import ComputationMeter, check_sizes
from utils.training.graphs import capture_cuda_graph
from utils.training.iteration import Evaluation, TrainIteration, maybe_captured
from utils.training.selection import SelectionCounter
from utils.training.steps import SupervisedStep, UnixDistillStep, paper_methods
from utils.unix import random_permutation

EPOCHS = 6
DRAW_CALLS = 6  # two warm-ups, the recording, three replays
SGD = SimpleNamespace(lr=0.05, momentum=0.9, weight_decay=5e-4, milestones=[2], gamma=0.1)
# name: (what trains, bf16 autocast, a new recording after the lr drop)
CASES = {
    "unixkd float32": ("unixkd", False, True),
    "unixkd bf16": ("unixkd", True, True),
    "kd float32": ("kd", False, True),
    "teacher float32": ("teacher", False, True),
    "evaluation float32": ("evaluation", False, True),
    "evaluation bf16": ("evaluation", True, True),
    "draws": ("draws", False, True),
    "control: teacher keeping its old recording": ("teacher", False, False),
}


def graph_capture_for(device: torch.device):
    return capture_cuda_graph if device.type == "cuda" else None


def parse_args(argv=None):
    parser = ArgumentParser(prog="python -m utils.graph_check", description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="resnet32x4", help="teacher architecture (default resnet32x4)")
    parser.add_argument("--student", default="resnet8x4", help="student architecture (default resnet8x4)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size B (default 64)")
    parser.add_argument("--k", type=int, default=48, help="UNIXKD: images the teacher sees (default 48)")
    parser.add_argument("--b", type=int, default=32, help="UNIXKD: images kept un-mixed (default 32)")
    parser.add_argument("--batches", type=int, default=4,
                        help="full batches an epoch, then one of half a batch (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    check_arch(args.teacher, "--teacher")
    check_arch(args.student, "--student")
    check_sizes(args.batch_size, args.k, args.b)
    if args.batches < 1:
        raise UserError(f"--batches {args.batches}: must be a positive integer")
    return args


def loaders(args, device):
    """Random images: the same plans for both copies, full batches and a last one of half a batch."""
    rng = np.random.default_rng(args.seed)
    n = args.batches * args.batch_size + max(1, args.batch_size // 2)
    images, labels = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 100, n)
    return (DeviceLoader(images, labels, args.batch_size, device, train=True, seed=args.seed, channels_last=True),
            DeviceLoader(images, labels, args.batch_size, device, train=False, channels_last=True))


def train_copy(args, what, amp, rerecord, device, capture):
    """One copy's run: the running sums after every step, and its final weights."""
    torch.manual_seed(args.seed)
    train, _ = loaders(args, device)
    model = make_model(args.student if what != "teacher" else args.teacher, device)
    if what == "teacher":
        step = SupervisedStep(model)
    else:
        teacher = make_model(args.teacher, device).eval()
        kd, unix = paper_methods(args.batch_size, args.k, args.b)
        cfg = unix if what == "unixkd" else kd
        step = UnixDistillStep(model, teacher, cfg, SelectionCounter(EPOCHS, train.num_samples, device),
                               ComputationMeter(1, 1))
    optimizer, scheduler = make_optimizer(model, SGD)
    iteration = TrainIteration(step, optimizer, train, amp, capture)
    torch.manual_seed(args.seed + 1)  # the random state both copies start training from
    sums = []
    for epoch in range(EPOCHS):
        model.train()
        iteration.start_epoch(epoch)
        for plan in train.plans():
            iteration(plan)
            sums.append(iteration.sums.totals.clone())
        scheduler.step()
        if epoch + 1 in SGD.milestones and rerecord:
            iteration.learning_rate_changed()
    return sums, [t.clone() for t in model.state_dict().values()] + [generator_state(device)]


def generator_state(device) -> torch.Tensor:
    """The state of the generator UNIX draws from: the device's (seed and offset on CUDA)."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def unix_draws(x):
    """The draws of a UNIX step on x's device (utils/unix.py): lambda, then the partner permutation."""
    return torch.rand((), device=x.device), random_permutation(len(x), x.device)


def draws_copy(args, device, capture):
    """UNIX's draws call by call, eagerly or recorded and replayed, from the same seed; and the state after."""
    torch.manual_seed(args.seed)
    call, x = maybe_captured(unix_draws, capture), torch.zeros(args.batch_size, device=device)
    draws = [torch.cat([lam.view(1), partner.float()]) for lam, partner in (call(x) for _ in range(DRAW_CALLS))]
    return draws, [generator_state(device)]


def evaluate_copy(args, amp, device, capture):
    torch.manual_seed(args.seed)
    _, test = loaders(args, device)
    evaluation = Evaluation(make_model(args.student, device), test, amp, capture)
    return [torch.tensor(evaluation()) for _ in range(4)], []


def largest_difference(a: list, b: list) -> float:
    return max(((x.double() - y.double()).abs().max().item() for x, y in zip(a, b)), default=0.0)


def compare(name, eager, graphed) -> bool:
    """Print the case's outcome; True where it is what it must be (the control: different)."""
    (steps_e, end_e), (steps_g, end_g) = eager, graphed  # per step: running sums (draws); at the end: weights, state
    same_steps = [torch.equal(x, y) for x, y in zip(steps_e, steps_g)]
    same = all(same_steps) and all(torch.equal(x, y) for x, y in zip(end_e, end_g))
    detail = (f"{len(steps_e)} steps, largest difference: per step {largest_difference(steps_e, steps_g):.3g}, "
              f"at the end {largest_difference(end_e, end_g):.3g}")
    if not all(same_steps):
        detail += f", first differing step {same_steps.index(False) + 1}"
    control = name.startswith("control")
    ok = same != control
    verdict = ("different, as it must be" if control else "identical") if ok else (
        "IDENTICAL: the check cannot see a stale recording" if control else "DIFFERENT")
    print(f"{name}: {verdict} ({detail})", flush=True)
    return ok


def main(argv=None):
    args = parse_args(argv)
    device = select_device()
    capture = graph_capture_for(device)
    if capture is None:
        raise UserError("the graph check needs a CUDA device (on a CPU: python tests/graph_stand_in.py "
                        "-m utils.graph_check ...)")
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    print(f"graph check on {device}: {args.teacher} -> {args.student}, batch {args.batch_size}, "
          f"{args.batches} full batches and a last one of {max(1, args.batch_size // 2)}, {EPOCHS} epochs", flush=True)
    failed = []
    for name, (what, amp, rerecord) in CASES.items():
        if what == "evaluation":
            runs = [evaluate_copy(args, amp, device, c) for c in (None, capture)]
        elif what == "draws":
            runs = [draws_copy(args, device, c) for c in (None, capture)]
        else:
            runs = [train_copy(args, what, amp, rerecord, device, c) for c in (None, capture)]
        if not compare(name, *runs):
            failed.append(name)
    print(f"graph check: {len(CASES) - len(failed)} of {len(CASES)} cases as they must be"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
