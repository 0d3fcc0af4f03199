"""Which one sets the pace of an ImageNet run: a data loader or the training step?

    python -m utils.bench --dataset imagenet [--data-root DIR] [--arch imagenet_resnet18] [--batch-size 64]
                          [--teacher imagenet_resnet34] [--amp] [--workers N] [--batches 4] [--steps 3]
                          [--device cpu|cuda]

Reports, for each loader available, its images per second in total and per CPU-second over a whole pass
of --batches batches after an untimed one, and the CPU cores it would take for 2,500 images a second (the
goal per GPU): torchvision (PIL in worker processes, uint8 batches; the training step normalises them on
the device) and, where NVIDIA DALI is installed, DALI (its `mixed` JPEG decoder and GPU operators on CUDA,
its CPU backend otherwise; it normalises in its pipeline).
The CPU seconds are those of every process and thread the loader runs on (on Linux, from /proc: this
process, DALI's threads among its own, and the worker processes). Then one process's training
step (forward, backward, SGD) at 224 (--image-size) on batches already on the device: --arch trained
alone (teacher.py's step) and, with --teacher, distilled by conventional KD and by UNIXKD (student_v0.py's
ImageNet defaults: k and b 3/4 and 1/2 of the batch, w 10, entropy), with UNIXKD's wall time per batch
beside its FLOPs, both relative to KD. Without --data-root it writes a temporary ImageFolder of
ImageNet-sized JPEGs (sides 300 to 600 pixels).
"""
import importlib.util
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

from models.cost import model_cost
from utils.data.dali import INSTALL
from utils.data.dataset_args import LOADERS
from utils.data.imagenet import IndexedImageFolder, check_image_folder, split_loader
from utils.data.synthetic_imagenet import write_image_folder
from utils.unix_settings import default_unix_sizes
from utils.errors import UserError
from utils.process.cli import ArgumentParser, select_device
from utils.training.build import check_arch, make_model, make_optimizer
from utils.training.computation_meter import ComputationMeter, relative_computation
from utils.training.iteration import train_step
from utils.training.selection import SelectionCounter
from utils.training.steps import SupervisedStep, UnixDistillStep, paper_methods

CLASSES = 1000
GOAL = 2500  # images per second per H100/H200 for ResNet-34 -> ResNet-18 UNIXKD, loader included (docs/imagenet.md)
ALONE, KD, UNIX = "training step", "KD step", "UNIXKD step"  # the steps timed, as their rows begin


