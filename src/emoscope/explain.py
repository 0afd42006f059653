"""Looking inside the models: eigenfaces, LBP images, conv feature maps, saliency (Grad-CAM and gradients),
misclassified faces and predicted-probability bars. Every ``plot_*`` function writes one PNG and returns its path.

Faces are uint8 H x W (or N x H x W) gray arrays; a model is fed exactly as in training and inference
(``normalize(resize_batch(to_unit(faces), input_size), in_chans)``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from skimage.feature import local_binary_pattern  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from torch import nn  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from .plots import save_figure  # noqa: E402
from .preprocess import normalize, resize_batch, to_unit  # noqa: E402


def model_input(model_meta: dict[str, Any] | None, faces: np.ndarray) -> torch.Tensor:
    """uint8 H x W or N x H x W faces -> the model's input tensor (size and channels from ``model_meta``)."""
    meta = model_meta or {}
    faces = np.asarray(faces)
    if faces.ndim == 2:
        faces = faces[None]
    x = resize_batch(to_unit(faces), int(meta.get("input_size", faces.shape[-1])))
    return normalize(x, int(meta.get("in_chans", 1)))


# --------------------------------------------------------------------------------------- classic features


def fit_eigenfaces(images: np.ndarray, n_components: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mean face H x W in [0, 1], eigenfaces K x H x W) of uint8 N x H x W faces."""
    images = np.asarray(images)
    flat = images.reshape(len(images), -1).astype(np.float32) / 255.0
    k = max(1, min(n_components, len(flat) - 1, flat.shape[1]))
    pca = PCA(k, svd_solver="randomized" if k < 0.8 * min(flat.shape) else "full", random_state=seed).fit(flat)
    return pca.mean_.reshape(images.shape[1:]), pca.components_.reshape(k, *images.shape[1:])


def plot_eigenfaces(images_or_fitted: np.ndarray | Any, path: str | Path, n: int = 15, cols: int = 8) -> Path:
    """The mean face followed by the top ``n`` eigenfaces.

    Pass uint8 faces (PCA is fitted here) or a fitted object with ``mean_face_`` and ``eigenfaces_``
    (e.g. ``emoscope.classic.PCAFeatures``), so the figure shows the very basis a baseline used.
    """
    if hasattr(images_or_fitted, "eigenfaces_"):
        mean, eig = images_or_fitted.mean_face_, images_or_fitted.eigenfaces_[:n]
    else:
        mean, eig = fit_eigenfaces(images_or_fitted, n)
    panels = [mean, *eig]
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.5, rows * 1.7), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(panels):
            ax.imshow(panels[k], cmap="gray" if k == 0 else "RdBu_r")
            ax.set_title("mean face" if k == 0 else f"eigenface {k}", fontsize=7)
    fig.suptitle("PCA: mean face and eigenfaces")
    return save_figure(fig, path)


def plot_mean_face(images: np.ndarray, path: str | Path, classes: Sequence[str] | None = None,
                   labels: np.ndarray | None = None) -> Path:
    """The mean face of all faces, and of each class when ``labels`` and ``classes`` are given."""
    images = np.asarray(images, dtype=np.float32)
    panels = [("all", images.mean(0))]
    if labels is not None and classes is not None:
        panels += [(c, images[labels == i].mean(0)) for i, c in enumerate(classes) if (labels == i).any()]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.6 * len(panels), 2.0), squeeze=False)
    for ax, (name, img) in zip(axes.flat, panels, strict=True):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.suptitle("mean faces")
    return save_figure(fig, path)


def plot_lbp(faces: np.ndarray, path: str | Path, points: int = 8, radius: float = 1.0, grid: int = 6,
             max_faces: int = 6) -> Path:
    """Each face beside its uniform-LBP code image (the cell grid the histograms use drawn on top)."""
    faces = np.asarray(faces)
    if faces.ndim == 2:
        faces = faces[None]
    faces = faces[:max_faces]
    fig, axes = plt.subplots(2, len(faces), figsize=(1.9 * len(faces), 4.0), squeeze=False)
    for j, face in enumerate(faces):
        codes = local_binary_pattern(face.astype(np.uint8), points, radius, method="uniform")
        axes[0, j].imshow(face, cmap="gray", vmin=0, vmax=255)
        axes[1, j].imshow(codes, cmap="gray", vmin=0, vmax=points + 1)
        h, w = face.shape
        for t in range(1, grid):
            axes[1, j].axhline(t * h / grid - 0.5, color="white", lw=0.5)
            axes[1, j].axvline(t * w / grid - 0.5, color="white", lw=0.5)
        axes[0, j].set_title("face" if j == 0 else "", fontsize=8)
        axes[1, j].set_title(f"LBP P={points} R={radius:g}" if j == 0 else "", fontsize=8)
        for ax in axes[:, j]:
            ax.axis("off")
    return save_figure(fig, path)


# ----------------------------------------------------------------------------------------------- CNN maps


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Every ``nn.Conv2d`` of the model with its qualified name, in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Outputs of every conv layer for input ``x`` (1 x C x H x W), in execution order, via forward hooks."""
    captured: list[tuple[str, torch.Tensor]] = []
    handles = []
    for name, conv in conv_layers(model):
        def hook(_m: nn.Module, _inp: Any, out: torch.Tensor, name: str = name) -> None:
            captured.append((name, out.detach().float().clone()))

        handles.append(conv.register_forward_hook(hook))
    try:
        model.eval()
        model(x)
    finally:
        for h in handles:
            h.remove()
    return captured


