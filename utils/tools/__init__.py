"""Measurements beside the training runs: speed benchmarks (bench, bench_imagenet), CUDA graphs against
eager step by step (graph_check), host synchronisations per training step (sync_check), DALI's GPU
pipeline against its CPU one (dali_check), and the six distillers on a small real set (digits_comparison).

May import: every other part of utils.
"""
