"""python -m utils.sync_check: host synchronisations per training step (utils/tools/sync_check.py)."""
from utils.process.cli import run_main
from utils.tools.sync_check import main

if __name__ == "__main__":
    run_main(main)
