"""python -m utils.torchrun: torchrun whose last line is the run's own (utils/process/launch.py)."""
from utils.process.cli import run_main
from utils.process.launch import main

if __name__ == "__main__":
    run_main(main)
