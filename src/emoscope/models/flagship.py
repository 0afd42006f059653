"""The flagship: a compact VGG-style network designed for 48x48 gray faces.

Four stages (48, 24, 12, 6 px) of two 3x3 conv + BatchNorm + ReLU layers, max-pooling between
stages, global average pooling, dropout and a linear head: about 2.6 M parameters at width 48.
Plain stacks like this are what the FER-2013 literature found to work best at 48x48 with little
compute, and they run fast on a CPU with bf16 autocast and channels_last.

``BasicBlock`` (a ResNet block) lives here too; the residual seed net ``conv_and_res`` uses it.
A residual flagship (``EmoNet``) was tried first and failed to learn on FER-2013 in this
recipe (training accuracy stuck at the class prior for 4 epochs), so it is not shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .registry import register_model


@dataclass(frozen=True)
class EmoVGGConfig:
    width: int = 48  # channels of the first stage; doubled at each of the next stages
    stages: int = 4
    convs_per_stage: int = 2
    dropout: float = 0.3
    stem: str = "none"  # "s2d": space-to-depth by 2 first, so the first stage runs at 24 px on 4 channels
    widths: tuple[int, ...] = ()  # per-stage widths; overrides ``width`` doubling when given
    convs: tuple[int, ...] = ()  # per-stage conv counts; overrides ``convs_per_stage`` when given

    def __post_init__(self) -> None:
        # a config read from JSON (a checkpoint's model_kwargs) gives lists; keep tuples so the config stays frozen
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "convs", tuple(self.convs))
        if self.stem not in ("none", "s2d"):
            raise ValueError(f"EmoVGG: unknown stem {self.stem!r}; use 'none' or 's2d'")
        n = len(self.widths) or self.stages
        if self.convs and len(self.convs) != n:
            raise ValueError(f"EmoVGG: {n} stage widths but {len(self.convs)} conv counts; give one per stage")

    def stage_plan(self) -> list[tuple[int, int]]:
        """(width, convs) of each stage."""
        widths = self.widths or tuple(self.width * 2**i for i in range(self.stages))
        return list(zip(widths, self.convs or (self.convs_per_stage,) * len(widths)))


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.act(self.conv1(x))) + self.short(x))


class EmoVGG(nn.Module):
    """Stages of 3x3 conv + BN + ReLU, each closed by 2x2 max-pooling; GAP, dropout, linear head.

    With ``stem="s2d"`` the input is first folded 2x2 into channels (``PixelUnshuffle``): no pixel
    is lost, but the first stage runs on a quarter of the positions; the full-resolution stage is
    a large, memory-bound share of a 48x48 net's CPU time. On FER-2013 it trained faster for the
    same accuracy, not to a better one (``benchmarks/FLAGSHIP_CPU.md``, eighth attempt).
    """

    def __init__(self, num_classes: int = 7, cfg: EmoVGGConfig | None = None, in_chans: int = 1) -> None:
        super().__init__()
        cfg = cfg or EmoVGGConfig()
        self.cfg = cfg
        layers: list[nn.Module] = []
        cin = in_chans
        if cfg.stem == "s2d":
            layers.append(nn.PixelUnshuffle(2))
            cin = in_chans * 4
        for width, convs in cfg.stage_plan():
            for _ in range(convs):
                layers += [conv_bn(cin, width), nn.ReLU(inplace=True)]
                cin = width
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cin, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(torch.flatten(self.pool(self.features(x)), 1)))


def slim(model: EmoVGG, width: int) -> EmoVGG:
    """A narrower copy of a trained EmoVGG that starts from its most important channels.

    Network slimming (Liu et al., ICCV 2017): every conv layer keeps the output channels whose BatchNorm scale
    ``|gamma|`` is largest (in their original order), the next layer keeps the matching input channels, and the
    head the matching features. Stage widths shrink in proportion (``width`` for the first stage). The copy reads
    faces worse than the original until it is fine-tuned (``init_weights``), but it starts far closer to a good
    net than random weights do, which matters where epochs are dear (a CPU).
    """
    plan = model.cfg.stage_plan()
    if width < 1 or width > plan[0][0]:
        raise ValueError(f"slim: width must be 1 to {plan[0][0]} (the model's first stage), got {width}")
    widths = tuple(max(1, round(w * width / plan[0][0])) for w, _ in plan)
    cfg = EmoVGGConfig(**{**model.cfg.__dict__, "width": width, "widths": widths})
    first = next(m for m in model.body if isinstance(m, nn.Sequential))[0]
    out = EmoVGG(model.head.out_features, cfg, in_chans=first.in_channels // (4 if cfg.stem == "s2d" else 1))
    keep_in = torch.arange(first.in_channels)
    pairs = zip([m for m in model.body if isinstance(m, nn.Sequential)],
                [m for m in out.body if isinstance(m, nn.Sequential)], strict=True)
    with torch.no_grad():
        for (conv_s, bn_s), (conv_d, bn_d) in pairs:
            keep = torch.argsort(bn_s.weight.abs(), descending=True)[: conv_d.out_channels].sort().values
            conv_d.weight.copy_(conv_s.weight[keep][:, keep_in])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(bn_d, name).copy_(getattr(bn_s, name)[keep])
            keep_in = keep
        out.head.weight.copy_(model.head.weight[:, keep_in])
        out.head.bias.copy_(model.head.bias)
    return out


@register_model("emovgg_t", description="flagship, tiny (fast variant, distilled): the same net at width 16")
def emovgg_t(num_classes: int = 7, **kw) -> EmoVGG:
    kw.setdefault("width", 16)
    kw.setdefault("dropout", 0.1)
    return EmoVGG(num_classes, EmoVGGConfig(**kw))


@register_model("emovgg_s", description="flagship, small: VGG-style 8-conv BN net for 48x48 gray, width 32")
def emovgg_s(num_classes: int = 7, **kw) -> EmoVGG:
    kw.setdefault("width", 32)
    return EmoVGG(num_classes, EmoVGGConfig(**kw))


@register_model("emovgg_m", description="flagship, medium: VGG-style 8-conv BN net for 48x48 gray, width 48")
def emovgg_m(num_classes: int = 7, **kw) -> EmoVGG:
    kw.setdefault("width", 48)
    return EmoVGG(num_classes, EmoVGGConfig(**kw))


@register_model(
    "emovgg_s2d",
    description="flagship variant: space-to-depth stem, stages 64-128-256 at 24-12-6 px "
    "and one 384 conv at 3 px (2.0 M params, cheaper per step than emovgg_s)",
)
def emovgg_s2d(num_classes: int = 7, **kw) -> EmoVGG:
    kw.setdefault("stem", "s2d")
    kw.setdefault("widths", (64, 128, 256, 384))
    kw.setdefault("convs", (2, 2, 2, 1))
    return EmoVGG(num_classes, EmoVGGConfig(**kw))


@register_model("emovgg_l", description="flagship, large: the same net at width 64 (64-128-256-512, 4.7 M params)")
def emovgg_l(num_classes: int = 7, **kw) -> EmoVGG:
    kw.setdefault("width", 64)
    return EmoVGG(num_classes, EmoVGGConfig(**kw))
