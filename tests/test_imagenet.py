"""--dataset imagenet in one process: protocol defaults, torchvision teachers, computation at 224, bad input."""
import shutil

import pytest
import torch
from torchvision.models import ResNet18_Weights

import student_v0
import teacher
from models.cost import model_cost
from models.imagenet import MODELS
from utils.data.synthetic_imagenet import write_image_folder
from utils.errors import UserError
from utils.teachers.torchvision_zoo import load_torchvision_weights


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("imagenet"), classes=3, train_per_class=2, val_per_class=1,
                              size=16)


def test_protocol_defaults_follow_the_batch_and_cifar_keeps_its_own():
    args = teacher.parse_args(["--dataset", "imagenet", "--arch", "imagenet_resnet34"])
    assert (args.epoch, args.batch_size, args.lr, args.weight_decay, args.momentum) == (100, 256, 0.1, 1e-4, 0.9)
    assert (args.milestones, args.image_size, args.sync_bn) == ([30, 60, 90], 224, False)
    assert teacher.parse_args(["--dataset", "imagenet", "--arch", "imagenet_resnet34", "--batch-size", "512"]).lr == 0.2
    cifar = teacher.parse_args(["--arch", "resnet8"])
    assert (cifar.epoch, cifar.batch_size, cifar.lr, cifar.weight_decay) == (240, 64, 0.05, 5e-4)


def test_unix_sizes_default_to_the_cifar_proportions_of_each_gpus_batch(monkeypatch):
    flags = ["--dataset", "imagenet", "--teacher-path", "torchvision:resnet34", "--student-arch", "imagenet_resnet18"]
    args = student_v0.parse_args(flags)
    assert (args.k, args.b) == (192, 128)
    monkeypatch.setenv("WORLD_SIZE", "8")
    args = student_v0.parse_args(flags)
    assert (args.local_batch, args.k, args.b) == (32, 24, 16)
    monkeypatch.delenv("WORLD_SIZE")
    cifar = student_v0.parse_args(["--teacher-path", "x", "--student-arch", "resnet8"])
    assert (cifar.k, cifar.b) == (48, 32)


def test_computation_uses_the_imagenet_networks_at_224():
    # torchvision publishes each network's GFLOPS (multiply-accumulates, as models.cost counts them).
    assert model_cost("imagenet_resnet18")[1] / 1e9 == pytest.approx(ResNet18_Weights.DEFAULT.meta["_ops"], rel=0.01)


def test_a_torchvision_teacher_loads_from_the_hub_cache_and_a_file_with_code_is_refused(tmp_path, monkeypatch):
    weights = ResNet18_Weights.DEFAULT
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    published = MODELS["imagenet_resnet18"](num_classes=1000).state_dict()
    torch.save(published, cached)
    model = MODELS["imagenet_resnet18"](num_classes=1000)
    load_torchvision_weights(model, weights, "imagenet_resnet18")
    assert all(torch.equal(model.state_dict()[key], published[key]) for key in published)
    torch.save({"fc.weight": shutil.rmtree}, cached)  # unpickling it would need a function: refused
    with pytest.raises(UserError, match="cannot load torchvision's"):
        load_torchvision_weights(model, weights, "imagenet_resnet18")


def bad(exit_status, capsys, main, argv):
    assert exit_status(main, argv) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err
    return err


def test_missing_and_malformed_image_folders_are_one_line(exit_status, capsys, image_root, tmp_path):
    flags = ["--dataset", "imagenet", "--arch", "imagenet_resnet18", "--experiments-dir", str(tmp_path / "exp")]
    assert "train not found" in bad(exit_status, capsys, teacher.main, [*flags, "--data-root", str(tmp_path)])
    odd = shutil.copytree(image_root, tmp_path / "odd")
    (odd / "val" / "n00000000").rename(odd / "val" / "renamed")
    assert "different class folders" in bad(exit_status, capsys, teacher.main, [*flags, "--data-root", str(odd)])
    empty = shutil.copytree(image_root, tmp_path / "empty")
    for image in (empty / "train" / "n00000001").iterdir():
        image.unlink()
    assert "cannot read ImageFolder" in bad(exit_status, capsys, teacher.main, [*flags, "--data-root", str(empty)])


@pytest.mark.parametrize("argv, message", [
    (["--teacher-path", "torchvision:resnet101", "--dataset", "imagenet"], "unknown torchvision teacher 'resnet101'"),
    (["--teacher-path", "torchvision:resnet34"], "pass --dataset imagenet"),
    (["--teacher-path", "torchvision:resnet34", "--dataset", "imagenet", "--other-distill", "AT"],
     "--other-distill is for --dataset cifar100 only"),
    (["--teacher-path", "x.pth", "--image-size", "64"], "--image-size is for --dataset imagenet only"),
])
def test_flags_of_the_other_dataset_and_unknown_teachers_are_one_line(exit_status, capsys, argv, message):
    student = "imagenet_resnet18" if "imagenet" in argv else "resnet8"
    assert message in bad(exit_status, capsys, student_v0.main, [*argv, "--student-arch", student])


def test_cifar_names_are_not_imagenet_networks(exit_status, capsys):
    err = bad(exit_status, capsys, teacher.main, ["--dataset", "imagenet", "--arch", "ResNet18"])
    assert "imagenet_resnet18" in err and "wrn_40_2" not in err

