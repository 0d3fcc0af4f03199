"""teacher.py or student_v0.py as torchrun starts them, with each rank's view of the run saved for the tests.

    torchrun --nproc_per_node=2 tests/ddp_probe.py <teacher|student> <probe dir> <the script's flags>

Into <probe dir>/rank<R>.pt each rank saves its final weights (buffers included), its model's outputs on
its own share of the val split, the loss/statistics terms of each of its training steps in the last
epoch, the number of steps it took, the record the trainer logged (so a test can recompute the metrics
from all ranks' outputs), and whether DDP broadcast the buffers at every forward. With PROBE_RANK1_READS=<file>,
rank 1 alone reads that file as the run's last.pth (a node that sees a damaged copy).
"""
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import student_v0  # noqa: E402
import teacher  # noqa: E402
from utils.runs import rundir  # noqa: E402
from utils.training import iteration, trainer  # noqa: E402
from utils.process.cli import run_main  # noqa: E402

SCRIPT, PROBE, ARGV = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
SEEN = {"steps": [], "records": []}


def recording_terms(out, loss):
    terms = original_terms(out, loss)
    SEEN["steps"].append({name: (float(total.detach()), count) for name, (total, count) in terms.items()})
    return terms


def recording_print(self, epoch, record):
    SEEN["records"].append(dict(record))
    SEEN["steps_in_epoch"] = SEEN["steps"][-len(self.train_loader):]
    original_print(self, epoch, record)


def recording_fit(self, resume=None):
    best = original_fit(self, resume)
    self.model.eval()
    outputs = []
    with torch.no_grad():
        for plan in self.test_loader.plans():
            x, y, idx = self.test_loader.assemble(plan)
            outputs.append((self.model(x), y, idx))
    trained = getattr(self.step, "model", None) or self.step.student  # what the step trains: the DDP module
    torch.save({"weights": self.model.state_dict(), "val": outputs, "steps": SEEN["steps_in_epoch"],
                "step_count": len(SEEN["steps"]), "record": SEEN["records"][-1], "broadcast_buffers": trained.broadcast_buffers},
               PROBE / f"rank{os.environ['RANK']}.pt")
    return best


original_terms, iteration.epoch_terms = iteration.epoch_terms, recording_terms
original_print, trainer.Trainer._print_epoch = trainer.Trainer._print_epoch, recording_print
original_fit, trainer.Trainer.fit = trainer.Trainer.fit, recording_fit
if os.environ.get("PROBE_RANK1_READS") and os.environ["RANK"] == "1":
    original_load = rundir.load_checkpoint
    rundir.load_checkpoint = lambda path, *args: original_load(os.environ["PROBE_RANK1_READS"], *args)

if __name__ == "__main__":
    PROBE.mkdir(parents=True, exist_ok=True)
    run_main(lambda: {"teacher": teacher, "student": student_v0}[SCRIPT].main(ARGV))
