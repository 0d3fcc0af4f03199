"""MobileNetV2 (Sandler et al. 2018), the CRD zoo's CIFAR half-width variant ("mobile_half"):
expansion 6, width multiplier 0.5, stride-2 stem (16x16 maps from a 32x32 image), 1x1 conv to
1280 channels, average pool, `classifier`.

Unlike torchvision, the t=1 first block keeps its 1x1 expansion conv (the checkpoints have it).
Stage features are taken after block groups 1, 2, 4 and 6. They are outputs of linear
bottlenecks with no ReLU after them, so preact=True returns the same features.
"""
from functools import partial

import torch.nn as nn

from .common import conv_bn, init_conv_bn, make_stage, outputs

# (expansion t, output channels c at width 1, blocks n, stride of the first block s)
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
FEATURE_GROUPS = (1, 2, 4, 6)  # the block groups whose outputs are the stage features


def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(*conv_bn(cin, cout, kernel, stride, groups), nn.ReLU(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.use_residual = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            *conv_bn_relu(cin, hidden, 1),
            *conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            *conv_bn(hidden, cout, 1),  # linear bottleneck: no ReLU
        )

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 100, width: float = 0.5):
        super().__init__()
        cin = int(32 * width)
        self.conv1 = conv_bn_relu(3, cin, 3, 2)
        self.blocks = nn.ModuleList()
        for t, c, n, s in SETTINGS:
            cout = int(c * width)
            self.blocks.append(make_stage(partial(InvertedResidual, expansion=t), cin, cout, n, s))
            cin = cout
        last = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = conv_bn_relu(cin, last, 1)
        self.avgpool = nn.AvgPool2d(2, ceil_mode=True)  # the final map is 2x2 on a 32x32 image
        self.classifier = nn.Linear(last, num_classes)
        init_conv_bn(self)
        nn.init.normal_(self.classifier.weight, 0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x, is_feat=False, preact=False):
        x = self.conv1(x)
        feats = [x]
        for i, group in enumerate(self.blocks):
            x = group(x)
            if i in FEATURE_GROUPS:
                feats.append(x)
        x = self.avgpool(self.conv2(x)).flatten(1)
        feats.append(x)
        return outputs(feats, self.classifier(x), is_feat)


MODELS = {'MobileNetV2': MobileNetV2}
