"""The ImageNet protocol's augmentation (torchvision's reference recipe), drawn without torch's global generator.

Training: RandomResizedCrop (area 8-100 % of the image, aspect ratio 3/4-4/3, 10 tries, then a centre
crop) to the image size, and a horizontal flip half the time; validation: the shorter side resized to
size x 256/224, then a centre crop. The images stay uint8 here; the device converts and normalises them.

Each training image draws from its own torch.Generator seeded by (seed, epoch, index): the draws do not
depend on the number of loader workers, a resumed run replays them, and neither torch's global
generator nor a CUDA generator is touched, so UNIX's own random draws (lambda, the partner
permutation) are the same whatever the loader reads. The draws are RandomResizedCrop.get_params' and
RandomHorizontalFlip's, in the same order, so the boxes equal those of torchvision's transforms under
torch.manual_seed(the same seed) (tests/test_imagenet_loaders.py).
"""
import math

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_RATIO = 256 / 224  # val: resize the short side to 256, centre-crop 224
SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)  # RandomResizedCrop's defaults: the fraction of the area, width / height
ATTEMPTS = 10


def image_generator(seed: int, epoch: int, size: int, index: int) -> torch.Generator:
    """The private generator of one training image in one epoch."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * size + index) % 2**63)


def draw_crop_box(generator: torch.Generator, height: int, width: int) -> tuple:
    """(top, left, box height, box width): RandomResizedCrop.get_params' draws, from `generator`."""
    area = height * width
    log_low, log_high = math.log(RATIO[0]), math.log(RATIO[1])
    for _ in range(ATTEMPTS):
        target_area = area * torch.empty(1).uniform_(*SCALE, generator=generator).item()
        aspect = math.exp(torch.empty(1).uniform_(log_low, log_high, generator=generator).item())
        box_w, box_h = round(math.sqrt(target_area * aspect)), round(math.sqrt(target_area / aspect))
        if 0 < box_w <= width and 0 < box_h <= height:
            top = torch.randint(0, height - box_h + 1, (1,), generator=generator).item()
            left = torch.randint(0, width - box_w + 1, (1,), generator=generator).item()
            return top, left, box_h, box_w
    # No try fitted: the whole image, cut to the nearest allowed aspect ratio, centred.
    box_w, box_h = width, height
    if width / height < RATIO[0]:
        box_h = round(width / RATIO[0])
    elif width / height > RATIO[1]:
        box_w = round(height * RATIO[1])
    return (height - box_h) // 2, (width - box_w) // 2, box_h, box_w


def train_crop(image, generator: torch.Generator, size: int) -> torch.Tensor:
    """A PIL image's random crop, resized to size x size and flipped half the time: uint8 (3, size, size)."""
    top, left, box_h, box_w = draw_crop_box(generator, image.height, image.width)
    crop = F.resized_crop(image, top, left, box_h, box_w, [size, size], InterpolationMode.BILINEAR, antialias=True)
    if torch.rand(1, generator=generator) < 0.5:
        crop = F.hflip(crop)
    return F.pil_to_tensor(crop)


def val_crop(image, size: int) -> torch.Tensor:
    """A PIL image's shorter side resized to size x 256/224, then its centre size x size: uint8 (3, size, size)."""
    resized = F.resize(image, round(size * RESIZE_RATIO), InterpolationMode.BILINEAR, antialias=True)
    return F.pil_to_tensor(F.center_crop(resized, [size, size]))
