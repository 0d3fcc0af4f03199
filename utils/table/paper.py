"""The published CIFAR-100 table and the protocol behind it, as data (shared/reference/paper-results.md).

Everything that names the paper's runs reads from here: the run list (utils.table.runlist), the results
table (utils.table.summary) and the computation report (utils.table.computation).
"""
from typing import NamedTuple, Optional

from utils.data.dataset_args import IMAGENET_DEFAULTS, IMAGENET_ONLY


class PaperPair(NamedTuple):
    """One row of the published table; accuracies are test top-1 %, mean of 4 runs."""

    teacher: str                   # names as in models.model_dict
    student: str
    ft_fs: float                   # teacher over student forward FLOPs
    computation: float             # UNIXKD's training computation, % of KD's (k 48 of a batch of 64)
    teacher_acc: Optional[float]   # None where the paper gives none (vgg16)
    student_acc: float             # the student architecture trained alone
    kd_acc: float
    unixkd_acc: float


PAPER_PAIRS = (
    PaperPair("vgg13", "MobileNetV2", 38.17, 77.49, 75.38, 65.79, 67.94, 68.09),
    PaperPair("ResNet50", "MobileNetV2", 174.00, 75.57, 79.10, 65.79, 68.33, 68.76),
    PaperPair("ResNet50", "vgg8", 13.56, 81.43, 79.10, 70.68, 73.43, 74.02),
    PaperPair("resnet32x4", "ShuffleV1", 27.16, 78.43, 79.63, 70.77, 74.52, 76.48),
    PaperPair("resnet32x4", "ShuffleV2", 23.49, 78.92, 79.63, 73.12, 75.07, 76.86),
    PaperPair("wrn_40_2", "ShuffleV1", 8.22, 84.79, 76.46, 70.77, 76.04, 77.06),
    PaperPair("wrn_40_2", "wrn_16_2", 3.25, 94.06, 76.46, 73.64, 75.40, 75.40),
    PaperPair("wrn_40_2", "wrn_40_1", 3.93, 91.88, 76.46, 72.24, 73.77, 74.38),
    PaperPair("resnet56", "resnet20", 3.06, 94.76, 73.44, 69.63, 70.72, 70.41),
    PaperPair("resnet32x4", "resnet8x4", 6.12, 87.32, 79.63, 72.51, 73.34, 74.86),
    PaperPair("vgg13", "vgg8", 2.97, 95.10, 75.38, 70.68, 73.38, 73.55),
    PaperPair("vgg16", "vgg8", 4.14, 91.29, None, 70.68, 72.10, 73.06),
)

LOW_LR_ARCHS = ("MobileNetV2", "ShuffleV1", "ShuffleV2")

# The training protocol of every run of the table, as the scripts' settings (their defaults), besides
# the learning rate (protocol_lr) and the data: the official CIFAR-100, all 50,000 training images.
PROTOCOL = {"epoch": 240, "batch_size": 64, "momentum": 0.9, "weight_decay": 5e-4, "gamma": 0.1,
            "milestones": [150, 180, 210], "amp": False}


def protocol_lr(arch: str) -> float:
    """The paper's initial learning rate: 0.01 for the light MobileNetV2 and ShuffleNets, 0.05 otherwise.

    A list of names, not a property of the networks: an architecture added to the zoo gets 0.05 here (in the run
    list and the protocol check) unless it is added to LOW_LR_ARCHS (docs/models.md)."""
    return 0.01 if arch in LOW_LR_ARCHS else 0.05


# ImageNet runs follow the KD literature's protocol instead: the scripts' --dataset imagenet defaults
# (utils.data.dataset_args, docs/imagenet.md), 100 epochs, weight decay 1e-4, lr / 10 at 30, 60 and 90,
# 224-pixel crops, BatchNorm per GPU, on ILSVRC-2012's 1,281,167 training images (Russakovsky et al., ImageNet
# Large Scale Visual Recognition Challenge, IJCV 2015, Table 2). Any batch, with lr 0.1 per 256 images
# (imagenet_lr there): torchvision's 256 and lr 0.1 and DKD's 512 and lr 0.2 are both the protocol.
IMAGENET_PROTOCOL = {**{key: value for key, value in PROTOCOL.items() if key != "batch_size"},
                     **{key: IMAGENET_DEFAULTS[key] for key in ("epoch", "weight_decay", "milestones")},
                     "image_size": IMAGENET_ONLY["image_size"][0], "sync_bn": IMAGENET_ONLY["sync_bn"][0]}
IMAGENET_TRAIN_IMAGES = 1_281_167


# Published CIFAR-100 top-1 of the other logit distillers (utils.distillers), beside the table's rows of
# the same name, each with the settings of utils.distillers for its pair. Their teachers are the CRD zoo's
# (Tian et al.), not the UNIXKD authors'. Sources (docs/distillers.md):
# DKD: Zhao et al., CVPR 2022, as their code's README gives it (megvii-research/mdistiller, README.md at
# a08d46f; it heads the 77.07 column "ResNet32x4 MobileNet-V2", whose KD figure, 74.45, is ShuffleV2's).
# LSKD: Sun et al., CVPR 2024, "KD+Ours" (sunshangquan/logit-standardization-KD, README.md at f6e5aa5).
DISTILLER_FIGURES = {
    ("resnet56", "resnet20"): {"DKD": 71.97, "LSKD": 71.43},
    ("resnet110", "resnet32"): {"DKD": 74.11, "LSKD": 74.17},
    ("resnet110", "resnet20"): {"LSKD": 71.48},
    ("resnet32x4", "resnet8x4"): {"DKD": 76.32, "LSKD": 76.62},
    ("wrn_40_2", "wrn_16_2"): {"DKD": 76.23, "LSKD": 76.11},
    ("wrn_40_2", "wrn_40_1"): {"DKD": 74.81, "LSKD": 74.37},
    ("vgg13", "vgg8"): {"DKD": 74.68, "LSKD": 74.36},
    ("resnet32x4", "ShuffleV1"): {"DKD": 76.45},
    ("wrn_40_2", "ShuffleV1"): {"DKD": 76.70},
    ("vgg13", "MobileNetV2"): {"DKD": 69.71, "LSKD": 68.61},
    ("ResNet50", "MobileNetV2"): {"DKD": 70.35, "LSKD": 69.02},
    ("resnet32x4", "ShuffleV2"): {"DKD": 77.07, "LSKD": 75.56},
    ("resnet32x4", "wrn_16_2"): {"LSKD": 75.26},
    ("resnet32x4", "wrn_40_2"): {"LSKD": 77.92},
    ("wrn_40_2", "resnet8x4"): {"LSKD": 77.11},
    ("wrn_40_2", "MobileNetV2"): {"LSKD": 69.23},
}

# The pairs the EXTENSIONS run list distils with DKD and LSKD, with and without UNIX.
EXTENSION_PAIRS = (("resnet32x4", "resnet8x4"), ("wrn_40_2", "wrn_16_2"), ("resnet56", "resnet20"),
                   ("resnet32x4", "ShuffleV2"))

# The ImageNet pairs of the KD literature (CRD, DKD; the UNIXKD paper's ImageNet section), torchvision's networks.
IMAGENET_PAIRS = (("imagenet_resnet34", "imagenet_resnet18"), ("imagenet_resnet50", "imagenet_mobilenet_v2"))
