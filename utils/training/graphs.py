"""CUDA graphs: run a whole training iteration as one recorded launch instead of hundreds of small ones.

At batch 64 on 32x32 images a step is bound by kernel launches and Python, not arithmetic; replaying the
recorded kernels of an iteration removes both. A recording replays exactly the kernels it saw, with the
same memory and the same constants, so whatever changes from step to step must live in device tensors
(the batch, the counter's epoch row, running sums) and anything baked in as a Python value (the learning
rate) needs a new recording when it changes: `reset()`.
"""
import warnings
from typing import Callable

import torch

WARMUP_CALLS = 2  # eager calls per input shape before capture: cuDNN autotuning and lazy optimizer state


def capture_cuda_graph(fn: Callable, inputs: tuple):
    """Record fn(*inputs) in a CUDA graph, run it once, and return (replay, fn's return value).

    The return value (tensors in the graph's memory and host values derived from shapes) is what every
    replay produces again.
    """
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        result = fn(*inputs)
    graph.replay()  # capturing records the kernels without running them
    return graph.replay, result


def run_eagerly(fn: Callable, inputs: tuple):
    """A warm-up call. On CUDA it runs on a side stream, as capture needs its lazy set-up kept off the default stream."""
    if inputs[0].device.type != "cuda":
        return fn(*inputs)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        result = fn(*inputs)
    torch.cuda.current_stream().wait_stream(side)
    return result


class CapturedCall:
    """fn(*tensors), recorded once per input shape after a few eager calls, then replayed.

    Each shape has its own recording (the last, smaller batch of an epoch gets one of its own), fed
    through static input buffers that every call copies its inputs into. `capture` is
    capture_cuda_graph; tests pass a CPU stand-in with the same contract.
    """

    def __init__(self, fn: Callable, capture: Callable = capture_cuda_graph, warmup: int = WARMUP_CALLS):
        self.fn, self.capture, self.warmup = fn, capture, warmup
        self.reset()

    def reset(self) -> None:
        """Forget every recording: the next calls warm up and record again (e.g. after a learning-rate change)."""
        self._eager_calls = {}
        self._recordings = {}

    @property
    def recordings(self) -> int:
        return len(self._recordings)

    def __call__(self, *inputs):
        key = tuple((t.shape, t.dtype) for t in inputs)
        if key in self._recordings:
            static, replay, result = self._recordings[key]
            for buffer, value in zip(static, inputs):
                buffer.copy_(value)
            replay()
            return result
        if self._eager_calls.get(key, 0) < self.warmup:
            self._eager_calls[key] = self._eager_calls.get(key, 0) + 1
            return run_eagerly(self.fn, inputs)
        static = tuple(t.clone() for t in inputs)
        replay, result = self.capture(self.fn, static)
        self._recordings[key] = (static, replay, result)
        return result


def graph_capture(requested: bool, device: torch.device):
    """capture_cuda_graph where --cuda-graphs asks for it and CUDA runs the job, else None (eager)."""
    if not requested:
        return None
    if device.type != "cuda":
        warnings.warn(f"--cuda-graphs needs a CUDA device; running eagerly on the {device.type}", stacklevel=2)
        return None
    return capture_cuda_graph