def plot_feature_maps(model: nn.Module, face: np.ndarray, path: str | Path, model_meta: dict | None = None,
                      channels: int = 8, max_layers: int = 24) -> Path:
    """One row per conv layer: the face's ``channels`` most active maps (by mean activation), each scaled to [0, 1].

    Each row is a single mosaic image (maps side by side), which keeps deep nets' figures quick to draw.
    """
    maps = feature_maps(model, model_input(model_meta, face))
    if len(maps) > max_layers:  # keep first, last and evenly spaced layers between
        keep = np.unique(np.linspace(0, len(maps) - 1, max_layers).round().astype(int))
        maps = [maps[i] for i in keep]
    rows = max(1, len(maps))
    fig, axes = plt.subplots(rows, 1, figsize=(1.3 * (channels + 1.5), 1.4 * rows), squeeze=False)
    for ax, (name, out) in zip(axes[:, 0], maps, strict=False):
        a = out[0]
        order = a.mean((1, 2)).argsort(descending=True)[:channels]
        tiles = []
        for ch in order.tolist():
            m = a[ch].numpy()
            r = max(1, 48 // m.shape[0])  # small maps shown enlarged (nearest), so the thin separators stay thin
            m = np.kron(m, np.ones((r, r), np.float32)) if r > 1 else m
            span = m.max() - m.min()
            tiles += [(m - m.min()) / span if span > 0 else np.zeros_like(m), np.full((m.shape[0], 1), np.nan)]
        ax.imshow(np.concatenate(tiles[:-1], axis=1), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_ylabel(f"{name}\n{tuple(a.shape)}", fontsize=6, rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(maps):, 0]:
        ax.axis("off")
    fig.suptitle("conv feature maps (most active channels)")
    return save_figure(fig, path)


def _run_order(model: nn.Module, x: torch.Tensor, modules: list[nn.Module]) -> list[nn.Module]:
    """``modules`` in the order a forward pass on ``x`` runs them (one entry per call; found by hooks)."""
    order: list[nn.Module] = []
    handles = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in modules]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return order


ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU)


def _cam_layer(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """The module whose output Grad-CAM weighs: the activation that runs right after the last conv (its block's
    feature maps, >= 0 as Grad-CAM assumes), else that conv itself.

    The raw conv output (before BatchNorm and ReLU) is the wrong map: on the shipped model it is negative wherever
    the class evidence is, and the CAM of a 95 %-confident 'happy' came out zero everywhere.
    """
    order = _run_order(model, x, [m for m in model.modules() if not list(m.children())])  # every leaf, one pass
    convs = [i for i, m in enumerate(order) if isinstance(m, nn.Conv2d)]  # in run order, not registration order
    if not convs:
        raise ValueError("the model has no nn.Conv2d layer; Grad-CAM needs one")
    last = convs[-1]
    for m in order[last + 1:]:
        if isinstance(m, ACTIVATIONS):
            return m
        if not isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.Identity)):
            break  # pooling, a linear layer, ...: no activation belongs to this conv
    return order[last]


