"""A small real-data check of the distillers (utils.distillers: KD, DKD, LSKD), each conventional and with UNIX,
and with UNIX under each other choice of a rule (UNIX + DKD under its other rule for mixed images, --dkd-mix split).

    pip install scikit-learn   # for its bundled digits set only; not a project dependency
    python -m utils.digits_comparison [--seeds 0 1 2] [--epochs 60]

scikit-learn ships the UCI handwritten digits (1797 8x8 grey images, 10 classes), so this runs anywhere,
on the CPU, in minutes. A 64-256-256-10 MLP teacher is trained once (seed 0), then a 64-32-10 MLP
student is distilled with each method and seed through the project's own training step
(utils.training.steps.UnixDistillStep) with the published settings (utils.distillers), nothing tuned. The schedule
is the CIFAR-100 protocol's shrunk to 60 epochs (lr 0.05, x0.1 at 38, 45, 53; batch 64); DKD keeps its
published 20-epoch warm-up. Prints test top-1 (last and best epoch), mean +- sample std over seeds, the
measured training computation relative to KD and the seconds per run.
"""
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.distillers import DISTILLERS, KD, distiller_defaults, own_settings
from utils.errors import UserError
from utils.process.cli import ArgumentParser, run_main
from utils.training.computation_meter import ComputationMeter
from utils.training.iteration import train_step
from utils.training.selection import SelectionCounter
from utils.training.steps import DistillConfig, SupervisedStep, UnixDistillStep
from utils.unix_settings import KD_FLAGS, UNIXKD_FLAGS

BATCH = 64
TRAIN_IMAGES = 1280  # 20 full batches; the other 517 images are the test set
TEACHER_WIDTHS, STUDENT_WIDTHS = (64, 256, 256, 10), (64, 32, 10)


def unix_name(distiller: str) -> str:
    return "UNIXKD" if distiller == KD else f"UNIX + {distiller}"


def methods_of(distiller: str) -> list:
    """(name, distiller, flags): conventional, with UNIX, and with UNIX under each other choice of a rule (a setting
    with named choices, such as DKD's rule for mixed images, which only UNIX's mixed images reach)."""
    unix = unix_name(distiller)
    default = distiller_defaults(distiller, "mlp-teacher", "mlp-student")
    rules = [(setting.name, choice) for setting in DISTILLERS[distiller].settings for choice in setting.choices
             if choice != default[setting.name]]
    return [(distiller, distiller, KD_FLAGS), (unix, distiller, UNIXKD_FLAGS),
            *((f"{unix} {choice}", distiller, {**UNIXKD_FLAGS, name: choice}) for name, choice in rules)]


def methods() -> list:
    """(name, distiller, flags) of every declared distiller, read when called: a distiller declared after this
    module was imported is compared too."""
    return [method for distiller in DISTILLERS for method in methods_of(distiller)]


class MLP(nn.Module):
    """Fully connected ReLU network with the models' interface: model(x, is_feat=True) -> (features, logits)."""

    def __init__(self, widths):
        super().__init__()
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-2], widths[1:-1]))
        self.fc = nn.Linear(widths[-2], widths[-1])
        self.flops = sum(a * b for a, b in zip(widths[:-1], widths[1:]))  # multiply-adds of one image

    def forward(self, x, is_feat=False):
        h, feats = x.flatten(1), []
        for layer in self.hidden:
            h = F.relu(layer(h))
            feats.append(h)
        logits = self.fc(h)
        return (feats, logits) if is_feat else logits


def load_digits_split():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError("this comparison needs scikit-learn's bundled digits: pip install scikit-learn") from None
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, test = order[:TRAIN_IMAGES], order[TRAIN_IMAGES:]
    return (x[train], y[train]), (x[test], y[test])


def accuracy(model, data) -> float:
    model.eval()
    with torch.no_grad():
        correct = (model(data[0]).argmax(1) == data[1]).float().mean().item()
    model.train()
    return 100.0 * correct


def fit(model, step, train, test, epochs, seed):
    """SGD as the protocol (momentum 0.9, weight decay 5e-4), lr 0.05 x0.1 at 5/8, 3/4 and 7/8 of the epochs."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    milestones = [round(epochs * f) for f in (150 / 240, 180 / 240, 210 / 240)]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    generator = torch.Generator().manual_seed(seed)
    accs = []
    for epoch in range(epochs):
        step.start_epoch(epoch)
        for idx in torch.randperm(len(train[1]), generator=generator).split(BATCH):
            train_step(step, optimizer, train[0][idx], train[1][idx], idx)
            step.account(len(idx))
        scheduler.step()
        accs.append(accuracy(model, test))
    return accs[-1], max(accs)


def train_teacher(train, test, epochs):
    torch.manual_seed(0)
    teacher = MLP(TEACHER_WIDTHS)
    last, _ = fit(teacher, SupervisedStep(teacher), train, test, epochs, seed=0)
    return teacher.eval(), last


def distil(teacher, distiller, flags, train, test, epochs, seed):
    """One student run: (last accuracy, best accuracy, computation % of KD, seconds)."""
    torch.manual_seed(seed)
    student = MLP(STUDENT_WIDTHS)
    settings = {**distiller_defaults(distiller, "mlp-teacher", "mlp-student"), **flags}
    own = own_settings(distiller, settings)
    cfg = DistillConfig(batch_size=BATCH, distill=distiller, settings=own,
                        **{key: value for key, value in settings.items() if key not in own})
    meter = ComputationMeter(teacher.flops, student.flops)
    step = UnixDistillStep(student, teacher, cfg, SelectionCounter(epochs, TRAIN_IMAGES, "cpu"), meter)
    start = time.perf_counter()
    last, best = fit(student, step, train, test, epochs, seed)
    return last, best, meter.as_dict()["computation"], time.perf_counter() - start


def mean_std(values) -> str:
    return f"{statistics.mean(values):6.2f} +- {statistics.stdev(values) if len(values) > 1 else 0.0:4.2f}"


def parse_args(argv):
    parser = ArgumentParser(prog="python -m utils.digits_comparison", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="student seeds (default 0 1 2)")
    parser.add_argument("--epochs", type=int, default=60, help="epochs of the teacher and each student (default 60)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        raise UserError(f"--epochs must be a positive integer, got {args.epochs}")
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)  # tiny networks: one thread is fastest, and leaves the other cores alone
    train, test = load_digits_split()
    teacher, teacher_acc = train_teacher(train, test, args.epochs)
    print(f"digits: {TRAIN_IMAGES} train / {len(test[1])} test images; teacher MLP{TEACHER_WIDTHS} "
          f"{teacher_acc:.2f} %; student MLP{STUDENT_WIDTHS}; {args.epochs} epochs; seeds {args.seeds}")
    print(f"{'method':<17} {'last top-1':<16} {'best top-1':<16} {'computation':<12} seconds/run")
    for name, distiller, flags in methods():
        runs = [distil(teacher, distiller, flags, train, test, args.epochs, seed) for seed in args.seeds]
        last, best, computation, seconds = zip(*runs)
        print(f"{name:<17} {mean_std(last):<16} {mean_std(best):<16} {statistics.mean(computation):6.2f} %     "
              f"{statistics.mean(seconds):.1f}", flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
