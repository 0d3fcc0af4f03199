"""Seeds and the random states a resumed run must restore to replay the same run."""
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def derive_rng_state(saved: dict, rank: int) -> None:
    """Seed this rank's generators from a saved random state and the rank: streams for ranks a checkpoint
    does not have (a run resumed on another number of processes), the same for the same checkpoint."""
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(saved["torch"])
        base = int(torch.randint(2**62, ()))
    seed_everything((base + 1_000_003 * rank) % 2**32)  # numpy takes seeds below 2**32
