"""The public inference API: picture in, faces with emotion probabilities out.

    >>> from emoscope.recognizer import Recognizer
    >>> rec = Recognizer()                      # shipped FER-2013 model, BlazeFace detector
    >>> faces = rec.predict("photo.jpg")        # [Face(box=(x, y, w, h), label='happy', probs={...}), ...]
    >>> faces[0].to_dict()                      # {'x': ..., 'label': 'happy', 'confidence': 0.93, 'angry': ...}
    >>> to_frame(rec.predict_many(["a.jpg", "b.jpg"]))  # pandas table, one row per face (emoscope.to_frame)

Pictures can be a path, picture bytes, a numpy array or a PIL image, read by :mod:`emoscope.imaging` (one
decoder for everything). **Channel order**: numpy colour arrays are taken as OpenCV's BGR unless
``color="rgb"`` is passed (``predict(img, color="rgb")``, or ``Recognizer(color="rgb")``); 2-D arrays are
gray; 4-channel arrays are BGRA/RGBA. Files, bytes and PIL images carry their own mode, so ``color`` does not
apply to them. Every problem raises :class:`~emoscope.imaging.ImageReadError` with the reason. Float arrays and
float crops (:meth:`Recognizer.classify`) follow one rule: values up to 1 are read as 0-1, else as 0-255
(:func:`~emoscope.imaging.to_uint8`).

**Limits.** Pictures more elongated than 20:1 (:data:`~emoscope.imaging.MAX_ASPECT`) are refused: no face fits
such a strip, and searching it took minutes (an 8 x 2,000,000 array: 70 s). Big pictures are searched in at
most :data:`~emoscope.faces.MAX_TILES` tiles. Every option is checked once, by :func:`check_options`, before
anything loads; a bad value raises :class:`~emoscope.errors.InvalidArgumentError` naming it.

**Balanced reading.** A classifier learns how common each emotion was in its training data (FER-2013: happy 25 %,
disgust 1.5 %). ``balance=1`` divides each face's probabilities by those training frequencies and renormalises,
so every emotion counts as equally likely (logit adjustment, Menon et al. 2021); values between 0 and 1 go part
of the way. Use it where emotions are about equally common, as in posed studies; keep 0 (the default) for
everyday photos, whose emotions are as unevenly spread as FER-2013's. ``benchmarks/CROSS_DATASET_BALANCE.md``
measures both. The counts come from the checkpoint (``class_counts``, recorded by training) or, for the shipped
models, ``weights/class_counts.json``.

Backends: ``"torch"`` (the .pt checkpoint), ``"onnx"`` (ONNX Runtime fp32), ``"onnx-int8"`` (the quantised file,
if one was kept) and ``"auto"``: ONNX Runtime when it is installed and an up-to-date .onnx of the weights exists
(its recorded SHA-256 of the .pt matches), else torch. Preprocessing and TTA views are the same arithmetic for all
of them: torch's (:mod:`emoscope.evaluation`), and for ONNX Runtime a NumPy copy that a test holds equal to it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import EmoscopeError, InvalidArgumentError
from .evaluation import TTA_MODES, TTA_VIEW_COUNT, predict_proba, tta_views_numpy
from .export import file_sha256, read_onnx_metadata
from .faces import (
    DETECTORS,
    MIN_FACE,
    Detection,
    FaceDetector,
    big_enough,
    crop_faces,
    default_margin,
    detect_many,
    get_detector,
)
from .imaging import (
    MAX_ASPECT,
    ImageShapeError,
    center_square,
    check_color,
    check_size,
    from_array,
    load_image,
    read_image,
    to_gray,
    to_uint8,
)
from .models.checkpoint import load_model
from .preprocess import MEAN, STD

__all__ = ["BACKENDS", "DETECTOR_CHOICES", "MAX_MARGIN", "TTA_MODES", "Face", "MissingExtraError", "Recognizer",
           "check_options", "load_image", "read_image", "to_frame"]

#: Model backends (see the module doc).
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
#: Detector names a Recognizer takes: the face detectors, and ``"none"`` (the whole picture is the face).
DETECTOR_CHOICES = (*DETECTORS, "none")
#: The largest crop margin (fraction of the face box's side added on each side): beyond it the face is a
#: small part of its crop, nothing like the training faces.
MAX_MARGIN = 1.0


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def check_options(
    backend: str = "auto",
    detector: str | FaceDetector | None = "auto",
    tta: str = "none",
    margin: float | None = None,
    color: str = "bgr",
    batch_size: int = 64,
    threads: int | None = None,
    min_face: int = MIN_FACE,
    balance: float = 0.0,
) -> None:
    """Check a :class:`Recognizer`'s options before anything loads; raise :class:`InvalidArgumentError`
    naming the first bad one. The one validation path for the library and the CLI (``cli/options.py``)."""
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if isinstance(detector, str):
        if detector.lower() not in DETECTOR_CHOICES:
            raise InvalidArgumentError(f"unknown face detector {detector!r}; choose one of "
                                       f"{', '.join(DETECTOR_CHOICES)}")
    elif detector is not None and not callable(getattr(detector, "detect", None)):
        raise InvalidArgumentError(f"detector must be a name or have .detect(image), got {type(detector).__name__}")
    if tta not in TTA_MODES:
        raise InvalidArgumentError(f"tta must be one of {', '.join(TTA_MODES)}, got {tta!r}")
    if margin is not None and not (_is_real(margin) and 0 <= margin <= MAX_MARGIN):
        raise InvalidArgumentError(f"margin must be a number from 0 to {MAX_MARGIN:g} (a fraction of the face box "
                                   f"side added on each side), got {margin!r}")
    check_color(color)
    if not (_is_int(batch_size) and batch_size >= 1):
        raise InvalidArgumentError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    if threads is not None and not (_is_int(threads) and threads >= 1):
        raise InvalidArgumentError(f"threads must be a whole number of at least 1 (or None: all cores), "
                                   f"got {threads!r}")
    if not (_is_real(min_face) and min_face >= 0):
        raise InvalidArgumentError(f"min_face must be a number of pixels, at least 0, got {min_face!r}")
    if not (_is_real(balance) and 0 <= balance <= 1):
        raise InvalidArgumentError(f"balance must be a number from 0 (probabilities as trained) to 1 (every emotion "
                                   f"equally likely), got {balance!r}")


def _round(v: float, digits: int) -> float:
    return round(float(v), digits)


@dataclass(frozen=True, eq=False)
class Face:
    """One face in a picture with its emotion probabilities.

    Faces compare equal when box, score, label, probabilities and landmarks are equal, and hash by value, so
    they can go in sets and be dict keys. :meth:`to_dict` is one flat row (rounded numbers; what
    :func:`to_frame` makes a table of); :meth:`to_json` is the nested form the web API and ``--json`` print.
    """

    box: tuple[int, int, int, int]  # x, y, w, h in pixels of the input image
    score: float  # detector confidence (1.0 when no detector was used)
    probs: dict[str, float]  # emotion -> probability, canonical order, sums to 1
    label: str  # argmax of probs
    landmarks: np.ndarray | None = field(default=None, repr=False)  # K x 2 float (x, y) points, or None

    @property
    def confidence(self) -> float:
        """Probability of the predicted label."""
        return self.probs[self.label]

    def _key(self) -> tuple:
        return (tuple(int(v) for v in self.box), float(self.score), self.label,
                tuple((k, float(v)) for k, v in self.probs.items()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Face):
            return NotImplemented
        if self._key() != other._key():
            return False
        if self.landmarks is None or other.landmarks is None:
            return self.landmarks is None and other.landmarks is None
        return bool(np.array_equal(np.asarray(self.landmarks), np.asarray(other.landmarks)))

    def __hash__(self) -> int:
        return hash(self._key())

    def to_dict(self, digits: int = 4, landmarks: bool = False) -> dict[str, Any]:
        """One flat row: ``x, y, w, h, score, label, confidence`` and one column per emotion (probabilities
        rounded to ``digits``); with ``landmarks=True`` also ``landmark1_x, landmark1_y, ...`` (0.1 px)."""
        x, y, w, h = (int(v) for v in self.box)
        row: dict[str, Any] = {"x": x, "y": y, "w": w, "h": h, "score": _round(self.score, digits),
                               "label": self.label, "confidence": _round(self.confidence, digits)}
        row.update({k: _round(v, digits) for k, v in self.probs.items()})
        if landmarks and self.landmarks is not None:
            for i, (lx, ly) in enumerate(np.asarray(self.landmarks, np.float64), start=1):
                row[f"landmark{i}_x"], row[f"landmark{i}_y"] = round(float(lx), 1), round(float(ly), 1)
        return row

    def to_json(self, digits: int = 4) -> dict[str, Any]:
        """The nested JSON form: ``box`` [x, y, w, h], ``score``, ``label``, ``probs`` {emotion: p} and
        ``landmarks`` [[x, y], ...] (0.1 px) or null."""
        lm = None if self.landmarks is None else [[round(float(a), 1), round(float(b), 1)]
                                                  for a, b in np.asarray(self.landmarks, np.float64)]
        return {"box": [int(v) for v in self.box], "score": _round(self.score, digits), "label": self.label,
                "probs": {k: _round(v, digits) for k, v in self.probs.items()}, "landmarks": lm}


class MissingExtraError(EmoscopeError, ImportError):
    """An optional package is not installed; the message names the pip extra that brings it."""


def _rows(item: Any, digits: int) -> list[dict[str, Any]]:
    """Flat rows of a Face, a list of faces (numbered from 1) or anything with a ``to_dict()``."""
    if isinstance(item, Face):
        return [{"face": 1, **item.to_dict(digits)}]
    if hasattr(item, "to_dict") and not isinstance(item, (list, tuple)):
        return [_flatten(item.to_dict())]
    out = []
    for n, f in enumerate(item, start=1):
        out.append({"face": n, **f.to_dict(digits)} if isinstance(f, Face) else _flatten(f.to_dict()))
    return out


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}_"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def to_frame(faces_or_results: Any, digits: int = 4):
    """A pandas DataFrame, one row per face, from what the recognizer returns.

    Takes a :class:`Face`; a list of faces (one picture: ``predict``'s result); a list of such lists
    (``predict_many``'s: a ``picture`` column gives the position in that list, from 0 like the list); a dict
    ``{name: faces}`` (``picture`` is the name); or objects with a ``to_dict()`` (video faces), whose nested
    dicts become ``key_subkey`` columns. Faces are numbered from 1 within a picture (the ``face`` column), as
    everywhere they are shown. Needs pandas: ``pip install 'emoscope[dataframe]'``.
    """
    try:
        import pandas as pd
    except ImportError:
        raise MissingExtraError("emoscope.to_frame needs pandas: pip install 'emoscope[dataframe]'") from None
    item = faces_or_results
    if isinstance(item, dict):
        rows = [{"picture": name, **r} for name, faces in item.items() for r in _rows(faces, digits)]
    elif isinstance(item, (list, tuple)) and item and all(isinstance(x, (list, tuple)) for x in item):
        rows = [{"picture": i, **r} for i, faces in enumerate(item) for r in _rows(faces, digits)]
    else:
        rows = _rows(item, digits)
    if not rows:
        return pd.DataFrame(columns=["face", "x", "y", "w", "h", "score", "label", "confidence"])
    return pd.DataFrame(rows)


class _TorchBackend:
    name = "torch"

    def __init__(self, weights: Path) -> None:
        self.path = weights
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
            "class_counts": json.loads(meta["class_counts"]) if "class_counts" in meta else None,
        }
        if meta.get("quantized"):
            self.name = "onnx-int8"
        self.path = path  # the video pipeline opens a one-thread session of the same file
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.float().numpy())
        return torch.from_numpy(self.sess.run(None, {"input": arr})[0])

    def proba_uint8(self, crops: np.ndarray, batch_size: int, tta: str = "none", crop: int = 44) -> np.ndarray:
        """Probabilities for uint8 crops already at the input size, in numpy only; TTA views go through the
        network in one call per batch and their probabilities are averaged.

        The same arithmetic as ``preprocess.to_unit`` + ``normalize``, ``evaluation.tta_views`` and a softmax.
        Staying out of torch matters on few cores: torch's OpenMP threads keep spinning after each parallel op and
        starve ONNX Runtime's own thread pool (measured on 2 cores: 2,300 -> 4,700 crops/s at batch 64 for the
        fast model; ``--tta crops`` on a two-face photo, default model: 124 -> 48-60 ms, ``SPEED_PHOTOS.md``).
        """
        out = []
        step = max(1, batch_size // TTA_VIEW_COUNT[tta])  # at most ~batch_size views a call
        for i in range(0, len(crops), step):
            x = crops[i : i + step].astype(np.float32) / np.float32(255.0)
            views = tta_views_numpy(x, tta, crop)
            x = (np.concatenate(views)[:, None] - np.float32(MEAN)) / np.float32(STD)
            if self.meta["in_chans"] != 1:
                x = np.repeat(x, self.meta["in_chans"], axis=1)
            logits = self.sess.run(None, {"input": np.ascontiguousarray(x)})[0]
            e = np.exp(logits - logits.max(1, keepdims=True))
            probs = e / e.sum(1, keepdims=True)
            out.append(probs.reshape(len(views), -1, probs.shape[1]).mean(0))
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
    ``balance``: 0 to 1, how far to divide out the training data's class frequencies (see the module doc).
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
        min_face: int = MIN_FACE,
        balance: float = 0.0,
    ) -> None:
        check_options(backend, detector, tta, margin, color, batch_size, threads, min_face, balance)
        self.backend = self._load_backend(weights, backend, threads)
        self.classes: tuple[str, ...] = tuple(self.backend.meta["classes"])
        self.input_size = int(self.backend.meta["input_size"])
        self.in_chans = int(self.backend.meta["in_chans"])
        none = detector is None or (isinstance(detector, str) and detector.lower() == "none")
        self.detector = None if none else get_detector(detector)
        dname = "none" if self.detector is None else getattr(self.detector, "name", "")
        self.margin = margin if margin is not None else default_margin(dname)
        self.tta, self.color, self.batch_size, self.min_face = tta, color, batch_size, min_face
        self.balance = float(balance)
        self._reweight = self._balance_weights(self.balance) if self.balance else None

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

    def class_counts(self) -> dict[str, int] | None:
        """How many training labels each class had (the prior the model learnt), or None if not recorded."""
        from .weights import shipped_class_counts

        counts = self.backend.meta.get("class_counts")
        return dict(counts) if counts else shipped_class_counts(self.backend.path)

    def _balance_weights(self, power: float) -> np.ndarray:
        """Per-class factors (training frequency ** -power), in the model's class order."""
        counts = self.class_counts()
        if counts is None:
            raise InvalidArgumentError(
                f"balance needs the training data's class counts, and {self.backend.path.name} does not record "
                "them; retrain the model with this version of emoscope (training records them) or use balance=0")
        missing = [c for c in self.classes if counts.get(c, 0) <= 0]
        if missing:
            raise InvalidArgumentError(f"balance: {self.backend.path.name} had no training faces of "
                                       f"{', '.join(missing)}, so their frequency cannot be divided out")
        freq = np.array([counts[c] for c in self.classes], np.float64)
        return (freq / freq.sum()) ** -power

    @property
    def backend_name(self) -> str:
        return self.backend.name

    # -- classification -------------------------------------------------------------------------------------
    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Gray N x H x W face crops (48 x 48 for the shipped model; one H x W crop is N = 1) -> N x classes
        float32 probabilities. Values follow :func:`~emoscope.imaging.to_uint8`, as pictures given to
        :meth:`predict` do: uint8 as is, floats up to 1 as 0-1 (scaled by 255), other floats as 0-255."""
        crops = np.asarray(crops)
        if crops.ndim == 2:
            crops = crops[None]
        if crops.ndim != 3:
            raise ImageShapeError(f"crops must be N x H x W gray, got shape {crops.shape}")
        if not len(crops):
            return np.zeros((0, len(self.classes)), np.float32)
        if min(crops.shape[1:]) < 1:
            raise ImageShapeError(f"crops of shape {crops.shape} have no pixels")
        crops = to_uint8(crops)
        crop = round(self.input_size * 44 / 48)
        if isinstance(self.backend, _OnnxBackend) and crops.shape[1:] == (self.input_size,) * 2:
            probs = self.backend.proba_uint8(crops, self.batch_size, self.tta, crop)
        else:
            probs = predict_proba(self.backend, crops, batch_size=self.batch_size, tta=self.tta,
                                  input_size=self.input_size, in_chans=self.in_chans, crop=crop)
        if self._reweight is None:
            return probs
        probs = probs * self._reweight
        return (probs / probs.sum(1, keepdims=True)).astype(np.float32)

    # -- pictures -------------------------------------------------------------------------------------------
    def detect(self, image: np.ndarray, color: str = "bgr") -> list[Detection]:
        """Face detections in one array (gray, or colour in the order ``color``: ``"bgr"`` or ``"rgb"``); the
        centre square when there is no detector."""
        return self._detect_many([self.check(image, color)])[0]

    def _detect_many(self, images: list[np.ndarray]) -> list[list[Detection]]:
        if self.detector is None:
            out = []
            for im in images:
                h, w = im.shape[:2]
                s = min(h, w)
                out.append([Detection(((w - s) // 2, (h - s) // 2, s, s), 1.0, None)])
            return out
        dets = detect_many(self.detector, images)
        return [sorted(big_enough(ds, self.min_face), key=lambda d: (d.box[0], d.box[1])) for ds in dets]

    def _crops(self, image: np.ndarray, dets: list[Detection]) -> np.ndarray:
        if self.detector is None:
            return np.stack([center_square(to_gray(image), self.input_size)])
        return crop_faces(image, dets, self.input_size, self.margin)

    @staticmethod
    def check(array: np.ndarray, color: str = "bgr") -> np.ndarray:
        """An array picture (gray, or colour in the order ``color``) as uint8 gray or BGR (other dtypes, RGB
        and alpha converted by :func:`~emoscope.imaging.from_array`), or
        :class:`~emoscope.imaging.ImageShapeError` when it is not a picture or is more elongated than
        :data:`~emoscope.imaging.MAX_ASPECT` (the time budget per picture)."""
        a = np.asarray(array)
        if color != "bgr" or not (a.dtype == np.uint8 and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3))):
            a = from_array(a, color)
        check_size(a.shape[1], a.shape[0], None, MAX_ASPECT)
        return a

    def predict(self, image: Any, color: str | None = None) -> list[Face]:
        """Faces in one picture, left to right; [] when there is none.

        ``image``: a path, picture bytes, a PIL image, or a numpy array: gray (H x W) or colour in the channel
        order ``color`` (``"bgr"`` or ``"rgb"``; ``None``: the Recognizer's ``color``, by default ``"bgr"``,
        OpenCV's order). ``color`` does not apply to files, bytes and PIL images (they carry their mode)."""
        return self.predict_many([image], color=color)[0]

    def predict_many(self, images: Iterable[Any], color: str | None = None) -> list[list[Face]]:
        """Faces of several pictures (each as :meth:`predict` takes it, ``color`` likewise); detection is
        batched where the detector allows, and all faces of all pictures go through the classifier together."""
        order = check_color(color) if color is not None else self.color
        arrays = [load_image(im, order) for im in images]
        return self.predict_arrays(arrays)

    def predict_arrays(self, arrays: Sequence[np.ndarray], color: str = "bgr") -> list[list[Face]]:
        """Like :meth:`predict_many` for arrays only (the video path), gray or colour in the order ``color``
        (default ``"bgr"``, what OpenCV and the video readers give); see :meth:`check`."""
        check_color(color)
        arrays = [self.check(a, color) for a in arrays]
        dets = self._detect_many(arrays)
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
        balance = f", balance={self.balance:g}" if self.balance else ""
        return (f"Recognizer(backend={self.backend_name!r}, detector={det!r}, tta={self.tta!r}, margin={self.margin}"
                f"{balance})")
