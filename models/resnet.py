"""CIFAR ResNets (He et al. 2016, sec. 4.2) of the CRD zoo: resnet8..resnet110, resnet8x4/14x4/32x4.

Three stages of 3x3 basic blocks after a conv-bn-relu stem; option-B shortcuts (`downsample`);
8x8 average pool; `fc`. preact=True: each stage output before its block's final ReLU (the
residual sum).
"""
from functools import partial

import torch.nn as nn

from .common import ResidualBlock, init_conv_bn, make_stage, outputs, run_stages


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class BasicBlock(ResidualBlock):
    shortcut_key = 'downsample'

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.add_shortcut(cin, cout, stride)

    def residual(self, x):
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, widths: tuple, num_classes: int = 100):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = conv3x3(3, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_stage(BasicBlock, widths[0], widths[1], n, 1)
        self.layer2 = make_stage(BasicBlock, widths[1], widths[2], n, 2)
        self.layer3 = make_stage(BasicBlock, widths[2], widths[3], n, 2)
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(widths[3], num_classes)
        init_conv_bn(self)

    def forward(self, x, is_feat=False, preact=False):
        stem = self.relu(self.bn1(self.conv1(x)))
        x, stage_feats = run_stages((self.layer1, self.layer2, self.layer3), stem, preact)
        x = self.avgpool(x).flatten(1)
        return outputs([stem, *stage_feats, x], self.fc(x), is_feat)


_NARROW = (16, 16, 32, 64)
_WIDE = (32, 64, 128, 256)  # the x4 variants: 4x the channels of stages 1-3, 2x the stem

MODELS = {f'resnet{d}': partial(CifarResNet, d, _NARROW) for d in (8, 14, 20, 32, 44, 56, 110)}
MODELS.update({f'resnet{d}x4': partial(CifarResNet, d, _WIDE) for d in (8, 14, 32)})
