"""Published teachers laid out as finished teacher runs: EXPERIMENTS_DIR/teacher_<arch>/ckpt/best.pth.

Every file is checked (read with weights_only=True, loaded strictly into its architecture) and staged
in a hidden folder of EXPERIMENTS_DIR before any teacher folder changes, so a bad file among several
leaves every folder as it was.
"""
import json
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from models import model_dict
from utils.errors import UserError
from utils.runs.checkpoint import atomic_save, extract_state_dict, load_checkpoint, load_weights, sha256_of
from utils.runs.rundir import RunDirectory
from utils.runs.runnames import IMPORTED, SUMMARY_FILE, is_imported, read_summary, teacher_run_name
from utils.training.build import check_arch

CHECKPOINT_SUFFIXES = (".pth", ".pt")
STORED_ACC_KEYS = ("best_acc", "accuracy", "acc", "test_acc")  # CRD best, CRD epoch files, the authors' and ours, others


@dataclass
class Source:
    """One checkpoint to import: its name (file, or archive:member) and where it can be read now."""

    name: str
    arch: Optional[str]
    file: Optional[Path] = None        # a file on disk
    archive: Optional[Path] = None     # or a member of this tar
    member: Optional[str] = None


@dataclass
class Checked:
    """A source that loaded strictly into its architecture."""

    source: Source
    state_dict: dict
    sha256: str
    stored_acc: Optional[float]
    stored_epoch: Optional[int]


def arch_from_name(path: Path, names=model_dict):
    """The architecture named by a file or its folders: vgg13.pth, resnet32x4_vanilla/ckpt_epoch_240.pth,
    teacher_wrn_40_2/ckpt/best.pth. Longest name first, so resnet8x4 is not read as resnet8."""
    for part in [path.stem] + [p.name for p in list(path.parents)[:2]]:
        for arch in sorted(names, key=len, reverse=True):
            if re.search(rf"(^|[_\-.]){re.escape(arch)}($|[_\-.])", part):
                return arch
    return None


def is_checkpoint_name(name: str) -> bool:
    # Hidden files are skipped: an archive made on a Mac holds a ._ckpt_epoch_240.pth beside each file.
    return name.endswith(CHECKPOINT_SUFFIXES) and not Path(name).name.startswith(".")


def find_sources(paths, arch: Optional[str]) -> list:
    """Every checkpoint named by the paths: files, folders (searched) and tar archives (their members)."""
    sources = []
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"{path} does not exist; give checkpoint files, folders of them or .tar archives")
        if path.is_dir():
            found = [Source(str(file), arch_from_name(file), file=file)
                     for file in sorted(path.rglob("*")) if file.is_file() and is_checkpoint_name(file.name)]
        elif tarfile.is_tarfile(path):
            found = archive_sources(path)
        else:
            found = [Source(str(path), arch_from_name(path), file=path)]
        if not found:
            raise UserError(f"{path} holds no checkpoint ({' or '.join(CHECKPOINT_SUFFIXES)} file)")
        sources += found
    if arch is not None:
        check_arch(arch, "--arch")
        if len(sources) > 1:
            raise UserError(f"--arch names the architecture of a single file, but {len(sources)} checkpoints were "
                            "given; import them one at a time, or let their names tell the architectures")
        sources[0].arch = arch
    return sources


def archive_sources(archive: Path) -> list:
    try:
        with tarfile.open(archive) as tar:
            members = [member.name for member in tar.getmembers() if member.isfile() and is_checkpoint_name(member.name)]
    except (tarfile.TarError, OSError) as error:
        raise UserError(f"cannot read archive {archive}: {error}") from None
    return [Source(f"{archive}:{name}", arch_from_name(Path(name)), archive=archive, member=name) for name in members]


def check_names(sources) -> None:
    for source in sources:
        if source.arch is None:
            raise UserError(f"cannot tell the architecture of {source.name} from its name (known: "
                            f"{', '.join(model_dict)}); import it on its own with --arch")
    seen = {}
    for source in sources:
        if source.arch in seen:
            raise UserError(f"two checkpoints of {source.arch}: {seen[source.arch]} and {source.name}; "
                            "import one of them")
        seen[source.arch] = source.name


def materialize(source: Source, staging: Path, number: int) -> Path:
    """A file holding the source's bytes: the file itself, or the archive member copied into staging."""
    if source.file is not None:
        return source.file
    copy = staging / f"source-{number}.pth"
    with tarfile.open(source.archive) as tar, open(copy, "wb") as out:
        shutil.copyfileobj(tar.extractfile(source.member), out)
    return copy


