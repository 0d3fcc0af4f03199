"""The logit distillers of student_v0.py --distill, each one declaration (Distiller): its loss, its settings, the
values its authors trained with per dataset and pair and where they come from, its BatchNorm rule, its revision.

Everything else follows from the declarations: student_v0.py's flags, their help and their checks, the run
folders' names, the training step's loss (utils/training/steps.py), the results table's rows, the run list's
extensions and docs/distillers.md's settings tables (defaults_table, pairs_table; tests/test_distillers.py checks
the page holds them and pins every value). Adding a distiller is a pure loss function in utils/losses.py and one
declaration in DISTILLERS (docs/layout.md).

No torch here: student_v0.py checks its flags before torch is imported, and the run names, the run list and the
results table read the declarations too. So a declaration names its loss function, and the training step, where
torch is imported, looks it up in utils.losses.
"""
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

from utils.errors import UserError

KD, DKD, LSKD = "KD", "DKD", "LSKD"
CIFAR100, IMAGENET = "cifar100", "imagenet"
DATASET_TITLES = {CIFAR100: "CIFAR-100", IMAGENET: "ImageNet"}


@dataclass(frozen=True)
class Setting:
    """A distiller's setting: the flag --<name> (student_v0.py), its key in args and summary.json, its label in
    run folder names and results-table rows (_beta8, "DKD beta8")."""

    name: str
    label: str
    help: str               # what it is; the flag's help adds which distillers have it and their defaults
    type: type = float
    choices: tuple = ()     # the named values of a rule; none for a number
    positive: bool = False  # its loss breaks at 0 or below

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


class Published(NamedTuple):
    """Settings a distiller's authors trained with, and where they are written (repository, file, commit)."""

    values: dict
    source: str


# What a loss may take of the step's batch besides the logits (utils.unix.UnixBatch): the two labels of each
# mixed image and its mixing weight m (label a weighs 1 - m, label b m).
BATCH_LABELS = ("targets_a", "targets_b", "mix")


@dataclass(frozen=True)
class Distiller:
    name: str             # --distill NAME; the run folder's _NAME_r<revision>; the results table's row
    help: str             # what it is, in --distill's help
    loss: str             # its function in utils/losses.py: loss(student_logits, teacher_logits, *loss_args)
    loss_args: tuple      # what the loss takes after the logits, in its order: BATCH_LABELS and own settings, by name
    loss_key: str         # its loss's name among the step's losses (train/loss_<key> in TensorBoard)
    settings: tuple       # its own Settings, besides WEIGHTS (which every distiller has), in run-name order
    published: dict       # {dataset: Published}: every setting, WEIGHTS too, on each dataset it is declared for
    pairs: dict = field(default_factory=dict)     # {(dataset, teacher, student): Published}: a pair's own values
    # Raised when what it trains with by default on a dataset changes, so that the runs made before keep their
    # folders and their own rows of the results table (utils.runs.runnames); 1 where not given.
    revision: dict = field(default_factory=dict)  # {dataset: revision}
    epoch_weight: Optional[Callable] = None  # (0-based epoch, settings) -> the weight of its loss in that epoch
    # Whether its conventional runs update BatchNorm as if UNIX's scoring pass had run (the UNIXKD authors' KD
    # baseline made that pass; utils.training.steps.batchnorm_as_if_scored).
    batchnorm_as_if_scored: bool = False

    @property
    def all_settings(self) -> tuple:
        return WEIGHTS + self.settings

    @property
    def setting_names(self) -> tuple:
        return tuple(setting.name for setting in self.all_settings)

    def defaults(self, dataset: str, teacher: str, student: str) -> dict:
        """Its published settings for this pair: {setting: value}, every one it has."""
        pair = self.pairs.get((dataset, teacher, student))
        return {**self.published[dataset].values, **(pair.values if pair else {})}

    def values_of(self, name: str, dataset: str) -> list:
        """A setting's published values on a dataset: the default first, then those of pairs, each once."""
        values = [self.published[dataset].values[name]]
        values += [pair.values[name] for (data, _, _), pair in self.pairs.items() if data == dataset and name in pair.values]
        return list(dict.fromkeys(values))


