"""Turning uint8 face crops into model input tensors: one place, used by training and inference."""

from __future__ import annotations

import numpy as np
import torch

#: Fixed normalisation for 8-bit gray faces (FER-2013 mean ~0.51, std ~0.25).
MEAN = 0.5
STD = 0.25


def to_unit(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 N x H x W -> float N x 1 x H x W in [0, 1]."""
    t = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if t.ndim == 3:
        t = t.unsqueeze(1)
    return t.float().div_(255.0)


def normalize(x: torch.Tensor, in_chans: int = 1) -> torch.Tensor:
    """[0, 1] gray N x 1 x H x W -> normalised model input with ``in_chans`` channels."""
    x = (x - MEAN) / STD
    if in_chans != x.shape[1]:
        x = x.expand(-1, in_chans, -1, -1)
    return x.contiguous(memory_format=torch.channels_last)


def resize_batch(x: torch.Tensor, size: int, antialias: bool = False) -> torch.Tensor:
    """Bilinear resize of a N x C x H x W batch to ``size`` x ``size`` (no-op when equal).

    ``antialias`` low-pass filters first when shrinking (as PIL and OpenCV's INTER_AREA do), so a shrunk face
    is not aliased."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                           antialias=antialias)
