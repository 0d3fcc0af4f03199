"""A torchvision-pretrained teacher, named `--teacher-path torchvision:<name>` (e.g. torchvision:resnet34).

Its weights come through torchvision's weights API: downloaded into the torch hub cache the first time
with the hash in the file name verified, then read with weights_only=True, so the file cannot run code.
"""
from torchvision.models import get_model_weights

from models.imagenet import TORCHVISION_NAMES
from utils.errors import UserError
from utils.process import distributed
from utils.runs.checkpoint import load_weights

PREFIX = "torchvision:"
BY_TORCHVISION_NAME = {tv_name: name for name, tv_name in TORCHVISION_NAMES.items()}


def is_torchvision_teacher(teacher_path: str) -> bool:
    return teacher_path.startswith(PREFIX)


def resolve_torchvision_teacher(teacher_path: str, dataset: str):
    """(architecture, the weights enum, run-name label) of `torchvision:<name>`."""
    if dataset != "imagenet":
        raise UserError(f"--teacher-path {teacher_path} is an ImageNet teacher: pass --dataset imagenet")
    tv_name = teacher_path[len(PREFIX):]
    if tv_name not in BY_TORCHVISION_NAME:
        raise UserError(f"unknown torchvision teacher {tv_name!r}; choose one of: "
                        f"{', '.join(PREFIX + name for name in BY_TORCHVISION_NAME)}")
    return BY_TORCHVISION_NAME[tv_name], get_model_weights(tv_name).DEFAULT, "torchvision"


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
