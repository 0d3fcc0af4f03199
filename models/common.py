"""Pieces shared by several families of the CIFAR model zoo."""
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Bias-free conv followed by batch norm (state_dict keys `.0` and `.1`)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    )


def projection(cin: int, cout: int, stride: int) -> nn.Module:
    """Option-B shortcut: a strided 1x1 conv + BN only where the shape changes."""
    if stride == 1 and cin == cout:
        return nn.Identity()
    return conv_bn(cin, cout, 1, stride)


def make_stage(block, cin: int, cout: int, n: int, stride: int) -> nn.Sequential:
    """n blocks; only the first one changes width and resolution."""
    return nn.Sequential(*(block(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)))


class PreactBlock(nn.Module):
    """A block that ends in a ReLU. Subclasses implement `forward_preact(x) -> (out, pre)`, where
    `pre` is the tensor before that ReLU; the last block's `pre` is its stage's preact feature.
    """

    def forward(self, x):
        return self.forward_preact(x)[0]


class ResidualBlock(PreactBlock):
    """Post-activation residual block: out = relu(residual(x) + shortcut(x))."""

    shortcut_key = 'shortcut'  # the attribute (hence state_dict prefix) the published code used

    def add_shortcut(self, cin: int, cout: int, stride: int) -> None:
        # Registered after the residual branch so state_dict order matches the checkpoints.
        self.add_module(self.shortcut_key, projection(cin, cout, stride))

    def forward_preact(self, x):
        pre = self.residual(x) + getattr(self, self.shortcut_key)(x)
        return F.relu(pre), pre


def run_stage(stage: nn.Sequential, x):
    """Run a stage of PreactBlocks; return its output and its last block's pre-activation."""
    for block in stage[:-1]:
        x = block(x)
    return stage[-1].forward_preact(x)


def run_stages(stages, x, preact: bool):
    """Run stages in turn; return the last output and each stage's feature (pre-ReLU if preact)."""
    feats = []
    for stage in stages:
        x, pre = run_stage(stage, x)
        feats.append(pre if preact else x)
    return x, feats


def channel_shuffle(x, groups: int):
    """ShuffleNet's shuffle: channel j of group i moves to position j * groups + i."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def outputs(feats: list, logits, is_feat: bool):
    """The forward contract shared by every model: logits, or (feats, logits)."""
    return (feats, logits) if is_feat else logits


def init_conv_bn(model: nn.Module) -> None:
    """He init (fan_out) for convs, zero conv biases, identity batch norms.

    normal(0, sqrt(2 / (k*k*out_channels))) used by some published files is the same distribution.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
