"""The teachers command: published checkpoints imported as finished teacher runs.

    python -m utils.teachers import PATH... [--arch A] [--experiments-dir DIR] [--force] [--data-root D]
    python -m utils.teachers fetch [--url URL] [--download-dir DIR] [same options as import]

`import` takes the authors' files (vgg13.pth), the CRD/mdistiller zoo's (resnet32x4_vanilla/
ckpt_epoch_240.pth), bare state dicts, folders of them and .tar archives of them, and lays each one out
as EXPERIMENTS_DIR/teacher_<arch>/ckpt/best.pth with a summary.json that marks it as an imported,
finished teacher: command/command.sh, command/slurm.sh and the run list then skip training it.
`fetch` downloads the mdistiller release's CIFAR-100 teacher zoo (cifar_teachers.tar) and imports it.
"""
from pathlib import Path

from utils.data.cifar100 import data_folder, dataset_kind, load_cifar100
from utils.data.loader import DeviceLoader
from utils.errors import UserError
from utils.process.cli import ArgumentParser, choose_device
from utils.runs.checkpoint import load_weights, sha256_of
from utils.teachers.download import download
from utils.teachers.importing import import_teachers
from utils.training.build import make_model
from utils.training.iteration import evaluate

ZOO_URL = "https://github.com/megvii-research/mdistiller/releases/download/checkpoints/cifar_teachers.tar"
EVAL_BATCH = 500


def accuracy_meter(data_root: str, gpu_id: int):
    """measure(arch, state_dict) -> the test accuracy record; None when no CIFAR-100 set is at data_root."""
    folder = data_folder(data_root)  # --data-root may name cifar-100-python/ or its parent, as for the scripts
    if not folder.is_dir():
        print(f"no CIFAR-100 in {folder}: test accuracy not measured (--data-root names it)")
        return None
    data = load_cifar100(data_root, download=False)
    kind = dataset_kind(data_root)  # a measurement on a synthetic set is kept off the table's teacher row
    device = choose_device(gpu_id)
    loader = DeviceLoader(data.test_images, data.test_labels, EVAL_BATCH, device, train=False, channels_last=True)

    def measure(arch: str, state_dict: dict) -> dict:
        model = make_model(arch, device)
        load_weights(model, state_dict, arch)
        _, accuracy = evaluate(model, loader)
        return {"test_acc": float(accuracy), "data_root": str(data_root), "kind": kind, "test_images": loader.num_samples}

    return measure


def report(imported) -> None:
    for folder, summary in imported:
        record = summary["imported"]
        measured = record["measured"]
        accuracy = (f"test accuracy {measured['test_acc']:.2f} measured on {measured['test_images']} "
                    f"{measured['kind']} images" if measured else "test accuracy not measured")
        if measured and measured["kind"] != "CIFAR-100":
            accuracy += ", not CIFAR-100's test set: the results table keeps it off the teacher rows"
        stored = f", {record['stored_acc']:.2f} stored in the file" if record["stored_acc"] is not None else ""
        print(f"imported {record['source']} -> {folder}/ckpt/best.pth ({accuracy}{stored}; sha256 {record['sha256']})")


def run_import(args, paths, archive=None) -> None:
    measure = accuracy_meter(args.data_root, args.gpu_id)
    report(import_teachers(paths, Path(args.experiments_dir), arch=args.arch, force=args.force, measure=measure,
                           archive=archive))


def run_fetch(args) -> None:
    if args.arch:
        raise UserError("--arch is for a single file given to import; the zoo's names tell its architectures")
    dest = Path(args.download_dir) / Path(args.url.rstrip("/")).name
    download(args.url, dest)
    sha256 = sha256_of(dest)
    dest.with_name(dest.name + ".sha256").write_text(f"{sha256}  {dest.name}\n")
    print(f"{dest}: sha256 {sha256}")
    run_import(args, [dest], archive={"url": args.url, "file": dest.name, "sha256": sha256})


def parse_args(argv):
    parser = ArgumentParser(prog="python -m utils.teachers", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    importing = commands.add_parser("import", help="lay out published checkpoints as finished teacher runs")
    importing.add_argument("paths", nargs="+", metavar="PATH", help="checkpoint files, folders of them, .tar archives")
    fetching = commands.add_parser("fetch", help="download the mdistiller CIFAR-100 teacher zoo and import it")
    fetching.add_argument("--url", default=ZOO_URL, help=f"the archive (default {ZOO_URL})")
    fetching.add_argument("--download-dir", default="./downloads", help="where it is saved (default ./downloads)")
    for command in (importing, fetching):
        command.add_argument("--arch", help="the architecture of a single file whose name does not tell it")
        command.add_argument("--experiments-dir", default="./experiments", help="default ./experiments")
        command.add_argument("--force", action="store_true", help="replace a teacher already there")
        command.add_argument("--data-root", default="./data",
                             help="CIFAR-100's folder, to measure each teacher's test accuracy (default ./data)")
        command.add_argument("--gpu-id", type=int, default=0, help="CUDA device for that measurement (default 0)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.command == "import":
        run_import(args, args.paths)
    else:
        run_fetch(args)
    return 0

