"""The distillers' settings table: the values their authors trained with, per dataset and pair
(sources in docs/distillers.md), and how student_v0.py fills them in."""
import pytest

import student_v0
from models import imagenet, model_dict
from utils.distillers import (CIFAR100, DEFAULTS, DKD, IMAGENET, KD, LSKD, PAIR_SETTINGS, distiller_defaults,
                              fill_pair_defaults)
from utils.errors import UserError


def filled(*flags, teacher):
    """student_v0.py's settings once main() knows the teacher."""
    args = student_v0.parse_args(["--teacher-path", "t.pth", *flags])
    fill_pair_defaults(args, teacher)
    return args


def test_kd_keeps_the_unixkd_papers_setting_on_both_datasets():
    for dataset in (CIFAR100, IMAGENET):
        assert DEFAULTS[dataset, KD] == {"ce_weight": 0.0, "kd_weight": 1.0, "T": 4.0}


def test_lskd_trains_with_the_ls_authors_cross_entropy_weight():
    # LS engine/cfg.py: KD.LOSS.CE_WEIGHT = 0.1 (their issue #8: kept for the published KD + LS runs).
    assert distiller_defaults(LSKD, "resnet32x4", "resnet8x4") == {"ce_weight": 0.1, "kd_weight": 9.0, "T": 2.0,
                                                                   "ls_eps": 1e-7}
    args = filled("--student-arch", "resnet8x4", "--distill", "LSKD", teacher="resnet32x4")
    assert (args.ce_weight, args.kd_weight, args.T) == (0.1, 9.0, 2.0)


def test_dkd_cifar_defaults_and_betas_per_pair():
    assert DEFAULTS[CIFAR100, DKD] == {"ce_weight": 1.0, "kd_weight": 1.0, "T": 4.0, "alpha": 1.0, "beta": 8.0,
                                       "warmup": 20, "dkd_mix": "weighted"}
    betas = {pair: distiller_defaults(DKD, *pair)["beta"] for pair in (
        ("resnet110", "resnet32"), ("resnet56", "resnet20"), ("wrn_40_2", "wrn_16_2"), ("wrn_40_2", "wrn_40_1"),
        ("vgg13", "vgg8"), ("vgg13", "MobileNetV2"), ("resnet32x4", "resnet8x4"), ("resnet32x4", "ShuffleV1"),
        ("resnet32x4", "ShuffleV2"), ("wrn_40_2", "ShuffleV1"), ("ResNet50", "MobileNetV2"))}
    assert betas == {("resnet110", "resnet32"): 2.0, ("resnet56", "resnet20"): 2.0, ("wrn_40_2", "wrn_16_2"): 6.0,
                     ("wrn_40_2", "wrn_40_1"): 6.0, ("vgg13", "vgg8"): 6.0, ("vgg13", "MobileNetV2"): 6.0,
                     ("resnet32x4", "resnet8x4"): 8.0, ("resnet32x4", "ShuffleV1"): 8.0,
                     ("resnet32x4", "ShuffleV2"): 8.0, ("wrn_40_2", "ShuffleV1"): 8.0, ("ResNet50", "MobileNetV2"): 8.0}
    assert filled("--student-arch", "resnet32", "--distill", "DKD", teacher="resnet110").beta == 2.0


def test_lskd_per_pair_settings_are_those_its_authors_logs_are_named_after():
    settings = {pair: {key: distiller_defaults(LSKD, *pair)[key] for key in ("T", "kd_weight")} for pair in (
        ("vgg13", "vgg8"), ("vgg13", "MobileNetV2"), ("wrn_40_2", "MobileNetV2"), ("ResNet50", "MobileNetV2"),
        ("resnet32x4", "wrn_16_2"), ("resnet32x4", "wrn_40_2"), ("resnet110", "resnet20"), ("resnet110", "resnet32"),
        ("wrn_40_2", "resnet8x4"))}
    assert settings == {
        ("vgg13", "vgg8"): {"T": 3.0, "kd_weight": 9.0}, ("vgg13", "MobileNetV2"): {"T": 3.0, "kd_weight": 9.0},
        ("wrn_40_2", "MobileNetV2"): {"T": 3.0, "kd_weight": 9.0}, ("ResNet50", "MobileNetV2"): {"T": 3.0, "kd_weight": 1.0},
        ("resnet32x4", "wrn_16_2"): {"T": 3.0, "kd_weight": 9.0}, ("resnet32x4", "wrn_40_2"): {"T": 3.0, "kd_weight": 9.0},
        ("resnet110", "resnet20"): {"T": 4.0, "kd_weight": 12.0}, ("resnet110", "resnet32"): {"T": 2.0, "kd_weight": 9.0},
        ("wrn_40_2", "resnet8x4"): {"T": 2.0, "kd_weight": 9.0}}
    args = filled("--student-arch", "MobileNetV2", "--distill", "LSKD", teacher="ResNet50")
    assert (args.T, args.kd_weight, args.ce_weight) == (3.0, 1.0, 0.1)
    # A flag still wins over the pair's setting.
    assert filled("--student-arch", "vgg8", "--distill", "LSKD", "--T", "2", teacher="vgg13").T == 2.0


IMAGENET_PAIR = ["--dataset", "imagenet", "--student-arch", "imagenet_resnet18"]


def test_imagenet_dkd_gets_mdistillers_imagenet_settings():
    # configs/imagenet/r34_r18/dkd.yaml: CE 1.0, BETA 0.5, T 1.0, WARMUP 1; r50_mv2/dkd.yaml: BETA 2.0.
    args = filled(*IMAGENET_PAIR, "--distill", "DKD", teacher="imagenet_resnet34")
    assert (args.ce_weight, args.kd_weight, args.T, args.alpha, args.beta, args.warmup) == (1.0, 1.0, 1.0, 1.0, 0.5, 1)
    assert distiller_defaults(DKD, "imagenet_resnet50", "imagenet_mobilenet_v2", IMAGENET)["beta"] == 2.0


def test_imagenet_lskd_gets_the_ls_authors_imagenet_run():
    # logs/imagenet/r34_r18_kd_ours_2_6.txt with configs/imagenet/r34_r18/kd.yaml (CE 1.0) of the same commit.
    args = filled(*IMAGENET_PAIR, "--distill", "LSKD", teacher="imagenet_resnet34")
    assert (args.ce_weight, args.kd_weight, args.T, args.ls_eps) == (1.0, 6.0, 2.0, 1e-7)


def test_the_table_names_only_networks_of_the_dataset_and_settings_of_its_distiller():
    for (dataset, distiller, teacher, student), settings in PAIR_SETTINGS.items():
        networks = imagenet.MODELS if dataset == IMAGENET else model_dict
        assert teacher in networks and student in networks
        assert settings.keys() <= DEFAULTS[dataset, distiller].keys()


def test_a_weight_left_to_the_pair_does_not_count_as_zero():
    # LSKD's kd weight waits for the teacher; cross-entropy 0 alone still leaves the distillation loss.
    assert student_v0.parse_args(["--teacher-path", "t.pth", "--student-arch", "vgg8", "--distill", "LSKD",
                                  "--ce-weight", "0"]).kd_weight is None


def test_the_mixed_label_rule_is_a_dkd_setting():
    with pytest.raises(UserError, match="--dkd-mix is a setting of --distill DKD, not of --distill KD"):
        student_v0.parse_args(["--teacher-path", "t.pth", "--student-arch", "vgg8", "--dkd-mix", "split"])
