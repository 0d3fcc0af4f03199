"""What teacher.py and student_v0.py share on the command line: flags, checks, device, error exit.

torch is imported only by the device functions: the run list and the job runner (utils.table.runlist,
utils.table.jobs) use this module's parser and error exit, and the dispatchers start them once per job.
"""
import argparse
import difflib
import os
import re
import sys
import warnings

from utils.errors import NonFiniteLoss, Preempted, RunFinished, UserError
from utils.process import last_words

DEFAULT_MILESTONES = (150, 180, 210)
PREEMPTED_STATUS = 75  # EX_TEMPFAIL: the run stopped on the preemption signal and continues with --resume
INTERRUPTED_STATUS = 130  # 128 + SIGINT, as a shell reports a command ended by Ctrl-C
# Flags an earlier version had: a command line written for it is told what replaced them.
REMOVED_FLAGS = {"--gpu-decode": "--loader dali decodes on the GPU instead (docs/imagenet.md)"}


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is a UserError: one 'error:' line and exit 2, like every other bad input."""

    def error(self, message):
        hints = self._hints(message.split(": ", 1)[1].split()) if message.startswith("unrecognized arguments") else []
        raise UserError("; ".join([message, *hints]) + " (see --help)")

    def _hints(self, unrecognized) -> list:
        """What each unrecognized flag may have meant: the flag that replaced it, or a close spelling."""
        flags = [flag for parser in self._with_subcommands() for action in parser._actions
                 for flag in action.option_strings if flag.startswith("--")]
        hints = []
        for word in (word.split("=")[0] for word in unrecognized if word.startswith("--")):
            if word in REMOVED_FLAGS:
                hints.append(f"{word} was removed: {REMOVED_FLAGS[word]}")
            elif close := difflib.get_close_matches(word, flags, n=1, cutoff=0.75):
                hints.append(f"did you mean {close[0]}?")
        return hints

    def _with_subcommands(self) -> list:
        """This parser and its subcommands' (utils.jobs status): argparse reports their unknown flags here."""
        subparsers = [action for action in self._actions if isinstance(action, argparse._SubParsersAction)]
        return [self, *(parser for action in subparsers for parser in action.choices.values())]

    def _get_option_tuples(self, option_string):
        # An abbreviation that matches one flag under two names (--ep: --epoch and its alias --epochs) is
        # that flag, not an ambiguity; argparse would refuse it.
        matches = {}
        for match in super()._get_option_tuples(option_string):
            matches.setdefault(id(match[0]), match)
        return list(matches.values())


class Flags(argparse.Namespace):
    """Parsed flags that also know which ones the command line gave (`given`, by dest): a --resume keeps
    the run's own values of the others. `given` is a slot, outside vars(), so summary.json's args hold
    the flags alone."""

    __slots__ = ("given",)


def parse_flags(parser: argparse.ArgumentParser, argv) -> Flags:
    args = parser.parse_args(argv, Flags())
    # Parsed again into a namespace that already holds a marker for every flag: argparse then fills in no
    # default, so a flag still holding its marker was not on the command line.
    unset = object()
    probe = argparse.Namespace(**{action.dest: unset for action in parser._actions if action.dest != argparse.SUPPRESS})
    parser.parse_known_args(argv, probe)
    args.given = frozenset(dest for dest, value in vars(probe).items() if value is not unset)
    return args


def add_common_args(parser, lr: float = 0.05) -> None:
    parser.add_argument("--epoch", "--epochs", type=int, default=240, help="training epochs (default 240)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--lr", type=float, default=lr, help=f"initial learning rate (default {lr})")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    parser.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay (default 5e-4)")
    parser.add_argument("--gamma", type=float, default=0.1, help="lr multiplier at each milestone (default 0.1)")
    parser.add_argument("--milestones", type=int, nargs="+",
                        help="epochs at which lr is multiplied by gamma (default 150 180 210; in a shorter run "
                             "the later ones never apply)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--gpu-id", type=int, default=0, help="CUDA device index (default 0); CPU is used when CUDA is absent")
    parser.add_argument("--data-root", default="./data", help="folder holding cifar-100-python/ (default ./data)")
    parser.add_argument("--tag", help="added to the run folder's name, so that runs with other settings (a sweep "
                                      "over --lr, say) each get their own folder; letters, digits and . _ + -")
    parser.add_argument("--resume", action="store_true", help="continue the run in this run's directory from ckpt/last.pth")
    parser.add_argument("--force", action="store_true", help="discard a previous run in this run's directory and start over")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (faster on recent GPUs; changes numerics, off by default)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the networks (opt-in: float rounding may differ; the first steps compile)")
    parser.add_argument("--print-freq", type=int, metavar="N",
                        help="off a terminal (SLURM logs, nohup): a progress line every N iterations with images per "
                             "second, data-wait time and the time left in the epoch (default: one a minute; 0: none)")
    parser.add_argument("--log-freq", type=int, default=100, metavar="N",
                        help="TensorBoard: every N iterations, the training loss averaged over the iterations since "
                             "the epoch's last point (or its start), and the lr (default 100; 0: none), besides the "
                             "per-epoch figures")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="record each training and evaluation step as a CUDA graph and replay it (CUDA only; "
                             "opt-in until measured on a GPU, see docs/cuda-graphs.md)")


