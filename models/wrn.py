"""Wide ResNets (Zagoruyko & Komodakis 2016) of the CRD zoo: wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2.

Pre-activation blocks (bn-relu-conv twice), a 1x1 `convShortcut` where the width changes,
a final bn-relu, 8x8 average pool, `fc`.

Stage outputs are residual sums with no ReLU after them, so preact=True returns them normalised
by the batch norm that pre-activates them next (the following stage's first `bn1`, or the final
`bn1`): the tensor just before that ReLU, as the published zoo defines it.
"""
from functools import partial

import torch.nn as nn
import torch.nn.functional as F

from .common import init_conv_bn, make_stage, outputs


class WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.convShortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if cin != cout else None

    def forward(self, x):
        act = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        # As in the original WRN code, a projection reads the pre-activated input, while an
        # identity shortcut carries the raw input.
        return (x if self.convShortcut is None else self.convShortcut(act)) + out


class WideStage(nn.Module):
    """Wrapper that only exists for the checkpoints' `blockN.layer.M` key prefix."""

    def __init__(self, cin: int, cout: int, n: int, stride: int):
        super().__init__()
        self.layer = make_stage(WideBlock, cin, cout, n, stride)

    def forward(self, x):
        return self.layer(x)


def batch_norm_no_update(bn: nn.BatchNorm2d, x):
    """`bn(x)` without touching its running statistics: a feature read must not change the model."""
    if not bn.training:
        return bn(x)
    return F.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, num_classes: int = 100):
        super().__init__()
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.block1 = WideStage(widths[0], widths[1], n, 1)
        self.block2 = WideStage(widths[1], widths[2], n, 2)
        self.block3 = WideStage(widths[2], widths[3], n, 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        init_conv_bn(self)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x, is_feat=False, preact=False):
        x = self.conv1(x)
        feats = [x]
        stages = (self.block1, self.block2, self.block3)
        next_bns = (self.block2.layer[0].bn1, self.block3.layer[0].bn1, self.bn1)
        for stage, bn in zip(stages, next_bns):
            x = stage(x)
            feats.append(batch_norm_no_update(bn, x) if preact else x)
        x = F.avg_pool2d(F.relu(self.bn1(x)), 8).flatten(1)
        feats.append(x)
        return outputs(feats, self.fc(x), is_feat)


MODELS = {f'wrn_{d}_{w}': partial(WideResNet, d, w) for d, w in ((16, 1), (16, 2), (40, 1), (40, 2))}
