"""torchvision's ImageNet networks under names that say so (imagenet_resnet18, ...), apart from the CIFAR zoo.

They keep torchvision's modules and state_dict keys, so torchvision's published weights load strictly,
and follow this package's forward contract: `model(x, is_feat=True)` -> (feats, logits), feats = [stem
output, each stage's output, pooled feature vector] for the ResNets, [last feature map, pooled vector] for
MobileNetV2. The feature losses (AT, SP) are CIFAR-only, so feats only serve inspection here.
"""
from functools import partial

import torch
from torchvision import models as tv


class ImageNetResNet(tv.ResNet):
    def forward(self, x, is_feat=False, preact=False):
        stem = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats = [stem]
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            feats.append(stage(feats[-1]))
        pooled = torch.flatten(self.avgpool(feats[-1]), 1)
        logits = self.fc(pooled)
        return (feats + [pooled], logits) if is_feat else logits


class ImageNetMobileNetV2(tv.MobileNetV2):
    def forward(self, x, is_feat=False, preact=False):
        fmap = self.features(x)
        pooled = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(fmap, 1), 1)
        logits = self.classifier(pooled)
        return ([fmap, pooled], logits) if is_feat else logits


# name here -> (builder, torchvision's name for its weights)
MODELS = {
    "imagenet_resnet18": partial(ImageNetResNet, tv.resnet.BasicBlock, [2, 2, 2, 2]),
    "imagenet_resnet34": partial(ImageNetResNet, tv.resnet.BasicBlock, [3, 4, 6, 3]),
    "imagenet_resnet50": partial(ImageNetResNet, tv.resnet.Bottleneck, [3, 4, 6, 3]),
    "imagenet_mobilenet_v2": ImageNetMobileNetV2,
}
TORCHVISION_NAMES = {name: name.removeprefix("imagenet_") for name in MODELS}
