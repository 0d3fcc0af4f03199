"""Shared fixtures: a small synthetic CIFAR-100 in the official file format, written once per session."""

import pytest

from utils.synthetic import write_synthetic_cifar100


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """Root folder holding cifar-100-python/{train,test,meta}: 10 train and 2 test images per class."""
    return write_synthetic_cifar100(tmp_path_factory.mktemp("cifar"), train_per_class=10, test_per_class=2, seed=0)
