"""Batched, seeded augmentation on tensors (no torchvision): one affine warp per batch.

Input and output: float tensors N x 1 x H x W in [0, 1], on any device. Random numbers always come
from the given CPU generator and then move to the batch's device, so a seed gives the same
transforms on a CPU and on a GPU.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    """Ranges of the random transforms; a zero disables that transform."""

    rotation: float = 15.0  # degrees, +-
    scale: float = 0.15  # +- fraction
    shift: float = 0.12  # +- fraction of the image size
    shear: float = 0.0  # degrees, +-
    hflip: float = 0.5  # probability
    brightness: float = 0.2  # +- additive
    contrast: float = 0.2  # +- multiplicative fraction
    erasing: float = 0.5  # probability of one random-erasing rectangle
    erasing_area: tuple[float, float] = (0.02, 0.25)
    # Real-camera degradations (all off by default, so older recipes train exactly as before). FER-2013's faces
    # are web photos; a webcam or a studio camera differs in sharpness, sensor noise, exposure and light direction.
    blur: float = 0.0  # probability of a Gaussian blur with sigma drawn from blur_sigma
    blur_sigma: tuple[float, float] = (0.3, 1.2)  # pixels at the training size
    lowres: float = 0.0  # probability of a down- and up-scale (a low-resolution or heavily compressed camera)
    lowres_size: tuple[float, float] = (0.5, 0.85)  # fraction of the side the face shrinks to before coming back
    noise: float = 0.0  # probability of additive Gaussian sensor noise with std drawn up to noise_std
    noise_std: float = 0.04
    gamma: float = 0.0  # +- log-gamma: exposure curves (x ** exp(u)), 0.4 gives gamma 0.67-1.49
    lighting: float = 0.0  # largest brightness difference of a linear ramp across the face (side lighting)

    def __post_init__(self) -> None:
        # JSON gives lists; the config is compared on resume, so ranges are always tuples.
        for name in ("erasing_area", "blur_sigma", "lowres_size"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"augmentation range {name} must be two numbers with 0 <= low <= high, got {lo}, {hi}")
            setattr(self, name, (float(lo), float(hi)))
        for name in ("hflip", "erasing", "blur", "lowres", "noise"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augmentation probability {name} must be in [0, 1], got {getattr(self, name)}")


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def random_affine(
    x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator, out_size: int | None = None
) -> torch.Tensor:
    """Rotate, scale, shift, shear and flip every image with its own random parameters.

    With ``out_size`` smaller than the input, the warp samples a centred ``out_size`` window
    (a random crop in one resampling step: cheaper training at the same face scale).
    """
    n = x.shape[0]
    size = out_size or x.shape[-1]
    zoom = size / x.shape[-1]
    angle = _uniform(n, -cfg.rotation, cfg.rotation, g) * math.pi / 180
    scale = _uniform(n, 1 - cfg.scale, 1 + cfg.scale, g)
    shear = _uniform(n, -cfg.shear, cfg.shear, g) * math.pi / 180
    tx = _uniform(n, -cfg.shift, cfg.shift, g) * 2
    ty = _uniform(n, -cfg.shift, cfg.shift, g) * 2
    flip = torch.where(torch.rand(n, generator=g) < cfg.hflip, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # theta maps output coordinates to input coordinates; dividing by scale zooms in for scale > 1.
    a = cos / scale * flip * zoom
    b = (-sin + torch.tan(shear) * cos) / scale * zoom
    c = sin / scale * flip * zoom
    d = (cos + torch.tan(shear) * sin) / scale * zoom
    theta = torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1)], 1).to(x.device, x.dtype)
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Random brightness (additive) and contrast (around each image's mean)."""
    n = x.shape[0]
    b = _uniform(n, -cfg.brightness, cfg.brightness, g).view(n, 1, 1, 1).to(x.device, x.dtype)
    c = _uniform(n, 1 - cfg.contrast, 1 + cfg.contrast, g).view(n, 1, 1, 1).to(x.device, x.dtype)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * c + mean + b).clamp(0, 1)


