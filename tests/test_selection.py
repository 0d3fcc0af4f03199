"""Book-keeping around the UNIX step: the hard-sample counter and the selection statistics."""
import pytest
import torch

from utils.training.selection import SelectionCounter, prediction_stats, selection_stats

PROBS = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [0.5, 0.3, 0.2]])


def test_prediction_stats_are_confidence_margin_entropy():
    stats = prediction_stats(PROBS.log())
    assert stats[0].tolist() == pytest.approx([0.7, 0.4, 0.5], abs=1e-6)
    assert stats[1].tolist() == pytest.approx([0.5, 0.0, 0.2], abs=1e-6)
    assert stats[2, 0].item() == pytest.approx(-(PROBS[0] * PROBS[0].log()).sum().item(), abs=1e-6)


def test_selection_stats_split_selected_rest_and_all():
    rank = torch.tensor([1, 2, 0])  # images 1 and 2 selected (keep = 2), image 0 the rest
    teacher = PROBS[:2].log()
    stats = selection_stats(PROBS.log(), rank, 2, teacher)
    total, count = stats["select/confidence_selected"]
    assert (total.item(), count) == pytest.approx((0.9, 2))
    assert stats["select/confidence_rest"][0].item() == pytest.approx(0.7)
    assert stats["select/margin_all"] == (pytest.approx(torch.tensor(0.7)), 3)
    assert stats["select/confidence_teacher_selected"][0].item() == pytest.approx(1.1)
    assert len(stats) == 12


def test_counter_marks_each_epochs_uncertain_images():
    counter = SelectionCounter(epochs=2, num_samples=5, device="cpu")
    counter.start_epoch(0)
    counter.record(torch.tensor([4, 1]))
    counter.start_epoch(1)
    counter.record(torch.tensor([0]))
    assert counter.to_numpy().tolist() == [[0, 1, 0, 0, 1], [1, 0, 0, 0, 0]]
    restored = SelectionCounter(epochs=2, num_samples=5, device="cpu")
    restored.load_state_dict(counter.state_dict())
    assert (restored.to_numpy() == counter.to_numpy()).all()


def test_the_hard_set_change_is_the_share_of_an_epochs_counted_images_new_to_it():
    counter = SelectionCounter(epochs=3, num_samples=6, device="cpu")
    for epoch, indices in enumerate(([0, 1, 2, 3], [2, 3, 4, 5], [2, 3, 4, 5])):
        counter.start_epoch(epoch)
        counter.record(torch.tensor(indices))
    assert counter.changed_percent(0) is None  # no epoch before the first
    assert counter.changed_percent(1) == 50.0  # 4 and 5 are new, 2 and 3 stay
    assert counter.changed_percent(2) == 0.0


def test_the_checkpointed_counter_is_packed_and_restores_exactly():
    counter = SelectionCounter(240, 50_000, "cpu")
    counter.start_epoch(4)
    counter.counts[:5].random_(0, 2)
    state = counter.state_dict()
    assert state["packed"].dtype == torch.uint8 and state["packed"].shape == (5, 6250)  # the epochs begun, 8 a byte
    restored = SelectionCounter(240, 50_000, "cpu")
    restored.load_state_dict(state)
    assert torch.equal(restored.counts, counter.counts)
