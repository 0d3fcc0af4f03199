"""The logit distillers of student_v0.py --distill, with the settings their authors trained them with.

No torch here: the run names, the run list, the results table and student_v0.py's flag checks read
these settings too.
One table keyed by dataset, distiller and pair: DEFAULTS per (dataset, distiller), PAIR_SETTINGS per
(dataset, distiller, teacher, student) where the authors' runs of that pair changed a default.
docs/distillers.md gives each value's source (repository, file, commit); tests/test_distillers.py pins them.
  KD    the UNIXKD paper's runs: cross-entropy 0, KD 1, T 4 (ImageNet too: no other setting of theirs is known).
  DKD   mdistiller: engine/cfg.py and configs/cifar100/dkd/*.yaml, configs/imagenet/*/dkd.yaml.
  LSKD  logit-standardization-KD: engine/cfg.py (KD cross-entropy 0.1), tools/train.py (base temperature 2,
        weight 9) and the base temperature and weight its per-pair logs are named after.
"""
from utils.errors import UserError

KD, DKD, LSKD = "KD", "DKD", "LSKD"
DISTILLERS = (KD, DKD, LSKD)
CIFAR100, IMAGENET = "cifar100", "imagenet"

# Raised when what a distiller other than KD trains with by default changes, so that the runs made
# before keep their folders and their own rows of the results table (utils.runs.runnames, utils.table.summary).
# 2: this table (LSKD cross-entropy 0.1, per-pair and ImageNet settings, BatchNorm updated once per batch).
SETTINGS_REVISION = 2

# DKD on an image with two labels (utils.losses.mixed_dkd_loss): the weighted sum of DKD against each, or
# the split the DKD authors suggested (mdistiller issue #13).
DKD_MIX_RULES = ("weighted", "split")

# UNIX's own settings, which every distiller runs under (the step itself is utils/unix.py): named here,
# without torch, so that student_v0.py checks its flags before torch is imported.
STRATEGIES = {0: "random", 1: "least confidence", 2: "margin", 3: "entropy"}
MIX_STRATEGIES = {0: "none", 1: "mixup", 2: "adaptive"}


def default_unix_sizes(local_batch: int) -> tuple:
    """(k, b) on ImageNet, where they follow each process's batch: the paper's CIFAR proportions, 48 and 32 of 64."""
    return 3 * local_batch // 4, local_batch // 2


# (setting, label in run names and table rows): the settings a distiller may have, in name order.
SETTING_LABELS = (("ce_weight", "ce"), ("kd_weight", "kd"), ("T", "T"), ("alpha", "alpha"), ("beta", "beta"),
                  ("warmup", "warmup"), ("ls_eps", "eps"), ("dkd_mix", "dkdmix"))
DISTILLER_ONLY = ("alpha", "beta", "warmup", "ls_eps", "dkd_mix")  # settings of one distiller, not all of them
POSITIVE = ("T", "alpha", "beta", "warmup", "ls_eps")  # a loss that breaks at 0 or below

UNIXKD_KD = {"ce_weight": 0.0, "kd_weight": 1.0, "T": 4.0}
LS_EPS = 1e-7
DEFAULTS = {
    (CIFAR100, KD): UNIXKD_KD,
    (CIFAR100, DKD): {"ce_weight": 1.0, "kd_weight": 1.0, "T": 4.0, "alpha": 1.0, "beta": 8.0, "warmup": 20,
                      "dkd_mix": "weighted"},
    (CIFAR100, LSKD): {"ce_weight": 0.1, "kd_weight": 9.0, "T": 2.0, "ls_eps": LS_EPS},
    (IMAGENET, KD): UNIXKD_KD,
    (IMAGENET, DKD): {"ce_weight": 1.0, "kd_weight": 1.0, "T": 1.0, "alpha": 1.0, "beta": 0.5, "warmup": 1,
                      "dkd_mix": "weighted"},
    (IMAGENET, LSKD): {"ce_weight": 1.0, "kd_weight": 6.0, "T": 2.0, "ls_eps": LS_EPS},
}

