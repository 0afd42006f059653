"""VGG16- and AlexNet-shaped transfer-learning nets of the reference reports (224x224, gray face repeated to RGB).

The ``features`` stacks follow torchvision's layer layout index for index, so the ``features.*`` tensors of an
ImageNet ``torchvision.models.vgg16`` / ``alexnet`` state_dict load unchanged. The ImageNet classifier is
replaced by the reports' 4-layer head::

    Linear(C*S*S, 4096) - ReLU - Dropout - Linear(4096, 1024) - ReLU - Dropout - Linear(1024, 256) - ReLU
    - Linear(256, num_classes)

(C*S*S = 512*7*7 for VGG16, 256*6*6 for AlexNet). Nothing is ever downloaded: ``pretrained`` is the path of a
local state_dict file. ``width_mult`` < 1 builds a slimmer copy (channels and hidden FC widths scaled) for tests
and CPU experiments; the default 1.0 is the real shape (ImageNet weights only fit that one).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from .registry import register_model

log = logging.getLogger(__name__)

VGG16_LAYOUT: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)
"""torchvision's VGG configuration "D": conv widths, "M" = 2x2 max-pool."""

HOW_TO_GET_WEIGHTS = (
    "emoscope never downloads weights. On a machine with torchvision run e.g. "
    "`torch.save(torchvision.models.{arch}(weights='DEFAULT').state_dict(), '{arch}_imagenet.pt')`, "
    "copy the file here and pass its path as pretrained=..."
)


def _scale(c: int, width_mult: float) -> int:
    return max(8, int(round(c * width_mult)))


def make_vgg16_features(width_mult: float = 1.0, in_chans: int = 3) -> nn.Sequential:
    """VGG16 conv stack in torchvision's index layout (conv3x3-ReLU pairs and max-pools, no BatchNorm)."""
    layers: list[nn.Module] = []
    cin = in_chans
    for v in VGG16_LAYOUT:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            cout = _scale(int(v), width_mult)
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
            cin = cout
    return nn.Sequential(*layers)


