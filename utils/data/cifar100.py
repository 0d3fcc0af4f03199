"""CIFAR-100: reading the official python-format files, and the classic PIL/torchvision pipeline."""

import difflib
import pickle
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import datasets, transforms

from utils.errors import UserError

CIFAR100_MEAN = (0.5071, 0.4866, 0.4409)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)

NUM_CLASSES = 100
IMAGE_SIZE = 32
CROP_PADDING = 4
FOLDER = "cifar-100-python"
DOWNLOAD_STALL_SECONDS = 60
OFFICIAL_TRAIN_IMAGES = 50_000
OFFICIAL_TEST_IMAGES = 10_000
OFFICIAL_FIRST_CLASSES = ["apple", "aquarium_fish", "baby"]
SYNTHETIC_FIRST_CLASSES = ["class_00", "class_01", "class_02"]  # utils.data.synthetic's stand-in


@dataclass
class CifarArrays:
    """The whole data set in memory: images uint8 (N, 32, 32, 3) HWC, labels int64 (N,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list


def load_cifar100(root, download=True) -> CifarArrays:
    """Read `<root>/cifar-100-python/{train,test,meta}` (or root itself, when it is that folder);
    download them first only if the folder is missing.

    The files are read directly rather than through torchvision, whose reader insists on the official
    checksums; so a user's copy or a synthetic set in the same format works as well.
    """
    folder = data_folder(root)
    root = folder.parent
    if not folder.is_dir():
        _fetch(Path(root), folder, download)
    train_images, train_labels = _read_split(folder / "train")
    test_images, test_labels = _read_split(folder / "test")
    return CifarArrays(train_images, train_labels, test_images, test_labels, _read_class_names(folder / "meta"))


def data_folder(root) -> Path:
    """The folder holding the files: --data-root may name its parent (as documented) or the folder itself."""
    root = Path(root)
    holds_files = all((root / name).is_file() for name in ("train", "test", "meta"))
    return root if holds_files or root.name == FOLDER else root / FOLDER


def _fetch(root: Path, folder: Path, download: bool) -> None:
    # A --data-root that does not exist is likely mistyped: the synthetic set goes beside it, not into it.
    synthetic = (root if root.is_dir() else root.parent) / "synthetic"
    how_to = (
        f"copy the python-format files (train, test, meta) into {folder}, "
        f"or, for a trial run only, generate a synthetic stand-in with "
        f"`python -m utils.synthetic --out {synthetic}` and pass --data-root {synthetic}"
    )
    missing = "" if root.is_dir() else f" ({root} does not exist{close_match(root)})"
    if not download:
        raise UserError(f"CIFAR-100 not found in {folder}{missing}: {how_to}")
    created = [path for path in (root, *root.parents) if not path.exists()]
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_STALL_SECONDS)  # a network that drops packets fails instead of hanging
    try:
        # One archive holds both splits, so one call fetches everything (checksum-verified).
        datasets.CIFAR100(str(root), train=True, download=True)
    except Exception as exc:  # no network, a proxy, a bad archive: the user's remedy is the same
        if created:  # a failed start creates nothing: the folders the download made go, with its partial file
            shutil.rmtree(created[-1], ignore_errors=True)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"CIFAR-100 not found in {folder}{missing} and the download failed ({reason}): "
                        f"{how_to}") from exc
    finally:
        socket.setdefaulttimeout(previous_timeout)


def close_match(path: Path) -> str:
    """'; did you mean X?' for a folder beside `path` with a close name, or ''."""
    if not path.parent.is_dir():
        return ""
    names = [entry.name for entry in path.parent.iterdir() if entry.is_dir()]
    found = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    return f"; did you mean {path.parent / found[0]}?" if found else ""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays, and nothing else.

    The data set is a download too: like checkpoints (weights_only), its files must not be able to
    run code, which a plain pickle.load allows through any importable callable.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"missing CIFAR-100 file {path}")
    try:
        with open(path, "rb") as file:
            # latin1 decodes the Python 2 strings and numpy arrays of the official files; files
            # written by Python 3 load unchanged.
            content = _ArraysOnlyUnpickler(file, encoding="latin1").load()
    except Exception as exc:  # a damaged pickle can fail in many ways (EOFError, UnpicklingError, ...)
        raise UserError(f"cannot read CIFAR-100 file {path}: not a valid pickle ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:120]})") from None
    if not isinstance(content, dict):
        raise UserError(f"malformed CIFAR-100 file {path}: expected a dict, found {type(content).__name__}")
    return content


def _read_split(path: Path) -> tuple:
    content = _unpickle(path)
    for key in ("data", "fine_labels"):
        if key not in content:
            raise UserError(f"malformed CIFAR-100 file {path}: no '{key}' entry")
    data, labels = content["data"], np.asarray(content["fine_labels"])
    pixels = 3 * IMAGE_SIZE * IMAGE_SIZE
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise UserError(f"malformed CIFAR-100 file {path}: 'data' should be uint8 (N, {pixels}), found {found}")
    if len(data) == 0 or labels.shape != (len(data),):
        raise UserError(f"malformed CIFAR-100 file {path}: {len(data)} images but {labels.size} labels")
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise UserError(f"malformed CIFAR-100 file {path}: labels must be integers in 0..{NUM_CLASSES - 1}")
    # Rows are channel-planar (1024 red, 1024 green, 1024 blue); convert to HWC like PIL images.
    images = data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _read_class_names(path: Path) -> list:
    names = _unpickle(path).get("fine_label_names")
    if not isinstance(names, list) or len(names) != NUM_CLASSES:
        raise UserError(f"malformed CIFAR-100 file {path}: 'fine_label_names' should list {NUM_CLASSES} names")
    return [str(name) for name in names]


def dataset_kind(root) -> str:
    """'CIFAR-100', 'synthetic' (utils.data.synthetic's stand-in) or 'other', told by the class names in the meta file."""
    first = _read_class_names(data_folder(root) / "meta")[:3]
    return "CIFAR-100" if first == OFFICIAL_FIRST_CLASSES else "synthetic" if first == SYNTHETIC_FIRST_CLASSES else "other"


def classic_transform(train: bool) -> transforms.Compose:
    """The protocol's torchvision transforms: crop with zero padding and flip for training, then normalize."""
    augment = [transforms.RandomCrop(IMAGE_SIZE, padding=CROP_PADDING), transforms.RandomHorizontalFlip()]
    normalize = [transforms.ToTensor(), transforms.Normalize(CIFAR100_MEAN, CIFAR100_STD)]
    return transforms.Compose(augment + normalize if train else normalize)


class ClassicCIFAR100(torch.utils.data.Dataset):
    """The reference pipeline: one PIL image and torchvision transform per item; yields (image, label, index)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, train: bool):
        self.images = images
        self.labels = labels
        self.transform = classic_transform(train)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple:
        image = self.transform(Image.fromarray(self.images[index]))
        return image, int(self.labels[index]), index
