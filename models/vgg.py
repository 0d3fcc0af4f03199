"""VGG with batch norm for 32x32 inputs (the CRD zoo): vgg8, vgg11, vgg13, vgg16, vgg19.

Five blocks `block0..block4` of conv(bias)-bn-relu layers whose last ReLU is applied outside the
block, so preact=True can return the BN outputs of blocks 1-4 (block 0's feature is always
post-ReLU, as published). 2x2 max-pools follow blocks 0-2; the one after block 3 only runs on
64-pixel inputs, so on CIFAR block 4 works on 4x4 maps. Global average pool, `classifier`.
"""
from functools import partial

import torch.nn as nn
import torch.nn.functional as F

from .common import init_conv_bn, outputs

CONFIGS = {
    'vgg8': ((64,), (128,), (256,), (512,), (512,)),
    'vgg11': ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    'vgg13': ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    'vgg16': ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    'vgg19': ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


def conv_block(cin: int, widths: tuple) -> nn.Sequential:
    layers = []
    for cout in widths:
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        cin = cout
    return nn.Sequential(*layers[:-1])


class VGG(nn.Module):
    def __init__(self, cfg: tuple, num_classes: int = 100):
        super().__init__()
        cin = 3
        for i, widths in enumerate(cfg):
            self.add_module(f'block{i}', conv_block(cin, widths))
            cin = widths[-1]
        self.pool = nn.MaxPool2d(2, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)
        init_conv_bn(self)
        nn.init.normal_(self.classifier.weight, 0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x, is_feat=False, preact=False):
        pool_after_block3 = x.shape[2] == 64
        x = F.relu(self.block0(x))
        feats = [x]
        blocks = (self.block1, self.block2, self.block3, self.block4)
        for i, block in enumerate(blocks, start=1):
            if i < 4 or pool_after_block3:
                x = self.pool(x)
            x = block(x)
            pre, x = x, F.relu(x)
            feats.append(pre if preact else x)
        x = self.avgpool(x).flatten(1)
        feats.append(x)
        return outputs(feats, self.classifier(x), is_feat)


MODELS = {name: partial(VGG, cfg) for name, cfg in CONFIGS.items()}
