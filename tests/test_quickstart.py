"""quickstart.py at its smallest (1,000 synthetic images, 1 epoch a stage): fallback banner, runs, table, rerun."""
import contextlib
import io
import json

import numpy as np
import pytest

import quickstart
from utils.data.cifar100 import FOLDER, CifarArrays
from utils.data.synthetic import write_synthetic_cifar100
from utils.errors import UserError

TINY = ["--train-per-class", "10", "--test-per-class", "2", "--epochs", "1"]
STUDENT_RUNS = "v0_student_resnet8_teacher_resnet20-best_*"


def offline(root, download):
    raise UserError(f"CIFAR-100 not found in {root} and the download failed (no network in this test)")


def must_not_look_for_cifar100(root, download):
    raise AssertionError("--synthetic must not look for CIFAR-100")


def run_quickstart(tmp_path, load_cifar100, *extra):
    """quickstart.main's printed output, with CIFAR-100 lookups answered by load_cifar100."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setattr(quickstart, "load_cifar100", load_cifar100)
        quickstart.main(["--data-root", str(tmp_path / "data"), "--experiments-dir", str(tmp_path / "quick"),
                         *TINY, *extra])
    return out.getvalue()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("quickstart")
    return tmp_path, run_quickstart(tmp_path, offline)


def test_offline_machine_gets_a_loud_banner_and_a_generated_set(first_run):
    tmp_path, output = first_run
    banner = [line for line in output.splitlines() if line.startswith("#")]
    assert "NO CIFAR-100: USING A GENERATED SYNTHETIC DATA SET." in output
    banner_text = " ".join(line.lstrip("# ") for line in banner)  # as read, whatever the tmp path's length
    assert "no network in this test" in banner_text
    assert "NOT comparable" in banner_text
    assert (tmp_path / "data" / "synthetic" / FOLDER / "train").is_file()
    assert f"data: {tmp_path / 'data' / 'synthetic'} (1000 train / 200 test images)" in output


def test_each_stage_has_a_header_and_leaves_its_run(first_run):
    tmp_path, output = first_run
    headers = [line for line in output.splitlines() if line.startswith("[")]
    assert [header[:5] for header in headers] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert "teacher: resnet20" in headers[0] and "KD student" in headers[1] and "UNIXKD student" in headers[2]
    quick = tmp_path / "quick"
    assert (quick / "teacher_resnet20" / "ckpt" / "best.pth").is_file()
    summaries = [json.loads(path.read_text()) for path in sorted(quick.glob(f"{STUDENT_RUNS}/summary.json"))]
    assert [(s["args"]["strategy"], s["args"]["k"], s["finished"]) for s in summaries] == [(0, 64, True), (3, 48, True)]


def test_ends_with_the_results_table(first_run):
    _, output = first_run
    table = output[output.index("[4/4] results"):]
    assert "teacher -> student" in table
    assert "resnet20 -> resnet8" in table and "teacher (trained here)" in table
    assert "resnet56 -> resnet20" not in table  # the paper's pair: no run of this folder belongs to it
    assert " KD " in table and "UNIXKD (S3 k48 b32 w10)" in table
    assert "quickstart finished in" in output.splitlines()[-1]


def test_second_run_starts_its_own_runs_over(first_run):
    tmp_path, _ = first_run
    output = run_quickstart(tmp_path, must_not_look_for_cifar100, "--synthetic")
    assert output.count("--force: discarding the previous run") == 3
    assert "--synthetic was given" in output
    assert len(list((tmp_path / "quick").glob(STUDENT_RUNS))) == 2
    assert "resnet20 -> resnet8" in output[output.index("[4/4] results"):]


def test_refuses_a_folder_it_did_not_create(tmp_path):
    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "teacher_vgg13").mkdir()
    with pytest.raises(UserError, match="did not write"):
        run_quickstart(tmp_path, must_not_look_for_cifar100, "--synthetic")
    assert list((tmp_path / "quick").iterdir()) == [tmp_path / "quick" / "teacher_vgg13"]


def test_a_stand_in_in_the_data_root_is_not_taken_for_cifar100(tmp_path):
    write_synthetic_cifar100(tmp_path, train_per_class=1, test_per_class=1)
    assert "not the official CIFAR-100" in quickstart.why_not_official_cifar100(tmp_path)


def test_official_cifar100_is_used_as_it_is(tmp_path, monkeypatch):
    names = quickstart.OFFICIAL_FIRST_CLASSES + [f"class_{c}" for c in range(97)]
    official = CifarArrays(np.zeros((1, 32, 32, 3), np.uint8), np.zeros(quickstart.OFFICIAL_TRAIN_IMAGES, np.int64),
                           np.zeros((1, 32, 32, 3), np.uint8), np.zeros(1, np.int64), names)
    monkeypatch.setattr(quickstart, "load_cifar100", lambda root, download: official)
    args = quickstart.parse_args(["--data-root", str(tmp_path)])
    assert quickstart.choose_data(args) == (tmp_path, True)
    assert not (tmp_path / "synthetic").exists()
    assert quickstart.default_epochs(official=True, on_gpu=False) == quickstart.CIFAR_EPOCHS_ON_CPU


def test_the_plot_is_drawn_from_the_real_run_folders(first_run, tmp_path):
    pytest.importorskip("matplotlib")
    from utils.table import summary

    png = tmp_path / "results.png"
    assert summary.main([str(first_run[0] / "quick"), "--all", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
