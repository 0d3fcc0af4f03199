"""Training: what both scripts build (build), the one loop (trainer), what a step computes (steps), one
iteration as device work (iteration) recorded as a CUDA graph (graphs), running sums (metrics), the
hard-sample counter (selection), the paper's computation count (computation_meter), the epoch's
progress line (progress).

May import: the method modules of utils/, utils.process, utils.data, utils.runs.
"""
