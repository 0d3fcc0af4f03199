"""python -m utils.teachers import / fetch: published teachers as finished teacher runs, served here on 127.0.0.1."""
import hashlib
import http.server
import io
import json
import pickle
import re
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
import torch

from models import model_dict
from utils.data.cifar100 import load_cifar100
from utils.data.loader import DeviceLoader
from utils.table.jobs import JOB_LOG, read_jobs
from utils.table.runlist import TEACHERS, is_finished, selected_runs, settings_from_env
from utils.teachers.cli import main
from utils.teachers.loading import load_teacher
from utils.training.iteration import evaluate

ROOT = Path(__file__).resolve().parent.parent
ZOO_MEMBER = "cifar_teachers/resnet56_vanilla/ckpt_epoch_240.pth"  # CRD's layout: weights under 'model'
AUTHORS_MEMBER = "cifar_teachers/wrn_40_2.pth"                     # the authors': weights under 'state_dict'


def checkpoint_bytes(content) -> bytes:
    buffer = io.BytesIO()
    torch.save(content, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """A tar of two random-weight teachers of the paper, one in each published format, and their weights."""
    torch.manual_seed(0)
    weights = {arch: model_dict[arch](num_classes=100).state_dict() for arch in ("resnet56", "wrn_40_2")}
    members = {
        ZOO_MEMBER: checkpoint_bytes({"epoch": 240, "model": weights["resnet56"], "accuracy": torch.tensor(72.34),
                                      "optimizer": {"state": {}, "param_groups": []}}),
        AUTHORS_MEMBER: checkpoint_bytes({"state_dict": weights["wrn_40_2"], "best_acc": 76.46}),
    }
    path = tmp_path_factory.mktemp("zoo") / "cifar_teachers.tar"
    members["cifar_teachers/resnet56_vanilla/._ckpt_epoch_240.pth"] = b"Mac OS X resource fork"  # skipped
    with tarfile.open(path, "w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path, weights, {name: hashlib.sha256(content).hexdigest() for name, content in members.items()}


class Served(http.server.BaseHTTPRequestHandler):
    """One file, with HTTP Range; `cut_after` bytes of a body, then the connection drops."""

    payload, cut_after, ranges = b"", None, []

    def do_GET(self):
        start = int(re.match(r"bytes=(\d+)-", self.headers.get("Range", "bytes=0-")).group(1))
        type(self).ranges.append(self.headers.get("Range"))
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if self.cut_after is None else body[:self.cut_after])
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(zoo):
    Served.payload, Served.cut_after, Served.ranges = zoo[0].read_bytes(), None, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Served)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/checkpoints/cifar_teachers.tar"
    httpd.shutdown()
    httpd.server_close()


def teacher_folders(experiments: Path) -> list:
    return sorted(path.name for path in experiments.iterdir()) if experiments.exists() else []


def test_fetch_continues_a_broken_download_then_imports(server, zoo, tmp_path, capsys, exit_status):
    archive, _, member_sha256 = zoo
    experiments, downloads = tmp_path / "experiments", tmp_path / "downloads"
    argv = ["fetch", "--url", server, "--download-dir", str(downloads), "--experiments-dir", str(experiments),
            "--data-root", str(tmp_path / "no-data")]
    Served.cut_after = archive.stat().st_size // 3
    assert exit_status(main, argv) == 2
    progress, error = capsys.readouterr().err.splitlines()  # the progress bar's last state, then the error
    assert progress.startswith("cifar_teachers.tar  4.2/12.7 MB   33 %")
    assert error.startswith("error: ") and "broke off at" in error and "run the same command again" in error
    part = downloads / "cifar_teachers.tar.part"
    assert part.stat().st_size == Served.cut_after and teacher_folders(experiments) == []

    Served.cut_after = None
    assert main(argv) == 0
    assert Served.ranges == [None, f"bytes={archive.stat().st_size // 3}-"]  # the second call continued
    downloaded = downloads / "cifar_teachers.tar"
    assert downloaded.read_bytes() == archive.read_bytes() and not part.exists()
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (downloads / "cifar_teachers.tar.sha256").read_text() == f"{sha256}  cifar_teachers.tar\n"
    assert teacher_folders(experiments) == ["teacher_resnet56", "teacher_wrn_40_2"]
    record = json.loads((experiments / "teacher_resnet56" / "summary.json").read_text())["imported"]
    assert record["archive"] == {"url": server, "file": "cifar_teachers.tar", "sha256": sha256}
    assert record["sha256"] == member_sha256[ZOO_MEMBER] and record["source"] == f"{downloaded}:{ZOO_MEMBER}"
    # The dispatchers' run list: those teachers are finished, so only the students trained alone are pending.
    settings = settings_from_env({"EXPERIMENTS_DIR": str(experiments), "SEEDS": "1", "ONLY": "resnet20|wrn_16_2"})
    pending = [run.name for run in selected_runs(settings) if run.phase == TEACHERS and not is_finished(settings, run)]
    assert pending == ["alone wrn_16_2 seed1", "alone resnet20 seed1"]


