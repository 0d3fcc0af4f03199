"""--teacher-path: our run directories, the authors' files and the CRD zoo's, all loaded strictly."""
from pathlib import Path

import pytest
import torch

from models import model_dict
from utils.errors import UserError
from utils.teachers.importing import arch_from_name
from utils.teachers.loading import load_teacher, resolve_teacher


@pytest.mark.parametrize("path, arch", [
    ("vgg13.pth", "vgg13"),
    ("ResNet50.pth", "ResNet50"),
    ("resnet32x4_vanilla/ckpt_epoch_240.pth", "resnet32x4"),
    ("experiments/teacher_wrn_40_2/ckpt/best.pth", "wrn_40_2"),
    ("teacher_resnet8x4/ckpt/best.pth", "resnet8x4"),  # not resnet8
    ("downloads/model.pth", None),
])
def test_architecture_from_the_file_or_folder_name(path, arch):
    assert arch_from_name(Path(path)) == arch


def save_teacher(path: Path, layout: str, arch="resnet8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model_dict[arch](num_classes=100)
    torch.save({layout: model.state_dict(), "epoch": 240}, path)
    return model


def test_run_directory_uses_the_named_checkpoint(tmp_path):
    save_teacher(tmp_path / "teacher_resnet8" / "ckpt" / "best.pth", "state_dict")
    arch, file, label = resolve_teacher(str(tmp_path / "teacher_resnet8"), None, "best")
    assert (arch, file.name, label) == ("resnet8", "best.pth", "best")
    with pytest.raises(UserError, match="no checkpoint .*240.pth.*--teacher-ckpt"):
        resolve_teacher(str(tmp_path / "teacher_resnet8"), None, "240")


@pytest.mark.parametrize("layout", ["state_dict", "model"])
def test_published_files_load_strictly_and_compute_the_same_logits(tmp_path, layout):
    original = save_teacher(tmp_path / "resnet8_vanilla" / "ckpt_epoch_240.pth", layout).eval()
    arch, file, label = resolve_teacher(str(tmp_path / "resnet8_vanilla" / "ckpt_epoch_240.pth"), None, "best")
    assert (arch, label) == ("resnet8", "ckpt_epoch_240")
    teacher = load_teacher(arch, file, torch.device("cpu"))
    assert not teacher.training
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(teacher(x), original(x), atol=1e-5)  # same weights; channels-last layout


def test_teacher_arch_flag_overrides_an_uninformative_name(tmp_path):
    save_teacher(tmp_path / "model.pth", "state_dict")
    with pytest.raises(UserError, match="--teacher-arch"):
        resolve_teacher(str(tmp_path / "model.pth"), None, "best")
    assert resolve_teacher(str(tmp_path / "model.pth"), "resnet8", "best")[0] == "resnet8"
    with pytest.raises(UserError, match="unknown --teacher-arch 'resnet9'"):
        resolve_teacher(str(tmp_path / "model.pth"), "resnet9", "best")


def test_missing_path_is_named(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        resolve_teacher(str(tmp_path / "nowhere"), None, "best")


def test_wrong_architecture_names_it_and_the_keys(tmp_path):
    save_teacher(tmp_path / "resnet8.pth", "state_dict")
    with pytest.raises(UserError, match="does not fit architecture vgg8: missing keys"):
        load_teacher("vgg8", tmp_path / "resnet8.pth", torch.device("cpu"))


STUDENT_RUN = "v0_student_resnet20_teacher_resnet56-best_strategy3_k48_b32_w10_seed0"


@pytest.mark.parametrize("with_summary", [True, False], ids=["summary.json", "folder name"])
def test_a_student_run_is_no_teacher_and_is_called_a_student_run(tmp_path, with_summary):
    run = tmp_path / STUDENT_RUN
    save_teacher(run / "ckpt" / "student_best.pth", "state_dict", arch="resnet20")
    if with_summary:
        (run / "summary.json").write_text('{"student_arch": "resnet20", "teacher_arch": "resnet56"}')
    with pytest.raises(UserError, match=f"{run} is a student run .* a resnet20 .*student_best.pth --teacher-arch resnet20"):
        resolve_teacher(str(run), None, "best")


@pytest.mark.parametrize("name", ["student_best.pth", "last.pth"])
def test_a_students_checkpoint_is_refused_unless_its_architecture_is_given(tmp_path, name):
    """Its folder names the teacher too: resnet20 and resnet56 are equally long, so a guess could take either."""
    file = tmp_path / STUDENT_RUN / "ckpt" / name
    save_teacher(file, "state_dict", arch="resnet20")
    with pytest.raises(UserError, match=f"{file} is a student's checkpoint .*--teacher-arch resnet20"):
        resolve_teacher(str(file), None, "best")
    assert resolve_teacher(str(file), "resnet20", "best")[0] == "resnet20"  # distilling from a student, on purpose
