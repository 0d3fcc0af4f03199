"""python -m utils.digits_comparison: the six distillers on scikit-learn's digits (utils/tools/digits_comparison.py)."""
from utils.process.cli import run_main
from utils.tools.digits_comparison import main

if __name__ == "__main__":
    run_main(main)
