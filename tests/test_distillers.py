"""The distillers' declarations: the values their authors trained with, per dataset and pair (sources in
docs/distillers.md), and what follows from them: student_v0.py's flags, their help and defaults, the docs' tables."""
import argparse
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import student_v0
from models import imagenet, model_dict
from utils import losses
from utils.distillers import (BATCH_LABELS, CIFAR100, DATASET_TITLES, DISTILLERS, DKD, IMAGENET, KD, LSKD, TEMPERATURE,
                              add_distiller_args, all_settings, defaults_table, distiller_defaults, fill_pair_defaults,
                              pairs_table, setting_help, settings_revision)
from utils.errors import UserError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "distillers.md"
R50_MV2 = ("imagenet_resnet50", "imagenet_mobilenet_v2")


def filled(*flags, teacher):
    """student_v0.py's settings once main() knows the teacher."""
    args = student_v0.parse_args(["--teacher-path", "t.pth", *flags])
    fill_pair_defaults(args, teacher)
    return args


def test_kd_keeps_the_unixkd_papers_setting_on_both_datasets():
    for dataset in (CIFAR100, IMAGENET):
        assert DISTILLERS[KD].published[dataset].values == {"ce_weight": 0.0, "kd_weight": 1.0, "T": 4.0}


def test_lskd_trains_with_the_ls_authors_cross_entropy_weight():
    # LS engine/cfg.py: KD.LOSS.CE_WEIGHT = 0.1 (their issue #8: kept for the published KD + LS runs).
    assert distiller_defaults(LSKD, "resnet32x4", "resnet8x4") == {"ce_weight": 0.1, "kd_weight": 9.0, "T": 2.0,
                                                                   "ls_eps": 1e-7}
    args = filled("--student-arch", "resnet8x4", "--distill", "LSKD", teacher="resnet32x4")
    assert (args.ce_weight, args.kd_weight, args.T) == (0.1, 9.0, 2.0)
    # ls_eps: LS mdistiller/distillers/KD.py at 6083e2d divides by 1e-7 + std.
    assert "`mdistiller/distillers/KD.py` (6083e2d) `normalize`: `(logit - mean) / (1e-7 + stdv)`" in \
        DISTILLERS[LSKD].published[CIFAR100].source


def test_dkd_cifar_defaults_and_betas_per_pair():
    assert DISTILLERS[DKD].published[CIFAR100].values == {"ce_weight": 1.0, "kd_weight": 1.0, "T": 4.0, "alpha": 1.0,
                                                          "beta": 8.0, "warmup": 20, "dkd_mix": "weighted"}
    betas = {pair: distiller_defaults(DKD, *pair)["beta"] for pair in (
        ("resnet110", "resnet32"), ("resnet56", "resnet20"), ("wrn_40_2", "wrn_16_2"), ("wrn_40_2", "wrn_40_1"),
        ("vgg13", "vgg8"), ("vgg13", "MobileNetV2"), ("resnet32x4", "resnet8x4"), ("resnet32x4", "ShuffleV1"),
        ("resnet32x4", "ShuffleV2"), ("wrn_40_2", "ShuffleV1"), ("ResNet50", "MobileNetV2"))}
    assert betas == {("resnet110", "resnet32"): 2.0, ("resnet56", "resnet20"): 2.0, ("wrn_40_2", "wrn_16_2"): 6.0,
                     ("wrn_40_2", "wrn_40_1"): 6.0, ("vgg13", "vgg8"): 6.0, ("vgg13", "MobileNetV2"): 6.0,
                     ("resnet32x4", "resnet8x4"): 8.0, ("resnet32x4", "ShuffleV1"): 8.0,
                     ("resnet32x4", "ShuffleV2"): 8.0, ("wrn_40_2", "ShuffleV1"): 8.0, ("ResNet50", "MobileNetV2"): 8.0}
    assert filled("--student-arch", "resnet32", "--distill", "DKD", teacher="resnet110").beta == 2.0
    # Each beta read from its config at mdistiller e8c5bb3, and its source says so.
    cifar_pairs = [pair for (dataset, _, _), pair in DISTILLERS[DKD].pairs.items() if dataset == CIFAR100]
    assert len(cifar_pairs) == 6 and all(pair.source.endswith(".yaml` (e8c5bb3)") for pair in cifar_pairs)


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
    # configs/imagenet/r34_r18/dkd.yaml: CE 1.0, BETA 0.5, T 1.0, WARMUP 1.
    args = filled(*IMAGENET_PAIR, "--distill", "DKD", teacher="imagenet_resnet34")
    assert (args.ce_weight, args.kd_weight, args.T, args.alpha, args.beta, args.warmup) == (1.0, 1.0, 1.0, 1.0, 0.5, 1)


