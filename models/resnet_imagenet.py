"""ResNet18/34/50 in their CIFAR form (the CRD zoo's "resnetv2"): the ImageNet networks with a
3x3 stride-1 stem and no max-pool, so four stages run at 32, 16, 8 and 4 pixels.

Shortcuts are stored as `shortcut`, the head as `linear`. preact=True: each stage output
before its last block's final ReLU (the residual sum).
"""
from functools import partial

import torch.nn as nn
import torch.nn.functional as F

from . import resnet
from .common import ResidualBlock, init_conv_bn, make_stage, outputs, run_stages


class BasicBlock(resnet.BasicBlock):
    """Same block as the CIFAR ResNets; only the checkpoint key of the shortcut differs."""

    expansion = 1
    shortcut_key = 'shortcut'


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        mid = cout // self.expansion
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.add_shortcut(cin, cout, stride)

    def residual(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.bn3(self.conv3(x))


class ResNet(nn.Module):
    def __init__(self, block, num_blocks: tuple, num_classes: int = 100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (n, planes) in enumerate(zip(num_blocks, (64, 128, 256, 512))):
            cout = planes * block.expansion
            self.add_module(f'layer{i + 1}', make_stage(block, cin, cout, n, 1 if i == 0 else 2))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(cin, num_classes)
        init_conv_bn(self)

    def forward(self, x, is_feat=False, preact=False):
        stem = F.relu(self.bn1(self.conv1(x)))
        x, stage_feats = run_stages((self.layer1, self.layer2, self.layer3, self.layer4), stem, preact)
        x = self.avgpool(x).flatten(1)
        return outputs([stem, *stage_feats, x], self.linear(x), is_feat)


MODELS = {
    'ResNet18': partial(ResNet, BasicBlock, (2, 2, 2, 2)),
    'ResNet34': partial(ResNet, BasicBlock, (3, 4, 6, 3)),
    'ResNet50': partial(ResNet, Bottleneck, (3, 4, 6, 3)),
}