def grad_cam(model: nn.Module, x: torch.Tensor, target: int | None = None,
             layer: nn.Module | None = None) -> tuple[np.ndarray, int, np.ndarray]:
    """Grad-CAM (Selvaraju et al. 2017) on ``layer`` (default: the activation after the last conv run).

    Returns (heat map H x W in [0, 1] at the input's size, target class, class probabilities).
    The heat map is ReLU(sum_k w_k A_k) with w_k the spatial mean of d score / d A_k.
    """
    model.eval()
    layer = layer or _cam_layer(model, x)
    store: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> torch.Tensor:
        store["act"] = out
        return out.clone()  # a following in-place op (ReLU(inplace=True)) must not overwrite the saved map

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x[:1].detach().requires_grad_(True))  # so the hooked map has a gradient
            probs = torch.softmax(logits.float(), 1)[0].detach().numpy()
            t = int(logits.argmax(1)) if target is None else int(target)
            # autograd.grad, not backward(): the parameters' .grad stay as they were
            (grad,) = torch.autograd.grad(logits[0, t], store["act"])
    finally:
        handle.remove()
    act, grad = store["act"].detach()[0].float(), grad[0].float()
    cam = F.relu((grad.mean((1, 2), keepdim=True) * act).sum(0))
    cam = F.interpolate(cam[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    cam = cam - cam.min()
    cam = cam / cam.max() if cam.max() > 0 else cam
    return cam.numpy(), t, probs


def gradient_saliency(model: nn.Module, x: torch.Tensor, target: int | None = None) -> tuple[np.ndarray, int]:
    """Plain gradient saliency (Simonyan et al. 2014): max over channels of |d score / d input|, scaled to [0, 1]."""
    model.eval()
    inp = x[:1].detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(inp)
        t = int(logits.argmax(1)) if target is None else int(target)
        (grad,) = torch.autograd.grad(logits[0, t], inp)
    sal = grad[0].abs().amax(0)
    sal = sal / sal.max() if sal.max() > 0 else sal
    return sal.numpy(), t


def plot_saliency(model: nn.Module, face: np.ndarray, path: str | Path, model_meta: dict | None = None,
                  classes: Sequence[str] | None = None, target: int | None = None) -> Path:
    """Face, Grad-CAM overlay and gradient-saliency overlay for the predicted (or ``target``) class."""
    x = model_input(model_meta, face)
    cam, t, probs = grad_cam(model, x, target)
    sal, _ = gradient_saliency(model, x, t)
    shown = resize_batch(to_unit(np.asarray(face)[None]), x.shape[-1])[0, 0].numpy()
    names = list(classes or (model_meta or {}).get("classes") or range(len(probs)))
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    axes[0].imshow(shown, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"input: {names[int(probs.argmax())]} ({probs.max():.0%})", fontsize=9)
    axes[1].imshow(shown, cmap="gray", vmin=0, vmax=1)
    axes[1].imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes[1].set_title(f"Grad-CAM for '{names[t]}'", fontsize=9)
    axes[2].imshow(shown, cmap="gray", vmin=0, vmax=1)
    axes[2].imshow(sal, cmap="hot", alpha=0.6, vmin=0, vmax=1)
    axes[2].set_title("gradient saliency", fontsize=9)
    for ax in axes:
        ax.axis("off")
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------ predictions, errors


def plot_misclassified(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str],
                       path: str | Path, max_faces: int = 32, cols: int = 8,
                       confidence: np.ndarray | None = None) -> Path:
    """A grid of wrongly classified faces captioned 'true -> predicted': up to ``max_faces``, spread over the true
    classes and, given each face's ``confidence`` (its top probability), the most confident errors first."""
    from .plots import pick_errors, plot_face_grid

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = pick_errors(y_true, y_pred, confidence, max_faces)
    caps = [f"{classes[y_true[i]]} -> {classes[y_pred[i]]}" + (f" {confidence[i]:.2f}" if confidence is not None
                                                               else "") for i in wrong]
    n_wrong = int((y_true != y_pred).sum())
    title = f"misclassified: {n_wrong} of {len(y_true)}" + (", the most confident of each true class"
                                                            if confidence is not None else "")
    if n_wrong == 0:
        title = f"no misclassified faces among {len(y_true)}"
    return plot_face_grid(np.asarray(images)[wrong], caps, Path(path), cols=cols, title=title)


def plot_probability_bars(faces: np.ndarray, probs: np.ndarray, classes: Sequence[str], path: str | Path,
                          true_labels: Sequence[int] | None = None) -> Path:
    """Each face beside a horizontal bar chart of its predicted class probabilities (argmax highlighted)."""
    faces = np.asarray(faces)
    if faces.ndim == 2:
        faces = faces[None]
    probs = np.atleast_2d(probs)
    n = len(faces)
    fig, axes = plt.subplots(n, 2, figsize=(6.5, 1.9 * n), squeeze=False, gridspec_kw={"width_ratios": [1, 2]})
    for i in range(n):
        axes[i, 0].imshow(faces[i], cmap="gray", vmin=0, vmax=255)
        axes[i, 0].axis("off")
        if true_labels is not None:
            axes[i, 0].set_title(f"true: {classes[true_labels[i]]}", fontsize=8)
        colors = ["tab:orange" if k == probs[i].argmax() else "tab:blue" for k in range(len(classes))]
        axes[i, 1].barh(range(len(classes)), probs[i], color=colors)
        axes[i, 1].set_yticks(range(len(classes)), classes, fontsize=7)
        axes[i, 1].invert_yaxis()
        axes[i, 1].set_xlim(0, 1)
        axes[i, 1].tick_params(axis="x", labelsize=7)
    axes[-1, 1].set_xlabel("probability")
    return save_figure(fig, path)


# -------------------------------------------------------------------------------------------- everything


def _one_per_class(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Up to ``n`` indices covering as many classes as possible (seeded), so sample figures are varied."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    first = [int(order[np.flatnonzero(labels[order] == c)[0]]) for c in np.unique(labels)]
    rest = [int(i) for i in order if int(i) not in first]
    return np.array((first + rest)[:n], dtype=int)


def explain_face(model: nn.Module, meta: dict[str, Any], face: np.ndarray, out_dir: str | Path,
                 dataset_images: np.ndarray | None = None, dataset_labels: np.ndarray | None = None,
                 dataset_probs: np.ndarray | None = None, progress: bool = False) -> list[Path]:
    """All figures for one 48x48 face (and, given a labelled sample, its eigenfaces and errors) into ``out_dir``;
    ``progress`` shows a bar on stderr, one step per figure."""
    from .evaluation import predict_proba

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    classes = list(meta.get("classes") or [])
    size, chans = int(meta.get("input_size", 48)), int(meta.get("in_chans", 1))
    probs = predict_proba(model, face[None], input_size=size, in_chans=chans)
    classes = classes or [str(k) for k in range(probs.shape[1])]
    steps: list[tuple[str, Callable[[], Path]]] = [
        ("probabilities", lambda: plot_probability_bars(face, probs, classes, out / "probabilities.png")),
        ("saliency", lambda: plot_saliency(model, face, out / "saliency.png", meta, classes)),
        ("feature maps", lambda: plot_feature_maps(model, face, out / "feature_maps.png", meta)),
        ("LBP", lambda: plot_lbp(face, out / "lbp.png")),
    ]
    if dataset_images is not None and len(dataset_images) > 1:
        steps += [("eigenfaces", lambda: plot_eigenfaces(dataset_images, out / "eigenfaces.png")),
                  ("mean faces", lambda: plot_mean_face(dataset_images, out / "mean_faces.png", classes,
                                                        dataset_labels)),
                  ("LBP samples", lambda: plot_lbp(dataset_images[:6], out / "lbp_samples.png"))]
        if dataset_labels is not None:
            if dataset_probs is None:
                dataset_probs = predict_proba(model, dataset_images, input_size=size, in_chans=chans)
            pred, conf = dataset_probs.argmax(1), dataset_probs.max(1)
            pick = _one_per_class(dataset_labels, 6)
            steps += [("misclassified", lambda: plot_misclassified(dataset_images, dataset_labels, pred, classes,
                                                                   out / "misclassified.png", confidence=conf)),
                      ("sample probabilities", lambda: plot_probability_bars(
                          dataset_images[pick], dataset_probs[pick], classes, out / "sample_probabilities.png",
                          dataset_labels[pick]))]
    paths = []
    with tqdm(steps, desc="figures", unit="figure", file=sys.stderr, disable=not progress, leave=False) as bar:
        for name, draw in bar:
            bar.set_postfix_str(name)
            paths.append(draw())
    return paths


__all__ = [
    "conv_layers", "explain_face", "feature_maps", "fit_eigenfaces", "grad_cam", "gradient_saliency", "model_input",
    "plot_eigenfaces", "plot_feature_maps", "plot_lbp", "plot_mean_face", "plot_misclassified",
    "plot_probability_bars", "plot_saliency",
]
