"""MobileNetV3-Large/-Small feature extractors (the static layers for images).

Follows Howard et al. 2019 ("Searching for MobileNetV3") and torchvision's layer table,
written here because no CPU torchvision wheel exists for our torch pin. Only the
convolutional trunk lives here: the classifier head is a dynamic layer (duet/dynamic.py).

Notation used for tensor shapes: B batch, C channels, H height, W width, F feature dim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn


class Block(NamedTuple):
    kernel: int
    expanded: int
    out: int
    se: bool
    hardswish: bool
    stride: int


# (kernel, expanded channels, out channels, squeeze-excite, hard-swish, stride), paper Tables 1-2
LARGE = (
    Block(3, 16, 16, False, False, 1),
    Block(3, 64, 24, False, False, 2),
    Block(3, 72, 24, False, False, 1),
    Block(5, 72, 40, True, False, 2),
    Block(5, 120, 40, True, False, 1),
    Block(5, 120, 40, True, False, 1),
    Block(3, 240, 80, False, True, 2),
    Block(3, 200, 80, False, True, 1),
    Block(3, 184, 80, False, True, 1),
    Block(3, 184, 80, False, True, 1),
    Block(3, 480, 112, True, True, 1),
    Block(3, 672, 112, True, True, 1),
    Block(5, 672, 160, True, True, 2),
    Block(5, 960, 160, True, True, 1),
    Block(5, 960, 160, True, True, 1),
)
SMALL = (
    Block(3, 16, 16, True, False, 2),
    Block(3, 72, 24, False, False, 2),
    Block(3, 88, 24, False, False, 1),
    Block(5, 96, 40, True, True, 2),
    Block(5, 240, 40, True, True, 1),
    Block(5, 240, 40, True, True, 1),
    Block(5, 120, 48, True, True, 1),
    Block(5, 144, 48, True, True, 1),
    Block(5, 288, 96, True, True, 2),
    Block(5, 576, 96, True, True, 1),
    Block(5, 576, 96, True, True, 1),
)
VARIANTS = {"large": LARGE, "small": SMALL}


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of 8 without losing more than 10% (as in the paper)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


@dataclass(frozen=True)
class MobileNetConfig:
    variant: str = "large"  # "large" | "small"
    in_channels: int = 3  # 1 for 48x48 grayscale CK+48
    width_mult: float = 1.0
    dropout: float = 0.2  # applied to the pooled features during training
    # NHWC weights and activations: the same convolutions, which oneDNN runs faster on CPU
    # (benchmarks/bench_train.py: a training step at 112x112x3 on one thread, 1.43x for
    # Large, 1.41x for Small); float rounding differs, nothing else
    channels_last: bool = True

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {self.variant!r}")

    @property
    def feature_dim(self) -> int:
        """Width of the pooled features: the last 1x1 conv expands the final block 6x."""
        return 6 * make_divisible(VARIANTS[self.variant][-1].out * self.width_mult)


# torchvision uses momentum 0.01, tuned for ImageNet-length training. CK+48 gives ~45
# optimizer steps in 15 epochs, after which running statistics at 0.01 are still ~64% their
# (0, 1) init and eval-mode predictions collapse to one class (measured: test accuracy of
# the majority class; recomputing the statistics fixed the same weights). PyTorch's default
# 0.1 converges within the first epoch. Parameter counts are unaffected.
BN_MOMENTUM = 0.1


def conv_bn(c_in: int, c_out: int, k: int, stride: int, groups: int, act: nn.Module | None):
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out, eps=0.001, momentum=BN_MOMENTUM),
    ]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        squeezed = make_divisible(channels // 4)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        return x * nn.functional.hardsigmoid(self.fc2(nn.functional.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, b: Block, width_mult: float):
        super().__init__()
        expanded = make_divisible(b.expanded * width_mult)
        c_out = make_divisible(b.out * width_mult)
        act = nn.Hardswish if b.hardswish else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers.append(conv_bn(c_in, expanded, 1, 1, 1, act()))
        layers.append(conv_bn(expanded, expanded, b.kernel, b.stride, expanded, act()))
        if b.se:
            layers.append(SqueezeExcite(expanded))
        layers.append(conv_bn(expanded, c_out, 1, 1, 1, None))
        self.block = nn.Sequential(*layers)
        self.residual = b.stride == 1 and c_in == c_out
        self.out_channels = c_out

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV3(nn.Module):
    """Convolutional trunk + global average pool: pixels (B, C, H, W) -> features (B, F).

    Works at any input size >= 32x32 (48x48 grayscale CK+48, 224x224 RGB ImageNet-style)
    because the head pools adaptively.
    """

    def __init__(self, cfg: MobileNetConfig):
        super().__init__()
        self.cfg = cfg
        table = VARIANTS[cfg.variant]
        c = make_divisible(16 * cfg.width_mult)
        layers: list[nn.Module] = [conv_bn(cfg.in_channels, c, 3, 2, 1, nn.Hardswish())]
        for b in table:
            block = InvertedResidual(c, b, cfg.width_mult)
            layers.append(block)
            c = block.out_channels
        self.last_channels = cfg.feature_dim
        layers.append(conv_bn(c, self.last_channels, 1, 1, 1, nn.Hardswish()))
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(cfg.dropout)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    @property
    def feature_dim(self) -> int:
        return self.last_channels

    def forward(self, pixels: Tensor) -> Tensor:
        x = pixels.contiguous(memory_format=self.memory_format)
        return self.drop(self.features(x).mean((2, 3)))  # (B, F)