def check_common_args(args) -> None:
    for name in ("epoch", "batch_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if not args.lr > 0:
        raise UserError(f"--lr must be positive, got {args.lr}")
    if args.tag is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", args.tag):
        raise UserError(f"--tag {args.tag!r}: use letters, digits and . _ + - (it becomes part of a folder name)")
    if args.print_freq is not None and args.print_freq < 0:
        raise UserError(f"--print-freq must be 0 (no progress lines) or a positive number of iterations, "
                        f"got {args.print_freq}")
    if args.log_freq < 0:
        raise UserError(f"--log-freq must be 0 (no per-iteration figures) or a positive number of iterations, "
                        f"got {args.log_freq}")
    if args.resume and args.force:
        raise UserError("--resume and --force contradict each other; pass one of them")
    if args.compile and args.cuda_graphs:
        raise UserError("--compile and --cuda-graphs are two ways to cut launch overhead; pass one of them")
    if args.milestones is None:  # the defaults past a short run's end are expected: no warning for them
        args.milestones = list(DEFAULT_MILESTONES)
        return
    if "milestones" not in getattr(args, "given", {"milestones"}):  # a dataset's defaults (ImageNet: 30 60 90)
        return
    late = [m for m in args.milestones if m >= args.epoch]
    if late:
        warnings.warn(f"milestones {late} are not before the last epoch ({args.epoch}); they will never apply",
                      stacklevel=2)


def configure_device(device) -> None:
    """Speed settings that leave the arithmetic alone."""
    import torch

    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed 32x32 shapes: autotuning pays off at once
    else:
        # Tiny gradients late in a step decay into denormal floats, which x86 CPUs process up to
        # tens of times slower; flushing them to zero (|x| < 1.2e-38) is the usual fix for training.
        torch.set_flush_denormal(True)


def resolve_device(name=None, gpu_id=None):
    """The one place a command's device is made: name "cpu", "cuda" or None (CUDA where there is one); a CUDA
    device always carries its index (gpu_id, else the current device), which torch.cuda.set_device requires."""
    import torch

    available = torch.cuda.is_available()
    if name == "cuda" and not available:
        raise UserError("--device cuda: CUDA is not available on this machine; use --device cpu")
    if name == "cpu" or not available:
        return torch.device("cpu")
    index = torch.cuda.current_device() if gpu_id is None else gpu_id
    if not 0 <= index < torch.cuda.device_count():
        raise UserError(f"--gpu-id {gpu_id} does not exist; this machine has CUDA devices 0..{torch.cuda.device_count() - 1}")
    return torch.device("cuda", index)


def select_device(name=None, gpu_id=None):
    """resolve_device's device, set up for speed (configure_device)."""
    device = resolve_device(name, gpu_id)
    configure_device(device)
    return device


def choose_device(gpu_id: int):
    """The training scripts' device (--gpu-id, or the CPU without CUDA), said in one line."""
    import torch

    device = select_device(None, gpu_id)
    if device.type == "cpu":
        print("device: cpu (CUDA is not available)")
    else:
        print(f"device: {device} ({torch.cuda.get_device_name(device)})")
    return device


def last_word(line: str, status: int, to_stdout: bool = False) -> None:
    """A command's final line (on stderr, or stdout); under utils.torchrun it goes to the launcher instead, which
    prints the first rank's after torchrun's own report (utils.process.last_words)."""
    if last_words.folder():
        last_words.leave(line, status)
        return
    print(line, file=sys.stdout if to_stdout else sys.stderr, flush=True)


def stop_status(stop: BaseException) -> int:
    """The exit status of a run that stopped (Preempted, KeyboardInterrupt): 75 on the preemption signal, else 128 +
    the signal that stopped it (an Interrupted's status; a bare KeyboardInterrupt is Ctrl-C's, 130)."""
    if isinstance(stop, Preempted):
        return PREEMPTED_STATUS
    return getattr(stop, "status", INTERRUPTED_STATUS)


def stop_line(stop: BaseException) -> str:
    """What a run that stopped says last, the same at every rank: where it stopped and how it continues, or
    "interrupted" where it stopped at once (a bare KeyboardInterrupt says nothing of its own)."""
    return str(stop) or "interrupted"


def exit_status(returncode: int) -> int:
    """A child's exit status as a shell reports it: a negative code (killed by that signal) is 128 + the signal."""
    return 128 - returncode if returncode < 0 else returncode


def run_main(main) -> None:
    """Run a command's main() and exit with its status; bad input exits 2 with one line, no traceback."""
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    try:
        status = main() or 0
        sys.stdout.flush()  # here, not at exit: a reader gone by now is handled below
        sys.exit(status)
    except UserError as exc:
        last_word(f"error: {exc}", 2)
        sys.exit(2)
    except RunFinished as exc:
        print(exc)
    except NonFiniteLoss as exc:
        last_word(f"error: {exc}", 1)
        sys.exit(1)
    except (Preempted, KeyboardInterrupt) as stop:  # a run's stop says whether, and where, it continues
        status = stop_status(stop)
        # Preempted is not an error, the run goes on once resubmitted: on stdout.
        last_word(stop_line(stop), status, to_stdout=isinstance(stop, Preempted))
        sys.exit(status)
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, and keep Python's exit flush from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)  # 128 + SIGPIPE, as a shell reports a command stopped by a closed pipe
