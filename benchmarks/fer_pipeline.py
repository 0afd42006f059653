"""The `fer` package's own pipeline, timed for comparison; runs inside fer's environment, not emoscope's.

    benchmarks/.fer-venv/bin/python benchmarks/fer_pipeline.py SECTION ARGS... (speed.py calls it)

pip's ``fer`` (25.10) imports TensorFlow only for ``tf.lite.Interpreter`` on its default path
(``use_tflite=True``). TensorFlow does not install on this machine's Python, so this script hands fer the
same TFLite runtime from ``ai-edge-litert`` under the name it looks for; everything else (Haar cascade,
padding, crops, per-face ``invoke`` loop) is fer's unchanged code. ``requests`` (used only for TF Serving)
is stubbed when absent.

Sections, each printing one JSON line:
- ``classifier SECONDS``: crops/s of ``FER._classify_emotions`` on 1 and on 64 crops (64 x 64 gray, as fer feeds);
- ``detector FRAME.npy SECONDS``: ms per frame of ``FER.find_faces`` and the number of faces;
- ``video IN.mp4 OUT.mp4``: frames/s of decode -> ``detect_emotions`` -> boxes and labels drawn -> mp4 written,
  with the process's peak RSS;
- ``accuracy FACES.npz``: accuracy of fer's classifier on 48 x 48 faces (resized to 64 x 64 as fer does);
- ``faces FACES.npz``: fer's classifier's class id for each of those faces (as ``accuracy`` scores them);
- ``photos LIST.txt``: fer's whole pipeline (its Haar detector, padding, crop, classifier) on each photo named in
  the list (one path a line); prints the label of the largest face of each photo, or null when fer finds none.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import types

import cv2
import numpy as np


def _shim_tensorflow() -> None:
    from ai_edge_litert.interpreter import Interpreter

    tf = types.ModuleType("tensorflow")
    tf.lite = types.SimpleNamespace(Interpreter=Interpreter)
    keras = types.ModuleType("tensorflow.keras")
    models = types.ModuleType("tensorflow.keras.models")

    def load_model(*_a, **_k):
        raise RuntimeError("the Keras model path of fer needs TensorFlow; this benchmark uses fer's default TFLite")

    models.load_model = load_model
    keras.models = models
    tf.keras = keras
    sys.modules.update({"tensorflow": tf, "tensorflow.keras": keras, "tensorflow.keras.models": models})
    try:
        import requests  # noqa: F401
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")


def _fer():
    _shim_tensorflow()
    try:
        from fer import FER
    except ImportError:  # fer 25.x no longer re-exports FER at the top level
        from fer.fer import FER

    return FER()


def _timeit(fn, seconds: float) -> float:
    fn()
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds or n < 5:
        fn()
        n += 1
    return (time.perf_counter() - t) / n


def classifier(seconds: float) -> dict:
    det = _fer()
    faces = np.random.default_rng(1).uniform(-1, 1, (64, 64, 64)).astype(np.float32)
    one = _timeit(lambda: det._classify_emotions(faces[:1]), seconds)
    many = _timeit(lambda: det._classify_emotions(faces), seconds)
    return {"batch1_crops_per_s": 1 / one, "batch64_crops_per_s": 64 / many}


def detector(frame_path: str, seconds: float) -> dict:
    det = _fer()
    frame = np.load(frame_path)
    sec = _timeit(lambda: det.find_faces(frame), seconds)
    return {"ms_per_frame": 1000 * sec, "faces": len(det.find_faces(frame))}


def video(src: str, dst: str) -> dict:
    det = _fer()
    cap = cv2.VideoCapture(src)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer, frames, faces, t = None, 0, 0, time.perf_counter()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(dst, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        for face in det.detect_emotions(frame):
            x, y, w, h = (int(v) for v in face["box"])
            label = max(face["emotions"], key=face["emotions"].get)
            cv2.rectangle(frame, (x, y), (x + w, y + h), (0, 200, 0), 2)
            cv2.putText(frame, label, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 200, 0), 2)
            faces += 1
        writer.write(frame)
        frames += 1
    elapsed = time.perf_counter() - t
    if writer is not None:
        writer.release()
    return {"frames": frames, "fps": frames / elapsed, "faces_per_frame": faces / max(1, frames),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _predict_faces(det, images: np.ndarray) -> np.ndarray:
    """fer's classifier on 48 x 48 uint8 faces, with its own resize to 64 x 64 and scaling; class ids."""
    faces = np.stack([cv2.resize(f, (64, 64)) for f in images]).astype(np.float32)
    faces = (faces / 255.0 - 0.5) * 2.0  # fer's own preprocessing (detect_emotions)
    return np.concatenate([np.asarray(det._classify_emotions(faces[i : i + 256])).argmax(1)
                           for i in range(0, len(faces), 256)])


def accuracy(npz: str) -> dict:
    data = np.load(npz)
    pred = _predict_faces(_fer(), data["images"])
    labels = data["labels"]
    f1 = []
    for c in range(7):
        tp = int(((pred == c) & (labels == c)).sum())
        p, r = tp / max(1, int((pred == c).sum())), tp / max(1, int((labels == c).sum()))
        f1.append(0.0 if p + r == 0 else 2 * p * r / (p + r))
    return {"accuracy": float((pred == labels).mean()), "macro_f1": float(np.mean(f1)), "n": int(len(labels))}


def faces(npz: str) -> dict:
    return {"predictions": _predict_faces(_fer(), np.load(npz)["images"]).tolist()}


def photos(list_path: str) -> dict:
    det = _fer()
    labels: list[str | None] = []
    with open(list_path, encoding="utf-8") as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]
    for path in paths:
        img = cv2.imread(path)
        faces = det.detect_emotions(img) if img is not None else []
        if not faces:
            labels.append(None)
            continue
        big = max(faces, key=lambda face: face["box"][2] * face["box"][3])
        labels.append(max(big["emotions"], key=big["emotions"].get))
    return {"labels": labels, "n": len(paths)}


if __name__ == "__main__":
    section, rest = sys.argv[1], sys.argv[2:]
    if section == "classifier":
        res = classifier(float(rest[0]))
    elif section == "detector":
        res = detector(rest[0], float(rest[1]))
    elif section == "video":
        res = video(rest[0], rest[1])
    elif section == "accuracy":
        res = accuracy(rest[0])
    elif section == "faces":
        res = faces(rest[0])
    elif section == "photos":
        res = photos(rest[0])
    else:
        sys.exit(f"unknown section {section!r}: choose classifier, detector, video, accuracy, faces or photos")
    print(json.dumps(res))
