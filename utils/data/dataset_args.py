"""--dataset: the flags and defaults each dataset brings, and the flags that belong to one dataset only.

ImageNet's defaults are the protocol the KD literature uses (CRD, DKD; the torchvision reference recipe):
SGD with lr 0.1 per 256 images, momentum 0.9, weight decay 1e-4, batch 256, 100 epochs, lr / 10 at 30,
60 and 90; RandomResizedCrop 224 and flip; val resized to 256 and centre-cropped to 224.
"""
import argparse
import os

from utils.errors import UserError
from utils.process import ranks
from utils.process.cli import ArgumentParser, parse_flags

DATASETS = ("cifar100", "imagenet")
LOADERS = ("torchvision", "dali")
IMAGENET_DEFAULTS = {"epoch": 100, "batch_size": 256, "weight_decay": 1e-4, "milestones": [30, 60, 90],
                     "data_root": "./data/imagenet"}
LR_PER_256 = 0.1
# Fewest images per process with BatchNorm per GPU (our choice; Wu & He, Group Normalization, ECCV 2018, Figure 1:
# ResNet-50's ImageNet error with BN per GPU grows from 23.6 % at 32 images per GPU to 34.7 % at 2).
BATCH_FLOOR = 16
# name: (default on ImageNet, help); None on CIFAR-100, where giving one is an error.
IMAGENET_ONLY = {
    "image_size": (224, "training crop side; val is resized to size x 256/224 then centre-cropped (default 224)"),
    "workers": (8, "data-loading worker processes per GPU, or DALI threads per GPU with --loader dali (default 8, "
                   "or each process's share of the cores available if fewer)"),
    "loader": ("torchvision", "torchvision (default: PIL in worker processes, uint8 batches normalised on the "
                              "device) or dali (NVIDIA DALI: decoding and augmentation on the GPU; pip install "
                              "nvidia-dali-cuda130); see docs/imagenet.md"),
    "sync_bn": (False, "SyncBatchNorm across GPUs instead of BatchNorm per GPU (the default, as in the "
                       "literature's ImageNet runs; needs CUDA)"),
}
CIFAR_ONLY = ("cuda_graphs", "other_distill")


def dataset_of(argv) -> str:
    """The --dataset value, read before the full parse because it changes the other flags' defaults."""
    pre = ArgumentParser(add_help=False)
    pre.add_argument("--dataset", choices=DATASETS, default="cifar100")
    return pre.parse_known_args(argv)[0].dataset


def add_dataset_args(parser, argv) -> None:
    parser.add_argument("--dataset", choices=DATASETS, default="cifar100",
                        help="cifar100 (default) or imagenet: an ImageFolder at --data-root, the ImageNet protocol's "
                             "defaults (--epoch 100 --batch-size 256 --lr 0.1 x batch/256 --weight-decay 1e-4 "
                             "--milestones 30 60 90; see docs/imagenet.md), and torchrun for several GPUs")
    for name, (default, text) in IMAGENET_ONLY.items():  # None when not given: CIFAR-100 refuses them
        if isinstance(default, bool):
            parser.add_argument(flag(name), action="store_const", const=True, default=None, help=f"imagenet: {text}")
        elif name == "loader":
            parser.add_argument(flag(name), choices=LOADERS, default=None, help=f"imagenet: {text}")
        else:
            parser.add_argument(flag(name), type=int, default=None, help=f"imagenet: {text}")
    if dataset_of(argv) == "imagenet":
        parser.set_defaults(lr=None, **IMAGENET_DEFAULTS)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_dataset_args(args) -> None:
    """Fill the ImageNet defaults, refuse flags of the other dataset, and refuse DDP for CIFAR-100."""
    if args.dataset == "cifar100":
        given = [flag(name) for name in IMAGENET_ONLY if getattr(args, name) is not None]
        if given:
            raise UserError(f"{given[0]} is for --dataset imagenet only")
        if ranks.world_size() > 1:
            raise UserError(f"{ranks.world_size()} processes (torchrun) with --dataset cifar100: DDP runs "
                            "--dataset imagenet; CIFAR-100 runs take one GPU each (command/command.sh runs several)")
        return
    given = [flag(name) for name in CIFAR_ONLY if getattr(args, name, None)]
    if given:
        raise UserError(f"{given[0]} is for --dataset cifar100 only (ImageNet batches come from loader workers, "
                        f"and the feature losses are defined for the CIFAR pairs)")
    for name, (default, _) in IMAGENET_ONLY.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if "workers" not in getattr(args, "given", {"workers"}):  # more workers than cores only queue (and warn)
        args.workers = min(args.workers, cores_per_process())
    if args.image_size < 8:
        raise UserError(f"--image-size must be at least 8 (pixels), got {args.image_size}")
    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    if args.lr is None:
        args.lr = imagenet_lr(args.batch_size)
    if not args.resume:  # a --resume's batch is the run's own, checked once its flags are read (scripts)
        check_batch_per_process(args)


