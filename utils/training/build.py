"""Building what both training scripts need: data loaders, model, optimizer and schedule."""
import torch

from models import imagenet, model_dict
from utils.data.cifar100 import load_cifar100
from utils.data.loader import DeviceLoader
from utils.errors import UserError


def check_arch(name: str, flag: str, dataset=None) -> None:
    """dataset: the --dataset of a command that has one (named in the message), else None (CIFAR-100's)."""
    archs = imagenet.MODELS if dataset == "imagenet" else model_dict
    if name not in archs:
        where = f" for --dataset {dataset}" if dataset else ""
        raise UserError(f"unknown {flag} {name!r}{where}; choose one of: {', '.join(archs)}")


def probe_features(name: str):
    """An architecture's feature maps for one 32x32 image, on the meta device: shapes, no arithmetic."""
    with torch.device("meta"):
        feats, _ = model_dict[name](num_classes=100)(torch.empty(1, 3, 32, 32), is_feat=True)
    return feats


def make_loaders(args, device: torch.device):
    """Train and test loaders on the device (CIFAR-100: uint8 data kept there once, augmented there)."""
    if args.dataset == "imagenet":
        from utils.data.imagenet import make_imagenet_loaders

        return make_imagenet_loaders(args, device)
    data = load_cifar100(args.data_root)
    train = DeviceLoader(data.train_images, data.train_labels, args.batch_size, device, train=True,
                         seed=args.seed, channels_last=True)
    test = DeviceLoader(data.test_images, data.test_labels, args.batch_size, device, train=False,
                        channels_last=True)
    print(f"data: {args.data_root} ({train.num_samples} train / {test.num_samples} test images)")
    return train, test


def num_classes(args, loader) -> int:
    return len(loader.dataset.classes) if args.dataset == "imagenet" else 100


def make_model(name: str, device: torch.device, compile: bool = False, num_classes: int = 100):
    # Channels-last is cuDNN's fast layout, and oneDNN's: 17-25 % faster CPU steps measured here.
    model = (model_dict.get(name) or imagenet.MODELS[name])(num_classes=num_classes).to(device, memory_format=torch.channels_last)
    if compile:
        model.compile()  # in place, unlike torch.compile(model): state_dict keys stay the published ones
    return model


def make_optimizer(model, args):
    """SGD with momentum and weight decay, lr x gamma at each milestone epoch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=args.milestones, gamma=args.gamma)
    return optimizer, scheduler
