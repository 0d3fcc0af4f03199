"""Reading CIFAR-100 files, the synthetic stand-in, and the classic reference pipeline."""

import os
import pickle
import shutil
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from torchvision.transforms import functional as TF

from utils.data import synthetic
from utils.data.cifar100 import CIFAR100_MEAN, CIFAR100_STD, FOLDER, ClassicCIFAR100, dataset_kind, load_cifar100
from utils.data.synthetic import write_synthetic_cifar100
from utils.errors import UserError


@pytest.fixture
def cifar_copy(synthetic_root, tmp_path):
    """A private copy of the session's synthetic set, safe to damage."""
    shutil.copytree(synthetic_root / "cifar-100-python", tmp_path / "cifar-100-python")
    return tmp_path


def read_pickle(path):
    with open(path, "rb") as file:
        return pickle.load(file, encoding="latin1")


def write_pickle(path, content):
    with open(path, "wb") as file:
        pickle.dump(content, file)


def test_load_reads_shapes_dtypes_and_labels(synthetic_root):
    arrays = load_cifar100(synthetic_root)
    assert arrays.train_images.shape == (1000, 32, 32, 3) and arrays.train_images.dtype == np.uint8
    assert arrays.test_images.shape == (200, 32, 32, 3) and arrays.test_images.dtype == np.uint8
    assert arrays.train_labels.dtype == np.int64 and arrays.test_labels.dtype == np.int64
    assert np.array_equal(np.bincount(arrays.train_labels), np.full(100, 10))
    assert np.array_equal(np.bincount(arrays.test_labels), np.full(100, 2))
    assert len(arrays.class_names) == 100 and arrays.class_names[0] == "class_00"


def test_load_turns_channel_planar_rows_into_hwc(synthetic_root):
    raw = read_pickle(synthetic_root / "cifar-100-python" / "train")
    first = load_cifar100(synthetic_root).train_images[0]
    assert np.array_equal(first[:, :, 0], raw["data"][0, :1024].reshape(32, 32))  # red plane
    assert np.array_equal(first[:, :, 2], raw["data"][0, 2048:].reshape(32, 32))  # blue plane


def test_missing_folder_and_failed_download_names_the_directory(tmp_path, monkeypatch):
    def no_network(self):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torchvision.datasets.CIFAR100, "download", no_network)
    with pytest.raises(UserError) as caught:
        load_cifar100(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "cifar-100-python") in message and "utils.synthetic" in message
    assert "\n" not in message


def test_missing_folder_without_download_does_not_try(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "download", lambda self: pytest.fail("tried to download"))
    with pytest.raises(UserError, match="not found"):
        load_cifar100(tmp_path, download=False)


def test_unpicklable_file_names_the_file(cifar_copy):
    (cifar_copy / "cifar-100-python" / "train").write_bytes(b"\x80\x04 this is not a pickle")
    with pytest.raises(UserError, match=str(cifar_copy / "cifar-100-python" / "train")):
        load_cifar100(cifar_copy)


def test_missing_file_names_the_file(cifar_copy):
    (cifar_copy / "cifar-100-python" / "meta").unlink()
    with pytest.raises(UserError, match=str(cifar_copy / "cifar-100-python" / "meta")):
        load_cifar100(cifar_copy)


@pytest.mark.parametrize("damage", [
    lambda split: split.update(fine_labels=split["fine_labels"][:-1]),  # one label short
    lambda split: split["fine_labels"].__setitem__(0, 100),  # label out of range
    lambda split: split.update(data=split["data"][:, :3000]),  # truncated rows
    lambda split: split.update(data=split["data"].astype(np.float32)),  # wrong dtype
    lambda split: split.pop("data"),
])
def test_malformed_split_names_the_file(cifar_copy, damage):
    path = cifar_copy / "cifar-100-python" / "test"
    split = read_pickle(path)
    damage(split)
    write_pickle(path, split)
    with pytest.raises(UserError, match=f"malformed CIFAR-100 file {path}"):
        load_cifar100(cifar_copy)


def test_synthetic_set_is_deterministic_per_seed(tmp_path):
    first = write_synthetic_cifar100(tmp_path / "a", train_per_class=2, test_per_class=1, seed=3)
    again = write_synthetic_cifar100(tmp_path / "b", train_per_class=2, test_per_class=1, seed=3)
    other = write_synthetic_cifar100(tmp_path / "c", train_per_class=2, test_per_class=1, seed=4)
    for name in ("train", "test", "meta"):
        assert (first / "cifar-100-python" / name).read_bytes() == (again / "cifar-100-python" / name).read_bytes()
    assert (first / "cifar-100-python" / "train").read_bytes() != (other / "cifar-100-python" / "train").read_bytes()


def test_synthetic_set_has_the_official_keys_and_types(synthetic_root):
    folder = synthetic_root / "cifar-100-python"
    train, meta = read_pickle(folder / "train"), read_pickle(folder / "meta")
    assert set(train) == {"filenames", "batch_label", "fine_labels", "coarse_labels", "data"}
    assert train["data"].dtype == np.uint8 and train["data"].shape == (1000, 3072)
    assert all(isinstance(label, int) for label in train["fine_labels"] + train["coarse_labels"])
    assert set(train["coarse_labels"]) == set(range(20)) and isinstance(train["filenames"][0], str)
    assert train["batch_label"] == "training batch 1 of 1"
    assert set(meta) == {"fine_label_names", "coarse_label_names"}
    assert len(meta["fine_label_names"]) == 100 and len(meta["coarse_label_names"]) == 20