def imagenet_lr(batch_size: int) -> float:
    """The default lr of an ImageNet run: LR_PER_256 scaled linearly with the global batch."""
    return LR_PER_256 * batch_size / 256


def check_batch_per_process(args, resumed_run=None) -> None:
    """Refuse an ImageNet batch that the processes cannot share evenly, or that leaves fewer than BATCH_FLOOR
    images per process with BatchNorm per GPU, naming what to use instead. resumed_run: the folder of the run
    a --resume continues, whose batch (args.batch_size, its own) cannot change."""
    if args.dataset != "imagenet":  # CIFAR-100 runs on one process
        return
    if resumed_run is not None:
        check_resumed_batch(args, resumed_run)
        return
    world, local = ranks.world_size(), ranks.local_batch_size(args.batch_size)
    if world == 1 or local >= BATCH_FLOOR or args.sync_bn:
        return
    batch = BATCH_FLOOR * world
    lr = args.lr * batch / args.batch_size
    rule = "your lr scaled by the same factor" if "lr" in getattr(args, "given", ()) else "0.1 per 256 images"
    raise UserError(f"--batch-size {args.batch_size} over {world} processes leaves {local} images per process, under the "
                    f"floor of {BATCH_FLOOR}: BatchNorm (per GPU) and UNIX's k and b work on each process's batch, and "
                    f"BatchNorm's statistics grow noisy on small ones (docs/imagenet.md); use --batch-size {batch} --lr "
                    f"{lr:g} ({rule}), fewer processes, or --sync-bn")


def check_resumed_batch(args, run) -> None:
    """A resumed run keeps its batch: refuse a number of processes that cannot share it, or that would leave each
    fewer than BATCH_FLOOR images (BatchNorm per GPU), naming the numbers of processes that can (with --sync-bn
    2 or more: distributed.prepare_device refuses it on one)."""
    batch, world = args.batch_size, ranks.world_size()
    counts = [n for n in range(1, batch + 1)
              if batch % n == 0 and (n > 1 if args.sync_bn else n == 1 or batch // n >= BATCH_FLOOR)]
    if world in counts:
        return
    share = (f"{batch // world} images per process, under the floor of {BATCH_FLOOR} (BatchNorm per GPU: "
             f"docs/imagenet.md)" if batch % world == 0 else "no even share")
    raise UserError(f"{run} was started with --batch-size {batch}: on {world} processes that leaves {share}; resume "
                    f"it on {', '.join(map(str, counts))} process(es), or start it over with --force (or in its own "
                    f"folder with --tag NAME)")


def cores_per_process() -> int:
    """This process's share of the cores: torchrun's processes on a node share them."""
    return max(1, available_cores() // ranks.local_world_size())


def available_cores() -> int:
    """The cores this process may run on (a SLURM allocation's, not the node's), where the system tells."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parse_dataset_args(parser: argparse.ArgumentParser, argv):
    add_dataset_args(parser, argv)
    args = parse_flags(parser, argv)
    check_dataset_args(args)
    return args
