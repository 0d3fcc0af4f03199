"""Host synchronisations per training step: python -m utils.sync_check SCRIPT [its flags]

Runs teacher.py or student_v0.py (SCRIPT, followed by its own flags) in this process and counts the
moments the host waits for the device: on CUDA those torch.cuda.set_sync_debug_mode("warn") reports (a
value read on the host, a blocking copy, a synchronize); on a CPU, where nothing waits, every read of a
tensor's value on the host (.item(), bool() or int() of a tensor) and every copy of one to the host (.tolist(),
.cpu(), .numpy()), which is what would wait on a GPU. Each
is counted inside the training step that made it, or outside the steps (the loader between steps,
evaluation, the epoch's end). The goal is none inside a step; a step that records a CUDA graph may
show the synchronisation torch.cuda.graph makes before it captures. A deliberate synchronisation comes
first and must be counted (a counter that counts nothing would report none): if it is not, the run ends
with "sync counter BROKEN" and exit status 1.

    host syncs: 0 inside 782 training steps; 14 outside them (loader, evaluation, epoch ends)
"""
import contextlib
import runpy
import sys
import warnings
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from utils.errors import UserError
from utils.training.iteration import TrainIteration

SCRIPTS = ("teacher.py", "student_v0.py")
SYNC_WARNING = "called a synchronizing CUDA operation"  # torch's words in sync debug mode "warn"


class SyncCount:
    def __init__(self):
        self.total, self.per_step = 0, []

    def step(self, run) -> None:
        before = self.total
        run()
        self.per_step.append(self.total - before)

    def report(self, device: str) -> str:
        inside = sum(self.per_step)
        syncing = [number for number, syncs in enumerate(self.per_step, start=1) if syncs]
        where = f" (steps {', '.join(map(str, syncing[:8]))}{', ...' if len(syncing) > 8 else ''})" if syncing else ""
        what = ("CUDA synchronisations" if device == "cuda" else
                "host reads and copies of tensor values (a GPU would wait on each)")
        return (f"host syncs: {inside} inside {len(self.per_step)} training steps{where}; {self.total - inside} "
                f"outside them (loader, evaluation, epoch ends); counted: {what}, as a deliberate one was first")


class HostReads(TorchDispatchMode):
    """On a CPU: each read of a tensor's value on the host, where a GPU would make the host wait."""

    def __init__(self, count: SyncCount):
        super().__init__()
        self.count = count

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count.total += 1
        return func(*args, **(kwargs or {}))


class HostCopies(TorchFunctionMode):
    """On a CPU: each copy of a tensor to the host (.tolist(), .cpu(), .numpy()). A GPU waits on each, but on a
    CPU they reach no operator that HostReads would see."""

    COPIES = (torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy)

    def __init__(self, count: SyncCount):
        super().__init__()
        self.count = count

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.COPIES:
            self.count.total += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def host_reads(count: SyncCount):
    with HostReads(count), HostCopies(count):
        yield


@contextlib.contextmanager
def cuda_syncs(count: SyncCount):
    """torch's sync debug mode, its warnings counted (and not shown); other warnings shown as usual."""
    with warnings.catch_warnings():
        warnings.filterwarnings("always", message=SYNC_WARNING)
        show = warnings.showwarning

        def counted(message, *args, **kwargs):
            if SYNC_WARNING in str(message):
                count.total += 1
            else:
                show(message, *args, **kwargs)

        warnings.showwarning = counted
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")


@contextlib.contextmanager
def per_step(count: SyncCount):
    """Each training iteration (utils.training.iteration.TrainIteration) counted apart."""
    original = TrainIteration.__call__
    TrainIteration.__call__ = lambda iteration, plan: count.step(lambda: original(iteration, plan))
    try:
        yield
    finally:
        TrainIteration.__call__ = original


def deliberate_sync(device: str) -> None:
    """A tensor's value read on the host: on CUDA a copy the host waits for, on a CPU a host read."""
    torch.ones(1, device=device).item()


def counts_a_deliberate_sync(count: SyncCount, device: str) -> bool:
    """The counter's positive control, made where it counts: a counter that counts nothing reports 0 syncs,
    which reads as a pass. The control's own count is then cleared."""
    deliberate_sync(device)
    counted, count.total = count.total, 0
    return counted > 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or Path(argv[0]).name not in SCRIPTS:
        raise UserError(f"usage: python -m utils.sync_check SCRIPT [its flags], SCRIPT one of {', '.join(SCRIPTS)}"
                        f"{f'; got {argv[0]}' if argv else ''}")
    script = runpy.run_path(argv[0], run_name="unixkd_sync_check")  # its functions, not its __main__ block
    count, device = SyncCount(), "cuda" if torch.cuda.is_available() else "cpu"
    counting = cuda_syncs(count) if device == "cuda" else host_reads(count)
    with per_step(count), counting:
        if not counts_a_deliberate_sync(count, device):
            print(f"sync counter BROKEN: a deliberate synchronisation on {device} was not counted", flush=True)
            return 1
        script["main"](argv[1:])
    print(count.report(device), flush=True)
