"""Shared fixtures: a small synthetic CIFAR-100 in the official file format, written once per session."""

import pytest

from utils.cli import run_main
from utils.synthetic import write_synthetic_cifar100


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """Root folder holding cifar-100-python/{train,test,meta}: 10 train and 2 test images per class."""
    return write_synthetic_cifar100(tmp_path_factory.mktemp("cifar"), train_per_class=10, test_per_class=2, seed=0)


@pytest.fixture
def exit_status():
    """Run a command's main(argv) as `python -m` does, through run_main, and return its exit status."""

    def run(main, argv):
        with pytest.raises(SystemExit) as exited:
            run_main(lambda: main(argv))
        return exited.value.code

    return run