CE_WEIGHT = Setting("ce_weight", "ce", "weight of cross-entropy")
KD_WEIGHT = Setting("kd_weight", "kd", "weight of the distillation loss")
WEIGHTS = (CE_WEIGHT, KD_WEIGHT)  # the step weighs cross-entropy and the distiller's loss, whichever it is
TEMPERATURE = Setting("T", "T", "distillation temperature", positive=True)
DKD_MIX_RULES = ("weighted", "split")  # utils.losses.mixed_dkd_loss
LS_EPS = 1e-7


def dkd_warmup(epoch: int, settings: dict) -> float:
    """DKD's weight in 0-based epoch `epoch`: min(e / warmup, 1) for the 1-based epoch e, as mdistiller counts."""
    return min((epoch + 1) / settings["warmup"], 1.0)


MDISTILLER_DKD = "mdistiller `configs/cifar100/dkd/{}.yaml` (e8c5bb3)"
LS_DEFAULTS = {"T": 2.0, "kd_weight": 9.0}  # LS tools/train.py's --base-temp and --kd-weight


def ls_logged(teacher: str, student: str, base_temp: float, kd_weight: float, commit: str) -> tuple:
    """A CIFAR-100 pair of the LS README, from the name of the log it links: kd,<teacher>,<student>,<base
    temperature>,<kd weight>.txt. ((dataset, teacher, student), Published of the values other than LS's defaults)."""
    logged = {"T": base_temp, "kd_weight": kd_weight}
    source = f"LS `logs/KD/kd,{teacher},{student},{base_temp:g},{kd_weight:g}.txt` ({commit})"
    return (CIFAR100, teacher, student), Published({k: v for k, v in logged.items() if v != LS_DEFAULTS[k]}, source)

HINTON_KD = Distiller(
    name=KD, help="Hinton's KD, the paper's", loss="kd_loss", loss_args=("T",), loss_key="kd",
    settings=(TEMPERATURE,),
    published={
        CIFAR100: Published({"ce_weight": 0.0, "kd_weight": 1.0, "T": 4.0},
                            "UNIXKD paper (shared/reference/unix-algorithm.md, step 7)"),
        IMAGENET: Published({"ce_weight": 0.0, "kd_weight": 1.0, "T": 4.0},
                            "the UNIXKD paper's CIFAR setting: its ImageNet KD setting is not stated in "
                            "shared/reference and was not found in the sources at hand"),
    },
    # Never changed; its runs record the revision the whole table had when revisions were first recorded, and its
    # folders carry none (they keep the names they had before --distill existed).
    revision={CIFAR100: 2, IMAGENET: 2},
    batchnorm_as_if_scored=True,
)

