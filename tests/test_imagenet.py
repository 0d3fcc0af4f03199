"""--dataset imagenet in one process: protocol defaults, torchvision teachers (V1, their stated accuracy), top-5,
computation at 224, the per-process batch floor, bad input."""
import hashlib
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import MobileNet_V2_Weights, ResNet18_Weights, ResNet34_Weights, ResNet50_Weights

import student_v0
import teacher
from models.cost import model_cost
from models.imagenet import MODELS
from utils.data import dataset_args
from utils.data.dataset_args import BATCH_FLOOR
from utils.data.synthetic_imagenet import write_image_folder
from utils.errors import UserError
from utils.runs.report import counter_columns, data_record
from utils.runs.resume import INPUTS
from utils.teachers.loading import evaluate_teacher, teacher_source
from utils.teachers.torchvision_zoo import (PINNED_WEIGHTS, load_torchvision_weights, resolve_torchvision_teacher,
                                           stated_accuracy, transform_difference)
from utils.training.build import make_loaders
from utils.training.metrics import top5_count


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("imagenet"), classes=3, train_per_class=2, val_per_class=1,
                              size=16)


def test_a_generated_image_folder_is_recorded_as_synthetic_data(image_root, tmp_path):
    trainer = SimpleNamespace(train_loader=SimpleNamespace(num_samples=6), test_loader=SimpleNamespace(num_samples=3))
    args = SimpleNamespace(dataset="imagenet", data_root=str(image_root))
    assert data_record(trainer, args) == {"kind": "synthetic", "train_images": 6, "test_images": 3}
    for wnid in ("n01440764", "n01443537"):  # ImageNet's own class folders
        (tmp_path / "train" / wnid).mkdir(parents=True)
    assert data_record(trainer, SimpleNamespace(dataset="imagenet", data_root=str(tmp_path)))["kind"] == "imagenet"


def test_protocol_defaults_follow_the_batch_and_cifar_keeps_its_own(monkeypatch):
    args = teacher.parse_args(["--dataset", "imagenet", "--arch", "imagenet_resnet34"])
    assert (args.epoch, args.batch_size, args.lr, args.weight_decay, args.momentum) == (100, 256, 0.1, 1e-4, 0.9)
    assert (args.milestones, args.image_size, args.sync_bn) == ([30, 60, 90], 224, False)
    assert teacher.parse_args(["--dataset", "imagenet", "--arch", "imagenet_resnet34", "--batch-size", "512"]).lr == 0.2
    monkeypatch.setenv("WORLD_SIZE", "8")  # the rule is per global batch: 8 GPUs x 64 images
    assert teacher.parse_args(["--dataset", "imagenet", "--arch", "imagenet_resnet34", "--batch-size", "512"]).lr == 0.2
    monkeypatch.delenv("WORLD_SIZE")
    cifar = teacher.parse_args(["--arch", "resnet8"])
    assert (cifar.epoch, cifar.batch_size, cifar.lr, cifar.weight_decay) == (240, 64, 0.05, 5e-4)


def test_the_default_workers_are_capped_at_each_processs_share_of_the_cores(monkeypatch):
    """16 cores for a node's 8 processes: 2 loader workers each, not 8 each (64 on 16 cores); one process: 8."""
    monkeypatch.setattr(dataset_args, "available_cores", lambda: 16)
    argv = ["--dataset", "imagenet", "--arch", "imagenet_resnet18"]
    assert teacher.parse_args(argv).workers == 8
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert teacher.parse_args(argv).workers == 2
    assert teacher.parse_args([*argv, "--workers", "6"]).workers == 6  # given: as given


def test_unix_sizes_default_to_the_cifar_proportions_of_each_gpus_batch(monkeypatch):
    flags = ["--dataset", "imagenet", "--teacher-path", "torchvision:resnet34", "--student-arch", "imagenet_resnet18"]
    args = student_v0.parse_args(flags)
    assert (args.k, args.b) == (None, None)  # until the batch is known: a --resume's is the run's own
    student_v0.settle_batch(args)
    assert (args.k, args.b) == (192, 128)
    monkeypatch.setenv("WORLD_SIZE", "8")
    args = student_v0.parse_args(flags)
    student_v0.settle_batch(args)
    assert (args.k, args.b) == (24, 16)
    config = student_v0.distill_config(args)  # what each GPU's step ranks and mixes: its own batch
    assert (config.batch_size, config.k, config.b) == (32, 24, 16)
    monkeypatch.delenv("WORLD_SIZE")
    cifar = student_v0.parse_args(["--teacher-path", "x", "--student-arch", "resnet8"])
    assert (cifar.k, cifar.b) == (48, 32)