def random_erasing(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Replace one random rectangle per chosen image with uniform noise.

    Vectorised: one mask for the whole batch, no per-image loop (which a GPU would pay for in launches).
    """
    n, ch, h, w = x.shape
    chosen = torch.rand(n, generator=g) < cfg.erasing
    area = _uniform(n, *cfg.erasing_area, g) * h * w
    ratio = torch.exp(_uniform(n, math.log(0.3), math.log(3.3), g))
    eh = torch.sqrt(area * ratio).round().clamp(1, h).long()
    ew = torch.sqrt(area / ratio).round().clamp(1, w).long()
    top = (torch.rand(n, generator=g) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=g) * (w - ew + 1)).long()
    noise = torch.rand((n, ch, h, w), generator=g).to(x.device, x.dtype)
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
              & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)) & chosen.view(n, 1, 1))
    return torch.where(inside.unsqueeze(1).to(x.device), noise, x)


def _gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    return k / k.sum(1, keepdim=True)


def camera_degrade(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Blur, resolution loss, exposure (gamma), side lighting and sensor noise, each with its own probability.

    Every image gets its own parameters; images not chosen for a transform come through it unchanged. Vectorised
    over the batch (grouped convolutions, one resize per batch), like the rest of this module.
    """
    n, ch, h, w = x.shape
    dev, dt = x.device, x.dtype
    if cfg.blur:
        lo, hi = cfg.blur_sigma
        sigma = _uniform(n, lo, hi, g)
        radius = max(1, math.ceil(2 * hi))
        k = _gaussian_kernels(sigma, radius).to(dev, dt)  # n x (2r+1)
        y = x.reshape(1, n * ch, h, w)
        kk = k.repeat_interleave(ch, 0)
        y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), kk.view(n * ch, 1, 1, -1), groups=n * ch)
        y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), kk.view(n * ch, 1, -1, 1), groups=n * ch)
        chosen = (torch.rand(n, generator=g) < cfg.blur).view(n, 1, 1, 1).to(dev)
        x = torch.where(chosen, y.view(n, ch, h, w), x)
    if cfg.lowres:
        frac = float(_uniform(1, *cfg.lowres_size, g))  # one size per batch: one resize call
        small = max(4, round(h * frac)), max(4, round(w * frac))
        y = F.interpolate(F.interpolate(x, size=small, mode="area"), size=(h, w), mode="bilinear",
                          align_corners=False)
        chosen = (torch.rand(n, generator=g) < cfg.lowres).view(n, 1, 1, 1).to(dev)
        x = torch.where(chosen, y, x)
    if cfg.gamma:
        expo = torch.exp(_uniform(n, -cfg.gamma, cfg.gamma, g)).view(n, 1, 1, 1).to(dev, dt)
        x = x.clamp_min(1e-4) ** expo
    if cfg.lighting:
        angle = _uniform(n, 0, 2 * math.pi, g)
        amp = _uniform(n, -cfg.lighting, cfg.lighting, g)
        ys = torch.linspace(-0.5, 0.5, h).view(1, h, 1)
        xs = torch.linspace(-0.5, 0.5, w).view(1, 1, w)
        ramp = (torch.cos(angle).view(n, 1, 1) * xs + torch.sin(angle).view(n, 1, 1) * ys) * amp.view(n, 1, 1)
        x = x + ramp.unsqueeze(1).to(dev, dt)
    if cfg.noise:
        std = (_uniform(n, 0, cfg.noise_std, g) * (torch.rand(n, generator=g) < cfg.noise)).view(n, 1, 1, 1)
        x = x + torch.randn((n, ch, h, w), generator=g).mul_(std).to(dev, dt)
    return x.clamp(0, 1)


def _any_camera(cfg: AugmentConfig) -> bool:
    return bool(cfg.blur or cfg.lowres or cfg.noise or cfg.gamma or cfg.lighting)


def augment_batch(
    x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator, out_size: int | None = None
) -> torch.Tensor:
    """The full training augmentation: affine + flip (+ crop), colour jitter, camera degradations, erasing."""
    x = random_affine(x, cfg, g, out_size)
    if cfg.brightness or cfg.contrast:
        x = color_jitter(x, cfg, g)
    if _any_camera(cfg):
        x = camera_degrade(x, cfg, g)
    if cfg.erasing:
        x = random_erasing(x, cfg, g)
    return x


def mixup(
    x: torch.Tensor, y: torch.Tensor, alpha: float, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mixup (Zhang et al. 2018): returns mixed inputs, both targets and the mixing weight."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    lam = random.Random(seed).betavariate(alpha, alpha) if alpha > 0 else 1.0
    perm = torch.randperm(x.shape[0], generator=g)
    return lam * x + (1 - lam) * x[perm], y, y[perm], lam
