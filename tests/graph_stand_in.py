"""Run a training script or module with tests/graph_emulator.py standing in for CUDA-graph capture, on a CPU:

    python tests/graph_stand_in.py student_v0.py --cuda-graphs ...   # a script
    python tests/graph_stand_in.py -m utils.bench ...                 # a module
    python tests/graph_stand_in.py -c "import torch; ..."             # a command

--cuda-graphs then records and replays through the stand-in instead of running eagerly, so a subprocess
test (resume, command/gpu_checks.sh) exercises the replayed path end to end.
"""
import importlib
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import utils.tools.bench  # noqa: E402  (after the path is set)
import utils.tools.graph_check  # noqa: E402
import utils.training.graphs  # noqa: E402
from tests.graph_emulator import emulated_capture  # noqa: E402
from utils.process.cli import run_main  # noqa: E402


def stand_in_for(requested: bool, device) -> object:
    return emulated_capture if requested else None


def main(argv: list) -> None:
    utils.training.graphs.graph_capture = stand_in_for
    utils.tools.bench.graph_capture_for = utils.tools.graph_check.graph_capture_for = lambda device: emulated_capture
    if argv[0] == "-c":
        sys.argv = ["-c", *argv[2:]]  # as python -c CODE ARGS... sets it
        exec(argv[1], {"__name__": "__main__"})
    elif argv[0] == "-m":  # the imported module, patched above, not a fresh copy as runpy would make
        sys.argv = [argv[1], *argv[2:]]
        run_main(importlib.import_module(argv[1]).main)
    else:
        sys.argv = argv
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
