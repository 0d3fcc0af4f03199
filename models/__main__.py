"""`python -m models`: parameters and forward cost of every architecture in the zoo."""
import argparse

import torch

from . import model_dict
from .cost import model_cost


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="python -m models", description=__doc__.split(": ", 1)[1]).parse_args(argv)
    # One-image forwards are too small to gain from threads; on a busy machine the hand-offs
    # between threads cost seconds per model.
    torch.set_num_threads(1)
    print(f'{"model":<12} {"params (M)":>10} {"MMACs / 32x32 image":>20}')
    for name in model_dict:
        params, macs = model_cost(name)
        print(f'{name:<12} {params / 1e6:>10.2f} {macs / 1e6:>20.2f}')


if __name__ == '__main__':
    main()
