"""DistributedDataParallel plumbing: one process per GPU, started by torchrun (or one plain process).

Every function here is also right for a single process (world size 1, no process group): it then does
nothing, so a run without torchrun takes exactly the code path it always took. torchrun tells each
process its place through RANK, LOCAL_RANK and WORLD_SIZE.
"""
import inspect

import torch
import torch.distributed as dist

from utils.errors import RunFinished, UserError
# The process's place among torchrun's, without torch (the flags are checked before torch is imported);
# here too, so that the DDP plumbing reads as one module.
from utils.process.ranks import is_main, local_batch_size, local_rank, main_speaks, rank, world_size  # noqa: F401


_control = {}  # the gloo group for host-side agreement under NCCL (None: the default group is gloo already)


def start(device_type: str) -> None:
    """Join the process group: NCCL between GPUs, gloo on the CPU. Nothing to do for one process.

    Under NCCL a second group, gloo, carries the host's small questions (agree): asked through NCCL
    they would wait for the GPU's queue."""
    if world_size() > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
        _control["group"] = dist.new_group(backend="gloo") if device_type == "cuda" else None


def agree(reason: int, interval: int) -> tuple:
    """(the largest `reason` of any rank, the smallest `interval`), in one all-reduce; every rank must ask at the
    same point. The preemption check's: whether to stop and why, and when to ask next."""
    if not active():
        return reason, interval
    value = torch.tensor([reason, -interval])
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=_control.get("group"))
    return int(value[0]), -int(value[1])


def active() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def _reduce_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over all ranks (a new tensor on tensor's device); the tensor itself alone."""
    if not active():
        return tensor
    total = tensor.to(_reduce_device(), copy=True)
    dist.all_reduce(total)
    return total.to(tensor.device)


def max_over_ranks(value: int) -> int:
    if not active():
        return value
    total = torch.tensor(value, dtype=torch.int64, device=_reduce_device())
    dist.all_reduce(total, op=dist.ReduceOp.MAX)
    return int(total)


def sum_ints_over_ranks(values: list) -> list:
    if not active():
        return list(values)
    return [int(v) for v in sum_over_ranks(torch.tensor(values, dtype=torch.int64)).tolist()]


def gather_objects(obj) -> list:
    """[rank 0's obj, rank 1's, ...] on every rank; [obj] for one process."""
    if not active():
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def on_main(fn):
    """fn() on rank 0 only (its value there, None elsewhere); a bad-input error or a finished run there
    ends every rank: rank 0 reports it, the others raise the same exception (silent under main_speaks)."""
    if not active():
        return fn()
    value, failure = None, [None]
    if is_main():
        try:
            value = fn()
        except (UserError, RunFinished) as exc:
            failure[0] = exc
    dist.broadcast_object_list(failure, src=0)
    if failure[0] is not None:
        raise failure[0]
    return value


def wait_for_all() -> None:
    """Return once every rank has come here."""
    if active():
        dist.barrier(group=_control.get("group"))


def broadcast_object(obj):
    """Rank 0's obj on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(model) -> None:
    """Rank 0's BatchNorm running statistics to every rank.

    With BatchNorm per GPU each rank's running statistics follow its own batches (DDP's own broadcast before
    forwards is off: train_model), so after an epoch the ranks differ until this is called.
    Evaluating and saving after it makes every rank hold, and score, the very model rank 0 saves.
    """
    if active():
        for buffer in model.buffers():
            synced = buffer.to(_reduce_device(), copy=True)
            dist.broadcast(synced, src=0)
            buffer.copy_(synced)


def prepare_device(args) -> torch.device:
    """Seed, pick the device (under torchrun: the GPU of LOCAL_RANK) and join the process group.

    Each rank is seeded with seed + rank, so UNIX's random draws differ between ranks; the weights start
    equal anyway, as DDP copies rank 0's to every rank. One process: seed + 0, exactly as before.
    """
    from utils.process.cli import choose_device
    from utils.process.seeding import seed_everything

    seed_everything(args.seed + rank())
    device = choose_device(local_rank() if world_size() > 1 else args.gpu_id)
    if getattr(args, "sync_bn", False) and (world_size() == 1 or device.type != "cuda"):
        raise UserError("--sync-bn synchronises BatchNorm across GPUs: it needs CUDA and torchrun with 2 or more processes")
    start(device.type)
    return device


def train_model(model, device: torch.device, args):
    """The model the step trains: under DDP its gradients are averaged over ranks; one process: the model itself."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    if args.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # in place below the top module
    # No broadcast of BatchNorm's statistics at forwards: DDP would send rank 0's before each forward that
    # follows one run with grad, so once a step (UNIX's scoring forward runs without grad, its training forward
    # with it); training reads only each batch's own statistics, and rank 0's running ones reach every rank
    # before evaluation and saving (broadcast_buffers above).
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                   **no_forward_buffer_sync(DistributedDataParallel))


def no_forward_buffer_sync(ddp) -> dict:
    """DDP's keyword for no buffer broadcast at forwards: forward_sync_buffers from torch 2.13 on (its
    broadcast_buffers warns there that it is deprecated), broadcast_buffers before (requirements: torch>=2.1).
    The first still broadcasts rank 0's buffers once, when DDP wraps the model: every rank holds the same
    then anyway (a new model, or the one checkpoint every rank loads)."""
    if "forward_sync_buffers" in inspect.signature(ddp).parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}
