"""A CPU stand-in for CUDA-graph capture, with the same contract as utils.graphs.capture_cuda_graph.

A CUDA graph records the kernels one call launches, with their arguments, and replays exactly those:
Python does not run again, so a Python value read during capture (an epoch number, a learning rate) is
frozen into every replay, and a read of a device value on the host cannot be captured at all. This
stand-in records the aten operations one call dispatches, with their arguments, and replays them on the
same tensors, writing each result into the tensor the recording saw: the same semantics, on any device.
"""
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

# Operations that read a device value on the host (a sync) or size their output by data: not capturable.
NOT_CAPTURABLE = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default}


class CaptureError(RuntimeError):
    pass


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.operations = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in NOT_CAPTURABLE:
            raise CaptureError(f"{func} reads a device value on the host; a CUDA graph cannot capture it")
        result = func(*args, **kwargs)
        self.operations.append((func, args, kwargs, result, torch.is_inference_mode_enabled()))
        return result


def _replay(operations) -> None:
    for func, args, kwargs, recorded, inference in operations:
        # No autograd (the recording holds the backward pass's operations); inference tensors stay so.
        with torch.inference_mode(inference), torch.no_grad():
            result = func(*args, **kwargs)
            for target, value in zip(tree_leaves(recorded), tree_leaves(result)):
                if isinstance(target, torch.Tensor) and target is not value:
                    target.copy_(value)


def emulated_capture(fn, inputs):
    """Run fn(*inputs) once while recording it; return (replay, fn's return value)."""
    recorder = _Recorder()
    with recorder:
        result = fn(*inputs)
    return (lambda: _replay(recorder.operations)), result
