"""What keeps a run out of the protocol rows: each departure from its dataset's protocol is named, a protocol run
has none."""
from utils.data.cifar100 import OFFICIAL_TRAIN_IMAGES
from utils.table.paper import IMAGENET_PROTOCOL, IMAGENET_TRAIN_IMAGES, PROTOCOL, protocol_lr
from utils.table.protocol import data_name, departures


def summary(arch="resnet8", train_images=OFFICIAL_TRAIN_IMAGES, **args):
    return {"args": {**PROTOCOL, "lr": protocol_lr(arch), **args}, "student_arch": arch,
            "data": {"kind": "CIFAR-100", "train_images": train_images, "test_images": 10_000}}


def test_a_protocol_run_departs_from_nothing():
    assert departures(summary()) == [] and departures(summary("ShuffleV1")) == []


def test_part_of_the_training_set_is_a_departure():
    half = OFFICIAL_TRAIN_IMAGES // 2
    assert departures(summary(train_images=half)) == [f"CIFAR-100 data ({half:,} training images)"]


def test_an_lr_other_than_the_architectures_is_a_departure():
    lr = 2 * protocol_lr("resnet8")
    assert departures(summary(lr=lr)) == [f"--lr {lr:g}"]
    assert departures(summary("ShuffleV1", lr=protocol_lr("resnet8"))) == [f"--lr {protocol_lr('resnet8'):g}"]


def imagenet(kind="imagenet", train_images=IMAGENET_TRAIN_IMAGES, **args):
    return {"args": {**IMAGENET_PROTOCOL, "dataset": "imagenet", "lr": 0.1, **args}, "student_arch": "imagenet_resnet18",
            "data": {"kind": kind, "train_images": train_images, "test_images": 50_000}}


def test_an_imagenet_run_is_judged_against_imagenets_protocol():
    assert departures(imagenet()) == []  # its defaults (--weight-decay 1e-4, --milestones 30 60 90, ...) are no departure
    assert departures(imagenet(epoch=1)) == ["--epoch 1"]
    assert departures(imagenet(lr=0.2)) == ["--lr 0.2"]
    assert departures(imagenet(image_size=64)) == ["--image-size 64"]
    assert departures(imagenet("synthetic", 120)) == ["synthetic data (120 training images)"]


def test_any_imagenet_batch_with_lr_01_per_256_images_is_the_protocol():
    # DKD's own recipe (mdistiller's ImageNet configs: batch 512, lr 0.2) is torchvision's 256 and 0.1, scaled.
    assert departures(imagenet(batch_size=512, lr=0.2)) == []
    # The lr as a user types it, not as 0.1 * batch / 256 computes it (0.30000000000000004 for 768).
    for batch, lr in ((96, 0.0375), (192, 0.075), (384, 0.15), (768, 0.3), (1536, 0.6)):
        assert departures(imagenet(batch_size=batch, lr=lr)) == [], batch
    assert departures(imagenet(batch_size=512, lr=0.1)) == ["--lr 0.1"]


def test_sync_bn_departs_from_the_literatures_batchnorm_per_gpu():
    assert departures(imagenet(sync_bn=True)) == ["--sync-bn on"]
    assert departures(imagenet(sync_bn=False)) == []


def test_the_data_is_named_for_the_plots_title():
    assert data_name(summary()) == "CIFAR-100" and data_name(imagenet()) == "ImageNet"
    assert data_name(imagenet("synthetic", 120)) == "synthetic ImageNet"
    cifar_stand_in = summary()
    cifar_stand_in["data"]["kind"] = "synthetic"
    assert data_name(cifar_stand_in) == "synthetic CIFAR-100"
    assert data_name({"args": {"epoch": 240}}) == "CIFAR-100"  # a run made before the data was recorded