@pytest.fixture(scope="module")
def imported(zoo, tiny_table, tmp_path_factory):
    """The zoo imported once (no data set at --data-root: nothing measured); the tiny table then runs in its folder."""
    experiments = tmp_path_factory.mktemp("imported") / "experiments"
    assert main(["import", str(zoo[0]), "--experiments-dir", str(experiments), "--data-root",
                 str(tmp_path_factory.mktemp("no-data"))]) == 0
    return experiments


def test_import_lays_out_each_format_strictly_with_its_record(zoo, imported):
    archive, weights, member_sha256 = zoo
    experiments = imported
    for arch, member, stored in (("resnet56", ZOO_MEMBER, 72.34), ("wrn_40_2", AUTHORS_MEMBER, 76.46)):
        folder = experiments / f"teacher_{arch}"
        summary = json.loads((folder / "summary.json").read_text())
        record = summary["imported"]
        assert (summary["arch"], summary["finished"], record["stored_acc"]) == (arch, True, stored)
        assert record["sha256"] == member_sha256[member] and record["source"] == f"{archive}:{member}"
        assert record["measured"] is None and summary["best_acc"] == stored  # the row's accuracy, unmeasured
        teacher = load_teacher(arch, folder / "ckpt" / "best.pth", torch.device("cpu"))
        assert all(torch.equal(teacher.state_dict()[key], value) for key, value in weights[arch].items())
    assert [name for name in teacher_folders(experiments) if "teacher" in name or name.startswith(".")] == [
        "teacher_resnet56", "teacher_wrn_40_2"]  # no staging folder left


@pytest.mark.parametrize("inner", [False, True], ids=["parent-folder", "cifar-100-python-itself"])
def test_the_test_accuracy_is_measured_where_the_data_is(tiny_table, tmp_path, inner):
    torch.manual_seed(0)
    model = model_dict["resnet8"](num_classes=100).eval()
    file = save(tmp_path / "resnet8.pth", {"state_dict": model.state_dict(), "best_acc": 70.0})
    data_root = tiny_table.data_root / "cifar-100-python" if inner else tiny_table.data_root
    assert main(["import", str(file), "--experiments-dir", str(tmp_path / "e"), "--data-root", str(data_root)]) == 0
    summary = json.loads((tmp_path / "e" / "teacher_resnet8" / "summary.json").read_text())
    data = load_cifar100(tiny_table.data_root, download=False)
    loader = DeviceLoader(data.test_images, data.test_labels, 100, torch.device("cpu"), train=False)
    expected = evaluate(model, loader)[1]
    assert summary["imported"]["measured"] == {"test_acc": pytest.approx(expected), "test_images": 100,
                                               "data_root": str(data_root), "kind": "synthetic"}
    assert summary["best_acc"] == summary["imported"]["measured"]["test_acc"] and summary["imported"]["stored_acc"] == 70.0


