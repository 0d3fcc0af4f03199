"""Distil a student with UNIXKD (or conventional KD), on CIFAR-100:

    python student_v0.py --teacher-path ./experiments/teacher_wrn_40_2/ --student-arch wrn_16_2 --lr 0.05

or on ImageNet, one process per GPU (docs/imagenet.md):

    torchrun --nproc_per_node=8 student_v0.py --dataset imagenet --data-root /data/imagenet \
        --teacher-path torchvision:resnet34 --student-arch imagenet_resnet18
"""
import argparse

from utils.data.dataset_args import check_batch_per_process, dataset_of, parse_dataset_args
from utils.distillers import add_distiller_args, check_distiller_args, own_settings, settings_revision
from utils.errors import UserError
from utils.process import ranks
from utils.process.cli import ArgumentParser, add_common_args, check_common_args, run_main
from utils.unix_settings import (KD_FLAGS, MIX_STRATEGIES, STRATEGIES, UNIXKD_FLAGS, default_unix_sizes,
                                  strategies_text)


def flags_text(flags: dict) -> str:
    return " ".join(f"--{key} {value}" for key, value in flags.items())


PAPER_COMMANDS = f"""the paper's two methods (lr 0.01 for MobileNetV2, ShuffleV1 and ShuffleV2 students, 0.05 otherwise):
  UNIXKD: python student_v0.py --teacher-path experiments/teacher_resnet32x4/ --student-arch resnet8x4 \\
          {flags_text(UNIXKD_FLAGS)} --lr 0.05   (the defaults)
  KD:     python student_v0.py --teacher-path experiments/teacher_resnet32x4/ --student-arch resnet8x4 \\
          {flags_text(KD_FLAGS)} --lr 0.05   (conventional KD: every image, none mixed)"""


def parse_args(argv=None):
    parser = ArgumentParser(description="Distil a student with UNIXKD or KD (CIFAR-100, or --dataset imagenet).",
                            epilog=PAPER_COMMANDS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher-path", required=True,
                        help="teacher run directory (experiments/teacher_<arch>/), a checkpoint file, or with "
                             "--dataset imagenet torchvision:<resnet18|resnet34|resnet50|mobilenet_v2> (pretrained)")
    parser.add_argument("--teacher-ckpt", default="best", help="checkpoint name inside a run directory (default best)")
    parser.add_argument("--teacher-arch", help="teacher architecture, when the path does not name it")
    parser.add_argument("--student-arch", required=True, help="student architecture (python -m models lists them)")
    add_common_args(parser)
    parser.add_argument("--k", type=int, default=48,
                        help="images per batch that reach the teacher (default 48; imagenet: 3/4 of each GPU's batch)")
    parser.add_argument("--b", type=int, default=32,
                        help="most uncertain images kept un-mixed (default 32; imagenet: 1/2 of each GPU's batch)")
    parser.add_argument("--w", type=float, default=10.0, help="steepness of the mixing curve (default 10)")
    parser.add_argument("--strategy", type=int, choices=sorted(STRATEGIES), default=3,
                        help=f"uncertainty: {strategies_text()} (default 3)")
    parser.add_argument("--mix-strategy", type=int, choices=sorted(MIX_STRATEGIES), default=2,
                        help="mixing: 0 none, 1 plain mixup, 2 adaptive curve (default)")
    add_distiller_args(parser)  # --distill and its settings, each with its defaults per dataset and pair
    parser.add_argument("--other-distill", choices=["AT", "SP", "SP-batch"],
                        help="add a feature loss: AT (x1000), SP as the authors' runs computed it (per image, x3000) "
                             "or SP-batch, the published batch-level SP (x3000)")
    parser.add_argument("--experiments-dir", default="./experiments", help="where run directories go (default ./experiments)")
    parser.set_defaults(**imagenet_unix_defaults(argv))
    args = parse_dataset_args(parser, argv)
    check_common_args(args)
    check_unix_sizes(args, None if batch_left_to_run(args) else ranks.local_batch_size(args.batch_size))
    check_distiller_args(args)
    check_distill_args(args)
    # Runs made with other published settings stay apart (utils.runs.runnames).
    args.settings_revision = settings_revision(args.distill, args.dataset)
    from utils.training.build import check_arch  # the model zoo, and torch with it, once the flags parse

    check_arch(args.student_arch, "--student-arch", args.dataset)
    return args


def imagenet_unix_defaults(argv) -> dict:
    """ImageNet's k and b not given stay None (the folder name gives their share) until the batch is known."""
    return {"k": None, "b": None} if dataset_of(argv) == "imagenet" else {}


def batch_left_to_run(args) -> bool:
    """Whether the batch is not known yet: a --resume that does not give it continues with the run's own."""
    return args.resume and "batch_size" not in args.given


def unix_sizes(args, local: int) -> tuple:
    """(k, b) in each process's batch of `local` images. UNIX ranks each GPU's own batch: k and b count images of
    the local batch; not given (None, ImageNet) they are the CIFAR proportions of it, k = 3/4 and b = 1/2, as 48
    and 32 of 64."""
    default_k, default_b = default_unix_sizes(local)
    return default_k if args.k is None else args.k, default_b if args.b is None else args.b


def check_unix_sizes(args, local) -> None:
    """Refuse --k or --b outside 1..`local` (each process's batch), or --b above --k. local None: the batch is
    not known yet (batch_left_to_run; settle_batch checks again once it is), so only what the flags tell alone
    is checked: CIFAR-100's k and b are always numbers, ImageNet's not given follow the batch."""
    k, b = (args.k, args.b) if local is None else unix_sizes(args, local)
    for flag, value in (("k", k), ("b", b)):
        if value is not None and (value < 1 or local is not None and value > local):
            batch = "the run's batch" if local is None else (
                f"the batch size {local}" if ranks.world_size() == 1 else f"each process's batch {local}")
            raise UserError(f"--{flag} must be between 1 and {batch}, got {value}")
    if None not in (k, b) and b > k:
        raise UserError(f"--b {b} is larger than --k {k}: the b most uncertain images are kept among the k "
                        f"the student trains on, so {b - k} would be counted but never trained on; "
                        f"pass --b {k} or less")


