"""The flagship: a compact residual network designed for 48x48 gray faces.

Two plain 3x3 convolutions at full resolution, then three residual stages (24x24, 12x12,
6x6) of basic blocks, global average pooling, dropout and a linear head. Most of the
compute sits at low resolution, which keeps it fast on a CPU (bf16 + channels_last).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .registry import register_model


@dataclass(frozen=True)
class EmoNetConfig:
    stem: int = 32
    widths: tuple[int, ...] = (64, 128, 256)
    depths: tuple[int, ...] = (2, 2, 2)
    dropout: float = 0.3


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs and a (projected when needed) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = conv_bn(cout, cout, 3)
        self.short = nn.Identity() if stride == 1 and cin == cout else conv_bn(cin, cout, 1, stride)
        self.act = nn.ReLU(inplace=True)
        nn.init.zeros_(self.conv2[1].weight)  # each block starts as identity: stable early training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.act(self.conv1(x))) + self.short(x))


class EmoNet(nn.Module):
    def __init__(self, num_classes: int = 7, cfg: EmoNetConfig | None = None, in_chans: int = 1) -> None:
        super().__init__()
        cfg = cfg or EmoNetConfig()
        self.cfg = cfg
        self.stem = nn.Sequential(
            conv_bn(in_chans, cfg.stem), nn.ReLU(inplace=True), conv_bn(cfg.stem, cfg.stem), nn.ReLU(inplace=True)
        )
        blocks: list[nn.Module] = []
        cin = cfg.stem
        for width, depth in zip(cfg.widths, cfg.depths, strict=True):
            for j in range(depth):
                blocks.append(BasicBlock(cin, width, stride=2 if j == 0 else 1))
                cin = width
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(torch.flatten(self.pool(self.features(x)), 1)))


@register_model("emonet_s", description="flagship, small: residual net for 48x48 gray (stem 32, 64/128/256)")
def emonet_s(num_classes: int = 7, **kw) -> EmoNet:
    return EmoNet(num_classes, EmoNetConfig(**kw))


@register_model("emonet_m", description="flagship, medium: residual net for 48x48 gray (stem 48, 96/192/384)")
def emonet_m(num_classes: int = 7, **kw) -> EmoNet:
    kw.setdefault("stem", 48)
    kw.setdefault("widths", (96, 192, 384))
    return EmoNet(num_classes, EmoNetConfig(**kw))
