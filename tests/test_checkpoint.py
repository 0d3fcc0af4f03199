"""Checkpoint files: atomic writes, loading that never executes code, clear mismatch messages."""
import os
import pickle

import pytest
import torch

from models import model_dict
from utils.errors import UserError
from utils.runs.checkpoint import atomic_save, extract_state_dict, load_checkpoint, load_weights, staged_save


def test_a_crash_during_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    atomic_save({"epoch": 1}, path)

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        atomic_save({"epoch": 2}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["last.pth"]  # no temporary file left behind


def test_a_staged_save_takes_the_files_place_only_when_its_block_ends_without_an_error(tmp_path):
    path = tmp_path / "last.pth"
    atomic_save({"epoch": 1}, path)
    with pytest.raises(OSError):
        with staged_save({"epoch": 2}, path):
            raise OSError(28, "No space left on device")  # what the block writes before the commit fails
    assert torch.load(path, weights_only=True) == {"epoch": 1} and os.listdir(tmp_path) == ["last.pth"]
    with staged_save({"epoch": 2}, path):
        assert torch.load(path, weights_only=True) == {"epoch": 1}  # the block runs before the commit
    assert torch.load(path, weights_only=True) == {"epoch": 2} and os.listdir(tmp_path) == ["last.pth"]


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's remark on the hostile file
def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"state_dict": RunsCode()}))
    with pytest.raises(UserError, match="cannot read checkpoint .*evil.pth"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_truncated_and_missing_checkpoints_are_named(tmp_path):
    path = tmp_path / "best.pth"
    torch.save({"state_dict": {"w": torch.ones(100)}}, path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(UserError, match="best.pth"):
        load_checkpoint(path)
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "nothing.pth")


@pytest.mark.parametrize("layout", ["state_dict", "model", None])
def test_both_published_layouts_and_a_bare_state_dict(layout):
    weights = {"fc.weight": torch.zeros(2, 2)}
    checkpoint = {layout: weights, "epoch": 240} if layout else weights
    assert extract_state_dict(checkpoint) is weights


def test_a_checkpoint_without_weights_is_refused():
    with pytest.raises(UserError, match="no state dict"):
        extract_state_dict({"epoch": 3, "acc": 70.0})


def test_a_mismatch_names_the_architecture_and_the_first_keys():
    weights = model_dict["resnet8"](num_classes=100).state_dict()
    with pytest.raises(UserError, match=r"architecture resnet20: missing keys \['layer1.1"):
        load_weights(model_dict["resnet20"](num_classes=100), weights, "resnet20")
    ten_classes = {**weights, "fc.weight": torch.zeros(10, 64), "fc.bias": torch.zeros(10)}
    with pytest.raises(UserError, match="resnet8: .*size mismatch for fc"):
        load_weights(model_dict["resnet8"](num_classes=100), ten_classes, "resnet8")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_atomic_writes_get_the_permissions_open_would_give(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic_save({"epoch": 1}, tmp_path / "last.pth")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(previous)
    assert (tmp_path / "last.pth").stat().st_mode & 0o777 == mode == (tmp_path / "plain").stat().st_mode & 0o777


@pytest.mark.parametrize("content, looks_like", [
    (b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>", "an HTML page"),
    (b"", "empty"),
])
def test_a_failed_download_is_named_as_such(tmp_path, content, looks_like):
    path = tmp_path / "vgg13.pth"
    path.write_bytes(content)
    with pytest.raises(UserError, match=f"vgg13.pth is not a PyTorch checkpoint: it is {looks_like}.*failed download") as error:
        load_checkpoint(path)
    assert "weights_only" not in str(error.value)


def test_a_zip_cut_short_is_named_as_such(tmp_path):
    path = tmp_path / "best.pth"
    torch.save({"state_dict": {"w": torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(UserError, match="best.pth: a zip archive cut short \\(2000 bytes\\)"):
        load_checkpoint(path)
