"""Parameter and forward-cost counting for the model zoo (the Ft and Fs of the UNIXKD computation figure).

Convention: ptflops' multiply-accumulate count. Each conv / linear multiply-add and bias add counts 1;
batch norm 2 per element (normalise, then scale and shift); ReLU 1 per element; pooling 1 per input
element. Why this one: the paper's Ft/Fs column is only a ratio, and pure conv/linear MACs (what
torch.utils.flop_counter measures, up to a factor 2) reproduce it for the plain conv nets but
undercount the depthwise/grouped students, whose cost is largely their many cheap BN and ReLU layers
(MobileNetV2 lands 14 % off the paper's ratios). Charging those per-element ops as ptflops does brings
every Ft/Fs within about 5 % of the paper and the computation figure within 0.3 percentage point.

The counter works on dispatched aten ops, so functional calls (F.relu, F.avg_pool2d) are charged
exactly like their nn.Module counterparts.
"""
from functools import lru_cache

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from . import imagenet, model_dict


def _conv(args, out):
    weight, bias = args[1], args[2]
    return out.numel() * (weight[0].numel() + (bias is not None))


def _addmm(args, out):  # a linear layer with bias: bias + a @ b
    a, b = args[1], args[2]
    return a.shape[0] * a.shape[1] * b.shape[1] + out.numel()


def _mm(args, out):
    a, b = args
    return a.shape[0] * a.shape[1] * b.shape[1]


def _batch_norm(args, out):
    affine = args[1] is not None
    return args[0].numel() * (2 if affine else 1)


def _output_elements(args, out):
    return out.numel()


def _input_elements(args, out):
    return args[0].numel()


# Keyed by aten op name, which is stable across PyTorch versions and devices.
_RULES = {
    'convolution': _conv,
    'addmm': _addmm,
    'mm': _mm,
    'relu': _output_elements,
    'relu_': _output_elements,
    'max_pool2d': _input_elements,
    'max_pool2d_with_indices': _input_elements,
    'avg_pool2d': _input_elements,
    'adaptive_avg_pool2d': _input_elements,
    '_adaptive_avg_pool2d': _input_elements,
    'mean': _input_elements,  # a global average pool to 1x1 reaches aten as a mean
}
# Which batch-norm kernel runs depends on the device, the mode and the PyTorch version.
_RULES.update(dict.fromkeys([
    'native_batch_norm', '_native_batch_norm_legit', '_native_batch_norm_legit_no_training',
    '_batch_norm_no_update', '_batch_norm_with_update', 'cudnn_batch_norm', 'miopen_batch_norm',
], _batch_norm))


class _CostCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        rule = _RULES.get(func.overloadpacket.__name__)
        if rule is not None:
            self.total += rule(args, out[0] if isinstance(out, tuple) else out)
        return out


def forward_macs(model: nn.Module, image_size: int = 32) -> int:
    """Forward cost (MACs, convention above) of one 3 x image_size x image_size image, in eval mode."""
    modes = {m: m.training for m in model.modules()}
    p = next(model.parameters())
    x = torch.zeros(1, 3, image_size, image_size, device=p.device, dtype=p.dtype)
    model.eval()
    try:
        with torch.no_grad(), _CostCounter() as counter:
            model(x)
    finally:
        for m, training in modes.items():
            m.training = training
    return counter.total


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@lru_cache(maxsize=None)
def model_cost(name: str) -> tuple[int, int]:
    """(parameters, forward MACs of one image) of model_dict[name](num_classes=100) at 32x32, or of an
    ImageNet network (models.imagenet) with 1000 classes at 224x224, the protocol's size."""
    # Building a model draws its initial weights: kept off the global generator, so a training run's
    # random stream does not depend on whether this cache was already filled.
    with torch.random.fork_rng(devices=[]):
        if name in imagenet.MODELS:
            with torch.device("meta"):  # shapes alone fix the count: no weights drawn, no arithmetic at 224
                model = imagenet.MODELS[name](num_classes=1000)
            return parameter_count(model), forward_macs(model, image_size=224)
        model = model_dict[name](num_classes=100)
        return parameter_count(model), forward_macs(model)
