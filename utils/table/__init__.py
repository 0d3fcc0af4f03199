"""The paper's table: its pairs, protocol and figures (paper), every run behind it (runlist), running
them (jobs), what keeps a run out of the table (protocol), the results table (summary) and its figure
(plot), and the computation of each pair (computation).

May import: the method modules of utils/, utils.process, utils.data, utils.runs, utils.training,
utils.teachers.
"""
