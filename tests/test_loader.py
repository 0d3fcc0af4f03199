"""The device-resident loader: same numerics as torchvision, right augmentation law, exact resume."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from utils.data.cifar100 import CIFAR100_MEAN, CIFAR100_STD, ClassicCIFAR100
from utils.data.loader import DeviceLoader, crop_flip_normalize

CPU = torch.device("cpu")
MEAN, STD = torch.tensor(CIFAR100_MEAN), torch.tensor(CIFAR100_STD)
NORMALIZED_ZERO = (-MEAN / STD).view(3, 1, 1)


def random_images(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 100, size=n)


def position_images(n):
    """Pixels that say where they came from: red = row + 1, green = column + 1, blue = 255 (padding is 0)."""
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    images[..., 0] = np.arange(1, 33)[:, None]
    images[..., 1] = np.arange(1, 33)[None, :]
    images[..., 2] = 255
    return images


def unnormalize(x):
    return torch.round((x * STD.view(1, 3, 1, 1) + MEAN.view(1, 3, 1, 1)) * 255).long()


def torchvision_reference(image_hwc, top, left, flip):
    """The classic pipeline's steps with the given random choices: pad, crop, maybe flip, to tensor, normalize."""
    image = TF.crop(TF.pad(Image.fromarray(image_hwc), 4, fill=0), top, left, 32, 32)
    if flip:
        image = TF.hflip(image)
    return TF.normalize(TF.to_tensor(image), CIFAR100_MEAN, CIFAR100_STD)


def one_epoch(loader):
    return [tuple(t.clone() for t in batch) for batch in loader]


def test_crop_flip_normalize_matches_torchvision():
    images, _ = random_images(18)
    top = torch.tensor([0, 8] * 9)
    left = torch.tensor([8, 0, 3] * 6)
    flip = torch.tensor([True, True, False] * 6)
    padded = torch.nn.functional.pad(torch.from_numpy(images).permute(0, 3, 1, 2), (4, 4, 4, 4))
    fast = crop_flip_normalize(padded, top, left, flip, MEAN, STD)
    expected = torch.stack([torchvision_reference(images[i], int(top[i]), int(left[i]), bool(flip[i]))
                            for i in range(len(images))])
    assert fast.dtype == torch.float32 and torch.allclose(fast, expected, atol=1e-6)


def test_padding_comes_out_as_normalized_zero():
    padded = torch.nn.functional.pad(torch.full((1, 3, 32, 32), 255, dtype=torch.uint8), (4, 4, 4, 4))
    x = crop_flip_normalize(padded, torch.tensor([0]), torch.tensor([8]), torch.tensor([False]), MEAN, STD)[0]
    assert torch.allclose(x[:, :4, :], NORMALIZED_ZERO.expand(3, 4, 32))  # 4 padded rows on top
    assert torch.allclose(x[:, :, 28:], NORMALIZED_ZERO.expand(3, 32, 4))  # 4 padded columns on the right
    assert torch.allclose(x[:, 4:, :28], ((1 - MEAN) / STD).view(3, 1, 1).expand(3, 28, 28))


def test_augmentation_is_uniform_crops_and_fair_flips_applied_exactly():
    n, epochs = 4500, 2
    images = position_images(n)
    loader = DeviceLoader(images, np.zeros(n), batch_size=500, device=CPU, train=True, seed=0)
    probes, kept = [], []
    for _ in range(epochs):
        for x, _, _ in loader:
            # Output pixel (8, 8) always lies inside the image; (8, 9) is one column on, or one back if flipped.
            probes.append(unnormalize(x[:, :, 8:9, 8:10])[:, :2, 0])
            kept += [x] if len(kept) < 2 else []
    probes = torch.cat(probes)
    row, col, next_col = probes[:, 0, 0] - 1, probes[:, 1, 0] - 1, probes[:, 1, 1] - 1
    flip = next_col < col
    top, left = row - 4, torch.where(flip, col - 19, col - 4)
    draws = n * epochs
    for offsets in (top, left):
        counts = torch.bincount(offsets, minlength=9)
        assert len(counts) == 9 and counts.min() > 0.85 * draws / 9 and counts.max() < 1.15 * draws / 9
    assert abs(flip.float().mean().item() - 0.5) < 0.03
    # Every pixel of the first batches, padding included, is where those offsets and that flip put it.
    pixels = unnormalize(torch.cat(kept))
    top, left, flip = top[: len(pixels)], left[: len(pixels)], flip[: len(pixels)]
    padded = torch.nn.functional.pad(torch.from_numpy(images[0]).permute(2, 0, 1), (4, 4, 4, 4))
    steps = torch.arange(32)
    rows = top[:, None] + steps
    cols = left[:, None] + torch.where(flip[:, None], 31 - steps, steps)
    expected = padded[:, rows[:, :, None], cols[:, None, :]].permute(1, 0, 2, 3)
    assert torch.equal(pixels, expected.long())


