"""python -m utils.synthetic_imagenet: a small ImageFolder of real JPEG files (utils/data/synthetic_imagenet.py)."""
from utils.process.cli import run_main
from utils.data.synthetic_imagenet import main

if __name__ == "__main__":
    run_main(main)
