"""A torchvision-pretrained teacher: `--teacher-path torchvision:<name>[:<weights>]` (torchvision:resnet34,
torchvision:resnet50:IMAGENET1K_V2).

Without a weights name each network takes its first published weights, IMAGENET1K_V1: the ImageNet teachers
of the KD literature (ResNet-34 73.31 %, ResNet-50 76.13 %; mdistiller loads torchvision's first-release files,
docs/imagenet.md). torchvision's DEFAULT is V2 for resnet50 and mobilenet_v2, a later recipe, evaluated at
resize 232. Its weights come through torchvision's weights API: downloaded
into the torch hub cache the first time with the hash in the file name verified, then read with
weights_only=True, so the file cannot run code.
"""
from torchvision.models import get_model_weights

from models.imagenet import TORCHVISION_NAMES
from utils.errors import UserError
from utils.data.imagenet_recipe import IMAGENET_MEAN, IMAGENET_STD, RESIZE_RATIO
from utils.process import distributed
from utils.runs.checkpoint import load_weights

PREFIX = "torchvision:"
BY_TORCHVISION_NAME = {tv_name: name for name, tv_name in TORCHVISION_NAMES.items()}
PINNED_WEIGHTS = "IMAGENET1K_V1"  # the literature's teachers (above); the tests pin it for every network


def is_torchvision_teacher(teacher_path: str) -> bool:
    return teacher_path.startswith(PREFIX)


def resolve_torchvision_teacher(teacher_path: str, dataset: str):
    """(architecture, the weights enum, run-name label) of `torchvision:<name>[:<weights>]`."""
    if dataset != "imagenet":
        raise UserError(f"--teacher-path {teacher_path} is an ImageNet teacher: pass --dataset imagenet")
    tv_name, _, weights_name = teacher_path[len(PREFIX):].partition(":")
    if tv_name not in BY_TORCHVISION_NAME:
        raise UserError(f"unknown torchvision teacher {tv_name!r}; choose one of: "
                        f"{', '.join(PREFIX + name for name in BY_TORCHVISION_NAME)}")
    choices = get_model_weights(tv_name)
    weights = choices.__members__.get(weights_name or PINNED_WEIGHTS)
    if weights is None:
        raise UserError(f"torchvision has no weights {weights_name!r} for {tv_name}; choose one of: "
                        f"{', '.join(f'{PREFIX}{tv_name}:{w.name}' for w in choices)}")
    return BY_TORCHVISION_NAME[tv_name], weights, f"torchvision_{weights.name}"


def spelled(arch: str, weights) -> str:
    """The one spelling of a torchvision teacher that names its weights: what the run records and compares."""
    return f"{PREFIX}{TORCHVISION_NAMES[arch]}:{weights.name}"


def stated_accuracy(weights) -> dict:
    """torchvision's stated ImageNet-1K top-1 and top-5 (%) for these weights."""
    metrics = weights.meta["_metrics"]["ImageNet-1K"]
    return {"top1": metrics["acc@1"], "top5": metrics["acc@5"]}


def transform_difference(arch: str, weights, image_size: int):
    """None when this run's validation transform (resize image_size x 256/224, centre crop, bilinear, ImageNet's
    mean and std) is the one the weights were evaluated with; else a line saying how it differs."""
    expected = weights.transforms()
    ours = (round(image_size * RESIZE_RATIO), image_size, list(IMAGENET_MEAN), list(IMAGENET_STD), "bilinear")
    theirs = (expected.resize_size[0], expected.crop_size[0], list(expected.mean), list(expected.std),
              expected.interpolation.value)
    if ours == theirs:
        return None
    return (f"note: torchvision evaluated {TORCHVISION_NAMES[arch]} {weights.name} with a resize to {theirs[0]} and a "
            f"centre crop of {theirs[1]}; this run's validation resizes to {ours[0]} and crops {ours[1]}, so the "
            f"teacher accuracy measured here need not match the stated {stated_accuracy(weights)['top1']:.2f}")


def load_torchvision_weights(model, weights, arch: str) -> None:
    if distributed.active():  # rank 0 downloads first (a failure ends every rank); the others read its cache
        distributed.on_main(lambda: read_weights(weights))
    load_weights(model, read_weights(weights), arch, weights.url)


def read_weights(weights) -> dict:
    try:
        return weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as exc:  # no network, a bad hash, an unsafe or damaged cached file: one remedy
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UserError(f"cannot load torchvision's {weights} weights from {weights.url} ({reason}); "
                        f"with no network, put the file in the torch hub cache (torch.hub.get_dir()/checkpoints)") from None