def test_imagenet_dkd_resnet50_mobilenetv2_borrows_beta_from_the_authors_mobilenet_v1_run():
    # mdistiller ran ResNet-50 -> MobileNet-V1 (configs/imagenet/r50_mv1/dkd.yaml at fae6658, BETA 2.0; named r50_mv2
    # before, with STUDENT MobileNetV2); no MobileNetV2 student. Borrowed, and the source says so.
    assert distiller_defaults(DKD, *R50_MV2, IMAGENET) == {"ce_weight": 1.0, "kd_weight": 1.0, "T": 1.0, "alpha": 1.0,
                                                           "beta": 2.0, "warmup": 1, "dkd_mix": "weighted"}
    source = DISTILLERS[DKD].pairs[(IMAGENET, *R50_MV2)].source
    assert "borrowed" in source and "r50_mv1/dkd.yaml` (fae6658" in source


def test_imagenet_lskd_gets_the_ls_authors_imagenet_run_not_the_readmes_weight():
    # logs/imagenet/r34_r18_kd_ours_2_6.txt (base temperature 2, weight 6: LS's naming, their issue #19) with
    # configs/imagenet/r34_r18/kd.yaml (CE 1.0) of the same commit, 7806faa; the README says --kd-weight 9.
    args = filled(*IMAGENET_PAIR, "--distill", "LSKD", teacher="imagenet_resnet34")
    assert (args.ce_weight, args.kd_weight, args.T, args.ls_eps) == (1.0, 6.0, 2.0, 1e-7)
    assert "r34_r18_kd_ours_2_6.txt` (7806faa" in DISTILLERS[LSKD].published[IMAGENET].source


def test_imagenet_lskd_resnet50_mobilenetv2_takes_the_resnet34_resnet18_runs_values():
    # LS published no setting of this pair. Its one config of it, configs/imagenet/r50_mv2/mlkd.yaml (6083e2d,
    # CE_WEIGHT 0.5), is DISTILLER.TYPE KD_ours, another method that --logit-stand does not reach (tools/train.py);
    # the one ImageNet run used kd.yaml (CE 1.0; its log's lr 0.2 is kd.yaml's, not kd_ours.yaml's 0.1).
    assert (IMAGENET, *R50_MV2) not in DISTILLERS[LSKD].pairs
    source = DISTILLERS[LSKD].published[IMAGENET].source
    assert "kd.yaml` of the same commit (`CE_WEIGHT 1.0`, `LR 0.2` as the log's)" in source
    assert "every ImageNet pair" in source
    args = filled("--dataset", "imagenet", "--student-arch", "imagenet_mobilenet_v2", "--distill", "LSKD",
                  teacher="imagenet_resnet50")
    assert (args.ce_weight, args.kd_weight, args.T, args.ls_eps) == (1.0, 6.0, 2.0, 1e-7)


def test_each_distiller_counts_its_own_revisions_per_dataset():
    assert {(name, dataset): settings_revision(name, dataset) for name in (KD, DKD, LSKD)
            for dataset in (CIFAR100, IMAGENET)} == {(KD, CIFAR100): 2, (KD, IMAGENET): 2, (DKD, CIFAR100): 2,
                                                     (DKD, IMAGENET): 2, (LSKD, CIFAR100): 2, (LSKD, IMAGENET): 2}