DECOUPLED_KD = Distiller(
    name=DKD, help="decoupled KD", loss="mixed_dkd_loss",
    loss_args=("targets_a", "targets_b", "mix", "alpha", "beta", "T", "dkd_mix"), loss_key="dkd",
    settings=(TEMPERATURE, Setting("alpha", "alpha", "weight of the target-class term", positive=True),
              Setting("beta", "beta", "weight of the non-target-class term", positive=True),
              Setting("warmup", "warmup", "epochs over which its weight rises to 1", type=int, positive=True),
              Setting("dkd_mix", "dkdmix", "the rule for a mixed image's two labels: weighted (DKD against each "
                      "label, weighted as mixup weights them) or split (target terms over both labels and the rest, "
                      "the DKD authors' suggestion)", type=str, choices=DKD_MIX_RULES)),
    published={
        CIFAR100: Published({"ce_weight": 1.0, "kd_weight": 1.0, "T": 4.0, "alpha": 1.0, "beta": 8.0, "warmup": 20,
                             "dkd_mix": "weighted"},
                            "mdistiller `mdistiller/engine/cfg.py` (a08d46f): `DKD.CE_WEIGHT 1.0, ALPHA 1.0, BETA 8.0, "
                            "T 4.0, WARMUP 20`"),
        IMAGENET: Published({"ce_weight": 1.0, "kd_weight": 1.0, "T": 1.0, "alpha": 1.0, "beta": 0.5, "warmup": 1,
                             "dkd_mix": "weighted"},
                            "mdistiller `configs/imagenet/r34_r18/dkd.yaml` (e8c5bb3): `CE_WEIGHT 1.0, BETA 0.5, "
                            "T 1.0, WARMUP 1` (ALPHA from cfg.py)"),
    },
    pairs={
        (CIFAR100, "wrn_40_2", "wrn_16_2"): Published({"beta": 6.0}, MDISTILLER_DKD.format("wrn40_2_wrn_16_2")),
        (CIFAR100, "wrn_40_2", "wrn_40_1"): Published({"beta": 6.0}, MDISTILLER_DKD.format("wrn40_2_wrn_40_1")),
        (CIFAR100, "vgg13", "vgg8"): Published({"beta": 6.0}, MDISTILLER_DKD.format("vgg13_vgg8")),
        (CIFAR100, "vgg13", "MobileNetV2"): Published({"beta": 6.0}, MDISTILLER_DKD.format("vgg13_mv2")),
        (CIFAR100, "resnet56", "resnet20"): Published({"beta": 2.0}, MDISTILLER_DKD.format("res56_res20")),
        (CIFAR100, "resnet110", "resnet32"): Published({"beta": 2.0}, MDISTILLER_DKD.format("res110_res32")),
        (IMAGENET, "imagenet_resnet50", "imagenet_mobilenet_v2"): Published(
            {"beta": 2.0}, "borrowed from the DKD authors' ResNet-50 -> MobileNet-V1 run, the nearest they made: "
                           "mdistiller `configs/imagenet/r50_mv1/dkd.yaml` (fae6658: `STUDENT: MobileNetV1`, "
                           "`BETA: 2.0`), named `r50_mv2` with `STUDENT: MobileNetV2` before (e8c5bb3)"),
    },
    revision={CIFAR100: 2, IMAGENET: 2},
    epoch_weight=dkd_warmup,
)

STANDARDISED_KD = Distiller(
    name=LSKD, help="KD on standardised logits", loss="lskd_loss", loss_args=("T", "ls_eps"), loss_key="lskd",
    settings=(TEMPERATURE, Setting("ls_eps", "eps", "added to the logits' standard deviation, so that a constant "
                                   "vector stays finite", positive=True)),
    published={
        CIFAR100: Published({"ce_weight": 0.1, **LS_DEFAULTS, "ls_eps": LS_EPS},
                            "LS `mdistiller/engine/cfg.py` (`KD.LOSS.CE_WEIGHT = 0.1`, quoted from master in LS issue "
                            "#25; the authors say in LS issue #8 they kept 0.1, mdistiller's Hinton setting, for their "
                            "KD runs); `tools/train.py` (2ece47f): `--base-temp 2`, `--kd-weight 9` replace KD's "
                            "temperature and weight; `mdistiller/distillers/KD.py` (6083e2d) `normalize`: "
                            "`(logit - mean) / (1e-7 + stdv)`"),
        IMAGENET: Published({"ce_weight": 1.0, "kd_weight": 6.0, "T": 2.0, "ls_eps": LS_EPS},
                            "LS's one ImageNet run, ResNet-34 -> ResNet-18: `logs/imagenet/r34_r18_kd_ours_2_6.txt` "
                            "(7806faa; base temperature 2, weight 6, best_acc 71.42) with "
                            "`configs/imagenet/r34_r18/kd.yaml` of the same commit (`CE_WEIGHT 1.0`, `LR 0.2` as the "
                            "log's); not the README's `--kd-weight 9` (see below); every ImageNet pair"),
    },
    pairs={
        **dict((ls_logged("vgg13", "vgg8", 3.0, 9.0, "78195b4"),
                ls_logged("vgg13", "MobileNetV2", 3.0, 9.0, "78195b4"),
                ls_logged("wrn_40_2", "MobileNetV2", 3.0, 9.0, "78195b4"),
                ls_logged("ResNet50", "MobileNetV2", 3.0, 1.0, "78195b4"),
                ls_logged("resnet32x4", "wrn_16_2", 3.0, 9.0, "78195b4"),
                ls_logged("resnet32x4", "wrn_40_2", 3.0, 9.0, "78195b4"),
                ls_logged("resnet110", "resnet20", 4.0, 12.0, "ebeb76c"))),
        # No ImageNet pair: LS published no setting of ResNet-50 -> MobileNetV2, which takes the ResNet-34 ->
        # ResNet-18 run's values (docs/distillers.md says why not LS's r50_mv2/mlkd.yaml, a KD_ours config).
    },
    revision={CIFAR100: 2, IMAGENET: 2},
)

