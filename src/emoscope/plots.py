"""Figures as PNG files (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig: plt.Figure, path: str | Path, title: str = "") -> Path:
    """Title, tight layout, write the PNG and close the figure (so long runs do not leak memory)."""
    if title:
        fig.suptitle(title)
    top = 1 - 0.4 / fig.get_size_inches()[1] if fig.get_suptitle() else 1  # leave room for the suptitle
    fig.tight_layout(rect=(0, 0, 1, top))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(histories: dict[str, list[dict]], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy against epoch for one or more runs (train dashed, validation solid)."""
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(11, 4))
    for name, hist in histories.items():
        ep = [r["epoch"] for r in hist]
        (line,) = ax_l.plot(ep, [r["train_loss"] for r in hist], "--", marker=".", label=f"{name} train")
        ax_a.plot(ep, [r["train_acc"] for r in hist], "--", marker=".", color=line.get_color(), label=f"{name} train")
        if any("val_loss" in r for r in hist):
            ax_l.plot(ep, [r.get("val_loss", np.nan) for r in hist], marker=".", color=line.get_color(),
                      label=f"{name} val")
            ax_a.plot(ep, [r.get("val_acc", np.nan) for r in hist], marker=".", color=line.get_color(),
                      label=f"{name} val")
    ax_l.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_a.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_l, ax_a):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path, title)


def plot_confusion(cm: np.ndarray, classes: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Two panels: counts and row-normalised (recall) confusion matrices."""
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, mat, fmt, name in ((axes[0], cm, "d", "counts"), (axes[1], norm, ".2f", "normalised by true class")):
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, format(mat[i, j], fmt), ha="center", va="center",
                        color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set(xlabel="predicted", ylabel="true", title=name)
    return save_figure(fig, path, title)


def pick_errors(y_true: Sequence[int], y_pred: Sequence[int], confidence: Sequence[float] | None = None,
                max_faces: int = 48) -> np.ndarray:
    """Indices of up to ``max_faces`` misclassified faces, spread over the true classes, most confident first.

    Classes take turns (each class's most confident error, then each one's second, ...), so one common class
    cannot fill the grid; the result is grouped by true class, most confident first within it. Without
    ``confidence`` the errors keep their order within a class.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    conf = np.zeros(len(y_true)) if confidence is None else np.asarray(confidence, float)
    wrong = np.flatnonzero(y_true != y_pred)
    per_class = [wrong[y_true[wrong] == c][np.argsort(-conf[wrong[y_true[wrong] == c]], kind="stable")]
                 for c in np.unique(y_true[wrong])]
    taken = [0] * len(per_class)  # how many of each class's errors are shown
    for _ in range(min(max_faces, len(wrong))):
        k = min((n, k) for k, n in enumerate(taken) if n < len(per_class[k]))[1]  # the class shown least so far
        taken[k] += 1
    return np.array([i for errors, n in zip(per_class, taken) for i in errors[:n]], dtype=int)


def plot_face_grid(images: np.ndarray, captions: Sequence[str], path: str | Path, cols: int = 8,
                   title: str = "") -> Path:
    """A grid of gray faces with a caption under each (e.g. 'true -> predicted')."""
    n = max(1, len(images))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.9), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(images):
            ax.imshow(images[k], cmap="gray", vmin=0, vmax=255)
            ax.set_title(captions[k], fontsize=7)
    return save_figure(fig, path, title)
