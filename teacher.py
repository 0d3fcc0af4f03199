"""Train a teacher: python teacher.py --arch wrn_40_2 --lr 0.05 --gpu-id 0 (CIFAR-100), or on ImageNet,
one process per GPU: torchrun --nproc_per_node=8 teacher.py --dataset imagenet --arch imagenet_resnet34"""
import argparse

from utils.data.dataset_args import check_batch_per_process, parse_dataset_args
from utils.process.cli import ArgumentParser, add_common_args, check_common_args, run_main
from utils.process.ranks import main_speaks


PAPER_COMMANDS = """the paper's runs (lr 0.01 for MobileNetV2, ShuffleV1 and ShuffleV2, 0.05 otherwise):
  a teacher:                   python teacher.py --arch resnet32x4 --lr 0.05
  a student trained alone:     python teacher.py --arch resnet8x4 --lr 0.05 --seed 1
                               (seed 0 writes teacher_<arch>/, others teacher_<arch>_seed<S>/)"""


def parse_args(argv=None):
    parser = ArgumentParser(description="Train a teacher network (CIFAR-100, or ImageNet with --dataset imagenet).",
                            epilog=PAPER_COMMANDS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True,
                        help="architecture: a CIFAR one (python -m models lists them) or, with --dataset imagenet, "
                             "imagenet_resnet18/34/50 or imagenet_mobilenet_v2 (torchvision's)")
    add_common_args(parser)
    parser.add_argument("--save-interval", type=int, default=40, help="also keep ckpt/NNN.pth every N epochs (default 40)")
    parser.add_argument("--experiments-dir", default="./experiments", help="where run directories go (default ./experiments)")
    args = parse_dataset_args(parser, argv)
    check_common_args(args)
    from utils.training.build import check_arch  # the model zoo, and torch with it, once the flags parse

    check_arch(args.arch, "--arch", args.dataset)
    return args


def snapshot_epochs(args) -> frozenset:
    """NNN.pth at the lr milestones, every save-interval epochs and at the end."""
    every = range(args.save_interval, args.epoch + 1, args.save_interval) if args.save_interval > 0 else []
    return frozenset([*args.milestones, *every, args.epoch])


def main(argv=None):
    with main_speaks():
        train(parse_args(argv))


def train(args) -> None:
    # Imported here: torch takes seconds to import, and a mistyped flag is answered before it.
    from pathlib import Path

    from utils.process import distributed
    from utils.runs.report import TeacherReport
    from utils.runs.rundir import held_on_main, open_run_on_main
    from utils.runs.runnames import teacher_run_name
    from utils.training.build import make_loaders, make_model, make_optimizer, num_classes
    from utils.training.graphs import graph_capture
    from utils.training.steps import SupervisedStep
    from utils.training.trainer import FitConfig, Trainer

    device = distributed.prepare_device(args)
    run, resume = open_run_on_main(Path(args.experiments_dir) / teacher_run_name(args.arch, args.seed, args.tag),
                                   resume=args.resume, force=args.force, epochs=args.epoch, args=args)
    with held_on_main(run):
        check_batch_per_process(args, run.path if resume is not None else None)  # a --resume's: the run's own batch
        train_loader, test_loader = make_loaders(args, device)
        model = make_model(args.arch, device, args.compile, num_classes(args, train_loader))
        optimizer, scheduler = make_optimizer(model, args)
        cfg = FitConfig(epochs=args.epoch, snapshot_epochs=snapshot_epochs(args), amp=args.amp,
                        capture=graph_capture(args.cuda_graphs, device), top5=args.dataset == "imagenet",
                        print_freq=args.print_freq, log_freq=args.log_freq)
        Trainer(model, SupervisedStep(distributed.train_model(model, device, args)), optimizer, scheduler, train_loader,
                test_loader, run, cfg, TeacherReport(run, args)).fit(resume)


if __name__ == "__main__":
    run_main(main)
