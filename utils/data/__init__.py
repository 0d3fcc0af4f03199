"""The data: CIFAR-100's files (cifar100) and the on-device loader (loader), ImageNet's ImageFolder and
its loaders (imagenet, imagenet_recipe, shares, dali, unreadable), the synthetic stand-ins (synthetic,
synthetic_imagenet), and the flags each --dataset brings (dataset_args).

May import: the method modules of utils/, utils.process.
"""
