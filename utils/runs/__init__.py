"""A run's folder: its name (runnames; a student's folder named by an earlier version: earlier_names), the
folder itself and its lock (rundir), checkpoints written atomically and read without executing code
(checkpoint), what a resume may change (resume), TensorBoard's event files (events), and summary.json and
counter.npy (report).

May import: the method modules of utils/, utils.process, utils.data.
"""
