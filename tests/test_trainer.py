"""The shared training step: the losses are summed and minimised; bf16 autocast only when asked."""
import torch

import student_v0
import teacher
from models import model_dict
from utils.training.iteration import train_step
from utils.training.steps import SupervisedStep


def one_step(amp: bool):
    torch.manual_seed(0)
    model = model_dict["resnet8"](num_classes=100)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 100, (4,))
    out, loss = train_step(SupervisedStep(model), optimizer, x, y, torch.arange(4), amp=amp)
    moved = any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    return out, loss, moved


def test_a_step_minimises_the_summed_losses_in_full_precision_by_default():
    out, loss, moved = one_step(amp=False)
    assert out.logits.dtype == torch.float32 and torch.isfinite(loss) and moved
    assert loss.item() == sum(v.item() for v in out.losses.values())


def test_amp_runs_the_forward_in_bf16():
    out, loss, moved = one_step(amp=True)
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(loss) and moved


def test_amp_is_off_unless_asked():
    assert teacher.parse_args(["--arch", "resnet8"]).amp is False
    assert student_v0.parse_args(["--teacher-path", "x", "--student-arch", "resnet8"]).amp is False


def test_compile_is_opt_in_and_keeps_the_published_state_dict_keys():
    from utils.training.build import make_model

    assert teacher.parse_args(["--arch", "resnet8"]).compile is False
    compiled = make_model("resnet8", torch.device("cpu"), compile=True)
    assert compiled._compiled_call_impl is not None  # compiled lazily, on the first forward
    assert list(compiled.state_dict()) == list(model_dict["resnet8"](num_classes=100).state_dict())
