"""python -m utils.runlist: every run behind the published table (utils/table/runlist.py)."""
from utils.process.cli import run_main
from utils.table.runlist import main

if __name__ == "__main__":
    run_main(main)
