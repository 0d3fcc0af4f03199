"""ShuffleNet V2 (Ma et al. 2018), size 1, as in the CRD zoo ("ShuffleV2"): stage widths
116/232/464 with one down-sampling unit plus 3/7/3 basic units, 1x1 stem to 24 channels at full
resolution, 1x1 conv to 1024, 4x4 average pool, `linear`.

preact=True (as published): for each stage, the last unit's concat [kept half, branch before its
ReLU], taken before the channel shuffle, so its channel order differs from the plain feature's.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import PreactBlock, channel_shuffle, outputs, run_stages

STEM = 24


class DownUnit(nn.Module):
    """Both halves see the whole input and halve the resolution; concat doubles the width."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = cout // 2
        self.conv1 = nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x):
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle(torch.cat([left, right], 1), 2)


class BasicUnit(PreactBlock):
    """Keeps the first half of the channels, transforms the second half."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.conv1 = nn.Conv2d(half, half, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = nn.Conv2d(half, half, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(half)

    def forward_preact(self, x):
        kept, x = x.split(x.shape[1] // 2, dim=1)
        branch = self.bn3(self.conv3(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))))
        out = channel_shuffle(torch.cat([kept, F.relu(branch)], 1), 2)
        return out, torch.cat([kept, branch], 1)


class ShuffleNetV2(nn.Module):
    def __init__(self, widths: tuple = (116, 232, 464), num_blocks: tuple = (3, 7, 3), last: int = 1024,
                 num_classes: int = 100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM)
        cin = STEM
        for i, (cout, n) in enumerate(zip(widths, num_blocks)):
            self.add_module(f'layer{i + 1}', nn.Sequential(DownUnit(cin, cout), *(BasicUnit(cout) for _ in range(n))))
            cin = cout
        self.conv2 = nn.Conv2d(cin, last, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(last)
        self.linear = nn.Linear(last, num_classes)

    def forward(self, x, is_feat=False, preact=False):
        stem = F.relu(self.bn1(self.conv1(x)))
        x, stage_feats = run_stages((self.layer1, self.layer2, self.layer3), stem, preact)
        x = F.avg_pool2d(F.relu(self.bn2(self.conv2(x))), 4).flatten(1)
        return outputs([stem, *stage_feats, x], self.linear(x), is_feat)


def ShuffleV2(num_classes: int = 100) -> ShuffleNetV2:
    return ShuffleNetV2(num_classes=num_classes)


MODELS = {'ShuffleV2': ShuffleV2}
