"""The model zoo: checkpoint compatibility with the published teachers, the forward contract, cost counting."""

import copy
import json
from functools import lru_cache
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from models import model_dict
from models.common import channel_shuffle
from models.cost import forward_macs, model_cost, parameter_count

# The published checkpoints' layout (keys, shapes, parameter counts, feature shapes) per architecture.
MANIFEST = Path(__file__).resolve().parent / 'data' / 'teacher-zoo-state-dicts.json'

NAMES = [
    'resnet8', 'resnet14', 'resnet20', 'resnet32', 'resnet44', 'resnet56', 'resnet110',
    'resnet8x4', 'resnet14x4', 'resnet32x4', 'ResNet18', 'ResNet34', 'ResNet50',
    'wrn_16_1', 'wrn_16_2', 'wrn_40_1', 'wrn_40_2', 'vgg8', 'vgg11', 'vgg13', 'vgg16', 'vgg19',
    'MobileNetV2', 'ShuffleV1', 'ShuffleV2',
]

# Published UNIXKD CIFAR-100 table (shared/reference/paper-results.md): Ft/Fs and computation (%).
PAPER = [
    ('vgg13', 'MobileNetV2', 38.17, 77.49),
    ('ResNet50', 'MobileNetV2', 174.00, 75.57),
    ('ResNet50', 'vgg8', 13.56, 81.43),
    ('resnet32x4', 'ShuffleV1', 27.16, 78.43),
    ('resnet32x4', 'ShuffleV2', 23.49, 78.92),
    ('wrn_40_2', 'ShuffleV1', 8.22, 84.79),
    ('wrn_40_2', 'wrn_16_2', 3.25, 94.06),
    ('wrn_40_2', 'wrn_40_1', 3.93, 91.88),
    ('resnet56', 'resnet20', 3.06, 94.76),
    ('resnet32x4', 'resnet8x4', 6.12, 87.32),
    ('vgg13', 'vgg8', 2.97, 95.10),
    ('vgg16', 'vgg8', 4.14, 91.29),
]

# One architecture per family, for the behaviours that do not depend on depth or width.
FAMILY_REPRESENTATIVES = ['resnet8', 'ResNet18', 'wrn_16_2', 'vgg8', 'MobileNetV2', 'ShuffleV1', 'ShuffleV2']


@pytest.fixture(autouse=True, scope='module')
def single_thread():
    # Batch-2 forwards are too small to gain from threads; on a busy 2-core machine the hand-offs
    # between threads cost seconds per model.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def manifest():
    return json.loads(MANIFEST.read_text())


@lru_cache(maxsize=None)
def built(name):
    """One seeded instance per architecture, shared by the tests that only read it."""
    torch.manual_seed(0)
    return model_dict[name](num_classes=100).eval()


def images(n=2):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_zoo_has_the_25_published_names(manifest):
    # Pinned, and in the published order; an architecture added to the zoo passes with its own contract test.
    assert [name for name in model_dict if name in NAMES] == NAMES
    assert sorted(manifest) == sorted(NAMES)


@pytest.mark.parametrize('name', NAMES)
def test_state_dict_keys_and_shapes_match_checkpoints(name, manifest):
    ours = {k: list(v.shape) for k, v in built(name).state_dict().items()}
    assert ours == {k: shape for k, shape in manifest[name]['state_dict']}


@pytest.mark.parametrize('name', NAMES)
def test_parameter_count_matches_manifest(name, manifest):
    assert parameter_count(built(name)) == manifest[name]['params']


@pytest.mark.parametrize('name', list(model_dict))
def test_features_and_logits_shapes(name, manifest):
    """The forward contract, of every architecture in the zoo: the published ones' feature shapes as the manifest's."""
    model = built(name)
    with torch.no_grad():
        feats, logits = model(images(), is_feat=True)
        plain = model(images())
    if name in manifest:
        assert [list(f.shape) for f in feats] == [[2] + shape for shape in manifest[name]['feat_shapes']]
    assert all(f.shape[0] == 2 for f in feats) and feats[-1].dim() == 2  # the last is the pooled vector
    assert logits.shape == (2, 100)
    assert torch.equal(plain, logits)


@pytest.mark.parametrize('name', NAMES)
def test_building_prints_nothing(name, capsys):
    model_dict[name](num_classes=100)
    assert capsys.readouterr() == ('', '')


