"""The Recognizer on real pictures, every input type, both backends, and every kind of bad input."""

from __future__ import annotations

import json
import shutil
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from skimage import data

from emoscope.errors import InvalidArgumentError
from emoscope.export import export_onnx, quantize_int8, read_onnx_metadata
from emoscope.imaging import MAX_PIXELS, ImageReadError, ImageShapeError
from emoscope.labels import EMOTIONS
from emoscope.recognizer import Face, Recognizer, check_options, load_image, read_image
from emoscope.weights import default_weights_path


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def bgr(rgb) -> np.ndarray:
    return np.ascontiguousarray(rgb[..., ::-1])


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    return Recognizer(backend="torch")


@pytest.fixture(scope="module")
def onnx_copy(tmp_path_factory):
    """A copy of the shipped .pt with its ONNX export beside it."""
    d = tmp_path_factory.mktemp("onnx")
    pt = d / "model.pt"
    shutil.copy(default_weights_path(), pt)
    onnx_path = export_onnx(pt, d / "model.onnx")
    return pt, onnx_path


def _check_face(f: Face, shape) -> None:
    h, w = shape[:2]
    x, y, bw, bh = f.box
    assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h and bw > 0 and bh > 0
    assert tuple(f.probs) == EMOTIONS
    assert sum(f.probs.values()) == pytest.approx(1.0, abs=1e-4)
    assert all(0 <= p <= 1 for p in f.probs.values())
    assert f.label == max(f.probs, key=f.probs.get)
    assert 0 < f.score <= 1


def test_predict_outputs(rec, bgr):
    faces = rec.predict(bgr)
    assert len(faces) == 1
    _check_face(faces[0], bgr.shape)
    d = faces[0].to_json()
    json.dumps(d)
    assert set(d) == {"box", "score", "label", "probs", "landmarks"} and len(d["landmarks"]) == 6
    row = faces[0].to_dict()
    assert list(row)[:7] == ["x", "y", "w", "h", "score", "label", "confidence"] and list(row)[7:] == list(EMOTIONS)
    assert rec.classes == EMOTIONS


def test_input_types_agree(rec, rgb, bgr, tmp_path):
    ref = rec.predict(bgr)[0]
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), bgr)
    for src, kw in [(rgb, {"color": "rgb"}), (Image.fromarray(rgb), {}), (str(path), {}), (path, {}),
                    (np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), {"color": "rgb"}),
                    (bgr.astype(np.float32) / 255.0, {})]:
        f = rec.predict(src, **kw)[0]
        assert f.box == ref.box
        assert np.allclose(list(f.probs.values()), list(ref.probs.values()), atol=0.02)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert len(rec.predict(gray)) == 1
    assert len(rec.predict(Image.fromarray(gray))) == 1
    # reading RGB as if it were BGR changes the detector's input, but must still work
    assert len(rec.predict(rgb)) == 1


