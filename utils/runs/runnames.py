"""A run's names, known without building anything (no torch): its folder, which the scripts write and the run list
looks for, and its row in the results table (row_name); and what a run folder's summary.json says about how the run
was started."""
import json
from fractions import Fraction
from pathlib import Path

from utils.distillers import CIFAR100, KD, changed_settings, setting_text, settings_revision
from utils.unix_settings import UNIXKD_FLAGS, default_unix_sizes

SUMMARY_FILE = "summary.json"  # each run's progress and results, rewritten every epoch (utils.runs.report)
# The summary.json key of a published teacher laid out by `python -m utils.teachers import`: a finished
# phase-1 run for the dispatchers, "teacher (published checkpoint)" in the results table.
IMPORTED = "imported"

ALONE = "trained alone"  # the method of a teacher.py run: the network learns from the labels only

# student_v0.py's mixing setting, added to the run's name when it is not the default (label, default).
MIX_SETTING, MIX_LABEL, MIX_DEFAULT = "mix_strategy", "mix", 2


def run_distiller_and_dataset(settings: dict) -> tuple:
    """(distiller, dataset) of a run's settings: KD and CIFAR-100 where not given, as in runs made before
    --distill and --dataset existed."""
    return settings.get("distill") or KD, settings.get("dataset") or CIFAR100


def named_settings(settings: dict, teacher_arch: str) -> list:
    """[(label, value)] of the settings that differ from their defaults (the mixing curve's and the
    distiller's published ones), so that an ablation never shares the main runs' folder (or, in the
    results table, their row). `settings` may leave out those that keep their default."""
    named = []
    if settings.get(MIX_SETTING, MIX_DEFAULT) != MIX_DEFAULT:
        named.append((MIX_LABEL, settings[MIX_SETTING]))
    distiller, dataset = run_distiller_and_dataset(settings)
    return named + changed_settings(settings, distiller, teacher_arch, settings.get("student_arch"), dataset)


def teacher_run_name(arch: str, seed: int, tag=None) -> str:
    """teacher.py's folder: teacher_<arch> for seed 0, the folder students name as their teacher;
    teacher_<arch>_seed<S> for other seeds (the students trained alone, for the table's "student" column);
    then _<tag> with --tag."""
    return f"teacher_{arch}" + (f"_seed{seed}" if seed else "") + tagged(tag)


def tagged(tag) -> str:
    return f"_{tag}" if tag else ""


def student_run_name(args, teacher_arch: str, teacher_label: str, teacher_tag=None) -> str:
    """student_v0.py's folder; `args` may leave out the settings that keep their default (named_settings).
    teacher_tag: the --tag of the teacher's own run, so that students of a tagged teacher get their own folder."""
    name = (f"v0_student_{args.student_arch}_teacher_{teacher_arch}{tagged(teacher_tag)}-{teacher_label}"
            f"_strategy{args.strategy}_k{unix_size_text(args.k, 0)}_b{unix_size_text(args.b, 1)}_w{args.w:g}"
            f"_seed{args.seed}")
    distiller, dataset = run_distiller_and_dataset(vars(args))
    if distiller != KD:  # KD's runs keep the names they had before --distill existed
        # The settings' revision: a run made with an earlier table keeps its folder (utils.distillers).
        name += f"_{distiller}_r{settings_revision(distiller, dataset)}"
    for label, value in named_settings(vars(args), teacher_arch):
        name += f"_{label}{setting_text(value)}"
    other_distill = getattr(args, "other_distill", None)
    return name + (f"_{other_distill}" if other_distill else "") + tagged(getattr(args, "tag", None))


def row_name(args: dict, teacher, conventional: bool) -> str:
    """The results table's name of a student run's method, from its summary.json args: 'KD' for conventional KD
    (`conventional`: the training step's own test, random order, all kept, none mixed), else the UNIXKD setting;
    with another distiller, 'DKD', 'UNIX + DKD' (UNIXKD's setting) or 'UNIX (setting) + DKD'. Then the settings
    named in the run's folder, the revision of a distiller's settings it was made with if not today's, and its
    feature loss. `teacher` (the architecture) names the pair whose published settings count as the defaults."""
    distiller, dataset = run_distiller_and_dataset(args)
    setting = f"(S{args['strategy']} k{args['k']} b{args['b']} w{args['w']:g})"
    if conventional:
        name = distiller
    elif distiller == KD:
        name = f"UNIXKD {setting}"
    elif all(args[key] == value for key, value in UNIXKD_FLAGS.items()):
        name = f"UNIX + {distiller}"
    else:
        name = f"UNIX {setting} + {distiller}"
    # The paper's runs all use these settings; an ablation must not be averaged into them.
    for label, value in named_settings(args, teacher):
        name += f" {label}{setting_text(value)}"
    revision = args.get("settings_revision", 1)  # recorded since revision 2
    if distiller != KD and revision != settings_revision(distiller, dataset):
        # Made with another revision of the published settings (utils.distillers): never averaged with today's.
        name += f" r{revision}"
    if args.get("other_distill"):
        name += f" + {args['other_distill']}"
    return name


def unix_size_text(size, which: int) -> str:
    """k (which 0) or b (1) in a folder name: the number given, or, for ImageNet's default (None: a share of
    each process's batch, whose size depends on the number of processes), the share itself: 0.75 and 0.5,
    the paper's 48 and 32 of 64. So the name never depends on the number of processes or the batch."""
    if size is not None:
        return str(size)
    return f"{float(default_share(which)):g}"


def default_share(which: int) -> Fraction:
    """ImageNet's default k (which 0) or b (1) as a share of each process's batch: 3/4 and 1/2."""
    return Fraction(default_unix_sizes(64)[which], 64)


def read_summary(folder):
    """The content of `folder`'s summary.json when it is a JSON object; None where there is none, or it cannot
    be read or parsed (a folder made by hand, a write of an older version cut short)."""
    try:
        summary = json.loads((Path(folder) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def started_world_size(summary: dict) -> int:
    """The number of processes summary.json recorded (older students: told by their batch per process)."""
    if summary.get("world_size"):
        return summary["world_size"]
    started = summary.get("args", {})
    return started["batch_size"] // started["local_batch"] if started.get("local_batch") else 1


def recorded_batch_per_process(summary: dict) -> int:
    """Each process's batch as summary.json recorded it (batch_per_process), or, in a summary written before
    it was, the run's batch over its number of processes."""
    return summary.get("batch_per_process") or summary["args"]["batch_size"] // started_world_size(summary)


def is_imported(summary) -> bool:
    """Whether a summary.json's content describes an imported published teacher."""
    return isinstance(summary, dict) and isinstance(summary.get(IMPORTED), dict)
