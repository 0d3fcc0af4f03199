"""python -m utils.synthetic: a synthetic stand-in for CIFAR-100 (utils/data/synthetic.py)."""
from utils.process.cli import run_main
from utils.data.synthetic import main

if __name__ == "__main__":
    run_main(main)
