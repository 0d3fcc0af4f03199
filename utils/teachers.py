"""Finding and loading a teacher: our run directories, the authors' files, the CRD zoo."""
import re
from pathlib import Path

from models import imagenet, model_dict
from utils.build import check_arch, make_model
from utils.checkpoint import extract_state_dict, load_checkpoint, load_weights
from utils.errors import UserError


def arch_from_name(path: Path, names=model_dict):
    """The architecture named by a file or its folders: vgg13.pth, resnet32x4_vanilla/ckpt_epoch_240.pth,
    teacher_wrn_40_2/ckpt/best.pth. Longest name first, so resnet8x4 is not read as resnet8."""
    for part in [path.stem] + [p.name for p in list(path.parents)[:2]]:
        for arch in sorted(names, key=len, reverse=True):
            if re.search(rf"(^|[_\-.]){re.escape(arch)}($|[_\-.])", part):
                return arch
    return None


def resolve_teacher(teacher_path: str, teacher_arch, teacher_ckpt: str, dataset: str = "cifar100"):
    """(architecture, checkpoint file, label for the run name) from --teacher-path and friends."""
    path = Path(teacher_path)
    if path.is_dir():
        file = path / "ckpt" / f"{teacher_ckpt}.pth"
        if not file.is_file():
            raise UserError(f"no checkpoint {file} in teacher directory {path} (see --teacher-ckpt)")
        label = teacher_ckpt
    elif path.is_file():
        file, label = path, path.stem
    else:
        raise UserError(f"--teacher-path {path} does not exist; give a teacher run directory or a checkpoint file")
    arch = teacher_arch or arch_from_name(file, imagenet.MODELS if dataset == "imagenet" else model_dict)
    if arch is None:
        raise UserError(f"cannot tell the teacher's architecture from {file}; pass --teacher-arch")
    check_arch(arch, "--teacher-arch", dataset)
    return arch, file, label


def load_teacher(arch: str, file: Path, device, compile: bool = False, num_classes: int = 100):
    """Build the architecture on `device` and load the weights strictly, in eval mode for distillation."""
    model = make_model(arch, device, compile, num_classes)
    load_weights(model, extract_state_dict(load_checkpoint(file, map_location=device), file), arch, file)
    return model.eval()