def save(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(content, path)
    return path


class Unsafe:
    def __reduce__(self):
        return (print, ("this ran on load",))


@pytest.mark.parametrize("name, make, message", [
    ("wrn_40_2.pth", lambda path: path.write_bytes(b"PK\x03\x04 truncated"), "cannot read checkpoint"),
    ("wrn_40_2.pth", lambda path: path.write_bytes(pickle.dumps(Unsafe(), protocol=2)), "cannot read checkpoint"),
    ("wrn_40_2.pth", lambda path: save(path, {"state_dict": model_dict["resnet8"](num_classes=100).state_dict()}),
     "does not fit architecture wrn_40_2"),
    ("wrn_40_2.pth", lambda path: save(path, {"notes": "no weights here"}), "holds no state dict"),
    ("model.pth", lambda path: save(path, model_dict["resnet8"](num_classes=100).state_dict()),
     "cannot tell the architecture .*--arch"),
])
def test_a_corrupt_or_foreign_file_is_one_error_and_nothing_is_imported(zoo, tmp_path, capsys, exit_status,
                                                                       name, make, message):
    downloads = tmp_path / "downloads"
    save(downloads / "resnet56.pth", {"state_dict": zoo[1]["resnet56"]})  # a good file beside the bad one
    make(downloads / name)
    experiments = tmp_path / "experiments"
    assert exit_status(main, ["import", str(downloads), "--experiments-dir", str(experiments)]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: ") and re.search(message, err), err
    assert "this ran on load" not in out
    assert teacher_folders(experiments) == []


def test_a_teacher_already_there_is_replaced_only_with_force(zoo, tmp_path, capsys, exit_status):
    archive, weights, _ = zoo
    experiments = tmp_path / "experiments"
    trained = experiments / "teacher_resnet56"
    save(trained / "ckpt" / "best.pth", {"state_dict": weights["resnet56"]})
    (trained / "summary.json").write_text(json.dumps({"epochs_done": 240, "args": {"epoch": 240}}))
    before = (trained / "ckpt" / "best.pth").read_bytes()
    assert exit_status(main, ["import", str(archive), "--experiments-dir", str(experiments)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "teacher_resnet56 already holds a teacher trained here (240/240 epochs)" in err
    assert "--force" in err and (trained / "ckpt" / "best.pth").read_bytes() == before
    assert teacher_folders(experiments) == ["teacher_resnet56"]  # wrn_40_2 was not imported either

    assert main(["import", str(archive), "--experiments-dir", str(experiments), "--force"]) == 0
    assert "imported" in json.loads((trained / "summary.json").read_text())
    assert exit_status(main, ["import", str(archive), "--experiments-dir", str(experiments)]) == 2
    assert "already holds a published teacher imported from" in capsys.readouterr().err


def test_arch_names_a_single_file_only(zoo, tmp_path, capsys, exit_status):
    file = save(tmp_path / "model.pth", {"state_dict": zoo[1]["wrn_40_2"]})
    assert main(["import", str(file), "--arch", "wrn_40_2", "--experiments-dir", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "teacher_wrn_40_2" / "ckpt" / "best.pth").is_file()
    assert exit_status(main, ["import", str(zoo[0]), "--arch", "wrn_40_2", "--experiments-dir", str(tmp_path)]) == 2
    assert "--arch names the architecture of a single file" in capsys.readouterr().err


def test_the_tiny_table_runs_on_imported_teachers(imported, tiny_table):
    """Import, DRY_RUN, then command.sh: no teacher is trained, and the table labels the published one."""
    experiments = imported
    env = tiny_table.env(experiments, ONLY="^KD resnet56 resnet20")  # its teacher, imported: phase 1 is done
    dry = subprocess.run(["bash", str(ROOT / "command" / "command.sh")], env={**env, "DRY_RUN": "1"},
                         capture_output=True, text=True, timeout=120)
    assert "# teacher resnet56: imported published checkpoint" in dry.stdout, dry.stderr
    assert "teacher.py" not in dry.stdout.replace("# phase 1 of 2, teacher.py", "")  # no teacher.py command
    assert "1 runs, 1 finished (1 of them imported teachers)" in dry.stdout
    slurm = subprocess.run(["bash", str(ROOT / "command" / "slurm.sh")], env={**env, "DRY_RUN": "1"},
                           capture_output=True, text=True, timeout=120)
    sbatch_calls = [line for line in slurm.stdout.splitlines() if line.startswith("sbatch")]
    assert len(sbatch_calls) == 1 and "unixkd-students --array 0-0" in sbatch_calls[0], slurm.stdout + slurm.stderr
    assert "--dependency" not in sbatch_calls[0]  # no phase-1 array to wait for

    done = subprocess.run(["bash", str(ROOT / "command" / "command.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = read_jobs(experiments / JOB_LOG)
    assert [job.run for job in jobs] == ["KD resnet56 resnet20 seed1"]
    assert "== teachers" not in done.stdout and "runs: 2 done, 0 failed, 0 left of 2" in done.stdout
    [(pair, rows)] = tiny_table.table_rows(experiments, pairs=("resnet56 -> resnet20",)).items()
    teacher_row, kd_row = rows
    assert "teacher (published checkpoint)" in teacher_row and "72.34 +- 0.00 (n=1)    73.44  -1.10   -" in teacher_row
    assert kd_row.split()[0] == "KD" and "(n=1)" in kd_row
