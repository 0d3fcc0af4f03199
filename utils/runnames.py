"""Run directory names, known without building anything: the scripts write there, the run list looks there."""

SUMMARY_FILE = "summary.json"  # each run's progress and results, rewritten every epoch (utils.report)
# The summary.json key of a published teacher laid out by `python -m utils.teachers import`: a finished
# phase-1 run for the dispatchers, "teacher (published checkpoint)" in the results table.
IMPORTED = "imported"

# student_v0.py settings whose non-default value is added to the run's name, so that an ablation never
# shares the main runs' folder (or, in the results table, their row): (setting, label, default).
NAMED_SETTINGS = (("mix_strategy", "mix", 2), ("ce_weight", "ce", 0.0), ("kd_weight", "kd", 1.0), ("T", "T", 4.0))


def teacher_run_name(arch: str, seed: int) -> str:
    """teacher.py's folder: teacher_<arch> for seed 0, the folder students name as their teacher;
    teacher_<arch>_seed<S> for other seeds (the students trained alone, for the table's "student" column)."""
    return f"teacher_{arch}" + (f"_seed{seed}" if seed else "")


def student_run_name(args, teacher_arch: str, teacher_label: str) -> str:
    """student_v0.py's folder; `args` may leave out the NAMED_SETTINGS that keep their default."""
    name = (f"v0_student_{args.student_arch}_teacher_{teacher_arch}-{teacher_label}_strategy{args.strategy}"
            f"_k{args.k}_b{args.b}_w{args.w:g}_seed{args.seed}")
    for key, label, default in NAMED_SETTINGS:
        value = getattr(args, key, default)
        if value != default:
            name += f"_{label}{value:g}"
    other_distill = getattr(args, "other_distill", None)
    return name + (f"_{other_distill}" if other_distill else "")


def is_imported(summary) -> bool:
    """Whether a summary.json's content describes an imported published teacher."""
    return isinstance(summary, dict) and isinstance(summary.get(IMPORTED), dict)
