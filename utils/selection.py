"""Book-keeping around the UNIX step: the hard-sample counter (step 6) and selection statistics."""
import numpy as np
import torch

from utils.unix import uncertainty_scores


class SelectionCounter:
    """counter[epoch, i] = 1 where training image i was among the b most uncertain of its batch.

    Saved as counter.npy (epochs x dataset size) for the paper's hard-sample analysis.
    Kept on the training device so that recording costs no synchronisation.
    """

    def __init__(self, epochs: int, num_samples: int, device):
        self.counts = torch.zeros(epochs, num_samples, dtype=torch.uint8, device=device)

    def record(self, epoch: int, indices: torch.Tensor) -> None:
        # Each image is seen once per epoch, so indices within a call never repeat.
        self.counts[epoch, indices] += 1

    def to_numpy(self) -> np.ndarray:
        return self.counts.cpu().numpy()

    def state_dict(self) -> dict:
        return {"counts": self.counts.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.counts.copy_(state["counts"])


def prediction_stats(logits: torch.Tensor) -> dict:
    """Per-image confidence (top-1 probability), margin (top1 - top2) and entropy."""
    return {
        "confidence": 1 - uncertainty_scores(logits, 1),
        "margin": -uncertainty_scores(logits, 2),
        "entropy": uncertainty_scores(logits, 3),
    }


def selection_stats(scoring_logits, rank, keep, teacher_logits) -> dict:
    """Sums (and counts) of the statistics of the selected images, the rest, all, and the teacher.

    Selected = the first k in uncertainty order, i.e. the images the teacher sees.
    """
    per_image = prediction_stats(scoring_logits)
    teacher = prediction_stats(teacher_logits)
    selected, rest = rank[:keep], rank[keep:]
    sums = {}
    for name, values in per_image.items():
        sums[f"select/{name}_selected"] = (values[selected].sum(), len(selected))
        sums[f"select/{name}_rest"] = (values[rest].sum(), len(rest))
        sums[f"select/{name}_all"] = (values.sum(), len(values))
        sums[f"select/{name}_teacher_selected"] = (teacher[name].sum(), len(selected))
    return sums
