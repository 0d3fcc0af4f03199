"""The logit distillers of student_v0.py --distill, with the defaults their authors published for CIFAR-100.

No torch here: the run names, the run list, the results table and student_v0.py's flag checks read these.
Where each number comes from (docs/distillers.md has the full list):
  KD    the UNIXKD paper's runs: cross-entropy 0, KD 1, T 4.
  DKD   Zhao et al., CVPR 2022; mdistiller's engine/cfg.py (CE_WEIGHT 1.0, ALPHA 1.0, BETA 8.0, T 4.0,
        WARMUP 20) and its configs/cifar100/dkd/*.yaml, which set BETA per pair (DKD_BETA below).
  LSKD  Sun et al., CVPR 2024; the authors' logit-standardization-KD: tools/train.py (--base-temp 2,
        --kd-weight 9), engine/cfg.py (KD CE_WEIGHT 1) and the 1e-7 added to the standard deviation.
"""
from utils.errors import UserError

KD, DKD, LSKD = "KD", "DKD", "LSKD"
DISTILLERS = (KD, DKD, LSKD)

# UNIX's own settings, which every distiller runs under (the step itself is utils/unix.py): named here,
# without torch, so that student_v0.py checks its flags before torch is imported.
STRATEGIES = {0: "random", 1: "least confidence", 2: "margin", 3: "entropy"}
MIX_STRATEGIES = {0: "none", 1: "mixup", 2: "adaptive"}

# (setting, label in run names and table rows): the settings a distiller may have, in name order.
SETTING_LABELS = (("ce_weight", "ce"), ("kd_weight", "kd"), ("T", "T"), ("alpha", "alpha"), ("beta", "beta"),
                  ("warmup", "warmup"), ("ls_eps", "eps"))

DEFAULTS = {
    KD: {"ce_weight": 0.0, "kd_weight": 1.0, "T": 4.0},
    DKD: {"ce_weight": 1.0, "kd_weight": 1.0, "T": 4.0, "alpha": 1.0, "beta": 8.0, "warmup": 20},
    LSKD: {"ce_weight": 1.0, "kd_weight": 9.0, "T": 2.0, "ls_eps": 1e-7},
}

# mdistiller's configs/cifar100/dkd/<pair>.yaml that change BETA from 8.0 (teacher, student).
DKD_BETA = {
    ("wrn_40_2", "wrn_16_2"): 6.0,
    ("wrn_40_2", "wrn_40_1"): 6.0,
    ("vgg13", "vgg8"): 6.0,
    ("vgg13", "MobileNetV2"): 6.0,
    ("resnet56", "resnet20"): 2.0,
}


def distiller_defaults(distiller: str, teacher: str, student: str) -> dict:
    """The distiller's published settings for this pair: {setting: value}, only the settings it has."""
    defaults = dict(DEFAULTS[distiller])
    if distiller == DKD:
        defaults["beta"] = DKD_BETA.get((teacher, student), defaults["beta"])
    return defaults


def changed_settings(settings: dict, distiller: str, teacher: str, student: str) -> list:
    """[(label, value)] of the settings that differ from the distiller's published ones, in name order.

    `settings` may leave out settings that keep their default."""
    defaults = distiller_defaults(distiller, teacher, student)
    return [(label, settings[key]) for key, label in SETTING_LABELS
            if key in defaults and settings.get(key) is not None and settings[key] != defaults[key]]


DISTILLER_ONLY = ("alpha", "beta", "warmup", "ls_eps")  # settings of one distiller, not all of them


def check_distiller_args(args) -> None:
    """Refuse settings the chosen distiller does not have, and values that would break its loss; fill in
    its defaults, except DKD's beta, which depends on the pair (fill_pair_defaults)."""
    has = DEFAULTS[args.distill]
    for flag in DISTILLER_ONLY:
        value = getattr(args, flag)
        name = "--" + flag.replace("_", "-")
        if value is None:
            continue
        if flag not in has:
            users = " and ".join(d for d in DISTILLERS if flag in DEFAULTS[d])
            raise UserError(f"{name} is a setting of --distill {users}, not of --distill {args.distill}")
        if not value > 0:
            raise UserError(f"{name} must be positive, got {value}")
    for flag, value in DEFAULTS[args.distill].items():
        if getattr(args, flag) is None and flag != "beta":
            setattr(args, flag, value)


def fill_pair_defaults(args, teacher_arch: str) -> None:
    """DKD's beta, once the teacher is known."""
    if args.distill == DKD and args.beta is None:
        args.beta = distiller_defaults(DKD, teacher_arch, args.student_arch)["beta"]
