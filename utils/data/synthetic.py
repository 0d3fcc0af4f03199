"""A small, learnable stand-in for CIFAR-100, written in the official python pickle format.

Each class has a fixed prototype: a mean colour plus a smooth, left-right symmetric colour layout
(a coarse random grid, bilinearly upsampled). An image is its class prototype seen through a small
random shift, with brightness/colour jitter and pixel noise. The signal is low-frequency and mirror
symmetric, so it survives the training crops (up to 4 pixels) and flips, and a small CNN learns it
within an epoch or two even from a few images per class.

Usage: python -m utils.synthetic --out DIR [--train-per-class N] [--test-per-class N] [--seed S]
"""

import pickle
from pathlib import Path

import numpy as np

from utils.errors import UserError
from utils.process.cli import ArgumentParser, run_main

NUM_CLASSES = 100
NUM_SUPERCLASSES = 20
SIZE = 32
MAX_SHIFT = 3  # pixels each way that an image's view of its prototype may move
GRID = 3  # prototype layout is a GRID x GRID colour grid before upsampling
FOLDER = "cifar-100-python"


def write_synthetic_cifar100(root, train_per_class=50, test_per_class=10, seed=0) -> Path:
    """Write `<root>/cifar-100-python/{train,test,meta}`; same seed, same bytes. Returns the root."""
    if train_per_class < 1 or test_per_class < 1:
        raise UserError(f"images per class must be positive, got train {train_per_class}, test {test_per_class}")
    if seed < 0:
        raise UserError(f"the seed must be a non-negative integer, got {seed}")
    rng = np.random.default_rng(seed)
    prototypes = _class_prototypes(rng)
    folder = Path(root) / FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _dump(folder / "train", _split(prototypes, train_per_class, "train", "training batch 1 of 1", rng))
        _dump(folder / "test", _split(prototypes, test_per_class, "test", "testing batch 1 of 1", rng))
        _dump(folder / "meta", _meta())
    except OSError as exc:
        raise UserError(f"cannot write the synthetic set to {folder}: {exc.strerror or exc}") from exc
    return Path(root)


def _class_prototypes(rng: np.random.Generator) -> np.ndarray:
    """float (classes, 3, 32 + 2 * MAX_SHIFT, same) pixel values around mid-grey."""
    side = SIZE + 2 * MAX_SHIFT
    mean_colour = rng.normal(0.0, 45.0, size=(NUM_CLASSES, 3, 1, 1))
    half_grid = rng.normal(0.0, 40.0, size=(NUM_CLASSES, 3, GRID, (GRID + 1) // 2))
    grid = np.concatenate([half_grid, half_grid[..., : GRID // 2][..., ::-1]], axis=-1)  # mirror: flip-proof
    upsample = _bilinear_matrix(GRID, side)
    layout = upsample @ grid @ upsample.T
    return 128.0 + mean_colour + layout


def _bilinear_matrix(source: int, target: int) -> np.ndarray:
    """(target, source) matrix that linearly interpolates `source` samples onto `target` points."""
    positions = np.linspace(0.0, source - 1, target)
    return np.maximum(0.0, 1.0 - np.abs(positions[:, None] - np.arange(source)[None, :]))


def _render(prototypes: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, 3, 32, 32): each label's prototype, shifted, jittered and noisy."""
    # In chunks, so that a full-size set (50,000 images) never holds all its float noise at once.
    chunks = [_render_chunk(prototypes, labels[start : start + 1000], rng) for start in range(0, len(labels), 1000)]
    return np.concatenate(chunks)


def _render_chunk(prototypes: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    shifts = rng.integers(0, 2 * MAX_SHIFT + 1, size=(len(labels), 2))
    images = np.stack([prototypes[c, :, dy : dy + SIZE, dx : dx + SIZE] for c, (dy, dx) in zip(labels, shifts)])
    contrast = rng.uniform(0.8, 1.2, size=(len(labels), 1, 1, 1))
    colour_jitter = rng.normal(0.0, 10.0, size=(len(labels), 3, 1, 1))
    noise = 20.0 * rng.standard_normal(size=images.shape, dtype=np.float32)
    images = 128.0 + contrast * (images - 128.0) + colour_jitter + noise
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def _split(prototypes, per_class, name, batch_label, rng) -> dict:
    """One split as the official files hold it, images in shuffled class order."""
    fine = rng.permutation(np.repeat(np.arange(NUM_CLASSES), per_class))
    images = _render(prototypes, fine, rng)
    return {
        "filenames": [f"synthetic_{name}_class_{label:02d}_s_{i:06d}.png" for i, label in enumerate(fine)],
        "batch_label": batch_label,
        "fine_labels": fine.tolist(),
        "coarse_labels": (fine // (NUM_CLASSES // NUM_SUPERCLASSES)).tolist(),
        "data": images.reshape(len(fine), -1),  # channel-planar rows of 3072 bytes, as in the official files
    }


def _meta() -> dict:
    return {
        "fine_label_names": [f"class_{c:02d}" for c in range(NUM_CLASSES)],
        "coarse_label_names": [f"superclass_{c:02d}" for c in range(NUM_SUPERCLASSES)],
    }


def _dump(path: Path, content: dict) -> None:
    with open(path, "wb") as file:
        pickle.dump(content, file)


def _parse(argv):
    parser = ArgumentParser(prog="python -m utils.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="root folder; files go to OUT/cifar-100-python")
    parser.add_argument("--train-per-class", type=int, default=50, help="training images per class (default 50)")
    parser.add_argument("--test-per-class", type=int, default=10, help="test images per class (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files (default 0)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    root = write_synthetic_cifar100(args.out, args.train_per_class, args.test_per_class, args.seed)
    print(
        f"wrote synthetic CIFAR-100 to {root / FOLDER}: {NUM_CLASSES * args.train_per_class} train, "
        f"{NUM_CLASSES * args.test_per_class} test images, seed {args.seed}"
    )
    return 0


if __name__ == "__main__":
    run_main(main)
