"""python -m utils.graph_check: CUDA graphs against eager, step by step (utils/tools/graph_check.py)."""
from utils.process.cli import run_main
from utils.tools.graph_check import main

if __name__ == "__main__":
    run_main(main)
