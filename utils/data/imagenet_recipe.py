"""The ImageNet protocol's preprocessing, shared by every loader: normalisation, the validation resize,
the training crops' per-image random draws, and torchvision's transforms for them."""
import contextlib

import torch
from torchvision import transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_RATIO = 256 / 224  # val: resize the short side to 256, centre-crop 224


def train_transform(image_size: int) -> transforms.Compose:
    return transforms.Compose([transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip(),
                               transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def val_transform(image_size: int) -> transforms.Compose:
    return transforms.Compose([transforms.Resize(round(image_size * RESIZE_RATIO)), transforms.CenterCrop(image_size),
                               transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


@contextlib.contextmanager
def seeded_draws(seed: int, epoch: int, size: int, index: int):
    """The transforms draw from torch's global generator: forking it keeps the training run's own random
    stream (UNIX's mixing) apart from how many images were read, and fixes each image's draws."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(((seed * 1_000_003 + epoch) * size + index) % 2**63)
        yield