def parse_args(argv):
    parser = ArgumentParser(prog="python -m utils.bench --dataset imagenet", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["imagenet"], required=True, help="imagenet: this benchmark")
    parser.add_argument("--data-root", help="an ImageFolder (train/ and val/); default: a temporary synthetic one")
    parser.add_argument("--arch", default="imagenet_resnet18",
                        help="the network trained: imagenet_resnet18/34/50 or imagenet_mobilenet_v2 "
                             "(default imagenet_resnet18)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    parser.add_argument("--image-size", type=int, default=224, help="training crop side (default 224, the protocol's)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="loader worker processes, or DALI threads (default: all cores)")
    parser.add_argument("--batches", type=int, default=4, help="batches of the pass timed, after an untimed one (default 4)")
    parser.add_argument("--steps", type=int, default=3, help="training steps timed after one untimed (default 3)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available, else cpu")
    parser.add_argument("--teacher", help="also time --arch distilled from this teacher by KD and by UNIXKD "
                                          "(e.g. imagenet_resnet34; default: the step alone)")
    parser.add_argument("--amp", action="store_true", help="the training steps under bf16 autocast, as --amp trains")
    args = parser.parse_args(argv)
    if min(args.batch_size, args.batches, args.steps) < 1 or args.workers < 0:
        raise UserError("--batch-size, --batches and --steps must be positive, --workers at least 0")
    for flag, arch in (("--arch", args.arch), ("--teacher", args.teacher)):
        if arch is not None:
            check_arch(arch, flag, "imagenet")
    return args


@dataclass
class LoaderRate:
    per_second: float      # images per wall-clock second
    per_cpu_second: float  # images per CPU-second of every process and thread the loader ran on

    def cores_for(self, images_per_second: float) -> float:
        return images_per_second / self.per_cpu_second


def loader_rate(args, root, device, name: str) -> LoaderRate:
    """A training loader's rates over a whole pass of --batches batches (pass_rate).

    What the loader does until it hands a batch over, wherever it does it: torchvision's workers decode and
    crop to uint8, DALI's pipeline decodes, crops and normalises. The batch's assembly on the device
    (torchvision's copy and normalisation, DALI's view of its output) belongs to the training step."""
    check_image_folder(root)
    dataset = IndexedImageFolder(Path(root) / "train", args.image_size, train=True, seed=0)
    keep_images(dataset, args.batches * args.batch_size)
    return pass_rate(split_loader(name, dataset, args.batch_size, device, seed=0, workers=args.workers), device)


def keep_images(dataset, count: int) -> None:
    """The split cut to `count` images drawn across its classes (the same ones every time), so that a pass
    is --batches batches whatever the folder holds."""
    if count < len(dataset):
        chosen = sorted(torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:count].tolist())
        dataset.samples = dataset.imgs = [dataset.samples[index] for index in chosen]
        dataset.targets = [label for _, label in dataset.samples]


def pass_rate(loader, device) -> LoaderRate:
    """Images per wall-clock and per CPU-second of a whole pass, after an untimed one.

    The untimed pass starts the worker processes (they persist) or builds DALI's pipeline. Between passes
    nothing is decoded ahead, so the clocks around the second pass count its work and no other: a loader
    decodes ahead of the batch it hands over (4 batches per worker), and clocks started after a pass's first
    batch counted work done before them, or missed it, by the number of workers."""
    for _ in loader.plans():
        pass
    start, cpu = time.perf_counter(), cpu_seconds()
    images = sum(plan.shape[-1] for plan in loader.plans())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return LoaderRate(images / (time.perf_counter() - start), images / max(cpu_seconds() - cpu, 1e-9))


def cpu_seconds() -> float:
    """CPU time (user and system) of this process, all its threads (DALI's among them), and its live child
    processes (the DataLoader's workers), read from /proc; where there is no /proc, this process's alone."""
    me, tick, total = str(os.getpid()), os.sysconf("SC_CLK_TCK"), time.process_time()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        except (OSError, IndexError):  # a process that ended meanwhile
            continue
        if fields[1] == me:  # the parent's pid; utime and stime are the stat file's 14th and 15th fields
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def loader_label(name: str, workers: int, device) -> str:
    if name == "dali":
        backend = "mixed decoder, GPU ops" if device.type == "cuda" else "CPU backend"
        return f"loader dali ({backend}, {max(1, workers)} thread(s))"
    return f"loader torchvision (PIL, {workers} worker process(es))"


def available(name: str) -> bool:
    if name != "dali":
        return True
    if importlib.util.find_spec("nvidia.dali") is None:
        print(f"loader dali: not installed ({INSTALL})")
        return False
    return True


def training_steps(args, device) -> dict:
    """{ALONE, KD or UNIX: (step, the model it trains)}: --arch alone, and with --teacher by KD and by UNIXKD."""
    student = make_model(args.arch, device, num_classes=CLASSES)
    steps = {ALONE: (SupervisedStep(student), student)}
    if args.teacher is None:
        return steps
    teacher = make_model(args.teacher, device, num_classes=CLASSES).eval()
    batch = args.batch_size
    meter = ComputationMeter(model_cost(args.teacher)[1], model_cost(args.arch)[1])
    for what, cfg in zip((KD, UNIX), paper_methods(batch, *default_unix_sizes(batch))):
        student = make_model(args.arch, device, num_classes=CLASSES)
        steps[what] = (UnixDistillStep(student, teacher, cfg, SelectionCounter(1, batch, device), meter), student)
    return steps


def step_label(what: str, args) -> str:
    distilled = "" if what == ALONE else f"{args.teacher} -> "
    return f"{what}, {distilled}{args.arch} at {args.image_size}, batch {args.batch_size}"


def step_rate(step, model, args, device) -> float:
    """Images per second of one training step (forward, backward, SGD) on a batch already on the device."""
    optimizer, _ = make_optimizer(model, SimpleNamespace(lr=0.1, momentum=0.9, weight_decay=1e-4, milestones=[30], gamma=0.1))
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (args.batch_size,), device=device)
    idx = torch.arange(args.batch_size, device=device)
    for timed in (False, True):
        start = time.perf_counter()
        for _ in range(args.steps if timed else 1):
            train_step(step, optimizer, x, y, idx, args.amp)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def unix_saving(rates: dict, unix_step) -> str:
    """UNIXKD's wall time per batch relative to KD's, beside the paper's FLOP count of the step timed."""
    cfg, meter = unix_step.cfg, unix_step.meter
    flops = relative_computation(meter.ft, meter.fs, cfg.batch_size, cfg.k)
    return f"UNIXKD / KD per batch: wall time {rates[KD] / rates[UNIX]:.3f}, FLOPs {flops:.3f}"


def main(argv=None):
    args = parse_args(argv)
    device = select_device(args.device)
    loaders = {}
    with tempfile.TemporaryDirectory(prefix="unixkd-bench-imagenet-") as tmp:
        root = args.data_root
        if root is None:
            images = args.batches * args.batch_size
            root = write_image_folder(tmp, classes=10, train_per_class=-(-images // 10), val_per_class=1, size=300)
        for name in filter(available, LOADERS):
            loaders[name] = loader_rate(args, root, device, name)
    steps = training_steps(args, device)
    rates = {what: step_rate(*step, args, device) for what, step in steps.items()}
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {os.cpu_count()} cores"
    precision = "bf16 autocast" if args.amp else "float32"
    print(f"ImageNet pipeline on {where} (torch {torch.__version__}, steps in {precision}), images per second:")
    width = max(58, *(len(step_label(what, args)) for what in steps))
    print(f"  {'':<{width}} {'total':>9} {'per CPU-second':>15} {f'cores for {GOAL:,}/s':>19}")
    for name, rate in loaders.items():
        print(f"  {loader_label(name, args.workers, device):<{width}} {rate.per_second:9.1f} "
              f"{rate.per_cpu_second:15.1f} {rate.cores_for(GOAL):19.1f}")
    for what, rate in rates.items():
        print(f"  {step_label(what, args):<{width}} {rate:9.1f}")
    if UNIX in steps:
        print(unix_saving(rates, steps[UNIX][0]))
    slowest = min(rates.values())  # the step of the run to be paced: the distilling one when timed
    for name, rate in loaders.items():
        pace = "the loader" if rate.per_second < slowest else "the training step"
        print(f"with --loader {name} the pace is set by: {pace}")
