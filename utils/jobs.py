"""python -m utils.jobs: running the run list's runs, and how far the table is (utils/table/jobs.py)."""
from utils.process.cli import run_main
from utils.table.jobs import main

if __name__ == "__main__":
    run_main(main)
