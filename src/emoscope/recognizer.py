"""The public inference API: picture in, faces with emotion probabilities out.

    >>> from emoscope.recognizer import Recognizer
    >>> rec = Recognizer()                      # shipped FER-2013 model, BlazeFace detector
    >>> faces = rec.predict("photo.jpg")        # [Face(box=(x, y, w, h), label='happy', probs={...}), ...]

Pictures can be a path, a numpy array or a PIL image. **Channel order**: numpy colour arrays are taken as
OpenCV's BGR unless ``color="rgb"`` is passed (``predict(img, color="rgb")``, or ``Recognizer(color="rgb")``);
2-D arrays are gray; 4-channel arrays are BGRA/RGBA. PIL images and files carry their own mode, so ``color``
does not apply to them. Files are decoded with Pillow (EXIF rotation applied, truncation detected) and OpenCV
as a fallback; every problem raises :class:`~emoscope.datasets.images.ImageReadError` with the reason.

Backends: ``"torch"`` (the .pt checkpoint), ``"onnx"`` (ONNX Runtime fp32), ``"onnx-int8"`` (the quantised file,
if one was kept) and ``"auto"``: ONNX Runtime when it is installed and an up-to-date .onnx of the weights exists
(its recorded SHA-256 of the .pt matches), else torch. Preprocessing is the same Python code for all of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .evaluation import TTA_MODES, predict_proba
from .export import file_sha256, read_onnx_metadata
from .faces import Detection, FaceDetector, crop_faces, default_margin, detect_many, get_detector
from .imaging import center_square, load_image, read_image, to_gray
from .models.checkpoint import load_model
from .preprocess import MEAN, STD

__all__ = ["BACKENDS", "Face", "Recognizer", "load_image", "read_image"]

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")


@dataclass
class Face:
    """One face in a picture with its emotion probabilities."""

    box: tuple[int, int, int, int]  # x, y, w, h in pixels of the input image
    score: float  # detector confidence (1.0 when no detector was used)
    probs: dict[str, float]  # emotion -> probability, canonical order, sums to 1
    label: str  # argmax of probs
    landmarks: np.ndarray | None = None

    @property
    def confidence(self) -> float:
        """Probability of the predicted label."""
        return self.probs[self.label]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (plain ints/floats/lists)."""
        return {
            "box": [int(v) for v in self.box],
            "score": round(float(self.score), 4),
            "label": self.label,
            "probs": {k: round(float(v), 4) for k, v in self.probs.items()},
            "landmarks": None if self.landmarks is None else np.round(self.landmarks, 1).tolist(),
        }


class _TorchBackend:
    name = "torch"

    def __init__(self, weights: Path) -> None:
        self.model, self.meta = load_model(weights)
        self.model = self.model.float().eval()

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).float()


class _OnnxBackend:
    name = "onnx"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        meta = read_onnx_metadata(path)
        if "classes" not in meta:
            raise ValueError(f"{path}: ONNX file has no emoscope metadata; export it with emoscope.export")
        self.meta = {
            "classes": json.loads(meta["classes"]),
            "input_size": int(meta.get("input_size", 48)),
            "in_chans": int(meta.get("in_chans", 1)),
            "model_name": meta.get("model_name", "?"),
            "source_sha256": meta.get("source_sha256"),
        }
        if meta.get("quantized"):
            self.name = "onnx-int8"
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.float().numpy())
        return torch.from_numpy(self.sess.run(None, {"input": arr})[0])

    def proba_uint8(self, crops: np.ndarray, batch_size: int) -> np.ndarray:
        """Probabilities for uint8 crops already at the input size, without TTA, in numpy only.

        The same arithmetic as ``preprocess.to_unit`` + ``normalize`` and a softmax. Staying out of torch matters
        on few cores: torch's OpenMP threads keep spinning after each parallel op and starve ONNX Runtime's own
        thread pool (measured on 2 cores: 2,300 -> 4,700 crops/s at batch 64 for the fast model).
        """
        out = []
        for i in range(0, len(crops), batch_size):
            x = crops[i : i + batch_size, None].astype(np.float32) / np.float32(255.0)
            x = (x - np.float32(MEAN)) / np.float32(STD)
            if self.meta["in_chans"] != 1:
                x = np.repeat(x, self.meta["in_chans"], axis=1)
            logits = self.sess.run(None, {"input": x})[0]
            e = np.exp(logits - logits.max(1, keepdims=True))
            out.append(e / e.sum(1, keepdims=True))
        return np.concatenate(out).astype(np.float32)


def _onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _int8_path(onnx_path: Path) -> Path:
    return onnx_path.with_name(onnx_path.stem + ".int8.onnx")