IMAGENET_WEIGHTS = {"imagenet_resnet18": ResNet18_Weights.IMAGENET1K_V1,
                    "imagenet_resnet34": ResNet34_Weights.IMAGENET1K_V1,
                    "imagenet_resnet50": ResNet50_Weights.IMAGENET1K_V1,
                    "imagenet_mobilenet_v2": MobileNet_V2_Weights.IMAGENET1K_V1}


def conv_and_linear_macs(name: str) -> int:
    """Multiply-accumulates of the convolutions and linear layers alone at 224 (torch's FLOP counter counts 2 each)."""
    with torch.device("meta"):
        model = MODELS[name](num_classes=1000).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, 224, 224))
    return counter.get_total_flops() // 2


def test_computation_uses_the_imagenet_networks_at_224_and_counts_more_than_torchvisions_gflops():
    """docs/imagenet.md and docs/computation.md quote both sets: ours, and torchvision's published "GFLOPS",
    which are the convolutions' and linear layers' multiply-accumulates (its weights' _ops)."""
    assert [round(model_cost(name)[1] / 1e9, 3) for name in IMAGENET_WEIGHTS] == [1.822, 3.676, 4.122, 0.314]
    published = [weights.meta["_ops"] for weights in IMAGENET_WEIGHTS.values()]
    assert published == [1.814, 3.664, 4.089, 0.301]
    assert [round(conv_and_linear_macs(name) / 1e9, 3) for name in IMAGENET_WEIGHTS] == published


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


@pytest.mark.parametrize("flags, named, valid", [
    (["--image-size", "7", "--loader", "dali", "--workers", "0"], "--image-size must be at least 8", "--workers"),
    (["--image-size", "16", "--workers", "-1"], "--workers must be 0 or more, got -1", "--image-size"),
])
def test_a_bad_imagenet_flag_is_named_alone(exit_status, capsys, flags, named, valid):
    err = bad(exit_status, capsys, teacher.main, ["--dataset", "imagenet", "--arch", "imagenet_resnet18", *flags])
    assert named in err and valid not in err


def test_cifar_names_are_not_imagenet_networks(exit_status, capsys):
    err = bad(exit_status, capsys, teacher.main, ["--dataset", "imagenet", "--arch", "ResNet18"])
    assert "imagenet_resnet18" in err and "wrn_40_2" not in err


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "mobilenet_v2"])
def test_torchvision_teachers_are_the_literatures_v1_weights_unless_named(name):
    # torchvision's DEFAULT is V2 for resnet50 and mobilenet_v2 (80.86 % and 72.15 %, evaluated at resize 232).
    arch, weights, label = resolve_torchvision_teacher(f"torchvision:{name}", "imagenet")
    assert weights.name == PINNED_WEIGHTS == "IMAGENET1K_V1" and label == "torchvision_IMAGENET1K_V1"
    assert transform_difference(arch, weights, 224) is None  # resize 256, crop 224: this run's validation


def test_other_torchvision_weights_are_named_and_told_apart(monkeypatch):
    arch, weights, label = resolve_torchvision_teacher("torchvision:resnet50:IMAGENET1K_V2", "imagenet")
    assert (weights.name, label, stated_accuracy(weights)) == ("IMAGENET1K_V2", "torchvision_IMAGENET1K_V2",
                                                               {"top1": 80.858, "top5": 95.434})
    assert "with a resize to 232 and a centre crop of 224; this run's validation resizes to 256" in (
        transform_difference(arch, weights, 224))
    with pytest.raises(UserError, match="no weights 'V3' for resnet50; choose one of: torchvision:resnet50:IMAGENET1K_V1"):
        resolve_torchvision_teacher("torchvision:resnet50:V3", "imagenet")
    args = student_v0.parse_args(["--dataset", "imagenet", "--teacher-path", "torchvision:resnet50",
                                  "--student-arch", "imagenet_mobilenet_v2"])
    teacher_source(args)  # both spellings name the same run, which records the weights
    assert args.teacher_path == "torchvision:resnet50:IMAGENET1K_V1"


def test_the_teacher_line_and_summary_give_the_weights_stated_accuracy_and_top5(image_root, capsys):
    args = student_v0.parse_args(["--dataset", "imagenet", "--teacher-path", "torchvision:resnet18", "--student-arch",
                                  "imagenet_resnet18", "--data-root", str(image_root), "--image-size", "16",
                                  "--workers", "0", "--batch-size", "4"])
    arch, weights, _ = teacher_source(args)
    _, test_loader = make_loaders(args, torch.device("cpu"))
    record = evaluate_teacher(args, MODELS[arch](num_classes=3).eval(), arch, weights, test_loader)
    line, note = capsys.readouterr().out.splitlines()[-2:]
    assert line.startswith("teacher: imagenet_resnet18 from torchvision:resnet18:IMAGENET1K_V1 (torchvision states "
                           "top-1 69.76, top-5 89.08), test accuracy ")
    assert note.startswith("note: torchvision evaluated resnet18 IMAGENET1K_V1 with a resize to 256 and a centre crop "
                           "of 224; this run's validation resizes to 18 and crops 16")
    assert record["teacher_acc5"] == 100.0  # 3 classes: every label is among the top 5
    assert record["teacher_weights"] == {"name": "torchvision:resnet18:IMAGENET1K_V1", "stated_acc": 69.758,
                                         "stated_acc5": 89.078, "same_eval_transform": False}
    assert not set(record) & set(INPUTS)  # summary.json keeps the record beside what a resume compares