def make_alexnet_features(width_mult: float = 1.0, in_chans: int = 3) -> nn.Sequential:
    """AlexNet conv stack in torchvision's index layout (5 convs, 3 overlapping max-pools)."""
    c1, c2, c3, c4, c5 = (_scale(c, width_mult) for c in (64, 192, 384, 256, 256))
    return nn.Sequential(
        nn.Conv2d(in_chans, c1, 11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c1, c2, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c2, c3, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c3, c4, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c4, c5, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
    )


def report_head(fin: int, num_classes: int, width_mult: float = 1.0, dropout: float = 0.5) -> nn.Sequential:
    """The reports' replacement classifier: fin -> 4096 -> 1024 -> 256 -> num_classes (dropout after the first two)."""
    h1, h2, h3 = (_scale(c, width_mult) for c in (4096, 1024, 256))
    return nn.Sequential(
        nn.Linear(fin, h1),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(h1, h2),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(h2, h3),
        nn.ReLU(inplace=True),
        nn.Linear(h3, num_classes),
    )


def _read_state_dict(path: Path, arch: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights {str(path)!r} not found. " + HOW_TO_GET_WEIGHTS.format(arch=arch))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):  # also accept a training checkpoint wrapping the state_dict
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state_dict (dict of tensors), got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


class TransferNet(nn.Module):
    """torchvision-layout ``features`` + adaptive average pool + the reports' 4-layer head."""

    def __init__(
        self, arch: str, features: nn.Sequential, pool: int, num_classes: int, width_mult: float, dropout: float
    ) -> None:
        super().__init__()
        self.arch = arch
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(pool)  # identity at 224x224, as in torchvision
        out_chans = [m for m in features if isinstance(m, nn.Conv2d)][-1].out_channels
        self.classifier = report_head(out_chans * pool * pool, num_classes, width_mult, dropout)
        self.pretrained_loaded = 0  # how many features.* tensors came from a pretrained file

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    def load_pretrained_features(self, path: str | Path) -> int:
        """Copy the ``features.*`` tensors of a local torchvision-style state_dict that fit this model.

        Returns (and stores in ``pretrained_loaded``) the number of tensors loaded. Raises FileNotFoundError
        when the file is missing and ValueError when no tensor fits (e.g. a different net or ``width_mult``).
        """
        path = Path(path)
        state = _read_state_dict(path, self.arch)
        own = self.features.state_dict()
        fitting, skipped = {}, []
        for key, value in state.items():
            if not key.startswith("features."):
                continue
            sub = key.removeprefix("features.")
            if sub in own and own[sub].shape == value.shape:
                fitting[sub] = value
            else:
                skipped.append(key)
        if not fitting:
            raise ValueError(
                f"{path}: no features.* tensor fits {self.arch}_fer (expected torchvision {self.arch} keys such as "
                f"'features.0.weight' {tuple(own['0.weight'].shape)}; width_mult must be 1.0 for ImageNet weights)"
            )
        self.features.load_state_dict(fitting, strict=False)
        self.pretrained_loaded = len(fitting)
        log.info(
            "%s: loaded %d/%d features tensors from %s (%d skipped)",
            self.arch,
            len(fitting),
            len(own),
            path,
            len(skipped),
        )
        return len(fitting)

    def freeze_features(self, frozen: bool = True) -> None:
        """Stop (or restart) training of the conv stack, e.g. for a head-only warm-up on ImageNet features."""
        for p in self.features.parameters():
            p.requires_grad_(not frozen)


def _build(
    arch: str,
    features: nn.Sequential,
    pool: int,
    num_classes: int,
    width_mult: float,
    dropout: float,
    pretrained: str | Path | None,
    freeze_features: bool,
) -> TransferNet:
    model = TransferNet(arch, features, pool, num_classes, width_mult, dropout)
    if pretrained is not None:
        model.load_pretrained_features(pretrained)
    if freeze_features:
        model.freeze_features()
    return model


@register_model(
    "vgg16_fer", input_size=224, in_chans=3, description="VGG16 features (torchvision layout) + 4-layer head"
)
def vgg16_fer(
    num_classes: int = 7,
    pretrained: str | Path | None = None,
    freeze_features: bool = False,
    width_mult: float = 1.0,
    dropout: float = 0.5,
) -> TransferNet:
    """The reports' VGG16 transfer net: torchvision VGG16 ``features`` (13 conv3x3 + 5 pools, 224 -> 7x7x512),
    then Linear(25088, 4096)-ReLU-Dropout-Linear(4096, 1024)-ReLU-Dropout-Linear(1024, 256)-ReLU-Linear(256, k).

    ``pretrained``: local torchvision vgg16 state_dict file (only ``features.*`` is used); ``freeze_features``
    freezes the conv stack; ``width_mult`` < 1 gives a slim copy for tests / CPU runs.
    """
    feats = make_vgg16_features(width_mult)
    return _build("vgg16", feats, 7, num_classes, width_mult, dropout, pretrained, freeze_features)


@register_model(
    "alexnet_fer", input_size=224, in_chans=3, description="AlexNet features (torchvision layout) + 4-layer head"
)
def alexnet_fer(
    num_classes: int = 7,
    pretrained: str | Path | None = None,
    freeze_features: bool = False,
    width_mult: float = 1.0,
    dropout: float = 0.5,
) -> TransferNet:
    """The reports' AlexNet transfer net: torchvision AlexNet ``features`` (5 convs, 3 pools, 224 -> 6x6x256),
    then Linear(9216, 4096)-ReLU-Dropout-Linear(4096, 1024)-ReLU-Dropout-Linear(1024, 256)-ReLU-Linear(256, k).

    ``pretrained``: local torchvision alexnet state_dict file (only ``features.*`` is used); ``freeze_features``
    freezes the conv stack; ``width_mult`` < 1 gives a slim copy for tests / CPU runs.
    """
    feats = make_alexnet_features(width_mult)
    return _build("alexnet", feats, 6, num_classes, width_mult, dropout, pretrained, freeze_features)