def test_the_table_names_only_networks_of_the_dataset_and_settings_of_its_distiller():
    for distiller in DISTILLERS.values():
        for dataset, published in distiller.published.items():
            assert published.values.keys() == set(distiller.setting_names), (distiller.name, dataset)
        for (dataset, teacher, student), pair in distiller.pairs.items():
            networks = imagenet.MODELS if dataset == IMAGENET else model_dict
            assert teacher in networks and student in networks
            assert pair.values.keys() <= set(distiller.setting_names) and pair.source


def test_each_declared_loss_is_a_function_of_utils_losses_taking_what_its_declaration_gives():
    for distiller in DISTILLERS.values():
        parameters = inspect.signature(getattr(losses, distiller.loss)).parameters
        assert len(parameters) == 2 + len(distiller.loss_args), distiller.name  # the logits, then loss_args
        assert set(distiller.loss_args) <= set(BATCH_LABELS) | set(distiller.setting_names), distiller.name


def test_a_weight_left_to_the_pair_does_not_count_as_zero():
    # LSKD's kd weight waits for the teacher; cross-entropy 0 alone still leaves the distillation loss.
    assert student_v0.parse_args(["--teacher-path", "t.pth", "--student-arch", "vgg8", "--distill", "LSKD",
                                  "--ce-weight", "0"]).kd_weight is None


def test_the_mixed_label_rule_is_a_dkd_setting():
    with pytest.raises(UserError, match="--dkd-mix is a setting of --distill DKD, not of --distill KD"):
        student_v0.parse_args(["--teacher-path", "t.pth", "--student-arch", "vgg8", "--dkd-mix", "split"])


def published_in_help(text: str) -> dict:
    """{(dataset title, distiller): {values}} from a flag's help: '... CIFAR-100 KD 4, LSKD 2/3/4; ImageNet ...'."""
    listed = re.search(r"\(default per dataset and pair: (.*)\)$", text).group(1)
    found = {}
    for part in listed.split("; "):
        title, entries = part.split(" ", 1)
        for entry in entries.split(", "):
            name, values = entry.split(" ")
            found[title, name] = set(values.split("/"))
    return found


def test_the_temperature_help_lists_every_published_temperature_so_it_cannot_drift_from_them():
    parser = argparse.ArgumentParser()
    add_distiller_args(parser)
    text = parser._option_string_actions["--T"].help
    assert text == setting_help(TEMPERATURE) and "LSKD 2/3/4" in text  # 4: resnet110 -> resnet20
    expected = {}
    for name, distiller in DISTILLERS.items():
        if TEMPERATURE not in distiller.settings:
            continue  # a distiller without a temperature is not in its help (test_extending.py declares one)
        for dataset in distiller.published:  # the datasets it is declared for
            pairs = [(t, s) for (data, t, s) in distiller.pairs if data == dataset] + [("no", "pair")]
            expected[DATASET_TITLES[dataset], name] = {f"{distiller_defaults(name, t, s, dataset)['T']:g}"
                                                      for t, s in pairs}
    assert published_in_help(text) == expected


def test_every_setting_is_one_flag_with_its_help_and_no_default_of_its_own():
    parser = argparse.ArgumentParser()
    add_distiller_args(parser)
    for setting in all_settings():
        action = parser._option_string_actions[setting.flag]
        assert action.default is None and action.help == setting_help(setting)
    # Today's distillers' settings, in this order; a distiller declared later adds its own after them.
    assert [setting.name for setting in all_settings()][:8] == ["ce_weight", "kd_weight", "T", "alpha", "beta",
                                                               "warmup", "dkd_mix", "ls_eps"]


def test_docs_show_the_declared_settings_tables():
    page = DOCS.read_text()
    assert defaults_table() in page, "docs/distillers.md: paste utils.distillers.defaults_table()"
    assert pairs_table() in page, "docs/distillers.md: paste utils.distillers.pairs_table()"


def test_the_declarations_and_the_table_row_names_need_no_torch():
    # student_v0.py checks its flags before torch is imported; a run's method is named as the results table names
    # it (utils.runs.runnames.row_name) by whatever writes it, without torch.
    code = "import sys, utils.distillers, utils.unix_settings, utils.runs.runnames; assert 'torch' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], cwd=DOCS.parents[1], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
