"""How a run departs from the paper's protocol, read from its summary.json: what keeps it out of the table.

Method settings (strategy, k, b, w, mixing, loss weights, T, feature loss) are not departures: they
name the table's rows (utils.table.summary.method_name). A summary written before the data was recorded is
judged on its flags alone.
"""
from utils.data.cifar100 import OFFICIAL_TRAIN_IMAGES
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
