"""ImageNet in the ImageFolder layout: checks, the datasets, and a loader for the trainer.

The loader offers the trainer's interface (plans() then assemble(plan), as utils.data.loader.DeviceLoader):
a plan is the batch's dataset indices on the device, and assemble returns the batch read with it.
Each image's random crop and flip are a function of (seed, epoch, index) alone, so a run gives the same
batches whatever the number of worker processes, and a resumed run replays the following epochs exactly.
"""
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler
from torchvision import datasets
from torchvision.io import read_file

from utils.data.device_decode import DeviceDecoder
from utils.data.imagenet_recipe import seeded_draws, train_transform, val_transform
from utils.errors import UserError
from utils.process import distributed

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
    """(image, label, index); in training each image's augmentation is seeded by (seed, epoch, index)."""

    def __init__(self, root, transform, seed=None):
        try:
            super().__init__(str(root), transform=transform)
        except (FileNotFoundError, RuntimeError) as exc:  # torchvision's words for an empty class folder
            raise UserError(f"cannot read ImageFolder {root}: {exc}") from None
        self.seed, self.epoch = seed, 0

    def __getitem__(self, index: int):
        if self.seed is None:
            image, label = super().__getitem__(index)
        else:
            # The transforms draw from torch's global generator; forking it keeps the training run's own
            # random stream (UNIX's mixing) apart from how many images the loader has read.
            with seeded_draws(self.seed, self.epoch, len(self), index):
                image, label = super().__getitem__(index)
        return image, label, index


class EncodedImageFolder(IndexedImageFolder):
    """(the JPEG file's bytes, label, index): decoding and augmentation happen on the device (utils.data.device_decode)."""

    def __init__(self, root):
        super().__init__(root, transform=None)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        return read_file(path), label, index


class ImageFolderLoader:
    """One rank's share of a split, batch by batch, in the trainer's plans()/assemble() interface.

    Training: DistributedSampler (padding the split to equal shares) reshuffled each epoch; evaluation:
    every world_size-th image from the rank's own, no padding, so the summed metrics count each image once.
    """

    def __init__(self, dataset: IndexedImageFolder, local_batch: int, device, train: bool, seed: int, workers: int,
                 channels_last: bool = True, decoder=None):
        self.dataset, self.device, self.train = dataset, torch.device(device), train
        self.num_samples = len(dataset)  # the whole split: images per second and the counter's columns
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        world, me = distributed.world_size(), distributed.rank()
        if train:
            self.sampler = DistributedSampler(dataset, num_replicas=world, rank=me, shuffle=True, seed=seed)
        else:
            self.sampler = range(me, len(dataset), world)
        self.decoder = decoder  # DeviceDecoder: the batches hold JPEG bytes
        self.loader = DataLoader(dataset, batch_size=local_batch, sampler=self.sampler, num_workers=workers,
                                 pin_memory=self.device.type == "cuda" and decoder is None, persistent_workers=False,
                                 collate_fn=keep_encoded if decoder else None)
        self.epoch, self._batch = 0, None

    def __len__(self) -> int:
        return len(self.loader)

    def plans(self):
        drawn_epoch = self.epoch
        if self.train:
            self.sampler.set_epoch(self.epoch)
            self.dataset.epoch = self.epoch  # before the workers start: each takes a copy of the dataset
            self.epoch += 1
        for images, labels, indices in self.loader:
            self._batch = (images, labels, indices, drawn_epoch)
            yield indices.to(self.device, non_blocking=True)

    def assemble(self, plan: torch.Tensor):
        """The batch plans() last yielded, on the device: the images come from the workers, not from the plan."""
        images, labels, indices, epoch = self._batch
        if self.decoder is not None:
            images = self.decoder(images, indices, epoch)
        x = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        return x, labels.to(self.device, non_blocking=True), plan

    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]


def keep_encoded(batch):
    """Collate JPEG byte strings of different lengths as a list; labels and indices as tensors."""
    encoded, labels, indices = zip(*batch)
    return list(encoded), torch.tensor(labels), torch.tensor(indices)


def make_imagenet_loaders(args, device):
    check_image_folder(args.data_root)
    root = Path(args.data_root)
    local = distributed.local_batch_size(args.batch_size)
    if args.gpu_decode and device.type == "cuda":
        train_set, val_set = EncodedImageFolder(root / "train"), EncodedImageFolder(root / "val")
        decoders = [DeviceDecoder(args.image_size, device, split is train_set, args.seed, len(split))
                    for split in (train_set, val_set)]
    else:
        if args.gpu_decode:
            warnings.warn(f"--gpu-decode needs CUDA; decoding in CPU workers on the {device.type}", stacklevel=2)
        train_set = IndexedImageFolder(root / "train", train_transform(args.image_size), seed=args.seed)
        val_set = IndexedImageFolder(root / "val", val_transform(args.image_size))
        decoders = [None, None]
    if len(val_set) < distributed.world_size():  # a rank without val images would wait for the others forever
        raise UserError(f"{root}/val holds {len(val_set)} images, fewer than the {distributed.world_size()} processes")
    train = ImageFolderLoader(train_set, local, device, True, args.seed, args.workers, decoder=decoders[0])
    val = ImageFolderLoader(val_set, local, device, False, args.seed, args.workers, decoder=decoders[1])
    print(f"data: {root} ({len(train_set)} train / {len(val_set)} val images, {len(train_set.classes)} classes; "
          f"{distributed.world_size()} process(es) x batch {local})")
    return train, val
