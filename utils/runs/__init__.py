"""A run's folder: its name and what its summary.json says of how it started (runnames; a student's run in a
folder of another name, an earlier version's or another spelling of its k and b: earlier_names), the folder
itself and its lock (rundir), checkpoints written atomically and read without executing code (checkpoint),
what a resume may change (resume), TensorBoard's event files (events), and summary.json and counter.npy (report).

May import: the method modules of utils/, utils.process, utils.data.
"""