def test_classify(rec, bgr):
    crops = np.stack([cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (48, 48))] * 3)
    p = rec.classify(crops)
    assert p.shape == (3, 7) and p.dtype == np.float32
    assert np.allclose(p.sum(1), 1, atol=1e-5)
    assert np.allclose(p[0], p[2])
    assert rec.classify(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    assert rec.classify(crops[0]).shape == (1, 7)
    flip = Recognizer(backend="torch", detector=None, tta="flip")
    assert flip.classify(crops).shape == (3, 7)


def test_predict_many_batches_across_pictures(rec, bgr):
    tiled = np.hstack([bgr, bgr[:, ::-1]])
    blank = np.full((200, 300, 3), 40, np.uint8)
    out = rec.predict_many([bgr, blank, tiled])
    assert [len(x) for x in out] == [1, 0, 2]
    assert out[0][0].box == rec.predict(bgr)[0].box
    assert out[2][0].box[0] < out[2][1].box[0]  # left to right
    for f in out[2]:
        _check_face(f, tiled.shape)


def test_no_face_gives_empty_list(rec):
    assert rec.predict(np.zeros((240, 320, 3), np.uint8)) == []
    assert rec.predict(np.full((64, 64), 200, np.uint8)) == []


def test_no_detect_mode(bgr):
    r = Recognizer(backend="torch", detector=None)
    faces = r.predict(bgr[:, :400])
    assert len(faces) == 1
    f = faces[0]
    assert f.box == (0, 56, 400, 400) and f.score == 1.0 and f.landmarks is None
    _check_face(f, (512, 400))
    crop = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
    assert len(r.predict(crop)) == 1


def test_haar_detector_works_too(bgr):
    r = Recognizer(backend="torch", detector="haar")
    faces = r.predict(bgr)
    assert len(faces) == 1
    _check_face(faces[0], bgr.shape)


def test_onnx_matches_torch(onnx_copy, rec, bgr):
    pt, onnx_path = onnx_copy
    meta = read_onnx_metadata(onnx_path)
    assert json.loads(meta["classes"]) == list(EMOTIONS) and meta["input_size"] == "48"
    r_onnx = Recognizer(weights=onnx_path)
    assert r_onnx.backend_name == "onnx"
    tiled = np.vstack([bgr, bgr[::-1]])
    crops = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    assert np.allclose(r_onnx.classify(crops), rec.classify(crops), atol=1e-4)
    a, b = rec.predict(bgr)[0], r_onnx.predict(bgr)[0]
    assert a.box == b.box
    assert np.allclose(list(a.probs.values()), list(b.probs.values()), atol=1e-4)
    assert len(r_onnx.predict(tiled)) >= 1


@pytest.mark.parametrize("tta", ["none", "flip", "crops"])
def test_onnx_numpy_fast_path_equals_the_shared_torch_path(onnx_copy, tta):
    """The ONNX path's NumPy/OpenCV preprocessing and TTA views give what evaluation's torch path gives."""
    from emoscope.evaluation import predict_proba, tta_views, tta_views_numpy

    _, onnx_path = onnx_copy
    rec = Recognizer(weights=onnx_path, detector=None, batch_size=7, tta=tta)
    crops = np.random.default_rng(3).integers(0, 256, (20, 48, 48), dtype=np.uint8)
    fast = rec.classify(crops)  # numpy preprocessing, no torch
    shared = predict_proba(rec.backend, crops, batch_size=7, tta=tta)  # the torch path used by evaluation
    assert fast.shape == (20, 7) and np.allclose(fast.sum(1), 1, atol=1e-5)
    assert np.abs(fast - shared).max() < 1e-5
    x = crops.astype(np.float32) / 255
    views, reference = tta_views_numpy(x, tta, 44), tta_views(torch.from_numpy(x)[:, None], tta, 44)
    assert len(views) == len(reference) == {"none": 1, "flip": 2, "crops": 12}[tta]
    assert all(np.abs(v - r[:, 0].numpy()).max() < 1e-5 for v, r in zip(views, reference))
    big = np.random.default_rng(4).integers(0, 256, (3, 64, 64), dtype=np.uint8)  # not at input size: shared path
    assert rec.classify(big).shape == (3, 7)


def test_shipped_model_names_resolve():
    from emoscope.weights import SHIPPED_MODELS, resolve_weights, shipped_weights

    assert resolve_weights(None) == shipped_weights("default")
    assert resolve_weights("some/file.pt") == Path("some/file.pt")
    assert set(SHIPPED_MODELS) == {"default", "fast"}
    with pytest.raises(ValueError, match="unknown shipped model 'tiny'"):
        shipped_weights("tiny")


def test_auto_backend_uses_fresh_onnx_only(onnx_copy, tmp_path):
    pt, onnx_path = onnx_copy
    assert Recognizer(weights=pt, backend="auto", detector=None).backend_name == "onnx"
    assert Recognizer(weights=pt, backend="torch", detector=None).backend_name == "torch"
    stale = tmp_path / "model.pt"
    shutil.copy(pt, stale)
    shutil.copy(onnx_path, tmp_path / "model.onnx")
    with open(stale, "ab") as f:  # the .pt changed after the export: the .onnx is stale
        f.write(b"\0")
    assert Recognizer(weights=stale, backend="auto", detector=None).backend_name == "torch"
    with pytest.raises(FileNotFoundError):
        Recognizer(weights=tmp_path / "nothing.pt", backend="onnx")


def test_int8_quantisation_runs(onnx_copy, bgr, tmp_path):
    pt, onnx_path = onnx_copy
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    rng = np.random.default_rng(0)
    calib = np.stack([cv2.resize(np.roll(gray, rng.integers(-40, 40, 2), (0, 1))[40:240, 120:320], (48, 48))
                      for _ in range(32)])
    q = quantize_int8(onnx_path, tmp_path / "model.int8.onnx", calib)
    r = Recognizer(weights=q)
    assert r.backend_name == "onnx-int8"
    p = r.classify(calib[:4])
    assert p.shape == (4, 7) and np.allclose(p.sum(1), 1, atol=1e-4)
    with pytest.raises(ValueError):
        quantize_int8(onnx_path, tmp_path / "x.onnx", np.zeros((0, 48, 48), np.uint8))


# ------------------------------------------------------------------------------------------- bad inputs
def _png_header_only(path, width, height):
    """A PNG whose header claims width x height pixels (a decompression bomb), with almost no data."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))


@pytest.fixture
def bad_files(tmp_path, bgr):
    ok, jpg = cv2.imencode(".jpg", bgr)
    ok2, png = cv2.imencode(".png", bgr)
    files = {
        "missing": (tmp_path / "missing.jpg", "not found"),
        "empty": (tmp_path / "empty.jpg", "empty"),
        "truncated_jpg": (tmp_path / "cut.jpg", "truncated"),
        "truncated_png": (tmp_path / "cut.png", "truncated|corrupt"),
        "text": (tmp_path / "notes.txt", "not an image"),
        "fake_jpg": (tmp_path / "fake.jpg", "not an image"),
        "unsupported": (tmp_path / "vector.svg", "unsupported"),
        "bomb": (tmp_path / "bomb.png", "too large"),
        "folder": (tmp_path / "adir", "folder"),
    }
    files["empty"][0].write_bytes(b"")
    files["truncated_jpg"][0].write_bytes(jpg.tobytes()[: len(jpg) // 2])
    files["truncated_png"][0].write_bytes(png.tobytes()[: len(png) // 2])
    files["text"][0].write_text("hello, I am not a picture\n")
    files["fake_jpg"][0].write_bytes(b"GIF89a but not really" * 10)
    files["unsupported"][0].write_text('<svg xmlns="http://www.w3.org/2000/svg"><rect width="9" height="9"/></svg>')
    side = int(MAX_PIXELS**0.5) + 100
    _png_header_only(files["bomb"][0], side, side)
    files["folder"][0].mkdir()
    return files


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated_jpg", "truncated_png", "text", "fake_jpg",
                                  "unsupported", "bomb", "folder"])
def test_bad_files_give_clear_errors(kind, bad_files, rec):
    path, message = bad_files[kind]
    with pytest.raises(ImageReadError, match=message):
        read_image(path)
    with pytest.raises(ImageReadError, match=message):
        rec.predict(path)


def test_bad_arrays_and_types():
    with pytest.raises(ImageReadError, match="not a picture"):
        load_image(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ImageReadError, match="not a picture"):
        load_image(np.zeros((0, 10), np.uint8))
    with pytest.raises(TypeError, match="unsupported picture type"):
        load_image(12345)
    with pytest.raises(ValueError, match="color"):
        load_image(np.zeros((4, 4, 3), np.uint8), color="hsv")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"backend": "tensorflow"}, "backend must be one of auto, torch"),
    ({"tta": "more"}, "tta must be one of none, flip, crops"),
    ({"detector": "magic"}, "unknown face detector 'magic'"),
    ({"detector": 3}, "detector must be a name"),
    ({"margin": -1}, "margin must be a number from 0 to 1"),
    ({"margin": float("nan")}, "margin must be a number"),
    ({"batch_size": 0}, "batch_size must be a whole number of at least 1"),
    ({"batch_size": 2.5}, "batch_size must be a whole number"),
    ({"threads": 0}, "threads must be a whole number"),
    ({"min_face": -3}, "min_face must be"),
    ({"color": "hsv"}, "color must be 'bgr' or 'rgb'"),
    ({"balance": 1.5}, "balance must be a number from 0"),
    ({"balance": -0.1}, "balance must be a number from 0"),
    ({"balance": float("nan")}, "balance must be a number"),
    ({"balance": "1"}, "balance must be a number"),
])
def test_bad_arguments_fail_early_and_clearly(kwargs, message, monkeypatch):
    """Issue 25 item 7: Recognizer(margin=-1) and Recognizer(batch_size=0) failed late with raw errors."""
    def no_loading(*a, **k):
        raise AssertionError("options must be checked before the model loads")

    monkeypatch.setattr(Recognizer, "_load_backend", staticmethod(no_loading))
    with pytest.raises(InvalidArgumentError, match=message):
        Recognizer(**kwargs)


def test_classify_reads_float_crops_like_predict_does(rec, bgr):
    """Issue 25 item 6: float crops in [0, 1] were scored as if they were 0-255."""
    crops = np.stack([cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (48, 48))] * 2)
    ref = rec.classify(crops)
    assert np.allclose(rec.classify(crops.astype(np.float32) / 255.0), ref, atol=0.02)
    assert np.allclose(rec.classify(crops.astype(np.float64)), ref, atol=1e-5)
    assert np.allclose(rec.classify(crops.astype(np.uint16) * 257), ref, atol=1e-5)
    with pytest.raises(ImageShapeError, match="no pixels"):
        rec.classify(np.zeros((3, 0, 0), np.uint8))
    with pytest.raises(ImageShapeError, match="N x H x W"):
        rec.classify(np.zeros((2, 48, 48, 3), np.uint8))


def test_extreme_strips_are_refused_at_once(rec):
    """Issue 25 item 3: predict on an 8 x 2,000,000 array took 70 s; now a clear refusal."""
    strip = np.zeros((8, 2_000_000), np.uint8)
    t0 = time.perf_counter()
    with pytest.raises(ImageShapeError, match="strip of 250000:1"):
        rec.predict(strip)
    with pytest.raises(ImageShapeError, match="strip"):
        rec.predict_arrays([np.zeros((2_073_600, 1, 3), np.uint8)])
    assert time.perf_counter() - t0 < 2
    assert rec.predict(np.zeros((20, 400, 3), np.uint8)) == []  # 20:1 is still read


def test_empty_path_is_a_clear_error(rec):
    with pytest.raises(ImageReadError, match="empty path"):
        rec.predict("")


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]),
                  hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=9)))
def test_classify_any_array_gives_probabilities_or_a_clear_error(rec, crops):
    try:
        p = rec.classify(crops)
    except ImageShapeError:
        return
    n = 1 if crops.ndim == 2 else crops.shape[0]
    assert p.shape == (n, 7) and np.all(np.isfinite(p))
    assert n == 0 or np.allclose(p.sum(1), 1, atol=1e-4)


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "backend": st.one_of(st.sampled_from(["auto", "torch"]), st.text(max_size=4)),
    "detector": st.one_of(st.sampled_from(["auto", "none", "HAAR"]), st.text(max_size=4), st.none()),
    "tta": st.one_of(st.sampled_from(["none", "flip"]), st.text(max_size=4)),
    "margin": st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-2, 2), st.booleans()),
    "color": st.one_of(st.sampled_from(["bgr", "rgb"]), st.text(max_size=4)),
    "batch_size": st.one_of(st.integers(-2, 300), st.floats(allow_nan=True)),
    "threads": st.one_of(st.none(), st.integers(-2, 8)),
    "min_face": st.one_of(st.integers(-5, 40), st.floats(allow_nan=True)),
    "balance": st.one_of(st.floats(allow_nan=True), st.integers(-1, 2)),
}))
def test_check_options_accepts_or_names_the_option(kwargs):
    try:
        check_options(**kwargs)
    except InvalidArgumentError as exc:
        assert any(name in str(exc) for name in ("backend", "detector", "tta", "margin", "color", "batch_size",
                                                  "threads", "min_face", "balance"))


# ------------------------------------------------------------------------------ balance: the prior divided out
def _unbalanced_run(tmp_path: Path) -> Path:
    """A tiny model trained on toy faces whose classes are unevenly common (happy 5x disgust)."""
    from emoscope.datasets import FaceSet
    from emoscope.training import TrainConfig, train

    rng = np.random.default_rng(0)
    per_class = [10, 4, 10, 20, 10, 8, 12]
    imgs, labels = [], []
    for c, n in enumerate(per_class):
        for _ in range(n):
            img = rng.integers(0, 60, (48, 48)).astype(np.uint8)
            img[4 + 6 * c : 8 + 6 * c, 6:42] = 230
            imgs.append(img)
            labels.append(c)
    faces = FaceSet(np.stack(imgs), np.array(labels), ["train"] * len(labels), [f"t{i}" for i in labels])
    cfg = TrainConfig.from_dict(dict(model="emovgg_s", model_kwargs={"width": 8}, epochs=1, batch_size=32,
                                     augment=False, bf16=False, out_dir=str(tmp_path / "run"), threads=1))
    train(cfg, faces, faces, progress=False)
    return tmp_path / "run" / "best.pt"


def test_balance_divides_out_the_training_class_frequencies_on_every_backend(tmp_path):
    pt = _unbalanced_run(tmp_path)
    counts = dict(zip(EMOTIONS, [10, 4, 10, 20, 10, 8, 12]))
    export_onnx(pt, pt.with_suffix(".onnx"))
    assert json.loads(read_onnx_metadata(pt.with_suffix(".onnx"))["class_counts"]) == counts
    crops = np.random.default_rng(1).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    freq = np.array([counts[c] for c in EMOTIONS], float) / sum(counts.values())
    for backend in ("torch", "onnx"):
        plain = Recognizer(weights=pt, detector=None, backend=backend)
        assert plain.class_counts() == counts
        p = plain.classify(crops)
        for t in (0.5, 1.0):
            expected = p / freq**t
            expected /= expected.sum(1, keepdims=True)
            got = Recognizer(weights=pt, detector=None, backend=backend, balance=t).classify(crops)
            assert np.allclose(got, expected, atol=1e-5) and got.dtype == np.float32
        assert np.array_equal(Recognizer(weights=pt, detector=None, backend=backend, balance=0).classify(crops), p)
    # TTA and balance together: the TTA average, then the division
    tta = Recognizer(weights=pt, detector=None, backend="torch", tta="flip")
    both = Recognizer(weights=pt, detector=None, backend="torch", tta="flip", balance=1)
    expected = tta.classify(crops) / freq
    assert np.allclose(both.classify(crops), expected / expected.sum(1, keepdims=True), atol=1e-5)


def test_balance_needs_recorded_class_counts_and_says_so(tmp_path):
    import torch

    pt = _unbalanced_run(tmp_path)
    old = tmp_path / "old.pt"
    ck = torch.load(pt, weights_only=True)
    ck.pop("class_counts")  # a checkpoint from before training recorded them
    torch.save(ck, old)
    assert Recognizer(weights=old, detector=None, backend="torch").class_counts() is None
    with pytest.raises(InvalidArgumentError, match="old.pt does not record them; retrain"):
        Recognizer(weights=old, detector=None, backend="torch", balance=1)
    ck["class_counts"] = dict(zip(EMOTIONS, [3, 0, 3, 3, 3, 3, 3]))
    torch.save(ck, old)
    with pytest.raises(InvalidArgumentError, match="no training faces of disgust"):
        Recognizer(weights=old, detector=None, backend="torch", balance=0.5)


def test_shipped_models_know_their_training_class_counts_and_copies_do_not(tmp_path):
    from emoscope.weights import shipped_class_counts, shipped_weights

    for role in ("default", "fast"):
        pt = shipped_weights(role)
        for path in (pt, pt.with_suffix(".onnx"), pt.with_name(pt.stem + ".int8.onnx")):
            counts = shipped_class_counts(path)
            assert list(counts) == list(EMOTIONS) and counts["disgust"] < counts["happy"]
        balanced = Recognizer(weights=role, detector=None, balance=1)
        assert balanced.class_counts() == shipped_class_counts(pt)
        assert "balance=1" in repr(balanced)
    copy = tmp_path / "emovgg_t_fer2013.pt"
    shutil.copy(shipped_weights("fast"), copy)
    assert shipped_class_counts(copy) is None  # only the files in the weights folder are the shipped ones