def settle_batch(args, resumed_run=None) -> None:
    """Check the batch per process and fix k and b, once the batch is known: a --resume's is the run's own
    (resumed_run: its folder), kept from its summary.json with its k and b."""
    check_batch_per_process(args, resumed_run)
    local = ranks.local_batch_size(args.batch_size)
    check_unix_sizes(args, local)
    args.k, args.b = unix_sizes(args, local)


def check_distill_args(args) -> None:
    # A weight still None is the pair's published one, never 0.
    if args.ce_weight == 0 and args.kd_weight == 0 and not args.other_distill:
        raise UserError("--ce-weight and --kd-weight are both 0 and no --other-distill: nothing to train on")


def distill_config(args):
    from utils.training.steps import DistillConfig

    return DistillConfig(batch_size=ranks.local_batch_size(args.batch_size), k=args.k, b=args.b, w=args.w,
                         strategy=args.strategy, mix_strategy=args.mix_strategy, ce_weight=args.ce_weight,
                         kd_weight=args.kd_weight, other_distill=args.other_distill, distill=args.distill,
                         settings=own_settings(args.distill, vars(args)))


def main(argv=None):
    with ranks.main_speaks():
        args = parse_args(argv)
        # Imported here: torch takes seconds to import, and a mistyped flag is answered before it.
        from pathlib import Path

        from utils.process import distributed
        from utils.runs.earlier_names import student_folder
        from utils.runs.rundir import held_on_main, open_run_on_main
        from utils.teachers.loading import weights_identity
        from utils.training.build import probe_features
        from utils.training.steps import check_feature_pair

        teacher_arch, weights_from, run_name, named_teacher = teacher_and_run_name(args)
        if args.other_distill:  # an unmatched pair fails here, before a run directory exists
            check_feature_pair(args.other_distill, probe_features(args.student_arch), probe_features(teacher_arch))
        device = distributed.prepare_device(args)
        inputs = {"teacher_identity": weights_identity(weights_from)}
        folder = student_folder(Path(args.experiments_dir) / run_name, args, teacher_arch, named_teacher, inputs)
        run, resume = open_run_on_main(folder, resume=args.resume, force=args.force, epochs=args.epoch, args=args,
                                       inputs=inputs, same_process_count=True)
        with held_on_main(run):
            settle_batch(args, run.path if resume is not None else None)
            distil(args, teacher_arch, weights_from, device, run, resume, inputs)


def teacher_and_run_name(args):
    """(teacher architecture, where its weights come from, the run's folder name, the teacher as the name gives
    it: (label, the tag of the teacher's own run)); fills in the settings that depend on the pair (DKD's beta),
    which the folder name leaves unnamed when they are the defaults."""
    from utils.distillers import fill_pair_defaults
    from utils.runs.runnames import student_run_name
    from utils.teachers.loading import teacher_run_tag, teacher_source

    teacher_arch, weights_from, teacher_label = teacher_source(args)
    fill_pair_defaults(args, teacher_arch)
    named_teacher = (teacher_label, teacher_run_tag(args.teacher_path))
    return teacher_arch, weights_from, student_run_name(args, teacher_arch, *named_teacher), named_teacher


def distil(args, teacher_arch, weights_from, device, run, resume, inputs: dict) -> None:
    from models.cost import model_cost
    from utils.process import distributed
    from utils.runs.report import StudentReport
    from utils.teachers.loading import build_teacher, evaluate_teacher
    from utils.training.build import make_loaders, make_model, make_optimizer, num_classes
    from utils.training.computation_meter import ComputationMeter
    from utils.training.graphs import graph_capture
    from utils.training.selection import SelectionCounter
    from utils.training.steps import UnixDistillStep
    from utils.training.trainer import FitConfig, Trainer

    if args.dataset == "cifar100":  # the teacher before the data: a bad file fails fast
        teacher = build_teacher(args, teacher_arch, weights_from, device, 100)
        train_loader, test_loader = make_loaders(args, device)
    else:  # the class count comes from the data
        train_loader, test_loader = make_loaders(args, device)
        teacher = build_teacher(args, teacher_arch, weights_from, device, num_classes(args, train_loader))
    teacher_fields = {**evaluate_teacher(args, teacher, teacher_arch, weights_from, test_loader), **inputs}
    student = make_model(args.student_arch, device, args.compile, num_classes(args, train_loader))
    optimizer, scheduler = make_optimizer(student, args)
    meter = ComputationMeter(model_cost(teacher_arch)[1], model_cost(args.student_arch)[1])
    step = UnixDistillStep(distributed.train_model(student, device, args), teacher, distill_config(args),
                           SelectionCounter(args.epoch, train_loader.num_samples, device), meter)
    cfg = FitConfig(epochs=args.epoch, best_file="student_best.pth", acc_key="best_acc", amp=args.amp,
                    capture=graph_capture(args.cuda_graphs, device), top5=args.dataset == "imagenet",
                    print_freq=args.print_freq, log_freq=args.log_freq)
    report = StudentReport(run, args, teacher_fields, step)
    Trainer(student, step, optimizer, scheduler, train_loader, test_loader, run, cfg, report,
            report.epoch_figures).fit(resume)


if __name__ == "__main__":
    run_main(main)
