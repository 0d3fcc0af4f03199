"""python -m utils.computation: UNIXKD's computation relative to KD, per pair or for the paper's table (utils/table/computation.py)."""
from utils.process.cli import run_main
from utils.table.computation import main

if __name__ == "__main__":
    run_main(main)
