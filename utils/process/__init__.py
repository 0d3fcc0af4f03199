"""One process of a run: its command line (cli), its place among torchrun's processes (ranks, without
torch) and the DDP plumbing (distributed), torchrun with the run's own last word (launch, last_words), its
seeds and random states (seeding), the signals it saves and stops on (preemption), files written whole or not
at all (files).

May import: the method modules of utils/ (errors). Nothing else of utils.
"""
