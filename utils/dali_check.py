"""python -m utils.dali_check: DALI's mixed pipeline against its CPU pipeline (utils/tools/dali_check.py)."""
from utils.process.cli import run_main
from utils.tools.dali_check import main

if __name__ == "__main__":
    run_main(main)
