"""How a run departs from its dataset's protocol, read from its summary.json: what keeps it out of the table.

CIFAR-100 runs are judged against the paper's protocol, ImageNet runs against the KD literature's
(utils.table.paper). Method settings (strategy, k, b, w, mixing, loss weights, T, feature loss) are not
departures: they name the table's rows (utils.table.summary.method_name). A summary written before the
data was recorded is judged on its flags alone.

An ImageNet run's batch is free, its lr following it (0.1 per 256 images): the literature's two recipes, torchvision's
256 with lr 0.1 and DKD's 512 with lr 0.2, are one rule. --sync-bn departs: the literature's runs normalise per GPU.
"""
import math

from utils.data.cifar100 import OFFICIAL_TEST_IMAGES, OFFICIAL_TRAIN_IMAGES
from utils.data.dataset_args import IMAGENET_DEFAULTS, imagenet_lr
from utils.distillers import CIFAR100, IMAGENET
from utils.runs.runnames import IMPORTED
from utils.runs.resume import shown
from utils.table.paper import IMAGENET_PROTOCOL, IMAGENET_TRAIN_IMAGES, PROTOCOL, protocol_lr

# What each dataset's protocol trains on: (summary.json's data kind, training images).
PROTOCOL_DATA = {CIFAR100: ("CIFAR-100", OFFICIAL_TRAIN_IMAGES), IMAGENET: ("imagenet", IMAGENET_TRAIN_IMAGES)}
# The data's name in the plot's title: (--dataset, data kind) -> name; a kind missing here is "other".
DATA_NAMES = {(CIFAR100, "CIFAR-100"): "CIFAR-100", (CIFAR100, "synthetic"): "synthetic CIFAR-100",
              (IMAGENET, "imagenet"): "ImageNet", (IMAGENET, "synthetic"): "synthetic ImageNet"}


def dataset(summary: dict) -> str:
    """--dataset's value; a run made before the flag existed trained on CIFAR-100."""
    return summary.get("args", {}).get("dataset") or CIFAR100


def departures(summary: dict) -> list:
    """['--epoch 1', 'synthetic data (1,000 training images)', ...]; empty for a protocol run."""
    args, imagenet = summary["args"], dataset(summary) == IMAGENET
    protocol = IMAGENET_PROTOCOL if imagenet else PROTOCOL
    found = [f"--{key.replace('_', '-')} {shown(args[key])}"
             for key, value in protocol.items() if key in args and not same(args[key], value)]
    arch = summary.get("student_arch", summary.get("arch"))
    if "lr" in args and arch is not None and not same(args["lr"], expected_lr(imagenet, arch, args)):
        found.append(f"--lr {args['lr']:g}")
    data = summary.get("data")
    if data is not None and (data["kind"], data["train_images"]) != PROTOCOL_DATA[dataset(summary)]:
        found.append(f"{data['kind']} data ({data['train_images']:,} training images)")
    return found


def same(value, expected) -> bool:
    """Whether a recorded setting is the protocol's: numbers as equal as floats can be (--lr 0.3 is 0.1 x 768 / 256,
    which computes to 0.30000000000000004), anything else (lists, flags) exactly."""
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (value, expected))
    return math.isclose(value, expected, rel_tol=1e-9) if numbers else value == expected


def expected_lr(imagenet: bool, arch: str, args: dict) -> float:
    """The protocol's lr: the paper's per architecture, or ImageNet's for the run's batch (0.1 per 256 images)."""
    return imagenet_lr(args.get("batch_size", IMAGENET_DEFAULTS["batch_size"])) if imagenet else protocol_lr(arch)


def data_name(summary: dict) -> str:
    """'CIFAR-100', 'ImageNet', 'synthetic CIFAR-100', 'synthetic ImageNet' or 'other data': what a run
    trained on, as the plot's title names it. A record without the kind is named by --dataset."""
    kind = summary.get("data", {}).get("kind", PROTOCOL_DATA[dataset(summary)][0])
    return DATA_NAMES.get((dataset(summary), kind), "other data")


def imported_departures(summary: dict) -> list:
    """['synthetic data (200 test images)'] for a published teacher whose accuracy was measured on other
    data than CIFAR-100's test set; empty when it was measured there, or not at all (the file's own figure).
    A record written before the kind was recorded is judged on its image count."""
    measured = summary[IMPORTED].get("measured")
    if not measured:
        return []
    kind = measured.get("kind", "CIFAR-100" if measured["test_images"] == OFFICIAL_TEST_IMAGES else "other")
    if (kind, measured["test_images"]) == ("CIFAR-100", OFFICIAL_TEST_IMAGES):
        return []
    return [f"{kind} data ({measured['test_images']:,} test images)"]