def test_each_epoch_visits_every_index_once_in_a_new_order():
    images, labels = random_images(130)
    loader = DeviceLoader(images, labels, batch_size=64, device=CPU, train=True, seed=0)
    epochs = [one_epoch(loader) for _ in range(2)]
    assert len(loader) == 3 and loader.num_samples == 130
    for epoch in epochs:
        assert [len(idx) for _, _, idx in epoch] == [64, 64, 2]
        order = torch.cat([idx for _, _, idx in epoch])
        assert torch.equal(torch.sort(order).values, torch.arange(130))
        for x, y, idx in epoch:
            assert x.shape == (len(idx), 3, 32, 32) and x.dtype == torch.float32
            assert y.dtype == torch.int64 and idx.dtype == torch.int64
            assert torch.equal(y, torch.from_numpy(labels[idx.numpy()]))
    first, second = (torch.cat([idx for _, _, idx in epoch]) for epoch in epochs)
    assert not torch.equal(first, second)


def test_test_loader_is_fixed_order_plain_normalization():
    images, labels = random_images(100)
    loader = DeviceLoader(images, labels, batch_size=64, device=CPU, train=False)
    epochs = [one_epoch(loader) for _ in range(2)]
    x = torch.cat([batch[0] for batch in epochs[0]])
    assert torch.equal(torch.cat([idx for _, _, idx in epochs[0]]), torch.arange(100))
    assert torch.equal(torch.cat([y for _, y, _ in epochs[0]]), torch.from_numpy(labels))
    assert all(torch.equal(a, b) for first, second in zip(*epochs) for a, b in zip(first, second))
    classic = ClassicCIFAR100(images, labels, train=False)
    assert torch.allclose(x, torch.stack([classic[i][0] for i in range(100)]), atol=1e-6)


def test_state_dict_after_an_epoch_replays_the_next_epoch_exactly():
    images, labels = random_images(100)
    loader = DeviceLoader(images, labels, batch_size=32, device=CPU, train=True, seed=0)
    one_epoch(loader)
    buffer = io.BytesIO()
    torch.save(loader.state_dict(), buffer)  # as a checkpoint would carry it
    expected = one_epoch(loader)
    resumed = DeviceLoader(images, labels, batch_size=32, device=CPU, train=True, seed=123)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    replayed = one_epoch(resumed)
    assert all(torch.equal(a, b) for first, second in zip(expected, replayed) for a, b in zip(first, second))


def test_same_seed_same_batches_other_seed_other_batches():
    images, labels = random_images(50)
    make = lambda seed: one_epoch(DeviceLoader(images, labels, 16, CPU, train=True, seed=seed))  # noqa: E731
    assert all(torch.equal(a[0], b[0]) for a, b in zip(make(1), make(1)))
    assert not torch.equal(make(1)[0][0], make(2)[0][0])


@pytest.mark.parametrize("train", [True, False])
def test_channels_last_changes_layout_not_values(train):
    images, labels = random_images(40)
    plain = one_epoch(DeviceLoader(images, labels, 16, CPU, train=train, seed=0))
    nhwc = one_epoch(DeviceLoader(images, labels, 16, CPU, train=train, seed=0, channels_last=True))
    for (x_plain, _, _), (x_nhwc, _, _) in zip(plain, nhwc):
        assert x_plain.is_contiguous() and x_nhwc.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(x_plain, x_nhwc)


def test_rejects_images_that_are_not_uint8_hwc():
    images, labels = random_images(4)
    with pytest.raises(ValueError):
        DeviceLoader(images.transpose(0, 3, 1, 2).copy(), labels, 2, CPU, train=True)
    with pytest.raises(ValueError):
        DeviceLoader(images.astype(np.float32), labels, 2, CPU, train=True)
