"""A small ImageFolder of real JPEG files for trying the ImageNet path without ImageNet (tests, benchmarks).

    python -m utils.synthetic_imagenet --out /tmp/tiny-imagenet [--classes 10] [--train-per-class 12]

Images are noise around a per-class colour, of varied sizes, so a network can learn something in an epoch.
The class folders are n00000000, n00000001, ...: WordNet ids no ImageNet class has (theirs start at
n01440764), so a run's summary.json records such a folder as synthetic data (utils.data.imagenet.image_folder_kind).
"""
from pathlib import Path

import numpy as np
from PIL import Image

from utils.process.cli import ArgumentParser, run_main


def class_folder(index: int) -> str:
    return f"n{index:08d}"


def write_image_folder(root, classes=10, train_per_class=12, val_per_class=4, size=48, seed=0) -> Path:
    root, rng = Path(root), np.random.default_rng(seed)
    colours = rng.integers(0, 256, (classes, 3))
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = root / split / class_folder(c)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                height, width = rng.integers(size, 2 * size, 2)
                pixels = np.clip(colours[c] + rng.normal(0, 40, (height, width, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{split}_{c}_{i}.JPEG", quality=90)
    return root


def main(argv=None):
    parser = ArgumentParser(prog="python -m utils.synthetic_imagenet", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--train-per-class", type=int, default=12)
    parser.add_argument("--val-per-class", type=int, default=4)
    parser.add_argument("--size", type=int, default=48, help="shorter side lies in size..2*size-1 (default 48)")
    args = parser.parse_args(argv)
    root = write_image_folder(args.out, args.classes, args.train_per_class, args.val_per_class, args.size)
    print(f"wrote {root}/train and {root}/val")


if __name__ == "__main__":
    run_main(main)