def randomise_buffers(model):
    """Make BN statistics differ from a fresh model's, so a checkpoint that dropped them would show."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.num_batches_tracked.fill_(7)


@pytest.mark.parametrize('key', ['state_dict', 'model'])  # UNIXKD files use 'state_dict', CRD files 'model'
@pytest.mark.parametrize('name', FAMILY_REPRESENTATIVES)
def test_checkpoint_round_trip_loads_strictly_with_identical_logits(name, key, tmp_path):
    torch.manual_seed(0)
    saved = model_dict[name](num_classes=100)
    randomise_buffers(saved)
    torch.save({key: saved.state_dict(), 'epoch': 240, 'acc': 75.0}, tmp_path / 'best.pth')

    torch.manual_seed(1)
    loaded = model_dict[name](num_classes=100)
    loaded.load_state_dict(torch.load(tmp_path / 'best.pth', weights_only=True)[key], strict=True)

    with torch.no_grad():
        assert torch.equal(saved.eval()(images()), loaded.eval()(images()))


@pytest.mark.parametrize('name', FAMILY_REPRESENTATIVES)
def test_training_step_reaches_every_parameter(name):
    model = model_dict[name](num_classes=100).train()
    feats, logits = model(images(), is_feat=True, preact=True)
    (logits.sum() + sum(f.mean() for f in feats)).backward()
    assert all(p.grad is not None for p in model.parameters())


def stage_features(model, preact):
    with torch.no_grad():
        feats, _ = model(images(), is_feat=True, preact=preact)
    return feats


@pytest.mark.parametrize('name', ['resnet8', 'resnet32x4', 'ResNet18', 'ResNet50', 'vgg8', 'ShuffleV1'])
def test_preact_is_the_stage_output_before_its_final_relu(name):
    plain, pre = stage_features(built(name), False), stage_features(built(name), True)
    for p, q in zip(plain[1:-1], pre[1:-1]):
        assert torch.equal(F.relu(q), p)
        assert (q < 0).any()
    for i in (0, -1):  # the stem output and the pooled vector are the same either way
        assert torch.equal(plain[i], pre[i])


def test_shufflenetv2_preact_is_taken_before_the_relu_and_the_channel_shuffle():
    plain, pre = stage_features(built('ShuffleV2'), False), stage_features(built('ShuffleV2'), True)
    for p, q in zip(plain[1:-1], pre[1:-1]):
        assert torch.equal(channel_shuffle(F.relu(q), 2), p)


def test_mobilenetv2_stage_outputs_have_no_relu_so_preact_changes_nothing():
    plain, pre = stage_features(built('MobileNetV2'), False), stage_features(built('MobileNetV2'), True)
    assert all(torch.equal(p, q) for p, q in zip(plain, pre))


def test_wrn_preact_is_the_stage_output_through_the_next_batch_norm():
    model = built('wrn_16_2')
    plain, pre = stage_features(model, False), stage_features(model, True)
    next_bns = [model.block2.layer[0].bn1, model.block3.layer[0].bn1, model.bn1]
    with torch.no_grad():
        for p, q, bn in zip(plain[1:-1], pre[1:-1], next_bns):
            torch.testing.assert_close(bn(p), q)


def test_wrn_preact_in_training_mode_updates_running_statistics_only_once():
    model = model_dict['wrn_16_1'](num_classes=100).train()
    twin = copy.deepcopy(model)
    with torch.no_grad():
        model(images())
        twin(images(), is_feat=True, preact=True)
    for (key, ours), theirs in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(ours, theirs), key


def test_cost_counts_macs_and_per_element_ops_by_hand():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10),
    )
    conv = 32 * 32 * 4 * (3 * 3 * 3)  # one multiply-add per output element per kernel tap
    bn = 2 * 4 * 32 * 32  # normalise, then scale and shift
    relu = 4 * 32 * 32
    pool = 4 * 32 * 32  # one per input element
    linear = 4 * 10 + 10  # weights plus bias
    assert forward_macs(model) == conv + bn + relu + pool + linear


def test_forward_macs_restores_each_module_training_mode():
    model = model_dict['resnet8'](num_classes=100).train()
    model.layer2.eval()
    forward_macs(model)
    assert model.training and model.layer1.training and not model.layer2.training


def test_model_cost_is_parameters_and_forward_macs():
    params, macs = model_cost('resnet8')
    assert params == parameter_count(built('resnet8'))
    assert macs == forward_macs(built('resnet8'))


@pytest.mark.parametrize('teacher, student, paper_ratio, paper_computation', PAPER)
def test_unix_computation_matches_the_paper_within_one_point(teacher, student, paper_ratio, paper_computation):
    batch, k = 64, 48
    ft, fs = model_cost(teacher)[1], model_cost(student)[1]
    computation = 100 * (k * ft + batch * fs + 2 * k * fs) / (batch * ft + 2 * batch * fs)
    assert computation == pytest.approx(paper_computation, abs=1.0)
    # FLOP counters disagree on depthwise / grouped students; this convention stays within 6 %.
    assert ft / fs == pytest.approx(paper_ratio, rel=0.06)


def test_costing_a_model_leaves_the_global_random_stream_alone():
    """A run's random draws must not depend on whether the cost cache was already filled in this process."""
    model_cost.cache_clear()
    before = torch.get_rng_state()
    model_cost("resnet20")
    assert torch.equal(torch.get_rng_state(), before)


def test_models_help_is_help_not_the_table(capsys):
    from models.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0 and "parameters and forward cost" in capsys.readouterr().out
