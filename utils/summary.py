"""python -m utils.summary: the results table from our runs, beside the published figures (utils/table/summary.py)."""
from utils.process.cli import run_main
from utils.table.summary import main

if __name__ == "__main__":
    run_main(main)