DISTILLERS = {distiller.name: distiller for distiller in (HINTON_KD, DECOUPLED_KD, STANDARDISED_KD)}


def other_distillers() -> list:
    """The distillers beside the paper's KD: those the run list's extensions add (utils.table.runlist)."""
    return [name for name in DISTILLERS if name != KD]


def all_settings() -> list:
    """Every distiller's settings, each once (a setting two distillers share, T, is one flag), weights first."""
    settings = {}
    for distiller in DISTILLERS.values():
        for setting in distiller.all_settings:
            if settings.setdefault(setting.name, setting) != setting:
                raise ValueError(f"two declarations of the setting {setting.name!r}: {settings[setting.name]}, {setting}")
    return list(settings.values())


def names_text(names, last: str = "and") -> str:
    """'A', 'A and B', 'A, B and C' (or 'A, B or C')."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" {last} " + names[-1]


def setting_text(value) -> str:
    """A setting as run names and table rows write it: 8.0 -> '8', 1e-07 -> '1e-07', 'split' -> 'split'."""
    return value if isinstance(value, str) else f"{value:g}"


def distiller_defaults(distiller: str, teacher: str, student: str, dataset: str = CIFAR100) -> dict:
    """The distiller's published settings for this pair: {setting: value}, only the settings it has."""
    return DISTILLERS[distiller].defaults(dataset, teacher, student)


def settings_revision(distiller: str, dataset: str) -> int:
    return DISTILLERS[distiller].revision.get(dataset, 1)


def own_settings(distiller: str, values: dict) -> dict:
    """The values of the distiller's own settings (not the weights), those `values` has."""
    return {setting.name: values[setting.name] for setting in DISTILLERS[distiller].settings if setting.name in values}


def pair_dependent(distiller: str, dataset: str) -> set:
    """The settings some pair changes, which wait for the teacher to be known (fill_pair_defaults)."""
    return {key for (data, _, _), pair in DISTILLERS[distiller].pairs.items() if data == dataset for key in pair.values}


def changed_settings(settings: dict, distiller: str, teacher: str, student: str, dataset: str = CIFAR100) -> list:
    """[(label, value)] of the settings that differ from the distiller's published ones, in name order.

    `settings` may leave out settings that keep their default."""
    declared = DISTILLERS[distiller]
    defaults = declared.defaults(dataset, teacher, student)
    return [(setting.label, settings[setting.name]) for setting in declared.all_settings
            if settings.get(setting.name) is not None and settings[setting.name] != defaults[setting.name]]


def setting_help(setting: Setting) -> str:
    """A flag's help: which distillers have it, what it is, and their published values per dataset and pair
    ('LSKD 2/3/4': 2 by default, 3 or 4 for some pairs)."""
    users = [distiller for distiller in DISTILLERS.values() if setting.name in distiller.setting_names]
    owners = "" if len(users) == len(DISTILLERS) else names_text(distiller.name for distiller in users) + ": "
    per_dataset = {}
    for dataset, title in DATASET_TITLES.items():
        values = [("" if len(users) == 1 else distiller.name + " ")
                  + "/".join(map(setting_text, distiller.values_of(setting.name, dataset)))
                  for distiller in users if dataset in distiller.published]
        if values:
            per_dataset[title] = ", ".join(values)
    if len(set(per_dataset.values())) == 1:
        return f"{owners}{setting.help} (default {next(iter(per_dataset.values()))})"
    listed = "; ".join(f"{title} {values}" for title, values in per_dataset.items())
    return f"{owners}{setting.help} (default per dataset and pair: {listed})"


