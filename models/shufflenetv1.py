"""ShuffleNet V1 (Zhang et al. 2018) as in the CRD zoo ("ShuffleV1"): groups 3, stage widths
240/480/960 with 4/8/4 units, 1x1 stem to 24 channels at full resolution, 4x4 average pool, `linear`.

Each stage opens with a stride-2 unit that concatenates a 3x3 average-pooled copy of its input to
its branch; the other units add the input. preact=True: each stage output before its last
unit's final ReLU (the sum).
"""
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import PreactBlock, channel_shuffle, make_stage, outputs, run_stages

STEM = 24


class ShuffleUnit(PreactBlock):
    def __init__(self, cin: int, cout: int, stride: int, groups: int):
        super().__init__()
        branch = cout - cin if stride == 2 else cout  # a stride-2 unit concatenates its input
        mid = branch // 4
        # The stem's 24 channels are too few to split into groups (as in the paper).
        self.groups1 = 1 if cin == STEM else groups
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, mid, 1, groups=self.groups1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, branch, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch)

    def forward_preact(self, x):
        out = channel_shuffle(F.relu(self.bn1(self.conv1(x))), self.groups1)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.stride == 2:
            pre = torch.cat([out, F.avg_pool2d(x, 3, 2, 1)], 1)
        else:
            pre = out + x
        return F.relu(pre), pre


class ShuffleNetV1(nn.Module):
    def __init__(self, widths: tuple = (240, 480, 960), num_blocks: tuple = (4, 8, 4), groups: int = 3,
                 num_classes: int = 100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM)
        unit = partial(ShuffleUnit, groups=groups)
        cin = STEM
        for i, (cout, n) in enumerate(zip(widths, num_blocks)):
            self.add_module(f'layer{i + 1}', make_stage(unit, cin, cout, n, 2))
            cin = cout
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x, is_feat=False, preact=False):
        stem = F.relu(self.bn1(self.conv1(x)))
        x, stage_feats = run_stages((self.layer1, self.layer2, self.layer3), stem, preact)
        x = F.avg_pool2d(x, 4).flatten(1)
        return outputs([stem, *stage_feats, x], self.linear(x), is_feat)


def ShuffleV1(num_classes: int = 100) -> ShuffleNetV1:
    return ShuffleNetV1(num_classes=num_classes)


MODELS = {'ShuffleV1': ShuffleV1}