class Recognizer:
    """Detect faces, crop and align them, and classify their emotion (see the module doc).

    ``weights``: a .pt checkpoint or an exported .onnx (default: the shipped model).
    ``detector``: ``"auto"``, ``"blazeface"``, ``"blazeface-fast"`` (no tiles), ``"blazeface-short"``, ``"haar"``,
    a :class:`FaceDetector`, or ``None`` to treat the whole picture as one face crop (centre square).
    ``margin``: crop margin around the face box (fraction of its side); default depends on the detector.
    ``tta``: ``none``, ``flip`` or ``crops`` (see :mod:`emoscope.evaluation`).
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        detector: str | FaceDetector | None = "auto",
        backend: str = "auto",
        tta: str = "none",
        margin: float | None = None,
        color: str = "bgr",
        batch_size: int = 64,
        threads: int | None = None,
        min_face: int = 12,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if tta not in TTA_MODES:
            raise ValueError(f"tta must be one of {TTA_MODES}, got {tta!r}")
        self.backend = self._load_backend(weights, backend, threads)
        self.classes: tuple[str, ...] = tuple(self.backend.meta["classes"])
        self.input_size = int(self.backend.meta["input_size"])
        self.in_chans = int(self.backend.meta["in_chans"])
        self.detector = None if detector is None or detector == "none" else get_detector(detector)
        dname = "none" if self.detector is None else getattr(self.detector, "name", "")
        self.margin = margin if margin is not None else default_margin(dname)
        self.tta, self.color, self.batch_size, self.min_face = tta, color, batch_size, min_face

    @staticmethod
    def _load_backend(weights: str | Path | None, backend: str, threads: int | None):
        from .weights import resolve_weights

        pt = resolve_weights(weights)  # a file path: the shipped default, a shipped name, or the given path
        if pt.suffix.lower() == ".onnx":
            if backend == "torch":
                raise ValueError("an .onnx weights file needs backend 'onnx' or 'auto'")
            if not pt.is_file():
                raise FileNotFoundError(f"{pt}: ONNX file not found")
            return _OnnxBackend(pt, threads)
        onnx_path = pt.with_suffix(".onnx")
        if backend == "torch":
            return _TorchBackend(pt)
        if backend in ("onnx", "onnx-int8"):
            path = _int8_path(onnx_path) if backend == "onnx-int8" else onnx_path
            if not _onnx_available():
                raise ImportError("backend 'onnx' needs onnxruntime: pip install 'emoscope[onnx]'")
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no ONNX export of {pt.name}; run emoscope.export.export_onnx")
            return _OnnxBackend(path, threads)
        # auto: an up-to-date ONNX export (int8 if one was kept), else torch
        if _onnx_available():
            for path in (_int8_path(onnx_path), onnx_path):
                if path.is_file() and pt.is_file():
                    recorded = read_onnx_metadata(path).get("source_sha256")
                    if recorded == file_sha256(pt):
                        return _OnnxBackend(path, threads)
        return _TorchBackend(pt)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    # -- classification -------------------------------------------------------------------------------------
    def classify(self, crops: np.ndarray) -> np.ndarray:
        """uint8 N x H x W face crops (48 x 48 for the shipped model) -> N x classes float32 probabilities."""
        crops = np.asarray(crops)
        if crops.ndim == 2:
            crops = crops[None]
        if crops.ndim != 3:
            raise ValueError(f"crops must be N x H x W gray, got shape {crops.shape}")
        if crops.dtype != np.uint8:
            crops = np.clip(crops, 0, 255).astype(np.uint8)
        if not len(crops):
            return np.zeros((0, len(self.classes)), np.float32)
        if isinstance(self.backend, _OnnxBackend) and self.tta == "none" and crops.shape[1:] == (self.input_size,) * 2:
            return self.backend.proba_uint8(crops, self.batch_size)
        return predict_proba(self.backend, crops, batch_size=self.batch_size, tta=self.tta,
                             input_size=self.input_size, in_chans=self.in_chans,
                             crop=round(self.input_size * 44 / 48))

    # -- pictures -------------------------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Face detections in one loaded picture (uint8 gray/BGR); the centre square when there is no detector."""
        return self._detect_many([image])[0]

    def _detect_many(self, images: list[np.ndarray]) -> list[list[Detection]]:
        if self.detector is None:
            out = []
            for im in images:
                h, w = im.shape[:2]
                s = min(h, w)
                out.append([Detection(((w - s) // 2, (h - s) // 2, s, s), 1.0, None)])
            return out
        dets = detect_many(self.detector, images)
        keep = [[d for d in ds if min(d.box[2], d.box[3]) >= self.min_face] for ds in dets]
        return [sorted(ds, key=lambda d: (d.box[0], d.box[1])) for ds in keep]

    def _crops(self, image: np.ndarray, dets: list[Detection]) -> np.ndarray:
        if self.detector is None:
            return np.stack([center_square(to_gray(image), self.input_size)])
        return crop_faces(image, dets, self.input_size, self.margin)

    def predict(self, image: Any, color: str | None = None) -> list[Face]:
        """Faces in one picture (path, numpy array, PIL image), left to right; [] when there is none."""
        return self.predict_many([image], color=color)[0]

    def predict_many(self, images: Iterable[Any], color: str | None = None) -> list[list[Face]]:
        """Faces of several pictures; detection is batched where the detector allows, and all faces of all
        pictures go through the classifier together."""
        arrays = [load_image(im, color or self.color) for im in images]
        return self.predict_arrays(arrays)

    def predict_arrays(self, arrays: Sequence[np.ndarray]) -> list[list[Face]]:
        """Like :meth:`predict_many` for already loaded uint8 gray/BGR arrays (the video path)."""
        dets = self._detect_many(list(arrays))
        crops = [self._crops(im, ds) for im, ds in zip(arrays, dets) if ds]
        probs = self.classify(np.concatenate(crops)) if crops else np.zeros((0, len(self.classes)), np.float32)
        out, k = [], 0
        for ds in dets:
            faces = []
            for d in ds:
                p = probs[k]
                k += 1
                faces.append(self._face(d, p))
            out.append(faces)
        return out

    def _face(self, det: Detection, p: np.ndarray) -> Face:
        probs = {c: float(v) for c, v in zip(self.classes, p)}
        return Face(tuple(int(v) for v in det.box), float(det.score), probs, self.classes[int(np.argmax(p))],
                    det.landmarks)

    def __repr__(self) -> str:
        det = "none" if self.detector is None else getattr(self.detector, "name", type(self.detector).__name__)
        return f"Recognizer(backend={self.backend_name!r}, detector={det!r}, tta={self.tta!r}, margin={self.margin})"
