"""Reading TensorBoard event files back as TensorBoard would, without tensorboard (not in requirements.txt):
TFRecord framing (length, its crc, an Event, its crc) parsed with tensorboardX's own Event protobuf."""
import struct
from pathlib import Path

from tensorboardX.proto import event_pb2
from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

SESSION_START_TAG = "_hparams_/session_start_info"  # tensorboard.plugins.hparams.metadata's tag names
EXPERIMENT_TAG = "_hparams_/experiment"


def events(folder: Path) -> list:
    """The events of every events.* file in `folder` (not its subfolders), file after file, as written."""
    found = []
    for path in sorted(Path(folder).glob("events.*")):
        data, offset = path.read_bytes(), 0
        while offset + 8 <= len(data):
            length = struct.unpack("<Q", data[offset:offset + 8])[0]
            if offset + 16 + length > len(data):  # a record cut short by a crash: TensorBoard stops there too
                break
            found.append(event_pb2.Event.FromString(data[offset + 12:offset + 12 + length]))
            offset += 16 + length
    return found


def scalars(folder: Path) -> dict:
    """{tag: {step: value}} as TensorBoard shows them: a session started at step S (a resumed run's writer,
    purge_step S) discards the points at S or later that earlier files hold."""
    shown = {}
    for event in events(folder):
        if event.session_log.status == event_pb2.SessionLog.START:
            for points in shown.values():
                for step in [step for step in points if step >= event.step]:
                    del points[step]
        for value in event.summary.value:
            if value.WhichOneof("value") == "simple_value":
                shown.setdefault(value.tag, {})[event.step] = value.simple_value
    return shown


def tags(folder: Path) -> set:
    """Every summary tag in `folder`'s events (scalars, hparams' session infos, ...)."""
    return {value.tag for event in events(folder) for value in event.summary.value}


def hparams(folder: Path) -> tuple:
    """(settings, metric tags) of the run `folder` as TensorBoard's HParams view reads a run when no run holds an
    experiment summary: the settings of its first session start (TensorBoard keeps the first metadata a tag
    has in a run) and, as metrics, the scalar tags of the run."""
    starts = [value for event in events(folder) for value in event.summary.value if value.tag == SESSION_START_TAG]
    start = HParamsPluginData.FromString(starts[0].metadata.plugin_data.content).session_start_info
    settings = {name: getattr(setting, setting.WhichOneof("kind")) for name, setting in start.hparams.items()}
    return settings, sorted(scalars(folder))
