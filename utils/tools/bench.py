"""Training speed: the classic pipeline against ours, and UNIXKD against KD, in one process on the same data.

    python -m utils.bench --teacher resnet32x4 --student resnet8x4 [--device cpu|cuda] [--steps N] [--amp] [--json]
    python -m utils.bench --dataset imagenet   # loader against training step at 224: utils/tools/bench_imagenet.py

Three pipelines train the same student architecture under the same teacher, on a synthetic CIFAR-100 set
written to a temporary folder:

    (a) classic  torchvision dataset with PIL transforms through a DataLoader, each batch copied to the
                 device, conventional KD, and a loss.item() per step as the reference code logs it
    (b) ours KD  the training scripts' iteration (DeviceLoader, UnixDistillStep on its conventional-KD path:
                 strategy 0, k = b = B, no scoring), run eagerly
    (c) UNIXKD   the same with entropy scoring, k 48, b 32, w 10
    on CUDA also (b) and (c) with each iteration replayed as a CUDA graph (utils/training/graphs.py)

Every round times each pipeline over --steps steps after --warmup untimed ones, in an order that rotates
from round to round, so that load from other processes and clock drift fall on all three alike. Ratios are
taken within a round, then the median over rounds is reported with the range. On CPU the report also gives
the share of the cores the benchmark got while timed, and warns when other processes took a visible part.
"""
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader

from models.cost import model_cost
from utils.data.cifar100 import ClassicCIFAR100, load_cifar100
from utils.data.loader import DeviceLoader
from utils.data.synthetic import write_synthetic_cifar100
from utils.errors import UserError
from utils.process.cli import ArgumentParser, run_main, select_device
from utils.training.build import check_arch, make_model, make_optimizer
from utils.training.computation_meter import ComputationMeter, check_sizes, relative_computation
from utils.training.graphs import capture_cuda_graph
from utils.training.iteration import TrainIteration, train_step
from utils.training.selection import SelectionCounter
from utils.training.steps import DistillConfig, UnixDistillStep, paper_methods

EPOCHS, EPOCH_IMAGES = 240, 50_000  # the protocol's run, for the projected wall time
CONTENDED_SHARE = 0.8  # below this CPU share in any round, the report warns that other processes interfered
# The protocol's SGD settings, in the shape make_optimizer reads them.
PROTOCOL_SGD = SimpleNamespace(lr=0.05, momentum=0.9, weight_decay=5e-4, milestones=[150, 180, 210], gamma=0.1)


@dataclass
class Pipeline:
    key: str
    label: str
    run_step: Callable[[], int]  # one training iteration; returns the images it consumed
    close: Callable[[], None] = lambda: None


def parse_args(argv=None):
    parser = ArgumentParser(prog="python -m utils.bench", description=__doc__.splitlines()[0],
                            epilog="python -m utils.bench --dataset imagenet [--help]: the ImageNet loader against "
                                   "the training step at 224 (utils/tools/bench_imagenet.py)")
    parser.add_argument("--teacher", required=True, help="teacher architecture (python -m models lists them)")
    parser.add_argument("--student", required=True, help="student architecture")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available, else cpu")
    parser.add_argument("--steps", type=int, help="timed steps per pipeline and round (default: 3 on CPU, 50 on CUDA)")
    parser.add_argument("--warmup", type=int,
                        help="untimed steps before each timing (default: 1 on CPU, 10 on CUDA, where the first "
                             "steps of each batch shape also autotune cuDNN)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over the three pipelines (default 5)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size B (default 64)")
    parser.add_argument("--k", type=int, default=48, help="UNIXKD: images per batch the teacher sees (default 48)")
    parser.add_argument("--b", type=int, default=32, help="UNIXKD: images kept un-mixed (default 32)")
    parser.add_argument("--workers", type=int,
                        help="DataLoader workers of the classic pipeline (default: 0 on CPU, min(8, cores) on CUDA)")
    parser.add_argument("--train-per-class", type=int, default=64,
                        help="synthetic training images per class (default 64: 6,400 images, 100 full batches)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast in (b) and (c); (a) stays float32")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    check_args(args)
    return args


