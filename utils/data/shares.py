"""Each rank's share of an ImageNet split, the same for every loader (torchvision's workers, DALI)."""
from torch.utils.data import DistributedSampler

from utils.process import distributed


def rank_indices(size: int, train: bool, seed: int):
    """Training: DistributedSampler (padding the split to equal shares, reshuffled each epoch); evaluation:
    every world_size-th image from the rank's own, no padding, so the summed metrics count each image once."""
    world, me = distributed.world_size(), distributed.rank()
    if train:
        return DistributedSampler(range(size), num_replicas=world, rank=me, shuffle=True, seed=seed)
    return range(me, size, world)