def stored_number(checkpoint, keys):
    """A number saved beside the weights under one of `keys` (a float, int or one-element tensor); None if none."""
    if not isinstance(checkpoint, dict):
        return None
    for key in keys:
        value = checkpoint.get(key)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    return None


def check_source(source: Source, staging: Path, number: int) -> Checked:
    file = materialize(source, staging, number)
    checkpoint = load_checkpoint(file, name=source.name)
    state_dict = extract_state_dict(checkpoint, source.name)
    load_weights(model_dict[source.arch](num_classes=100), state_dict, source.arch, source.name)
    accuracy, epoch = stored_number(checkpoint, STORED_ACC_KEYS), stored_number(checkpoint, ("epoch",))
    # round(): a float32 tensor's 72.34 reads back as 72.33999633789062.
    return Checked(source, state_dict, sha256_of(file), None if accuracy is None else round(float(accuracy), 4),
                   None if epoch is None else int(epoch))


def describe_existing(folder: Path) -> Optional[str]:
    """What a teacher folder already holds, in words; None when it holds no teacher."""
    summary = read_summary(folder)
    if is_imported(summary):
        return f"a published teacher imported from {summary[IMPORTED].get('source')}"
    if summary is not None and "epochs_done" in summary:
        return f"a teacher trained here ({summary['epochs_done']}/{summary.get('args', {}).get('epoch', '?')} epochs)"
    if RunDirectory(folder).holds_run():
        return "checkpoints"
    return None


def check_targets(experiments: Path, sources, force: bool) -> list:
    """The teacher folders that will be replaced; refuses (one line for all) any that hold a teacher."""
    conflicts, replaced = [], []
    for source in sources:
        folder = experiments / teacher_run_name(source.arch, 0)
        held = describe_existing(folder) if folder.is_dir() else None
        if held and not force:
            conflicts.append(f"{folder} already holds {held}")
        if folder.exists():
            replaced.append(folder)
    if conflicts:
        raise UserError("; ".join(conflicts) + ": nothing imported (--force replaces them)")
    return replaced


def write_teacher(staged: Path, checked: Checked, measured, archive: Optional[dict]) -> dict:
    """Stage a teacher folder: ckpt/best.pth (the weights alone) and a summary.json marking it imported."""
    accuracy = measured["test_acc"] if measured else checked.stored_acc
    record = {"source": checked.source.name, "sha256": checked.sha256, "stored_acc": checked.stored_acc,
              "stored_epoch": checked.stored_epoch, "measured": measured}
    if archive:
        record["archive"] = archive
    atomic_save({"state_dict": checked.state_dict, "acc": accuracy}, staged / "ckpt" / "best.pth")
    summary = {"arch": checked.source.arch, IMPORTED: record, "best_acc": accuracy, "last_acc": None,
               "finished": True}
    (staged / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return summary


def move_into_place(staged: Path, folder: Path, trash: Path) -> None:
    if folder.exists():
        folder.replace(trash)
    staged.replace(folder)


def import_teachers(paths, experiments: Path, *, arch=None, force=False, measure=None, archive=None) -> list:
    """Import every checkpoint the paths name; [(folder, summary)]. measure(arch, state_dict) gives the
    measured test accuracy record, or None without the data."""
    sources = find_sources(paths, arch)
    check_names(sources)
    experiments.mkdir(parents=True, exist_ok=True)
    replaced = check_targets(experiments, sources, force)
    staging = Path(tempfile.mkdtemp(dir=experiments, prefix=".import-"))
    locks = []
    try:
        for folder in replaced:  # a live teacher.py run in a folder to replace: refuse before anything moves
            lock = RunDirectory(folder)
            lock.acquire()
            locks.append(lock)
        checked = [check_source(source, staging, number) for number, source in enumerate(sources)]
        staged = []
        for item in checked:
            folder_name = teacher_run_name(item.source.arch, 0)
            measured = measure(item.source.arch, item.state_dict) if measure else None
            staged.append((folder_name, write_teacher(staging / folder_name, item, measured, archive)))
        for number, (folder_name, _) in enumerate(staged):
            move_into_place(staging / folder_name, experiments / folder_name, staging / f"replaced-{number}")
        return [(experiments / folder_name, summary) for folder_name, summary in staged]
    finally:
        for lock in locks:
            lock.release()
        shutil.rmtree(staging, ignore_errors=True)