PAIR_SETTINGS = {
    (CIFAR100, DKD, "wrn_40_2", "wrn_16_2"): {"beta": 6.0},
    (CIFAR100, DKD, "wrn_40_2", "wrn_40_1"): {"beta": 6.0},
    (CIFAR100, DKD, "vgg13", "vgg8"): {"beta": 6.0},
    (CIFAR100, DKD, "vgg13", "MobileNetV2"): {"beta": 6.0},
    (CIFAR100, DKD, "resnet56", "resnet20"): {"beta": 2.0},
    (CIFAR100, DKD, "resnet110", "resnet32"): {"beta": 2.0},
    (CIFAR100, LSKD, "vgg13", "vgg8"): {"T": 3.0},
    (CIFAR100, LSKD, "vgg13", "MobileNetV2"): {"T": 3.0},
    (CIFAR100, LSKD, "wrn_40_2", "MobileNetV2"): {"T": 3.0},
    (CIFAR100, LSKD, "ResNet50", "MobileNetV2"): {"T": 3.0, "kd_weight": 1.0},
    (CIFAR100, LSKD, "resnet32x4", "wrn_16_2"): {"T": 3.0},
    (CIFAR100, LSKD, "resnet32x4", "wrn_40_2"): {"T": 3.0},
    (CIFAR100, LSKD, "resnet110", "resnet20"): {"T": 4.0, "kd_weight": 12.0},
    (IMAGENET, DKD, "imagenet_resnet50", "imagenet_mobilenet_v2"): {"beta": 2.0},
}


def distiller_defaults(distiller: str, teacher: str, student: str, dataset: str = CIFAR100) -> dict:
    """The distiller's published settings for this pair: {setting: value}, only the settings it has."""
    return {**DEFAULTS[dataset, distiller], **PAIR_SETTINGS.get((dataset, distiller, teacher, student), {})}


def pair_dependent(distiller: str, dataset: str) -> set:
    """The settings some pair changes, which wait for the teacher to be known (fill_pair_defaults)."""
    return {key for (data, name, _, _), settings in PAIR_SETTINGS.items() if (data, name) == (dataset, distiller)
            for key in settings}


def setting_text(value) -> str:
    """A setting as run names and table rows write it: 8.0 -> '8', 1e-07 -> '1e-07', 'split' -> 'split'."""
    return value if isinstance(value, str) else f"{value:g}"


def changed_settings(settings: dict, distiller: str, teacher: str, student: str, dataset: str = CIFAR100) -> list:
    """[(label, value)] of the settings that differ from the distiller's published ones, in name order.

    `settings` may leave out settings that keep their default."""
    defaults = distiller_defaults(distiller, teacher, student, dataset)
    return [(label, settings[key]) for key, label in SETTING_LABELS
            if key in defaults and settings.get(key) is not None and settings[key] != defaults[key]]


def check_distiller_args(args) -> None:
    """Refuse settings the chosen distiller does not have, and values that would break its loss; fill in
    its defaults, except those that depend on the pair (fill_pair_defaults)."""
    defaults = DEFAULTS[args.dataset, args.distill]
    for flag in DISTILLER_ONLY:
        if getattr(args, flag) is not None and flag not in defaults:
            users = " and ".join(d for d in DISTILLERS if flag in DEFAULTS[args.dataset, d])
            raise UserError(f"--{flag.replace('_', '-')} is a setting of --distill {users}, "
                            f"not of --distill {args.distill}")
    for flag in POSITIVE:
        value = getattr(args, flag)
        if value is not None and not value > 0:
            raise UserError(f"--{flag.replace('_', '-')} must be positive, got {value}")
    waits = pair_dependent(args.distill, args.dataset)
    for flag, value in defaults.items():
        if getattr(args, flag) is None and flag not in waits:
            setattr(args, flag, value)


def fill_pair_defaults(args, teacher_arch: str) -> None:
    """The settings that depend on the pair, once the teacher is known."""
    for flag, value in distiller_defaults(args.distill, teacher_arch, args.student_arch, args.dataset).items():
        if getattr(args, flag) is None:
            setattr(args, flag, value)