def test_top5_counts_labels_among_the_five_highest_logits():
    logits = torch.tensor([[9.0, 8, 7, 6, 5, 4, 3], [9.0, 8, 7, 6, 5, 4, 3]])
    assert int(top5_count(logits, torch.tensor([4, 5]))) == 1


@pytest.mark.parametrize("flags, advice", [([], "use --batch-size 64 --lr 0.025 (0.1 per 256 images)"),
                                           (["--lr", "0.2"], "use --batch-size 64 --lr 0.4 (your lr scaled")])
def test_fewer_than_16_images_per_process_are_refused_unless_batchnorm_is_synchronised(monkeypatch, flags, advice):
    monkeypatch.setenv("WORLD_SIZE", "4")
    argv = ["--dataset", "imagenet", "--arch", "imagenet_resnet18", *flags, "--batch-size", "32"]
    with pytest.raises(UserError) as refused:
        teacher.parse_args(argv)
    assert str(refused.value).startswith(f"--batch-size 32 over 4 processes leaves 8 images per process, under the "
                                         f"floor of {BATCH_FLOOR}: ")
    assert advice in str(refused.value) and BATCH_FLOOR == 16
    assert teacher.parse_args([*argv, "--sync-bn"]).batch_size == 32
    assert teacher.parse_args([*argv[:-1], "64"]).batch_size == 64


def loaders(root, *flags):
    """The train and val loaders the scripts build, on the CPU, in this process (workers 0)."""
    args = teacher.parse_args(["--dataset", "imagenet", "--arch", "imagenet_resnet18", "--data-root", str(root),
                               "--image-size", "16", "--workers", "0", "--batch-size", "4", *flags])
    return make_loaders(args, torch.device("cpu"))


def test_counter_columns_of_an_image_folder_give_its_order_and_a_hash_to_check_it(image_root):
    train, _ = loaders(image_root)
    columns = counter_columns(SimpleNamespace(dataset="imagenet"), train)
    folder = image_root / "train"
    # ImageFolder's order: class folders sorted, then the files in each.
    paths = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    assert columns["images"] == len(paths) == 6 and columns["folder"] == str(folder.resolve())
    assert columns["sha256_of_paths"] == hashlib.sha256("\n".join(paths).encode()).hexdigest()


def one_epoch(loader) -> dict:
    """{dataset index: its image}, in the order the loader gave them."""
    images = {}
    for plan in loader.plans():
        x, _, idx = loader.assemble(plan)
        images.update(zip(idx.tolist(), x))
    return images


def test_each_epoch_reshuffles_and_draws_new_crops_and_flips(image_root):
    train, _ = loaders(image_root)
    first, second = one_epoch(train), one_epoch(train)
    assert sorted(first) == sorted(second) == list(range(6))
    assert list(first) != list(second)  # a new order
    assert all(not torch.equal(first[i], second[i]) for i in first)  # a new crop or flip of every image


def test_ranks_read_disjoint_shares_that_cover_each_split(image_root, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    shares = {}
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        # --sync-bn: 2 images a process would be under the per-process batch floor without it
        shares[rank] = [set(one_epoch(loader)) for loader in loaders(image_root, "--sync-bn")]
    for split, size in enumerate((6, 3)):  # train, val
        assert not shares[0][split] & shares[1][split]
        assert shares[0][split] | shares[1][split] == set(range(size))


def test_validation_resizes_the_short_side_to_256_224ths_of_the_crop_then_takes_the_centre(tmp_path):
    image = np.full((64, 96, 3), 128, np.uint8)  # grey, with a white 32-pixel square in the middle
    image[16:48, 32:64] = 255
    for split in ("train", "val"):
        (tmp_path / split / "n0").mkdir(parents=True)
        Image.fromarray(image).save(tmp_path / split / "n0" / "square.JPEG", quality=95)
    _, val = loaders(tmp_path, "--image-size", "32")
    [x] = one_epoch(val).values()
    assert x.shape == (3, 32, 32)
    assert x[0].min() > -1  # grey or white everywhere: no black padding around a too small image
    short_side = round(32 * 256 / 224)  # 37: the image shrinks by 37/64
    white = (x[0, 16] > 1).sum().item()
    assert abs(white - 32 * short_side / 64) <= 1
