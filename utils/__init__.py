"""UNIXKD's library, in layers: each imports only from the layers listed before it.

- unix.py, unix_settings.py, losses.py, distillers.py, errors.py: the method (the UNIX step and its settings
  without torch, the losses as pure functions, the logit distillers' declarations) and the one error a user
  can fix.
- process/: one process of a run: the command line, the device, its rank under torchrun, its seeds.
- data/: the data sets and their loaders: CIFAR-100, ImageNet, the synthetic stand-ins.
- runs/: a run's folder: its name, checkpoints, resume checks and summary.json.
- training/: the training loop, the steps, the computation count, CUDA graphs.
- teachers/: finding, loading, importing and downloading teachers.
- table/: the paper's runs and results: the run list, the job runner, the results table.
- tools/: benchmarks and comparisons.

The other modules here are entry points, so that `python -m utils.summary` and the like stay short;
each only calls its package module's main. tests/test_layout.py keeps the imports running down.
"""
