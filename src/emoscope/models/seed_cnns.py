"""Seed CNNs of the reference reports, rebuilt in PyTorch so they can be trained and compared on equal terms.

Each factory names the report (and network shape) it follows. Where a report leaves a detail open (padding,
where BatchNorm sits, dropout after the hidden FC layers) the choice made here is written in the docstring.
All of them take ``num_classes`` plus keyword options and have forward passes without data-dependent Python
control flow, so they trace / export like the flagship.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .flagship import BasicBlock
from .registry import register_model

# --------------------------------------------------------------------------------------------------- helpers


def _conv_block(
    cin: int, cout: int, k: int, *, bn: bool, pool: bool = True, dropout: float = 0.0, padding: int | None = None
) -> nn.Sequential:
    """Conv -> (BN) -> ReLU -> (2x2 max-pool) -> (dropout): the unit most reports stack."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=k // 2 if padding is None else padding, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    if pool:
        layers.append(nn.MaxPool2d(2))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _fc_block(fin: int, fout: int, *, bn: bool = False, dropout: float = 0.0) -> nn.Sequential:
    """Linear -> (BN) -> ReLU -> (dropout)."""
    layers: list[nn.Module] = [nn.Linear(fin, fout, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm1d(fout))
    layers.append(nn.ReLU(inplace=True))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------------------------- pytorch_4conv


class PyTorch4Conv(nn.Module):
    """4 conv blocks (conv3x3-BN-ReLU-pool-dropout; 64/128/256/512) + 3 FC layers (1024, 512, classes).

    An adaptive average pool to 3x3 sits before the FC layers: at the native 48x48 it is the identity
    (48 / 2**4 = 3), at 224x224 (14x14 maps) it makes the same FC layers fit.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 3,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        fc: tuple[int, int] = (1024, 512),
        conv_dropout: float = 0.25,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        blocks = []
        cin = in_chans
        for w in widths:
            blocks.append(_conv_block(cin, w, 3, bn=True, dropout=conv_dropout))
            cin = w
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.classifier = nn.Sequential(
            _fc_block(cin * 9, fc[0], bn=True, dropout=dropout),
            _fc_block(fc[0], fc[1], bn=True, dropout=dropout),
            nn.Linear(fc[1], num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model(
    "pytorch_4conv", input_size=48, in_chans=3, description="report PyTorch net: 4 conv + 3 FC, BN, dropout"
)
def pytorch_4conv(num_classes: int = 7, **kw) -> PyTorch4Conv:
    """The PyTorch report's 4-conv + 3-FC net with BatchNorm and dropout, on the gray face repeated to RGB.

    Options: ``widths`` (conv channels), ``fc`` (two hidden FC widths), ``conv_dropout``, ``dropout``.
    """
    return PyTorch4Conv(num_classes, **kw)


# -------------------------------------------------------------------------------------------- gudi_tflearn


class LocalContrastNorm(nn.Module):
    """Local contrast normalisation (Jarrett et al. 2009, as used by Gudi et al. 2015).

    Subtracts a Gaussian-weighted local mean and divides by the Gaussian-weighted local standard deviation.
    With ``across_channels`` the statistics pool over all feature maps (the original formulation), otherwise
    each map is normalised on its own. Border pixels use reflect padding so the edge is not darkened.
    """

    def __init__(self, kernel_size: int = 9, sigma: float = 2.0, across_channels: bool = True, eps: float = 1e-4):
        super().__init__()
        r = torch.arange(kernel_size, dtype=torch.float32) - (kernel_size - 1) / 2
        g = torch.exp(-(r**2) / (2 * sigma**2))
        kernel = torch.outer(g, g)
        self.register_buffer("kernel", (kernel / kernel.sum())[None, None], persistent=False)
        self.pad = kernel_size // 2
        self.across_channels = across_channels
        self.eps = eps

    def _smooth(self, x: torch.Tensor) -> torch.Tensor:
        # Padding and blurring are linear, so the mean over maps of the blurred maps is the blur of their mean:
        # averaging first blurs one map instead of 64 (the same numbers, a fraction of the work).
        if self.across_channels:
            x = x.mean(1, keepdim=True)
        c = x.shape[1]
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return F.conv2d(x, self.kernel.expand(c, 1, -1, -1), groups=c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - self._smooth(x)
        std = torch.sqrt(self._smooth(centred * centred) + self.eps)
        return centred / std


class GudiNet(nn.Module):
    """conv5x5(64)-ReLU-LCN-pool3/2 -> conv5x5(64)-ReLU-pool3/2 -> conv4x4(128)-ReLU -> dropout -> FC 3072 -> out."""

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int = 48,
        same_padding: bool = False,
        dropout: float = 0.3,
        fc: int = 3072,
        lcn: bool = True,
    ) -> None:
        super().__init__()
        p5, pp = (2, 1) if same_padding else (0, 0)
        # An even 4x4 kernel cannot be padded symmetrically: 'same' pads 1 then the asymmetric extra pixel.
        self.conv4_pad = (1, 2, 1, 2) if same_padding else (0, 0, 0, 0)
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 64, 5, padding=p5),
            nn.ReLU(inplace=True),
            LocalContrastNorm() if lcn else nn.Identity(),
            nn.MaxPool2d(3, 2, padding=pp),
            nn.Conv2d(64, 64, 5, padding=p5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, padding=pp),
            nn.ZeroPad2d(self.conv4_pad),
            nn.Conv2d(64, 128, 4),
            nn.ReLU(inplace=True),
        )
        side = input_size
        for k, stride, pad in (
            (5, 1, 2 * p5),
            (3, 2, 2 * pp),
            (5, 1, 2 * p5),
            (3, 2, 2 * pp),
            (4, 1, 3 * same_padding),
        ):
            side = (side + pad - k) // stride + 1
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Sequential(nn.Linear(128 * side * side, fc), nn.ReLU(inplace=True))
        self.head = nn.Linear(fc, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc(self.drop(torch.flatten(self.features(x), 1))))


@register_model(
    "gudi_tflearn", input_size=48, in_chans=1, description="TFLearn net after Gudi et al. 2015 (LCN, FC3072)"
)
def gudi_tflearn(num_classes: int = 7, **kw) -> GudiNet:
    """The TFLearn report net after Gudi et al. 2015: 3 conv layers, local contrast normalisation, 2 max-pools,
    one FC 3072 layer and the output layer; 48x48 gray.

    Default padding is 'valid' as in Gudi's paper (48 -> 44 -> 21 -> 17 -> 8 -> 5; FC input 128*5*5, ~10M params).
    ``same_padding=True`` gives TFLearn's default 'same' padding (12x12 maps; FC input 18432, ~57M params).
    Other options: ``dropout`` (0.3, before the FC layer, as in the TFLearn code), ``fc`` width, ``lcn`` on/off.
    """
    return GudiNet(num_classes, **kw)


# -------------------------------------------------------------------------------------------- conv_and_res


class ConvAndRes(nn.Module):
    """Plain conv front (4 convs, 2 pools) + 5 residual blocks (10 convs) = 14 3x3 conv layers, then 2 FC layers.

    48x48: conv64 conv64 pool -> conv128 conv128 pool (12x12) -> 2 res blocks @128 -> 3 res blocks @256 (the
    first one strided to 6x6, with a 1x1 projection shortcut that is not counted as one of the 14) ->
    flatten 256*6*6 -> FC 512 -> dropout -> output.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int = 48,
        widths: tuple[int, int, int] = (64, 128, 256),
        fc: int = 512,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.conv = nn.Sequential(
            _conv_block(in_chans, w1, 3, bn=True, pool=False),
            _conv_block(w1, w1, 3, bn=True),
            _conv_block(w1, w2, 3, bn=True, pool=False),
            _conv_block(w2, w2, 3, bn=True),
        )
        self.res = nn.Sequential(
            BasicBlock(w2, w2), BasicBlock(w2, w2), BasicBlock(w2, w3, stride=2), BasicBlock(w3, w3), BasicBlock(w3, w3)
        )
        side = math.ceil(input_size // 4 / 2)
        self.classifier = nn.Sequential(_fc_block(w3 * side * side, fc, dropout=dropout), nn.Linear(fc, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.res(self.conv(x)), 1))


@register_model("conv_and_res", input_size=48, in_chans=1, description="report residual net: 14 conv + 2 FC layers")
def conv_and_res(num_classes: int = 7, **kw) -> ConvAndRes:
    """The 'conv and res' report net: 14 conv layers (4 plain + 5 two-conv residual blocks) and 2 FC layers.

    Options: ``widths`` (the three channel widths), ``fc`` (hidden FC width), ``dropout``.
    """
    return ConvAndRes(num_classes, **kw)


# ------------------------------------------------------------------------------------------ Keras variants

KERAS_L2 = 1e-3
"""The reports' Keras ``kernel_regularizer=l2(0.001)``: adds ``0.001 * sum(w**2)`` to the loss."""


class KerasNet(nn.Module):
    """Keras-style Sequential CNN: conv blocks (convs then 2x2 max-pool, 'same' padding), flatten, one hidden FC.

    ``blocks`` lists the conv widths of each block, e.g. ``((32,), (64,), (128,))`` or ``((32, 32), (64, 64))``.
    ``dropout`` switches the reports' Dropout(0.25) after every conv block and Dropout(0.5) before the output.
    ``keras_l2`` is the Keras L2 factor; ``recommended_weight_decay`` is the matching PyTorch ``weight_decay``
    (``2 * keras_l2``, because PyTorch adds ``wd * w`` to the gradient while Keras' penalty ``l2 * w**2`` gives
    ``2 * l2 * w``). Keras applied it to conv/dense kernels only, so a training config should leave biases and
    BatchNorm parameters out of the decay, and use coupled L2 (Adam/SGD ``weight_decay``), not AdamW.
    """

    def __init__(
        self,
        num_classes: int,
        blocks: tuple[tuple[int, ...], ...],
        fc: int,
        *,
        bn: bool,
        dropout: bool,
        keras_l2: float = 0.0,
        in_chans: int = 1,
        input_size: int = 48,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        side = input_size
        for widths in blocks:
            for j, w in enumerate(widths):
                last = j == len(widths) - 1
                layers.append(_conv_block(cin, w, 3, bn=bn, pool=last, dropout=0.25 if dropout and last else 0.0))
                cin = w
            side //= 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            _fc_block(cin * side * side, fc, dropout=0.5 if dropout else 0.0), nn.Linear(fc, num_classes)
        )
        self.keras_l2 = keras_l2
        self.recommended_weight_decay = 2 * keras_l2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


_ARCH_1_3 = ((32,), (64,), (128,))
_ARCH_4_6 = ((32, 32), (64, 64))


@register_model("keras_arch1", description="Keras arch 1: conv32/64/128 + FC128; no dropout, no BN, no L2")
def keras_arch1(num_classes: int = 7, **kw) -> KerasNet:
    """Keras architecture 1 (baseline): 3 blocks conv32 / conv64 / conv128 (each conv3x3-ReLU-pool) + FC128.

    No dropout, no BatchNorm, no L2. Options: ``fc``, ``in_chans``, ``input_size``.
    """
    return KerasNet(num_classes, _ARCH_1_3, kw.pop("fc", 128), bn=False, dropout=False, **kw)


@register_model("keras_arch2", description="Keras arch 2: arch 1 + dropout 0.25/0.5")
def keras_arch2(num_classes: int = 7, **kw) -> KerasNet:
    """Keras architecture 2 = architecture 1 + dropout (0.25 after each conv block, 0.5 before the output).

    Still no BatchNorm and no L2. Options: ``fc``, ``in_chans``, ``input_size``.
    """
    return KerasNet(num_classes, _ARCH_1_3, kw.pop("fc", 128), bn=False, dropout=True, **kw)


@register_model("keras_arch3", description="Keras arch 3: arch 2 + BatchNorm after every conv")
def keras_arch3(num_classes: int = 7, **kw) -> KerasNet:
    """Keras architecture 3 = architecture 2 + BatchNorm after every conv (conv-BN-ReLU). FC128, no L2.

    Options: ``fc``, ``in_chans``, ``input_size``.
    """
    return KerasNet(num_classes, _ARCH_1_3, kw.pop("fc", 128), bn=True, dropout=True, **kw)


@register_model("keras_arch4", description="Keras arch 4: 2xconv32 + 2xconv64 + FC256, dropout, L2 0.001, no BN")
def keras_arch4(num_classes: int = 7, **kw) -> KerasNet:
    """Keras architecture 4: 2x conv32 + pool, 2x conv64 + pool, FC256; dropout 0.25/0.5; L2 0.001; no BatchNorm.

    ``recommended_weight_decay`` = 0.002 (PyTorch equivalent of Keras l2(0.001)). Options: ``fc``, ``in_chans``,
    ``input_size``.
    """
    return KerasNet(num_classes, _ARCH_4_6, kw.pop("fc", 256), bn=False, dropout=True, keras_l2=KERAS_L2, **kw)


@register_model("keras_arch5", description="Keras arch 5: arch 4 + BatchNorm (FC256, dropout, L2 0.001)")
def keras_arch5(num_classes: int = 7, **kw) -> KerasNet:
    """Keras architecture 5 = architecture 4 + BatchNorm after every conv. FC256, dropout 0.25/0.5, L2 0.001.

    Options: ``fc``, ``in_chans``, ``input_size``.
    """
    return KerasNet(num_classes, _ARCH_4_6, kw.pop("fc", 256), bn=True, dropout=True, keras_l2=KERAS_L2, **kw)


@register_model("keras_arch6", description="Keras arch 6: arch 5 with FC512 (BN, dropout, L2 0.001)")
def keras_arch6(num_classes: int = 7, **kw) -> KerasNet:
    """Keras architecture 6 = architecture 5 with a wider FC512 hidden layer. BN, dropout 0.25/0.5, L2 0.001.

    Options: ``fc``, ``in_chans``, ``input_size``.
    """
    return KerasNet(num_classes, _ARCH_4_6, kw.pop("fc", 512), bn=True, dropout=True, keras_l2=KERAS_L2, **kw)


# -------------------------------------------------------------------------------------------- keras_4conv


class Keras4Conv(nn.Module):
    """conv64(3x3) / conv128(5x5) / conv512(3x3) / conv512(3x3), each conv-BN-ReLU-pool-dropout (48 -> 3),
    then FC256 and FC512 (each Linear-BN-ReLU-dropout) and the output layer."""

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int = 48,
        dropout: float = 0.25,
        fc: tuple[int, int] = (256, 512),
    ) -> None:
        super().__init__()
        spec = ((64, 3), (128, 5), (512, 3), (512, 3))
        layers = []
        cin = in_chans
        for w, k in spec:
            layers.append(_conv_block(cin, w, k, bn=True, dropout=dropout))
            cin = w
        self.features = nn.Sequential(*layers)
        side = input_size // 2 ** len(spec)
        self.classifier = nn.Sequential(
            _fc_block(cin * side * side, fc[0], bn=True, dropout=dropout),
            _fc_block(fc[0], fc[1], bn=True, dropout=dropout),
            nn.Linear(fc[1], num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model("keras_4conv", description="Keras report net: conv 64/128(5x5)/512/512 + FC 256/512, BN + dropout")
def keras_4conv(num_classes: int = 7, **kw) -> Keras4Conv:
    """The Keras 4-conv report net: 4 conv layers (64 3x3, 128 5x5, 512 3x3, 512 3x3), each with BN, ReLU,
    2x2 max-pool and dropout 0.25, then FC256 and FC512 (BN, ReLU, dropout 0.25) and the output; 48x48 gray.

    Options: ``dropout``, ``fc`` (the two hidden widths), ``in_chans``, ``input_size``.
    """
    return Keras4Conv(num_classes, **kw)
