"""The CPU stand-in for CUDA graphs refuses what a real capture refuses and reports what a real replay gets wrong."""
import pytest
import torch

from tests.graph_emulator import CaptureError, emulated_capture, meta_trace

# Each: a recorded function of t = [0, 1, 2, 3], and the words of its refusal.
NOT_CAPTURABLE = {
    "item": (lambda t: t.add(t.sum().item()), "reads a device value on the host"),
    "nonzero": (lambda t: t.nonzero(), "sizes its output by the data"),
    "masked_select": (lambda t: t.masked_select(t > 1), "sizes its output by the data"),
    "unique": (lambda t: t.unique(), "sizes its output by the data"),
    "repeat_interleave": (lambda t: t.repeat_interleave(t.long()), "sizes its output by the data"),
    "mask_index": (lambda t: t[t > 1], "boolean mask"),
    "mask_assign": (lambda t: t.clone().index_put_((t > 1,), t.new_zeros(())), "boolean mask"),
    "tensor_of_list": (lambda t: t + torch.tensor([1.0, 2.0, 3.0, 4.0]), "host data"),
    "list_index": (lambda t: t[[0, 2]], "host data"),
    "device_copy": (lambda t: t.to("meta"), "copies between devices"),
}


@pytest.mark.parametrize("name", NOT_CAPTURABLE)
def test_the_stand_in_refuses_what_a_capture_cannot_record(name):
    fn, words = NOT_CAPTURABLE[name]
    inputs = (torch.arange(4.0),)
    with pytest.raises(CaptureError, match=words):
        emulated_capture(fn, inputs)


def test_capturable_indexing_with_index_tensors_passes():
    inputs = (torch.arange(4.0), torch.tensor([2, 0]))
    replay, out = emulated_capture(lambda t, i: t[i] * 2, inputs)
    inputs[1].copy_(torch.tensor([3, 1]))
    replay()
    assert out.tolist() == [6.0, 2.0]


def test_a_tensor_replaced_between_replays_fails_the_next_replay():
    sums = {"total": torch.zeros(2)}
    inputs = (torch.ones(2),)
    replay = emulated_capture(lambda t: sums["total"].add_(t), inputs)[0]  # add_ returns the old tensor: drop it
    replay()
    sums["total"] = torch.zeros(2)  # a reset that makes a new tensor: a real replay adds into freed memory
    with pytest.raises(CaptureError, match=r"uses a \(2,\) torch.float32 tensor that was replaced"):
        replay()


# Host work that dispatches nothing on a CPU tensor, so only the meta trace sees it.
HOST_WORK = {
    "tolist": lambda t: t * len(t.tolist()),
    "cpu": lambda t: t.cpu() + 1,
    "numpy": lambda t: t * float(t.numpy().sum()),
    "item": lambda t: t * t.sum().item(),
    "host_tensor": lambda t: t + torch.ones(4),
    "host_draw": lambda t: t[torch.randperm(4).to(t.device)],
    "data_sized": lambda t: t[t > 0],
}


@pytest.mark.parametrize("name", HOST_WORK)
def test_the_meta_trace_fails_on_host_work(name):
    with pytest.raises((CaptureError, NotImplementedError, RuntimeError, TypeError)):
        meta_trace(HOST_WORK[name], (torch.zeros(4, device="meta"),))


def test_the_meta_trace_passes_device_work():
    out = meta_trace(lambda t: (t * 2).sort().values[torch.rand(4, device=t.device).argsort()],
                     (torch.zeros(4, device="meta"),))
    assert out.shape == (4,) and out.device.type == "meta"
