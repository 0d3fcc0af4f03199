"""The CIFAR-100 model zoo of the CRD / RepDistiller benchmark, which UNIXKD reuses.

`model_dict[name](num_classes=100)` builds a network whose state_dict loads the published teacher
checkpoints with strict=True. Every model follows one forward contract:
`model(x)` -> logits; `model(x, is_feat=True)` -> (feats, logits), feats = [stem output, each
stage's output, pooled feature vector]; `preact=True` swaps the stage outputs for their values
before the final ReLU (each family's module docstring says what that is for it).
"""
from . import mobilenetv2, resnet, resnet_imagenet, shufflenetv1, shufflenetv2, vgg, wrn

model_dict = {
    **resnet.MODELS,
    **resnet_imagenet.MODELS,
    **wrn.MODELS,
    **vgg.MODELS,
    **mobilenetv2.MODELS,
    **shufflenetv1.MODELS,
    **shufflenetv2.MODELS,
}
