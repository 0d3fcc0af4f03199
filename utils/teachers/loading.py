"""A student's teacher: found from --teacher-path (a run folder, a checkpoint file or torchvision:<name>),
built and loaded strictly, in eval mode."""
from pathlib import Path

from models import imagenet, model_dict
from utils.errors import UserError
from utils.runs.checkpoint import extract_state_dict, load_checkpoint, load_weights
from utils.teachers.importing import arch_from_name
from utils.teachers.torchvision_zoo import is_torchvision_teacher, load_torchvision_weights, resolve_torchvision_teacher
from utils.training.build import check_arch, make_model


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


def teacher_source(args):
    """(architecture, where its weights come from, run-name label) of student_v0.py's --teacher-path."""
    if is_torchvision_teacher(args.teacher_path):
        return resolve_torchvision_teacher(args.teacher_path, args.dataset)
    return resolve_teacher(args.teacher_path, args.teacher_arch, args.teacher_ckpt, args.dataset)


def build_teacher(args, arch: str, source, device, classes: int):
    """The teacher of teacher_source(), loaded and in eval mode, for data of `classes` classes."""
    if args.dataset == "cifar100":
        return load_teacher(arch, source, device, args.compile)
    if is_torchvision_teacher(args.teacher_path):
        if classes != 1000:
            raise UserError(f"{args.teacher_path} predicts ImageNet's 1000 classes, {args.data_root} has {classes}")
        teacher = make_model(arch, device, args.compile, 1000)
        load_torchvision_weights(teacher, source, arch)
        return teacher.eval()
    return load_teacher(arch, source, device, args.compile, classes)
