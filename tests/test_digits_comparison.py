"""utils.tools.digits_comparison without scikit-learn: each method (every declared distiller, conventional and with
UNIX) trains through the project's step on a small stand-in set, and a machine without scikit-learn is told how to
get it."""
import sys

import pytest
import torch

from utils.distillers import DISTILLERS
from utils.errors import UserError
from utils.tools import digits_comparison as dc
from utils.unix_settings import KD_FLAGS


def stand_in_split(images=128, test_images=32):
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(images + test_images) % 10
    x = torch.rand(images + test_images, 1, 8, 8, generator=generator) * 0.3 + (y.view(-1, 1, 1, 1) / 10.0)
    return (x[:images], y[:images]), (x[images:], y[images:])


def test_each_method_trains_and_unix_spends_less_than_its_conventional_form(monkeypatch):
    monkeypatch.setattr(dc, "TRAIN_IMAGES", 128)
    train, test = stand_in_split()
    teacher, _ = dc.train_teacher(train, test, epochs=2)
    for name, distiller, flags in dc.methods():
        last, best, computation, _ = dc.distil(teacher, distiller, flags, train, test, epochs=2, seed=0)
        assert 0.0 <= last <= best <= 100.0
        if flags is KD_FLAGS:
            assert computation == pytest.approx(100.0), name
        else:
            assert computation < 100.0, name


# The published distillers' methods, in the order the comparison prints them; a distiller declared later adds its own.
PUBLISHED_METHODS = ["KD", "UNIXKD", "DKD", "UNIX + DKD", "UNIX + DKD split", "LSKD", "UNIX + LSKD"]


def test_the_methods_are_each_declared_distiller_conventional_with_unix_and_under_its_other_rules():
    names = [name for name, _, _ in dc.methods()]
    assert [name for name in names if name in PUBLISHED_METHODS] == PUBLISHED_METHODS
    assert [(name, distiller) for name, distiller, flags in dc.methods() if flags is KD_FLAGS] == [
        (name, name) for name in DISTILLERS]  # every declared distiller, conventional, under its own name


def test_without_scikit_learn_the_error_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(UserError, match=r"needs scikit-learn's bundled digits: pip install scikit-learn"):
        dc.load_digits_split()
