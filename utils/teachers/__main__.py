"""python -m utils.teachers import|fetch: see utils/teachers/cli.py."""
from utils.process.cli import run_main
from utils.teachers.cli import main

run_main(main)
