"""A student's teacher: found from --teacher-path (a run folder, a checkpoint file or torchvision:<name>),
built and loaded strictly, in eval mode."""
import re
from pathlib import Path

from models import imagenet, model_dict
from utils.errors import UserError
from utils.runs.checkpoint import extract_state_dict, load_checkpoint, load_weights, sha256_of
from utils.runs.runnames import read_summary
from utils.teachers.importing import arch_from_name
from utils.teachers.torchvision_zoo import (is_torchvision_teacher, load_torchvision_weights, resolve_torchvision_teacher,
                                           spelled, stated_accuracy, transform_difference)
from utils.training.build import check_arch, make_model
from utils.training.iteration import evaluate


def resolve_teacher(teacher_path: str, teacher_arch, teacher_ckpt: str, dataset: str = "cifar100"):
    """(architecture, checkpoint file, label for the run name) from --teacher-path and friends."""
    path = Path(teacher_path)
    if path.is_dir():
        refuse_student_run(path)
        file = path / "ckpt" / f"{teacher_ckpt}.pth"
        if not file.is_file():
            raise UserError(f"no checkpoint {file} in teacher directory {path} (see --teacher-ckpt)")
        label = teacher_ckpt
    elif path.is_file():
        if teacher_arch is None:
            refuse_student_checkpoint(path)
        file, label = path, path.stem
    else:
        raise UserError(f"--teacher-path {path} does not exist; give a teacher run directory or a checkpoint file")
    arch = teacher_arch or arch_from_name(file, imagenet.MODELS if dataset == "imagenet" else model_dict)
    if arch is None:
        raise UserError(f"cannot tell the teacher's architecture from {file}; pass --teacher-arch")
    check_arch(arch, "--teacher-arch", dataset)
    return arch, file, label


def student_run_arch(folder: Path):
    """The student's architecture when `folder` is a student_v0.py run (its summary.json, else its name),
    else None."""
    summary = read_summary(folder)
    if summary is not None and "student_arch" in summary:
        return str(summary["student_arch"])
    named = re.match(r"v0_student_(.+?)_teacher_", folder.name)
    return named.group(1) if named else None


def teacher_run_tag(teacher_path: str):
    """The --tag of the run that trained the teacher (--teacher-path its folder, or a checkpoint in its ckpt/),
    from its summary.json; None for an untagged run, a published file or a torchvision teacher."""
    path = Path(teacher_path)
    folder = path if path.is_dir() else path.parent.parent if path.parent.name == "ckpt" else None
    if is_torchvision_teacher(teacher_path) or folder is None:
        return None
    started = (read_summary(folder) or {}).get("args")  # no summary (a file laid out by hand): no tag known
    tag = started.get("tag") if isinstance(started, dict) else None
    return tag if isinstance(tag, str) and tag else None


def refuse_student_run(folder: Path) -> None:
    student = student_run_arch(folder)
    if student is not None:
        raise UserError(f"--teacher-path {folder} is a student run (student_v0.py distilled a {student} there), not "
                        f"a teacher: give a teacher run (experiments/teacher_<arch>/) or a teacher's checkpoint; to "
                        f"distil from this student, give {folder / 'ckpt' / 'student_best.pth'} --teacher-arch {student}")


def refuse_student_checkpoint(file: Path) -> None:
    """A student's file would otherwise get an architecture guessed from the teacher named in its folder."""
    student = student_run_arch(file.parent.parent) or (file.stem if file.name == "student_best.pth" else None)
    if student is None:
        return
    arch = student if student != "student_best" else "ARCH"
    raise UserError(f"--teacher-path {file} is a student's checkpoint (written by student_v0.py), not a teacher's; "
                    f"to distil from this student anyway, pass --teacher-arch {arch}")


def weights_identity(source) -> str:
    """What names a teacher's weights in a student's summary.json, so that a resume with other weights is
    refused: the file's sha256, or torchvision's weights URL (whose file name holds their hash)."""
    return f"sha256:{sha256_of(source)}" if isinstance(source, Path) else source.url


def load_teacher(arch: str, file: Path, device, compile: bool = False, num_classes: int = 100):
    """Build the architecture on `device` and load the weights strictly, in eval mode for distillation."""
    model = make_model(arch, device, compile, num_classes)
    load_weights(model, extract_state_dict(load_checkpoint(file, map_location=device), file), arch, file)
    return model.eval()


def teacher_source(args):
    """(architecture, where its weights come from, run-name label) of student_v0.py's --teacher-path.

    A torchvision teacher's --teacher-path is rewritten to name its weights (torchvision:resnet34 becomes
    torchvision:resnet34:IMAGENET1K_V1), so that both spellings resume the same run and the run records which."""
    if is_torchvision_teacher(args.teacher_path):
        arch, weights, label = resolve_torchvision_teacher(args.teacher_path, args.dataset)
        args.teacher_path = spelled(arch, weights)
        return arch, weights, label
    return resolve_teacher(args.teacher_path, args.teacher_arch, args.teacher_ckpt, args.dataset)


def evaluate_teacher(args, teacher, arch: str, source, test_loader) -> dict:
    """Score the teacher on the test split, print the teacher line, and return summary.json's teacher fields."""
    _, accuracy, *top5 = evaluate(teacher, test_loader, args.amp, top5=args.dataset == "imagenet")
    record, origin = {"teacher_arch": arch, "teacher_acc": accuracy}, str(source)
    notes = []
    if is_torchvision_teacher(args.teacher_path):
        stated, difference = stated_accuracy(source), transform_difference(arch, source, args.image_size)
        record["teacher_weights"] = {"name": args.teacher_path, "stated_acc": stated["top1"],
                                     "stated_acc5": stated["top5"], "same_eval_transform": difference is None}
        origin = f"{args.teacher_path} (torchvision states top-1 {stated['top1']:.2f}, top-5 {stated['top5']:.2f})"
        notes = [difference] if difference else []
    shown = f"test accuracy {accuracy:.2f}"
    if top5:
        record["teacher_acc5"] = top5[0]
        shown += f", top-5 {top5[0]:.2f}"
    print(f"teacher: {arch} from {origin}, {shown}", *notes, sep="\n")
    return record


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
