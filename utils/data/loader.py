"""The fast data path: the whole set kept once on the device as uint8, augmented there in a few ops.

At batch 64 on small networks the classic pipeline (PIL decode and transforms per image, in worker
processes) sets the pace, not the arithmetic. Here an epoch's random choices (order, crop offsets,
flips) are drawn up front on the CPU and sent to the device in one copy; each step then only slices
them and runs two gathers and the normalization, with no host-device synchronisation.
"""

import numpy as np
import torch

from utils.data.cifar100 import CIFAR100_MEAN, CIFAR100_STD, CROP_PADDING, IMAGE_SIZE

MAX_OFFSET = 2 * CROP_PADDING  # a crop starts 0..8 pixels into the padded 40x40 image


def host_to_device(values, device: torch.device) -> torch.Tensor:
    """Host values (a list, a CPU tensor) as a tensor on `device` without making the host wait: on CUDA pinned,
    then copied asynchronously; a copy from pageable memory waits for everything queued on the GPU before it."""
    tensor = torch.as_tensor(values)
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def normalize_uint8(images_uint8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW to float32 in the same arithmetic as ToTensor then Normalize: (x / 255 - mean) / std."""
    return (images_uint8.float() / 255 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def crop_flip_normalize(padded_uint8_nchw, top, left, flip, mean, std, memory_format=torch.contiguous_format):
    """Crop a 32x32 window at (top[i], left[i]) of each padded image, mirror it where flip[i], normalize.

    One gather does crop and flip together: image i reads rows top[i] + r and columns left[i] + c,
    or left[i] + 31 - c when flipped. mean and std are (3,) tensors on the images' device.
    """
    device = padded_uint8_nchw.device
    steps = torch.arange(IMAGE_SIZE, device=device)
    rows = top[:, None] + steps
    cols = left[:, None] + torch.where(flip[:, None], IMAGE_SIZE - 1 - steps, steps)
    batch = torch.arange(len(padded_uint8_nchw), device=device)[:, None, None, None]
    channels = torch.arange(padded_uint8_nchw.shape[1], device=device)[None, :, None, None]
    crops = padded_uint8_nchw[batch, channels, rows[:, None, :, None], cols[:, None, None, :]]
    return normalize_uint8(crops.contiguous(memory_format=memory_format), mean, std)


class DeviceLoader:
    """Batches (x, y, idx) on `device`: x float32 normalized NCHW, y int64 labels, idx int64 indices.

    Training: a new shuffle, crop offsets and flips each epoch, from a CPU generator seeded with `seed`;
    the last smaller batch is kept. Test: fixed order, normalization only. `state_dict()` taken between
    epochs makes a resumed loader replay the following epochs exactly.
    """

    def __init__(self, images_uint8_nhwc: np.ndarray, labels: np.ndarray, batch_size: int, device: torch.device,
                 train: bool, seed: int = 0, channels_last: bool = False):
        if images_uint8_nhwc.dtype != np.uint8 or images_uint8_nhwc.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise ValueError(f"expected uint8 images (N, 32, 32, 3), got {images_uint8_nhwc.dtype} "
                             f"{images_uint8_nhwc.shape}")
        if len(labels) != len(images_uint8_nhwc) or batch_size < 1:
            raise ValueError(f"{len(labels)} labels for {len(images_uint8_nhwc)} images, batch size {batch_size}")
        self.num_samples = len(images_uint8_nhwc)
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.train = train
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self._images = _to_device_nchw(images_uint8_nhwc, self.device, CROP_PADDING if train else 0)
        self._labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64).to(self.device)
        self._mean = torch.tensor(CIFAR100_MEAN, device=self.device)
        self._std = torch.tensor(CIFAR100_STD, device=self.device)
        self._generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-self.num_samples // self.batch_size)

    def __iter__(self):
        return (self.assemble(plan) for plan in self.plans())

    def plans(self, first_batch: int = 0):
        """The epoch's batches as plans, from batch `first_batch` on (a run resumed mid-epoch): small index
        tensors that `assemble` turns into (x, y, idx). The whole epoch is drawn either way.

        Training plans are (4, n) columns of (index, crop top, crop left, flip); test plans are (n,) indices.
        Slicing them costs no kernel, so the whole batch assembly can run inside a recorded CUDA graph.
        """
        draws = self._draw_epoch() if self.train else torch.arange(self.num_samples, device=self.device)
        for start in range(first_batch * self.batch_size, self.num_samples, self.batch_size):
            yield draws[..., start : start + self.batch_size]

    def assemble(self, plan: torch.Tensor):
        """(x, y, idx) of one plan: gather, and for training crop, flip, then normalize, all on the device."""
        if not self.train:
            images = self._images[plan].contiguous(memory_format=self.memory_format)
            return normalize_uint8(images, self._mean, self._std), self._labels[plan], plan
        idx, top, left, flip = plan
        x = crop_flip_normalize(self._images[idx], top, left, flip.bool(), self._mean, self._std, self.memory_format)
        return x, self._labels[idx], idx

    def _draw_epoch(self) -> torch.Tensor:
        """Starting an epoch draws all of its random choices at once, on the CPU, sent to the device in one copy."""
        n = self.num_samples
        order = torch.randperm(n, generator=self._generator)
        offsets = torch.randint(0, MAX_OFFSET + 1, (2, n), generator=self._generator)
        flip = torch.randint(0, 2, (1, n), generator=self._generator)
        return host_to_device(torch.cat([order[None], offsets, flip]), self.device)

    def state_dict(self) -> dict:
        return {"generator": self._generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self._generator.set_state(state["generator"])


def _to_device_nchw(images_nhwc: np.ndarray, device: torch.device, padding: int) -> torch.Tensor:
    """uint8 NCHW copy on the device, with a zero border of `padding` pixels (the crop's padding)."""
    nchw = torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2)
    n, channels, height, width = nchw.shape
    padded = torch.zeros(n, channels, height + 2 * padding, width + 2 * padding, dtype=torch.uint8, device=device)
    padded[:, :, padding : padding + height, padding : padding + width] = nchw.to(device)
    return padded
