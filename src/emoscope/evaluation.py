"""Model predictions with optional test-time augmentation, and honest metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .preprocess import normalize, resize_batch, to_unit

TTA_MODES = ("none", "flip", "crops")
#: How many views each TTA mode averages (the face and its mirror; crops adds five crops and their mirrors).
TTA_VIEW_COUNT = {"none": 1, "flip": 2, "crops": 12}


def crop_corners(side: int, crop: int) -> list[tuple[int, int]]:
    """(top, left) of the five crops of ``tta="crops"``: the four corners and the centre."""
    m = side - crop
    return [(0, 0), (0, m), (m, 0), (m, m), (m // 2, m // 2)]


def tta_views(x: torch.Tensor, tta: str, crop: int) -> list[torch.Tensor]:
    """Input views for test-time augmentation (flip: 2 views; crops: 5 crops + their flips = 10 + full + flip)."""
    if tta == "none":
        return [x]
    views = [x, x.flip(-1)]
    if tta == "crops":
        s = x.shape[-1]
        c = min(crop, s)
        for top, left in crop_corners(s, c):
            v = resize_batch(x[..., top : top + c, left : left + c], s)
            views += [v, v.flip(-1)]
    return views


def tta_views_numpy(x: np.ndarray, tta: str, crop: int) -> list[np.ndarray]:
    """:func:`tta_views` for float32 N x S x S arrays, in NumPy and OpenCV (the ONNX Runtime path stays out of
    torch: torch's OpenMP threads starve ONNX Runtime's pool on few cores). OpenCV's bilinear resize maps pixel
    centres as torch's ``align_corners=False`` does; a test holds the two paths equal."""
    import cv2

    if tta == "none":
        return [x]
    views = [x, x[..., ::-1]]
    if tta == "crops":
        s = x.shape[-1]
        c = min(crop, s)
        for top, left in crop_corners(s, c):
            v = np.stack([cv2.resize(np.ascontiguousarray(im[top : top + c, left : left + c]), (s, s),
                                     interpolation=cv2.INTER_LINEAR) for im in x]) if c != s else x
            views += [v, v[..., ::-1]]
    return views


@torch.no_grad()
def predict_proba(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    images: np.ndarray,
    batch_size: int = 256,
    tta: str = "none",
    input_size: int = 48,
    in_chans: int = 1,
    bf16: bool = False,
    crop: int = 44,
) -> np.ndarray:
    """Class probabilities (N x C float32) for uint8 N x H x W faces; ``tta`` in none/flip/crops.

    ``model`` is a torch module or any callable from a normalised batch to logits (e.g. an ONNX Runtime session
    wrapper), so evaluation and the recognizer share one preprocessing and TTA path.
    """
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, got {tta!r}")
    device = torch.device("cpu")
    if isinstance(model, nn.Module):
        model.eval()
        device = next(iter(model.parameters()), torch.empty(0)).device
    out = []
    for i in range(0, len(images), batch_size):
        x = resize_batch(to_unit(images[i : i + batch_size]).to(device), input_size)
        probs = 0
        views = tta_views(x, tta, crop)
        for v in views:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(normalize(v, in_chans))
            probs = probs + torch.softmax(logits.float(), 1)
        out.append((probs / len(views)).cpu().numpy())
    if not out:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(out).astype(np.float32)


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict:
    """Accuracy, macro-F1, weighted-F1 and per-class precision/recall/F1/support (sklearn's definitions)."""
    cm = confusion_matrix(y_true, y_pred, len(classes))
    tp = np.diag(cm).astype(float)
    support = cm.sum(1)
    predicted = cm.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    n = int(cm.sum())
    per_class = {
        c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    }
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()) if len(classes) else 0.0,
        "weighted_f1": float((f1 * support).sum() / n) if n else 0.0,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
    }


def evaluate_model(
    model: nn.Module,
    faces,
    meta: dict,
    tta: Sequence[str] = ("none", "flip", "crops"),
    batch_size: int = 256,
) -> dict:
    """Metrics of ``model`` on a FaceSet for each TTA mode; also returns the probabilities per mode."""
    results: dict = {"n": len(faces), "modes": {}, "probs": {}}
    for mode in tta:
        probs = predict_proba(model, faces.images, batch_size=batch_size, tta=mode,
                              input_size=meta.get("input_size", 48), in_chans=meta.get("in_chans", 1))
        results["modes"][mode] = classification_metrics(faces.labels, probs.argmax(1), faces.classes)
        results["probs"][mode] = probs
    return results


def format_report(metrics: dict, title: str = "") -> str:
    """A markdown classification report (the table scikit-learn's classification_report prints)."""
    lines = [f"## {title}", ""] if title else []
    lines += [f"accuracy **{metrics['accuracy']:.4f}**, macro-F1 **{metrics['macro_f1']:.4f}**, "
              f"weighted-F1 {metrics['weighted_f1']:.4f}, n = {metrics['n']}", "",
              "| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for name, m in metrics["per_class"].items():
        lines.append(f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    return "\n".join(lines) + "\n"


def write_report(results: dict, faces, out_dir, title: str = "evaluation", extra: dict | None = None) -> dict:
    """Write report.md, report.json, confusion.png and misclassified.png into ``out_dir``; return the paths."""
    import json
    from pathlib import Path

    from .plots import pick_errors, plot_confusion, plot_face_grid

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    modes = results["modes"]
    first = next(iter(modes))
    md = [f"# {title}", ""]
    if extra:
        md += [f"- {k}: {v}" for k, v in extra.items()] + [""]
    md += ["| TTA | accuracy | macro-F1 |", "|---|---:|---:|"]
    md += [f"| {mode} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} |" for mode, m in modes.items()]
    md.append("")
    for mode, m in modes.items():
        md.append(format_report(m, f"TTA: {mode}"))
    cm_path = plot_confusion(np.array(modes[first]["confusion_matrix"]), faces.classes, out / "confusion.png",
                             f"{title} (TTA: {first})")
    pred = results["probs"][first].argmax(1)
    conf = results["probs"][first].max(1)
    wrong = pick_errors(faces.labels, pred, conf, 48)  # spread over the true classes, most confident first
    captions = [f"{faces.classes[faces.labels[i]]}->{faces.classes[pred[i]]} {conf[i]:.2f}" for i in wrong]
    mis_path = plot_face_grid(faces.images[wrong], captions, out / "misclassified.png",
                              title="misclassified: the most confident errors of each true class "
                                    "(true -> predicted, confidence)")
    md += ["![confusion matrix](confusion.png)", "", "![misclassified faces](misclassified.png)", ""]
    (out / "report.md").write_text("\n".join(md))
    summary = {"title": title, **(extra or {}), "n": results["n"], "modes": modes}
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    return {"report_md": out / "report.md", "report_json": out / "report.json", "confusion": cm_path,
            "misclassified": mis_path}
