"""ImageNet in the ImageFolder layout: checks, and the default loader (torchvision, PIL in worker processes).

The loaders offer the trainer's interface (plans() then assemble(plan), as utils.data.loader.DeviceLoader):
a plan is the batch's dataset indices on the device, and assemble returns the batch read with it.
The workers decode and crop to uint8 (utils.data.imagenet_recipe) and ship those, pinned, a quarter of the
bytes of float32; the device converts and normalises them. Workers persist across epochs, so each index
travels with its epoch (EpochSampler) and the workers draw that epoch's crops. `--loader dali`
(utils.data.dali) is the other loader.
"""
import itertools
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler
from torchvision import datasets

from utils.data.imagenet_recipe import IMAGENET_MEAN, IMAGENET_STD, image_generator, train_crop, val_crop
from utils.data.loader import normalize_uint8
from utils.data.shares import rank_indices
from utils.data.synthetic_imagenet import class_folder
from utils.data.unreadable import UnreadableImages, stand_in
from utils.errors import UserError
from utils.process import distributed
from utils.process.preemption import leave_stops_to_the_main_process

PREFETCH_BATCHES = 4  # per worker: hides a slow file without much memory (uint8: 4.8 MB a batch of 32 at 224)


def image_folder_kind(root) -> str:
    """'synthetic' for an ImageFolder utils.data.synthetic_imagenet wrote (told by its train/ class folders, n00000000,
    n00000001, ...: WordNet ids no ImageNet class has), else 'imagenet'."""
    classes = sorted(entry.name for entry in (Path(root) / "train").iterdir() if entry.is_dir())
    return "synthetic" if classes == [class_folder(c) for c in range(len(classes))] else "imagenet"


def check_image_folder(root) -> None:
    """<root>/train/<class>/ and <root>/val/<class>/ with the same classes, or one clear error."""
    root = Path(root)
    layout = f"expected {root}/train/<class>/*.JPEG and {root}/val/<class>/*.JPEG (see docs/imagenet.md)"
    classes = {}
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir():
            raise UserError(f"ImageNet folder {folder} not found: {layout}")
        classes[split] = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
        if not classes[split]:
            raise UserError(f"{folder} holds no class folders: {layout}")
    if classes["train"] != classes["val"]:
        only = sorted(set(classes["train"]) ^ set(classes["val"]))
        raise UserError(f"{root}/train and {root}/val have different class folders ({len(only)} in one only, "
                        f"e.g. {only[:3]}): {layout}")


class IndexedImageFolder(datasets.ImageFolder):
    """Item (epoch, index) -> (uint8 crop, label, index, None), or (None, label, index, (path, reason)) for a
    file no decoder reads. Training crops are drawn from the image's own generator (seed, epoch, index)."""

    def __init__(self, root, image_size: int, train: bool, seed: int = 0):
        try:
            super().__init__(str(root))
        except (FileNotFoundError, RuntimeError) as exc:  # torchvision's words for an empty class folder
            raise UserError(f"cannot read ImageFolder {root}: {exc}") from None
        self.image_size, self.train, self.seed = image_size, train, seed

    def __getitem__(self, key):
        epoch, index = key
        path, label = self.samples[index]
        try:
            with Image.open(path) as file:  # by content: a PNG or a CMYK JPEG named .JPEG reads too
                image = file.convert("RGB")
        except (OSError, ValueError, SyntaxError) as exc:  # empty, truncated, not an image
            return None, label, index, (path, f"{type(exc).__name__}: {exc}")
        if self.train:
            crop = train_crop(image, image_generator(self.seed, epoch, len(self), index), self.image_size)
        else:
            crop = val_crop(image, self.image_size)
        return crop, label, index, None


class EpochSampler:
    """(epoch, index) pairs: the epoch travels with each index to the persistent workers."""

    def __init__(self, indices):
        self.indices, self.epoch, self.skip = indices, 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """The epoch's order, less its first `skip` indices (a run resumed mid-epoch: they are not read again)."""
        self.epoch, self.skip = epoch, skip
        if isinstance(self.indices, DistributedSampler):
            self.indices.set_epoch(epoch)

    def __iter__(self):
        epoch = self.epoch
        return ((epoch, index) for index in itertools.islice(self.indices, self.skip, None))

    def __len__(self) -> int:
        return len(self.indices)


