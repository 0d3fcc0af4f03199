"""A CPU stand-in for CUDA-graph capture, with the same contract as utils.training.graphs.capture_cuda_graph.

A CUDA graph records the kernels one call launches, with their arguments, and replays exactly those:
Python does not run again, so a Python value read during capture (an epoch number, a learning rate) is
frozen into every replay, and a read of a device value on the host cannot be captured at all. This
stand-in records the aten operations one call dispatches, with their arguments, and replays them on the
same tensors, writing each result into the tensor the recording saw: the same semantics, on any device.

What a real capture refuses, the stand-in refuses too (`refusal`): host reads, outputs sized by the
data, tensors made from host data, copies between devices. What a real replay would silently get wrong
it reports: a tensor that existed before the capture and was replaced since (the recording would keep
writing into the old memory) fails the next replay, once nothing else holds the old one; and the CUDA generator's bookkeeping tensors, made
at the first capture of the process, must not be inference tensors (see `GeneratorState`).

Host work that needs no dispatch (`.tolist()`, `.numpy()`, `.cpu()` of a CPU tensor) is invisible here;
`meta_trace` catches it: the same call on the meta device, where every host read fails.
"""
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_leaves, tree_map

aten = torch.ops.aten
HOST_READS = {aten._local_scalar_dense.default}
DATA_SIZED = {aten.nonzero, aten.masked_select, aten._unique, aten._unique2, aten.unique_dim,
              aten.unique_consecutive, aten.nonzero_static}
DATA_SIZED_OVERLOADS = {aten.repeat_interleave.Tensor, aten.repeat_interleave.self_Tensor}
MASK_INDEXING = {aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_}
HOST_DATA = {aten.lift_fresh, aten.lift_fresh_copy}
DEVICE_COPIES = {aten._to_copy, aten.copy_, aten.copy}


class CaptureError(RuntimeError):
    pass


def refusal(func, args, kwargs, result=None):
    """Why a CUDA graph cannot record this operation, or None where it can."""
    if func in HOST_READS:
        return "reads a device value on the host"
    packet = func.overloadpacket
    if packet in DATA_SIZED or func in DATA_SIZED_OVERLOADS:
        return "sizes its output by the data"
    if packet in MASK_INDEXING and any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
                                       for i in tree_leaves(args[1])):
        return "indexes with a boolean mask, which sizes its output by the data"
    if packet in HOST_DATA:
        return "makes a tensor from host data (torch.tensor of a list, indexing with a list)"
    if packet in DEVICE_COPIES and result is not None:
        devices = {t.device for t in tree_leaves((args, kwargs, result)) if isinstance(t, torch.Tensor)}
        if len(devices) > 1:
            return f"copies between devices ({', '.join(sorted(map(str, devices)))})"
    return None


class GeneratorState:
    """The CUDA generator's seed and offset tensors: made at the process's first capture, updated at each
    capture and replay. Made under inference mode they are inference tensors, and every later update
    outside it fails, as "Inplace update to inference tensor" does on CUDA."""
    tensor = None

    @classmethod
    def advance(cls) -> None:
        if cls.tensor is None:
            cls.tensor = torch.zeros(2, dtype=torch.int64)
        cls.tensor.add_(1)

    @classmethod
    def forget(cls) -> None:
        """A new process, as far as the generator is concerned (for tests of the first capture)."""
        cls.tensor = None


class _Kept:
    """A tensor that existed before the capture: the recording holds it weakly, as a graph holds an address."""

    def __init__(self, tensor):
        self.ref, self.what = weakref.ref(tensor), f"{tuple(tensor.shape)} {tensor.dtype}"


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.operations, self.made = [], {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        reason = refusal(func, args, kwargs)
        if reason:
            raise CaptureError(f"{func} {reason}; a CUDA graph cannot capture it")
        result = func(*args, **kwargs)
        reason = refusal(func, args, kwargs, result)
        if reason:
            raise CaptureError(f"{func} {reason}; a CUDA graph cannot capture it")
        known = {id(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(result):
            if isinstance(t, torch.Tensor) and id(t) not in known:
                self.made[id(t)] = t  # the recording's own memory; kept alive, so ids stay unique
        held = tree_map(self._hold, (args, kwargs, result))
        self.operations.append((func, *held, torch.is_inference_mode_enabled()))
        return result

    def _hold(self, leaf):
        if isinstance(leaf, torch.Tensor) and id(leaf) not in self.made:
            return _Kept(leaf)
        return leaf


def _resolve(leaf):
    return leaf.ref() if isinstance(leaf, _Kept) else leaf


def _check_kept(operations) -> None:
    for operation in operations:
        for leaf in tree_flatten(operation[1:4])[0]:
            if isinstance(leaf, _Kept) and leaf.ref() is None:
                raise CaptureError(f"{operation[0]} uses a {leaf.what} tensor that was replaced since the capture; "
                                   f"a replay would still use the old memory: update it in place instead")


def _replay(operations) -> None:
    _check_kept(operations)
    GeneratorState.advance()
    for func, args, kwargs, recorded, inference in operations:
        args, kwargs, recorded = tree_map(_resolve, (args, kwargs, recorded))
        # No autograd (the recording holds the backward pass's operations); inference tensors stay so.
        with torch.inference_mode(inference), torch.no_grad():
            result = func(*args, **kwargs)
            for target, value in zip(tree_leaves(recorded), tree_leaves(result)):
                if isinstance(target, torch.Tensor) and target is not value:
                    target.copy_(value)


def emulated_capture(fn, inputs):
    """Run fn(*inputs) once while recording it; return (replay, fn's return value)."""
    GeneratorState.advance()
    recorder = _Recorder()
    with recorder:
        result = fn(*inputs)
    operations = recorder.operations
    return (lambda: _replay(operations)), result


class _MetaOnly(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        for t in tree_leaves((args, kwargs, result)):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                raise CaptureError(f"{func} works on a {t.device.type} tensor inside the device work; "
                                   f"a CUDA graph would skip it or freeze its value")
        return result


def meta_trace(fn, inputs):
    """Run fn(*inputs) once on meta tensors, refusing any tensor elsewhere.

    Meta tensors have shapes but no data, so a host read (.item(), .tolist(), .numpy(), .cpu()) or an
    output sized by the data fails here, and a tensor made on the host shows up as a CPU tensor.
    """
    with _MetaOnly():
        return fn(*inputs)