def distill_help() -> str:
    listed = names_text((f"{name} ({distiller.help}{'; default' if name == KD else ''})"
                         for name, distiller in DISTILLERS.items()), last="or")
    return (f"logit distiller: {listed}; each brings its authors' settings for the dataset and pair, "
            f"docs/distillers.md")


def add_distiller_args(parser) -> None:
    """--distill and every distiller's settings, each with its help; none has a default here: check_distiller_args
    and fill_pair_defaults give the chosen distiller's."""
    parser.add_argument("--distill", default=KD, choices=list(DISTILLERS), help=distill_help())
    for setting in all_settings():
        parser.add_argument(setting.flag, type=setting.type, choices=setting.choices or None, help=setting_help(setting))


def check_distiller_args(args) -> None:
    """Refuse settings the chosen distiller does not have, and values that would break its loss; fill in
    its defaults, except those that depend on the pair (fill_pair_defaults)."""
    distiller = DISTILLERS[args.distill]
    if args.dataset not in distiller.published:
        raise UserError(f"--distill {args.distill} has no published settings for --dataset {args.dataset}; it is "
                        f"declared for {names_text(distiller.published)}")
    for setting in all_settings():
        if getattr(args, setting.name) is not None and setting.name not in distiller.setting_names:
            users = names_text(d.name for d in DISTILLERS.values() if setting.name in d.setting_names)
            raise UserError(f"{setting.flag} is a setting of --distill {users}, not of --distill {args.distill}")
    for setting in all_settings():
        value = getattr(args, setting.name)
        if setting.positive and value is not None and not value > 0:
            raise UserError(f"{setting.flag} must be positive, got {value}")
    waits = pair_dependent(args.distill, args.dataset)
    for name, value in distiller.published[args.dataset].values.items():
        if getattr(args, name) is None and name not in waits:
            setattr(args, name, value)


def fill_pair_defaults(args, teacher_arch: str) -> None:
    """The settings that depend on the pair, once the teacher is known."""
    for flag, value in distiller_defaults(args.distill, teacher_arch, args.student_arch, args.dataset).items():
        if getattr(args, flag) is None:
            setattr(args, flag, value)


def defaults_table() -> str:
    """docs/distillers.md's table of the defaults per dataset and distiller, with their sources."""
    settings = all_settings()
    lines = ["| dataset | distiller | " + " | ".join(f"`{s.flag}`" for s in settings) + " | source |",
             "|---|---|" + "---|" * len(settings) + "---|"]
    for dataset in DATASET_TITLES:
        for name, distiller in DISTILLERS.items():
            if dataset in distiller.published:
                values, source = distiller.published[dataset]
                cells = [setting_text(values[s.name]) if s.name in values else "-" for s in settings]
                lines.append(f"| {dataset} | {name} | " + " | ".join(cells) + f" | {source} |")
    return "\n".join(lines)


def pairs_table() -> str:
    """docs/distillers.md's table of the settings some pairs' runs changed, with their sources."""
    lines = ["| dataset | distiller | teacher -> student | settings | source |", "|---|---|---|---|---|"]
    for dataset in DATASET_TITLES:
        for name, distiller in DISTILLERS.items():
            for (data, teacher, student), (values, source) in distiller.pairs.items():
                if data == dataset:
                    changed = ", ".join(f"{key.replace('_', '-')} {setting_text(value)}" for key, value in values.items())
                    lines.append(f"| {dataset} | {name} | {teacher} -> {student} | {changed} | {source} |")
    return "\n".join(lines)