def collate_uint8(items):
    """The readable crops as one uint8 batch, their labels and indices; the unreadable files' (index, path, reason)."""
    kept = [item for item in items if item[0] is not None]
    skipped = [(item[2], *item[3]) for item in items if item[0] is None]
    if not kept:
        nothing = torch.empty(0, dtype=torch.int64)
        return nothing.to(torch.uint8), nothing, nothing, skipped
    images, labels, indices, _ = zip(*kept)
    return torch.stack(images), torch.tensor(labels), torch.tensor(indices), skipped


class ImageFolderLoader:
    """One rank's share of a split, batch by batch, in the trainer's plans()/assemble() interface."""

    def __init__(self, dataset: IndexedImageFolder, local_batch: int, device, seed: int, workers: int,
                 channels_last: bool = True):
        self.dataset, self.device, self.train = dataset, torch.device(device), dataset.train
        self.num_samples = len(dataset)  # the whole split: images per second and the counter's columns
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.sampler = EpochSampler(rank_indices(len(dataset), self.train, seed))
        self.loader = DataLoader(dataset, batch_size=local_batch, sampler=self.sampler, num_workers=workers,
                                 collate_fn=collate_uint8, pin_memory=self.device.type == "cuda",
                                 persistent_workers=workers > 0, prefetch_factor=PREFETCH_BATCHES if workers else None,
                                 worker_init_fn=leave_stops_to_the_main_process,
                                 generator=torch.Generator().manual_seed(seed))  # its draw would move torch's
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device)
        self.std = torch.tensor(IMAGENET_STD, device=self.device)
        self.unreadable = UnreadableImages("train" if self.train else "val")
        self.epoch, self._batch = 0, None

    def __len__(self) -> int:
        return len(self.loader)

    def plans(self, first_batch: int = 0):
        """The epoch's batches from batch `first_batch` on; the ones before it are neither read nor decoded
        (each crop is drawn from its own image's generator, so the rest come out as they would have)."""
        self.sampler.set_epoch(self.epoch, skip=first_batch * self.loader.batch_size)
        if self.train:
            self.epoch += 1
        for images, labels, indices, skipped in self.loader:
            for _, path, reason in skipped:
                self.unreadable.skip(path, reason)
            if not len(indices):  # every file unreadable: validation goes on without it, training takes a stand-in
                if not self.train:
                    continue
                images, labels, indices = stand_in(skipped[0][0], len(self.dataset), self._read_alone)
            self._batch = (images, labels)
            yield indices.to(self.device, non_blocking=True)
        self.unreadable.end_pass()

    def _read_alone(self, index: int):
        """A batch of the one image `index` of this epoch, read here (rare: a stand-in), or None if unreadable."""
        crop, label, index, failed = self.dataset[(self.sampler.epoch, index)]
        return None if failed else (crop[None], torch.tensor([label]), torch.tensor([index]))

    def assemble(self, plan: torch.Tensor):
        """The batch plans() last yielded, on the device: uint8 from the workers, normalised here."""
        images, labels = self._batch
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        return normalize_uint8(images, self.mean, self.std), labels.to(self.device, non_blocking=True), plan

    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]


def make_imagenet_loaders(args, device):
    check_image_folder(args.data_root)
    root = Path(args.data_root)
    local = distributed.local_batch_size(args.batch_size)
    train_set = IndexedImageFolder(root / "train", args.image_size, train=True, seed=args.seed)
    val_set = IndexedImageFolder(root / "val", args.image_size, train=False)
    if len(val_set) < distributed.world_size():  # a rank without val images would wait for the others forever
        raise UserError(f"{root}/val holds {len(val_set)} images, fewer than the {distributed.world_size()} processes")
    loaders = [split_loader(args.loader, split, local, device, args.seed, args.workers) for split in (train_set, val_set)]
    print(f"data: {root} ({len(train_set)} train / {len(val_set)} val images, {len(train_set.classes)} classes; "
          f"{distributed.world_size()} process(es) x batch {local}; {args.loader} loader)")
    return loaders


def split_loader(name: str, dataset: IndexedImageFolder, local_batch: int, device, seed: int, workers: int):
    """One split's loader of --loader `name`: torchvision's (ImageFolderLoader) or DALI's."""
    if name == "dali":
        from utils.data.dali import DaliLoader

        return DaliLoader(dataset, local_batch, device, seed, workers)
    return ImageFolderLoader(dataset, local_batch, device, seed, workers)