def check_args(args) -> None:
    check_arch(args.teacher, "--teacher")
    check_arch(args.student, "--student")
    for flag, value, least in (("--steps", args.steps, 1), ("--rounds", args.rounds, 1),
                               ("--train-per-class", args.train_per_class, 1), ("--warmup", args.warmup, 0),
                               ("--workers", args.workers, 0), ("--seed", args.seed, 0)):
        if value is not None and value < least:
            raise UserError(f"{flag} {value}: must be a {'positive' if least else 'non-negative'} integer")
    check_sizes(args.batch_size, args.k, args.b)


def graph_capture_for(device: torch.device):
    """The pipelines with CUDA graphs exist where graphs do."""
    return capture_cuda_graph if device.type == "cuda" else None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or "unknown CPU"


def endless(epoch: Callable[[], Iterator]) -> Iterator:
    """Batches across epoch boundaries, so a timing never depends on where an epoch ends."""
    while True:
        yield from epoch()


def classic_pipeline(data, args, step, optimizer, device: torch.device) -> Pipeline:
    """Host-side PIL transforms, batches copied to the device, a loss.item() per step as the reference logs it."""
    dataset = ClassicCIFAR100(data.train_images, data.train_labels, train=True)
    loader = DataLoader(dataset, args.batch_size, shuffle=True, num_workers=args.workers,
                        pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)
    batches = endless(loader.__iter__)

    def run_step() -> int:
        x, y, idx = (t.to(device, non_blocking=True) for t in next(batches))
        _, loss = train_step(step, optimizer, x, y, idx)
        loss.item()
        return len(y)

    return Pipeline("classic_kd", f"(a) classic: PIL + DataLoader ({args.workers} workers), KD", run_step,
                    close=batches.close)  # stops the DataLoader's worker processes now


def ours_pipeline(key: str, label: str, loader: DeviceLoader, step, optimizer, amp: bool, capture) -> Pipeline:
    """The training scripts' own iteration (utils/training/iteration.py) on endless batch plans."""
    iteration = TrainIteration(step, optimizer, loader, amp, capture)
    plans = endless(loader.plans)

    def run_step() -> int:
        plan = next(plans)
        iteration(plan)
        return plan.shape[-1]

    return Pipeline(key, label, run_step)


def build_pipelines(args, data, device: torch.device, capture=None) -> list:
    """(a), (b), (c) and, given a graph capture, (b) and (c) replayed as graphs: the same initial student in each."""
    ft, fs = model_cost(args.teacher)[1], model_cost(args.student)[1]
    teacher = make_model(args.teacher, device).eval()
    num_samples, batch = len(data.train_labels), args.batch_size

    def distill(cfg: DistillConfig):
        torch.manual_seed(args.seed)
        student = make_model(args.student, device)
        counter = SelectionCounter(1, num_samples, device)  # every step counts as epoch 0
        step = UnixDistillStep(student, teacher, cfg, counter, ComputationMeter(ft, fs))
        return step, make_optimizer(student, PROTOCOL_SGD)[0]

    kd, unix = paper_methods(batch, args.k, args.b)
    # One loader feeds (b) and (c): the same data once in memory, in the training scripts' layout.
    loader = DeviceLoader(data.train_images, data.train_labels, batch, device, train=True,
                          seed=args.seed, channels_last=True)
    unix_label = f"UNIXKD k{unix.k} b{unix.b} w{unix.w:g}"
    pipelines = [
        classic_pipeline(data, args, *distill(kd), device),
        ours_pipeline("ours_kd", "(b) ours: DeviceLoader, KD", loader, *distill(kd), args.amp, None),
        ours_pipeline("ours_unixkd", f"(c) ours: DeviceLoader, {unix_label}", loader, *distill(unix), args.amp, None),
    ]
    if capture is not None:
        pipelines += [
            ours_pipeline("graphs_kd", "(b) ours + CUDA graphs, KD", loader, *distill(kd), args.amp, capture),
            ours_pipeline("graphs_unixkd", f"(c) ours + CUDA graphs, {unix_label}", loader, *distill(unix),
                          args.amp, capture),
        ]
    return pipelines


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_steps(pipeline: Pipeline, steps: int) -> int:
    """Train `steps` iterations; returns how many training images they consumed."""
    return sum(pipeline.run_step() for _ in range(steps))


