"""python -m utils.bench: training speed, classic pipeline against ours and UNIXKD against KD (utils/tools/bench.py)."""
from utils.process.cli import run_main
from utils.tools.bench import main

if __name__ == "__main__":
    run_main(main)
