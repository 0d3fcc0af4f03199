"""utils.tools.digits_comparison without scikit-learn: each of the six methods trains through the project's step
on a small stand-in set, and a machine without scikit-learn is told how to get it."""
import sys

import pytest
import torch

from utils.errors import UserError
from utils.tools import digits_comparison as dc


def stand_in_split(images=128, test_images=32):
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(images + test_images) % 10
    x = torch.rand(images + test_images, 1, 8, 8, generator=generator) * 0.3 + (y.view(-1, 1, 1, 1) / 10.0)
    return (x[:images], y[:images]), (x[images:], y[images:])


def test_each_method_trains_and_unix_spends_less_than_its_conventional_form(monkeypatch):
    monkeypatch.setattr(dc, "TRAIN_IMAGES", 128)
    train, test = stand_in_split()
    teacher, _ = dc.train_teacher(train, test, epochs=2)
    spent = {}
    for name, distiller, flags in dc.METHODS:
        last, best, computation, _ = dc.distil(teacher, distiller, flags, train, test, epochs=2, seed=0)
        assert 0.0 <= last <= best <= 100.0
        spent[name] = computation
    assert [name for name, _, _ in dc.METHODS] == ["KD", "UNIXKD", "DKD", "UNIX + DKD", "UNIX + DKD split", "LSKD",
                                                   "UNIX + LSKD"]
    for conventional, unix in (("KD", "UNIXKD"), ("DKD", "UNIX + DKD"), ("DKD", "UNIX + DKD split"),
                               ("LSKD", "UNIX + LSKD")):
        assert spent[conventional] == pytest.approx(100.0)
        assert spent[unix] < 100.0


def test_without_scikit_learn_the_error_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(UserError, match=r"needs scikit-learn's bundled digits: pip install scikit-learn"):
        dc.load_digits_split()
