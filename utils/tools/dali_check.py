"""DALI's mixed pipeline against its CPU pipeline: python -m utils.dali_check --data-root DIR [--batches 4]
[--images photographs|noise]

The first --batches batches of each split of an ImageFolder, through the DALI loader on the GPU (nvJPEG or
the JPEG engines, then the GPU operators) and through the same loader on DALI's CPU backend, with the same
random states, so the same crops and flips: the two may differ only by their arithmetic. Per split, the
mean and the largest difference over the images, in 1/255 of the pixel range, and a verdict: the mean
within what arithmetic explains (ALLOWED_MEAN, for photographs or for noise JPEGs such as
utils.synthetic_imagenet writes), or above it. Then one file of the training split truncated (in a copy of
those batches' files): both must skip it, name it, and give the other images. Exit status 1 if a split
differs in its images or shapes or lies above its allowance, or the corrupt file is not skipped. Without
CUDA both sides are the CPU backend: a dry run, every difference 0.

    train: 128 images, cuda against cpu: mean M/255, largest L/255: within the 1/255 allowed for photographs
"""
import shutil
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import torch

from utils.data.imagenet import make_imagenet_loaders
from utils.data.imagenet_recipe import IMAGENET_MEAN, IMAGENET_STD
from utils.errors import UserError
from utils.process.cli import ArgumentParser, select_device

STD, MEAN = (255 * torch.tensor(values).view(1, 3, 1, 1) for values in (IMAGENET_STD, IMAGENET_MEAN))
# The largest mean difference, in 1/255, that the two pipelines' arithmetic explains (docs/cuda-graphs.md, the
# dali stage, says how these follow from IEEE 1180's bounds on an inverse DCT's error and the rounding of
# upsampled chroma and resized pixels). Noise JPEGs are allowed more: their chroma changes from pixel to pixel,
# so where two upsampling implementations differ in detail it shows everywhere, not at colour edges only.
ALLOWED_MEAN = {"photographs": 1.0, "noise": 2.0}


def parse_args(argv=None):
    parser = ArgumentParser(prog="python -m utils.dali_check", description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="an ImageFolder: train/<class>/ and val/<class>/")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    parser.add_argument("--batches", type=int, default=4, help="batches compared per split (default 4)")
    parser.add_argument("--image-size", type=int, default=224, help="crop side (default 224)")
    parser.add_argument("--threads", type=int, default=4, help="DALI CPU threads (default 4)")
    parser.add_argument("--images", choices=sorted(ALLOWED_MEAN), default="photographs",
                        help="what the folder holds, which sets the mean difference allowed: photographs (default, "
                             f"{ALLOWED_MEAN['photographs']:g}/255) or noise JPEGs as utils.synthetic_imagenet writes "
                             f"them ({ALLOWED_MEAN['noise']:g}/255)")
    args = parser.parse_args(argv)
    if min(args.batch_size, args.batches, args.threads) < 1 or args.image_size < 8:
        raise UserError("--batch-size, --batches and --threads must be positive, --image-size at least 8")
    return args


def loaders(args, root, device):
    settings = SimpleNamespace(data_root=root, batch_size=args.batch_size, seed=0, image_size=args.image_size,
                               workers=args.threads, loader="dali")
    return make_imagenet_loaders(settings, device)


def pixels(loader, batches: int) -> tuple:
    """(images in 0..255 on the CPU, their indices) of the first `batches` batches of one pass."""
    images, indices = [], []
    for _, plan in zip(range(batches), loader.plans()):
        x, _, idx = loader.assemble(plan)
        images.append(x.float().cpu() * STD + MEAN)
        indices.append(idx.cpu())
    return torch.cat(images), torch.cat(indices)


def compare(args, root, device) -> list:
    """'split: ...' lines, the loader on `device` against the CPU backend."""
    lines = []
    for split, there, here in zip(("train", "val"), loaders(args, root, device), loaders(args, root, torch.device("cpu"))):
        (a, order_a), (b, order_b) = pixels(there, args.batches), pixels(here, args.batches)
        if not torch.equal(order_a, order_b) or a.shape != b.shape:
            lines.append(f"{split}: DIFFERENT images or shapes ({tuple(a.shape)} against {tuple(b.shape)})")
            continue
        lines.append(f"{split}: {len(a)} images, {device.type} against cpu: {verdict((a - b).abs(), args.images)}")
    return lines


def verdict(difference: torch.Tensor, images: str) -> str:
    """The mean and largest difference in 1/255, and whether the mean is within what arithmetic explains."""
    allowed, mean = ALLOWED_MEAN[images], difference.mean().item()
    where = "within" if mean <= allowed else "ABOVE"
    return f"mean {mean:.2f}/255, largest {difference.max():.0f}/255: {where} the {allowed:g}/255 allowed for {images}"


def corrupt_copy(args, root: Path, into: Path) -> Path:
    """A copy of enough files of each split for --batches batches, one training file of it truncated."""
    for split in ("train", "val"):
        classes = sorted(folder for folder in (root / split).iterdir() if folder.is_dir())
        per_class = -(-args.batches * args.batch_size // len(classes))
        for folder in classes:
            (into / split / folder.name).mkdir(parents=True)
            for path in sorted(folder.iterdir())[:per_class]:
                shutil.copy(path, into / split / folder.name / path.name)
    victim = sorted((into / "train").rglob("*.*"))[-1]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    return victim


def corrupt_file(args, root: Path, device) -> str:
    """Both loaders on a copy holding a truncated file: each must skip and name it, and read the rest."""
    with tempfile.TemporaryDirectory(prefix="unixkd-dali-check-") as tmp:
        victim = corrupt_copy(args, root, Path(tmp))
        outcomes = []
        for side in (device, torch.device("cpu")):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                train = loaders(args, tmp, side)[0]
                read = sum(len(plan) for plan in train.plans())
            named = any(str(victim) in str(w.message) for w in caught)
            outcomes.append(f"{side.type}: {read} of {train.num_samples} read, {'named' if named else 'NOT NAMED'}")
        ok = all("NOT" not in outcome and f" {train.num_samples - 1} of " in outcome for outcome in outcomes)
        return f"corrupt file: {'skipped by both' if ok else 'NOT SKIPPED AS IT MUST BE'} ({'; '.join(outcomes)})"


def main(argv=None):
    args = parse_args(argv)
    device = select_device()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (a dry run: CPU against CPU)"
    print(f"dali check on {where}: the DALI loader's {'mixed decoder and GPU operators' if device.type == 'cuda' else 'CPU backend'} "
          f"against its CPU backend, {args.batches} batches of {args.batch_size} per split", flush=True)
    lines = compare(args, args.data_root, device) + [corrupt_file(args, Path(args.data_root), device)]
    print("\n".join(lines), flush=True)
    return 1 if any(word in line for line in lines for word in ("DIFFERENT", "ABOVE", "NOT")) else 0
