"""--gpu-decode: JPEG decoding, crops and flips on the GPU instead of in CPU loader workers.

The workers only read each file's bytes; torchvision's batched decode_jpeg decodes the whole batch on the
device, and the crop boxes and flips are drawn exactly as the CPU path draws them (same seeded generator,
same draws), so both paths train on the same boxes. Resizing runs on tensors (bilinear, antialiased) rather
than on PIL images, and nvJPEG's decoder is not libjpeg, so pixels differ slightly from the CPU path.
"""
import torch
from torchvision import transforms
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import functional as F

from utils.data.imagenet_recipe import IMAGENET_MEAN, IMAGENET_STD, RESIZE_RATIO, seeded_draws

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)  # RandomResizedCrop's defaults


class DeviceDecoder:
    """Turns a batch of JPEG bytes into the normalized float batch the CPU transforms would give."""

    def __init__(self, image_size: int, device, train: bool, seed: int, size: int):
        self.image_size, self.device, self.train, self.seed, self.size = image_size, torch.device(device), train, seed, size
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def __call__(self, encoded: list, indices: torch.Tensor, epoch: int) -> torch.Tensor:
        images = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=self.device)
        crops = [self._train_crop(image, index, epoch) if self.train else self._val_crop(image)
                 for image, index in zip(images, indices.tolist())]
        return (torch.stack(crops).float() / 255 - self.mean) / self.std

    def _train_crop(self, image: torch.Tensor, index: int, epoch: int) -> torch.Tensor:
        with seeded_draws(self.seed, epoch, self.size, index):  # RandomResizedCrop then flip, as on the CPU
            top, left, height, width = transforms.RandomResizedCrop.get_params(image, list(SCALE), list(RATIO))
            flip = torch.rand(1) < 0.5
        crop = F.resized_crop(image, top, left, height, width, [self.image_size] * 2, antialias=True)
        return F.hflip(crop) if flip else crop

    def _val_crop(self, image: torch.Tensor) -> torch.Tensor:
        resized = F.resize(image, round(self.image_size * RESIZE_RATIO), antialias=True)
        return F.center_crop(resized, [self.image_size] * 2)
