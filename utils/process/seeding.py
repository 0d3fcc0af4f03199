"""Seeds and the random states a resumed run must restore to replay the same run."""
import random
import warnings

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state(cuda=torch.cuda) -> dict:
    """torch's random state and, with CUDA, the state of the device in use alone: a run may resume with
    fewer devices visible (command.sh shows one) or on another --gpu-id. `cuda`: torch.cuda (tests pass a
    stand-in)."""
    state = {"torch": torch.get_rng_state()}
    if cuda.is_available():
        state["cuda"] = cuda.get_rng_state(cuda.current_device())
    return state


def set_rng_state(state: dict, cuda=torch.cuda) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and cuda.is_available():
        device = cuda.current_device()
        saved = device_state(state["cuda"], device)
        if saved is not None:
            cuda.set_rng_state(saved, device)


def device_state(saved, device: int):
    """The saved CUDA state for `device`: the one state saved, or, from a checkpoint that saved every visible
    device's (a list, as before), its one entry (one device visible: the one the run used), else the entry at
    the device's position, as those were restored; None, with a warning, where that list has none (it was
    saved with fewer devices visible)."""
    if not isinstance(saved, (list, tuple)):
        return saved
    if len(saved) == 1:
        return saved[0]
    if device < len(saved):
        return saved[device]
    warnings.warn(f"the checkpoint holds the CUDA random states of {len(saved)} device(s), none for device {device}: "
                  f"its CUDA random stream starts from the seed, so the run is no longer bit-identical to one "
                  f"never stopped")
    return None


def derive_rng_state(saved: dict, rank: int) -> None:
    """Seed this rank's generators from a saved random state and the rank: streams for ranks a checkpoint
    does not have (a run resumed on another number of processes), the same for the same checkpoint."""
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(saved["torch"])
        base = int(torch.randint(2**62, ()))
    seed_everything((base + 1_000_003 * rank) % 2**32)  # numpy takes seeds below 2**32