@dataclass
class Timing:
    images_per_second: float
    cpu_share: float  # CPU seconds of this process per wall second and thread: well below 1 on CPU = contention


def time_pipeline(pipeline: Pipeline, steps: int, warmup: int, device: torch.device) -> Timing:
    run_steps(pipeline, warmup)
    synchronize(device)  # queued work belongs to the warm-up, not to the timing
    wall, cpu = time.perf_counter(), time.process_time()
    images = run_steps(pipeline, steps)
    synchronize(device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Timing(images / wall, cpu / (wall * torch.get_num_threads()))


def measure(pipelines: list, args, device: torch.device) -> dict:
    """{key: [Timing of each round]}; round r starts with pipeline r, so no position is favoured."""
    timings = {p.key: [] for p in pipelines}
    for r in range(args.rounds):
        shift = r % len(pipelines)
        for pipeline in pipelines[shift:] + pipelines[:shift]:
            timings[pipeline.key].append(time_pipeline(pipeline, args.steps, args.warmup, device))
        figures = "  ".join(f"{key} {values[-1].images_per_second:.1f}" for key, values in timings.items())
        print(f"round {r + 1}/{args.rounds}: {figures} img/s", file=sys.stderr, flush=True)
    return timings


def spread(values: list) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# (KD pipeline, UNIXKD pipeline) of each way of running our iteration; graphs only where a capture exists.
MODES = {"eager": ("ours_kd", "ours_unixkd"), "graphs": ("graphs_kd", "graphs_unixkd")}


def mode_figures(speeds: dict, kd_key: str, unix_key: str) -> dict:
    """Speed-up over the classic pipeline, UNIXKD's wall time over KD's (within each round), projections."""
    a, b, c = speeds["classic_kd"], speeds[kd_key], speeds[unix_key]
    return {
        "speedup_b_over_a": spread([vb / va for va, vb in zip(a, b)]),
        "wall_ratio_c_over_b": spread([vb / vc for vb, vc in zip(b, c)]),
        "projected_hours": {"kd": EPOCHS * EPOCH_IMAGES / statistics.median(b) / 3600,
                            "unixkd": EPOCHS * EPOCH_IMAGES / statistics.median(c) / 3600},
    }


def summarize(args, timings: dict, device: torch.device, num_images: int) -> dict:
    speeds = {key: [t.images_per_second for t in values] for key, values in timings.items()}
    ft, fs = model_cost(args.teacher)[1], model_cost(args.student)[1]
    # Only a CPU run keeps its threads busy; on CUDA the host mostly waits, whatever the load.
    shares = [t.cpu_share for values in timings.values() for t in values] if device.type == "cpu" else None
    return {
        "teacher": args.teacher, "student": args.student, "device": str(device),
        "device_name": device_name(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "batch_size": args.batch_size, "k": args.k, "b": args.b, "amp": args.amp,
        "classic_workers": args.workers, "train_images": num_images,
        "rounds": args.rounds, "steps": args.steps, "warmup": args.warmup,
        "images_per_second": {key: spread(values) for key, values in speeds.items()},
        "modes": {mode: mode_figures(speeds, *keys) for mode, keys in MODES.items() if keys[0] in speeds},
        "flop_ratio_c_over_b": relative_computation(ft, fs, args.batch_size, args.k),
        "cpu_share": spread(shares) if shares else None,
    }


def format_report(summary: dict, labels: dict) -> str:
    s = summary
    precision = "bf16 autocast in (b) and (c)" if s["amp"] else "float32"
    lines = [
        f"UNIXKD speed benchmark: {s['teacher']} -> {s['student']}, batch {s['batch_size']}, {precision}",
        f"device: {s['device']} ({s['device_name']}), torch {s['torch']}",
        f"data: synthetic CIFAR-100, {s['train_images']} training images; {s['rounds']} rounds x {s['steps']} "
        f"timed steps per pipeline after {s['warmup']} warm-up steps; median over rounds [min..max]",
    ]
    width = max(len(label) for label in labels.values())
    for key, label in labels.items():
        ips = s["images_per_second"][key]
        lines.append(f"{label:<{width}}  {ips['median']:9.1f} img/s  [{ips['min']:.1f}..{ips['max']:.1f}]")
    for mode, figures in s["modes"].items():
        lines += mode_lines("" if mode == "eager" else "with CUDA graphs: ", figures, s["flop_ratio_c_over_b"])
    if s["cpu_share"]:
        lines += cpu_share_lines(s["cpu_share"], s["threads"])
    return "\n".join(lines)


def mode_lines(prefix: str, figures: dict, flops: float) -> list:
    up, wall, hours = figures["speedup_b_over_a"], figures["wall_ratio_c_over_b"], figures["projected_hours"]
    return [
        f"{prefix}speed-up (b) over (a): {up['median']:.2f}x  [{up['min']:.2f}..{up['max']:.2f}]",
        f"{prefix}wall time (c)/(b): {wall['median']:.3f}  [{wall['min']:.3f}..{wall['max']:.3f}]   "
        f"FLOP computation ratio: {flops:.3f}   difference: {wall['median'] - flops:+.3f}",
        f"{prefix}projected {EPOCHS} epochs x {EPOCH_IMAGES:,} images (training steps only): "
        f"(b) {duration(hours['kd'])}, (c) {duration(hours['unixkd'])}",
    ]


def duration(hours: float) -> str:
    """Minutes where a GPU run's target is stated in minutes, hours beyond two."""
    return f"{hours * 60:.1f} min" if hours < 2 else f"{hours:.1f} h"


def cpu_share_lines(share: dict, threads: int) -> list:
    lines = [f"CPU used while timed: {share['median']:.0%} of {threads} threads  "
             f"[{share['min']:.0%}..{share['max']:.0%}]"]
    if share["min"] < CONTENDED_SHARE:
        lines.append("warning: other processes took CPU time during some rounds; rerun on an idle machine "
                     "(or with more --rounds) before trusting the figures")
    return lines


def main(argv=None) -> None:
    from utils.data.dataset_args import dataset_of

    if dataset_of(argv) == "imagenet":
        from utils.tools.bench_imagenet import main as imagenet_main

        return imagenet_main(argv)
    args = parse_args(argv)
    device = select_device(args.device)
    fill_device_defaults(args, device)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="unixkd-bench-") as root:
        write_synthetic_cifar100(root, train_per_class=args.train_per_class, test_per_class=1, seed=args.seed)
        data = load_cifar100(root, download=False)
    pipelines = build_pipelines(args, data, device, graph_capture_for(device))
    try:
        timings = measure(pipelines, args, device)
    finally:
        for pipeline in pipelines:
            pipeline.close()
    summary = summarize(args, timings, device, len(data.train_labels))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_report(summary, {p.key: p.label for p in pipelines}))


def fill_device_defaults(args, device: torch.device) -> None:
    """Steps, warm-up and classic workers the user left open, by device.

    A CPU step of the zoo's pairs takes about a second, a GPU step milliseconds: short rounds on CPU, so that
    the load of other processes, which comes and goes within seconds, falls on all three pipelines alike.
    On CPU the training threads already use every core, so the classic pipeline decodes in the main process
    (on 2 cores, 2 workers measured the same within noise); on CUDA it gets as many workers as the reference.
    """
    if device.type == "cuda":
        defaults = {"steps": 50, "warmup": 10, "workers": min(8, os.cpu_count() or 1)}
    else:
        defaults = {"steps": 3, "warmup": 1, "workers": 0}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


if __name__ == "__main__":
    run_main(main)