def test_torchvision_reader_accepts_the_synthetic_files(synthetic_root, monkeypatch):
    # torchvision insists on the official checksums; past that check it must read our files as its own.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    dataset = torchvision.datasets.CIFAR100(str(synthetic_root), train=False)
    arrays = load_cifar100(synthetic_root)
    assert np.array_equal(dataset.data, arrays.test_images)
    assert dataset.targets == arrays.test_labels.tolist() and dataset.classes == arrays.class_names


def test_synthetic_classes_are_separable_by_class_means(synthetic_root):
    # A nearest-class-mean classifier on 8x8 thumbnails; chance is 1 %.
    arrays = load_cifar100(synthetic_root)

    def thumbnails(images):
        return images.reshape(len(images), 8, 4, 8, 4, 3).mean(axis=(2, 4)).reshape(len(images), -1)

    train, test = thumbnails(arrays.train_images), thumbnails(arrays.test_images)
    means = np.stack([train[arrays.train_labels == c].mean(axis=0) for c in range(100)])
    predicted = ((test[:, None, :] - means[None]) ** 2).sum(axis=-1).argmin(axis=1)
    assert (predicted == arrays.test_labels).mean() > 0.5


def test_synthetic_cli_writes_and_reports(tmp_path, capsys):
    assert synthetic.main(["--out", str(tmp_path), "--train-per-class", "1", "--test-per-class", "1"]) == 0
    assert "100 train, 100 test" in capsys.readouterr().out
    assert len(load_cifar100(tmp_path, download=False).train_labels) == 100


def test_synthetic_help_shows_the_defaults(capsys, exit_status):
    assert exit_status(synthetic.main, ["--help"]) == 0
    out = capsys.readouterr().out
    assert "(default 50)" in out and "(default 10)" in out and "(default 0)" in out


def test_synthetic_cli_rejects_non_positive_counts(tmp_path, capsys, exit_status):
    assert exit_status(synthetic.main, ["--out", str(tmp_path), "--train-per-class", "0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1


def test_classic_test_pipeline_is_plain_normalization(synthetic_root):
    arrays = load_cifar100(synthetic_root)
    image, label, index = ClassicCIFAR100(arrays.test_images, arrays.test_labels, train=False)[7]
    expected = TF.normalize(torch.from_numpy(arrays.test_images[7]).permute(2, 0, 1) / 255, CIFAR100_MEAN,
                            CIFAR100_STD)
    assert torch.allclose(image, expected, atol=1e-6)
    assert (label, index) == (int(arrays.test_labels[7]), 7)


def test_classic_train_pipeline_augments(synthetic_root):
    arrays = load_cifar100(synthetic_root)
    dataset = ClassicCIFAR100(arrays.train_images, arrays.train_labels, train=True)
    torch.manual_seed(0)
    views = torch.stack([dataset[0][0] for _ in range(8)])
    assert views.shape == (8, 3, 32, 32) and views.dtype == torch.float32
    assert any(not torch.equal(views[0], view) for view in views[1:])  # random crops and flips differ


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_data_file_that_would_run_code_is_refused_without_running_it(cifar_copy, monkeypatch):
    monkeypatch.chdir(cifar_copy)
    (cifar_copy / FOLDER / "test").write_bytes(pickle.dumps({"data": _RunsCode()}))
    with pytest.raises(UserError, match="test: not a valid pickle .*refused to load (posix|os).system"):
        load_cifar100(cifar_copy, download=False)
    assert not (cifar_copy / "pwned").exists()


def test_a_python2_style_pickle_of_numpy_arrays_loads(cifar_copy):
    path = cifar_copy / FOLDER / "train"
    content = pickle.loads(path.read_bytes())
    # Protocol 2 and the numpy module path of the official (Python 2, numpy 1) files.
    legacy = pickle.dumps(content, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"cnumpy.core.multiarray\n_reconstruct" in legacy
    path.write_bytes(legacy)
    assert len(load_cifar100(cifar_copy, download=False).train_labels) == len(content["fine_labels"])


def test_the_data_root_may_be_the_cifar_100_python_folder_itself(synthetic_root, tmp_path, monkeypatch):
    inner = load_cifar100(synthetic_root / "cifar-100-python")
    assert np.array_equal(inner.train_labels, load_cifar100(synthetic_root).train_labels)
    roots = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR100", lambda root, **kwargs: roots.append(root) or 1 / 0)
    with pytest.raises(UserError, match=f"not found in {tmp_path / 'cifar-100-python'} and the download failed"):
        load_cifar100(tmp_path / "cifar-100-python")
    assert roots == [str(tmp_path)]  # into the folder named, not a cifar-100-python inside it


def test_the_kind_of_data_is_told_by_its_class_names(cifar_copy):
    assert dataset_kind(cifar_copy) == "synthetic"
    meta = cifar_copy / FOLDER / "meta"
    official = ["apple", "aquarium_fish", "baby"] + [f"name_{c}" for c in range(97)]
    for names, kind in ((official, "CIFAR-100"), ([f"name_{c}" for c in range(100)], "other")):
        write_pickle(meta, {"fine_label_names": names})
        assert dataset_kind(cifar_copy / FOLDER) == kind
