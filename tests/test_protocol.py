"""What keeps a run out of the protocol rows: each departure is named, a protocol run has none."""
from utils.data.cifar100 import OFFICIAL_TRAIN_IMAGES
from utils.table.paper import PROTOCOL, protocol_lr
from utils.table.protocol import departures


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
