"""How a run departs from the paper's protocol, read from its summary.json: what keeps it out of the table.

Method settings (strategy, k, b, w, mixing, loss weights, T, feature loss) are not departures: they
name the table's rows (utils.table.summary.method_name). A summary written before the data was recorded is
judged on its flags alone.
"""
from utils.data.cifar100 import OFFICIAL_TEST_IMAGES, OFFICIAL_TRAIN_IMAGES
from utils.runs.runnames import IMPORTED
from utils.runs.resume import shown
from utils.table.paper import PROTOCOL, protocol_lr


def departures(summary: dict) -> list:
    """['--epoch 1', 'synthetic data (1,000 training images)', ...]; empty for a protocol run."""
    args = summary["args"]
    found = [f"--{key.replace('_', '-')} {shown(args[key])}"
             for key, value in PROTOCOL.items() if key in args and args[key] != value]
    arch = summary.get("student_arch", summary.get("arch"))
    if "lr" in args and arch is not None and args["lr"] != protocol_lr(arch):
        found.append(f"--lr {args['lr']:g}")
    data = summary.get("data")
    if data is not None and (data["kind"], data["train_images"]) != ("CIFAR-100", OFFICIAL_TRAIN_IMAGES):
        found.append(f"{data['kind']} data ({data['train_images']:,} training images)")
    return found


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
