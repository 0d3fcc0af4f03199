"""The shared training step and loop: the losses are summed and minimised; bf16 autocast only when asked;
under DDP rank 0 alone writes the run's files, each epoch's figures before its commit point."""
import contextlib

import numpy as np
import torch

import student_v0
import teacher
from models import model_dict
from tests.event_files import scalars
from utils.data.loader import DeviceLoader
from utils.runs.rundir import RunDirectory
from utils.training.iteration import train_step
from utils.training.steps import SupervisedStep
from utils.training import trainer
from utils.training.trainer import FitConfig, Trainer


def one_step(amp: bool):
    torch.manual_seed(0)
    model = model_dict["resnet8"](num_classes=100)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 100, (4,))
    out, loss = train_step(SupervisedStep(model), optimizer, x, y, torch.arange(4), amp=amp)
    moved = any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    return out, loss, moved


def test_a_step_minimises_the_summed_losses_in_full_precision_by_default():
    out, loss, moved = one_step(amp=False)
    assert out.logits.dtype == torch.float32 and torch.isfinite(loss) and moved
    assert loss.item() == sum(v.item() for v in out.losses.values())


def test_amp_runs_the_forward_in_bf16():
    out, loss, moved = one_step(amp=True)
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(loss) and moved


def test_amp_is_off_unless_asked():
    assert teacher.parse_args(["--arch", "resnet8"]).amp is False
    assert student_v0.parse_args(["--teacher-path", "x", "--student-arch", "resnet8"]).amp is False


def test_compile_is_opt_in_and_keeps_the_published_state_dict_keys():
    from utils.training.build import make_model

    assert teacher.parse_args(["--arch", "resnet8"]).compile is False
    compiled = make_model("resnet8", torch.device("cpu"), compile=True)
    assert compiled._compiled_call_impl is not None  # compiled lazily, on the first forward
    assert list(compiled.state_dict()) == list(model_dict["resnet8"](num_classes=100).state_dict())


def one_epoch_run(folder, epochs=1, log_freq=0):
    """A 1-epoch teacher.py-style loop on 8 images (2 iterations of 4), into a run folder whose ckpt/ exists (as
    open_run leaves it)."""
    torch.manual_seed(0)
    model = model_dict["resnet8"](num_classes=100)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), rng.integers(0, 100, 8)
    loaders = [DeviceLoader(images, labels, 4, torch.device("cpu"), train=train) for train in (True, False)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[10])
    run = RunDirectory(folder)
    run.ckpt.mkdir(parents=True)
    Trainer(model, SupervisedStep(model), optimizer, scheduler, *loaders, run,
            FitConfig(epochs=epochs, snapshot_epochs=frozenset({1}), log_freq=log_freq)).fit()
    return sorted(path.relative_to(folder).as_posix() for path in run.path.rglob("*") if path.is_file())


def test_under_ddp_rank_0_alone_writes_checkpoints_and_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # every rank shares the run folder: one writer, no race
    monkeypatch.setenv("RANK", "1")
    assert one_epoch_run(tmp_path / "rank1") == []
    monkeypatch.setenv("RANK", "0")
    written = one_epoch_run(tmp_path / "rank0")
    assert {"ckpt/best.pth", "ckpt/001.pth", "ckpt/last.pth"} <= set(written)
    assert any(name.startswith("tensorboard/") for name in written)


def test_an_epochs_figures_and_its_iterations_are_on_disk_before_last_pth_says_the_epoch_is_done(tmp_path, monkeypatch):
    """A resumed run writes its figures from the epoch after the one last.pth holds, so that epoch's (and its
    iterations') must be on disk, read back as TensorBoard reads them, when last.pth takes the new epoch on."""
    tensorboard, original, on_disk = tmp_path / "run" / "tensorboard", trainer.staged_save, {}

    @contextlib.contextmanager
    def read_at_the_commit(state, path):
        with original(state, path):
            yield
            on_disk[state["epoch"]] = (scalars(tensorboard), scalars(tensorboard / "iterations"))

    monkeypatch.setattr(trainer, "staged_save", read_at_the_commit)
    one_epoch_run(tmp_path / "run", epochs=2, log_freq=1)
    assert sorted(on_disk) == [1, 2]
    for epoch, (per_epoch, iterations) in on_disk.items():
        for tag in ("val/acc", "train/loss", "time/save_seconds"):
            assert sorted(per_epoch[tag]) == list(range(1, epoch + 1)), tag
        assert sorted(iterations["iteration/train_loss"]) == list(range(1, 2 * epoch + 1))
