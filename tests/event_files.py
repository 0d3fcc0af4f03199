"""Reading TensorBoard event files back as TensorBoard would, without tensorboard (not in requirements.txt):
TFRecord framing (length, its crc, an Event, its crc) parsed with tensorboardX's own Event protobuf."""
import struct
from pathlib import Path

from tensorboardX.proto import event_pb2
from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData


def events(folder: Path) -> list:
    """The events of every events.* file in `folder` (not its subfolders), file after file, as written."""
    found = []
    for path in sorted(Path(folder).glob("events.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            length = struct.unpack("<Q", data[offset:offset + 8])[0]
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


def hparams(folder: Path) -> tuple:
    """(settings, metric tags) of the HParams session recorded in `folder`."""
    settings, metrics = {}, []
    for event in events(folder):
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name != "hparams":
                continue
            data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
            for name, setting in data.session_start_info.hparams.items():
                settings[name] = getattr(setting, setting.WhichOneof("kind"))
            metrics += [info.name.tag for info in data.experiment.metric_infos]
    return settings, metrics
