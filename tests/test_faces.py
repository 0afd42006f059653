"""Face detection and FER-style cropping on a real photo (skimage's astronaut) and images built from it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from emoscope.faces import (
    MAX_TILES,
    BlazeFaceDetector,
    Detection,
    FaceDetector,
    HaarDetector,
    align_crop,
    crop_faces,
    eye_angle,
    get_detector,
)
from emoscope.samples import astronaut_bgr, group_photo

FACE_CENTRE = (225, 120)  # the astronaut's face, in pixels of the 512 x 512 photo


@pytest.fixture(scope="module")
def bgr() -> np.ndarray:
    return astronaut_bgr()


@pytest.fixture(scope="module")
def blaze() -> BlazeFaceDetector:
    return BlazeFaceDetector()


@pytest.fixture(scope="module")
def haar() -> HaarDetector:
    return HaarDetector()


def _centre(box):
    x, y, w, h = box
    return x + w / 2, y + h / 2


def _tile(bgr):
    """2 x 2 tiling with mirrored copies: four faces at known places in a 1024 x 1024 picture."""
    return np.ascontiguousarray(np.vstack([np.hstack([bgr, bgr[:, ::-1]]), np.hstack([bgr[:, ::-1], bgr])]))


def _expected_tile_centres():
    cx, cy = FACE_CENTRE
    return [(cx, cy), (1023 - cx, cy), (511 - cx, 512 + cy), (512 + cx, 512 + cy)]


@pytest.mark.parametrize("name", ["blazeface", "haar"])
def test_finds_the_astronaut(name, bgr, blaze, haar):
    det = blaze if name == "blazeface" else haar
    found = det.detect(bgr)
    assert len(found) == 1
    d = found[0]
    cx, cy = _centre(d.box)
    assert abs(cx - FACE_CENTRE[0]) < 20 and abs(cy - FACE_CENTRE[1]) < 25
    assert 70 < d.box[2] < 140 and 0 < d.score <= 1
    assert d.landmarks is not None and d.landmarks.shape[1] == 2  # eyes found (Haar eye cascade / BlazeFace)
    assert abs(eye_angle(d.landmarks)) < 10  # her eyes are about level
    assert d.landmarks[0][0] < d.landmarks[1][0]


def test_blazeface_keypoints(bgr, blaze):
    d = blaze.detect(bgr)[0]
    assert d.landmarks.shape == (6, 2)
    x, y, w, h = d.box
    eyes, nose, mouth = d.landmarks[:2], d.landmarks[2], d.landmarks[3]
    assert np.all((eyes[:, 0] > x) & (eyes[:, 0] < x + w))
    assert eyes[:, 1].mean() < nose[1] < mouth[1]  # eyes above nose above mouth


@pytest.mark.parametrize("name", ["blazeface", "haar"])
def test_counts_faces_in_a_tiled_picture(name, bgr, blaze, haar):
    det = blaze if name == "blazeface" else haar
    found = det.detect(_tile(bgr))
    assert len(found) == 4
    for ex, ey in _expected_tile_centres():
        assert any(abs(_centre(d.box)[0] - ex) < 30 and abs(_centre(d.box)[1] - ey) < 30 for d in found)


@pytest.mark.parametrize(("width", "height", "face_px"), [(1920, 1080, 60), (1280, 720, 40), (3000, 2000, 90)])
def test_tiles_find_small_faces_in_a_big_picture(bgr, blaze, width, height, face_px):
    photo, centres = group_photo(width, height, face_px)
    assert BlazeFaceDetector(tile_side=None).detect(photo) == []  # the whole picture alone misses them all
    found = blaze.detect(photo)
    assert len(found) == 8
    for cx, cy in centres:
        assert any(abs(_centre(d.box)[0] - cx) < face_px / 3 and abs(_centre(d.box)[1] - cy) < face_px / 3
                   for d in found)
    assert all(0.5 * face_px < d.box[2] < 1.5 * face_px for d in found)


def test_tile_layout_covers_the_picture(blaze):
    assert blaze.tiles(640, 480) == [] and blaze.tiles(768, 768) == []  # webcam frames are not tiled
    tiles = blaze.tiles(1920, 1080)
    assert len(tiles) == 15 and {side for *_, side in tiles} == {512}
    covered = np.zeros((1080, 1920), bool)
    for x0, y0, side in tiles:
        assert x0 >= 0 and x0 + side <= 1920 and y0 >= 0 and y0 + side <= 1080
        covered[y0 : y0 + side, x0 : x0 + side] = True
    assert covered.all()
    assert {side for *_, side in blaze.tiles(4000, 3000)} == {512, 1024}  # a coarser level for mid-size faces
    with pytest.raises(ValueError, match="tile_side"):
        BlazeFaceDetector(tile_side=10)


def test_tile_count_is_bounded(blaze):
    """Issue 25 item 3: an 8 x 2,000,000 strip was searched in 10,413 tiles (70 s)."""
    assert len(blaze.tiles(4000, 3000)) == 108  # a 12 MP photo keeps its 512-px tiles
    for w, h in [(8660, 5773), (2_000_000, 8), (100_000, 5000), (30_000, 30_000)]:
        tiles = blaze.tiles(w, h)
        assert 0 < len(tiles) <= MAX_TILES
        assert min(side for *_, side in tiles) > 512  # it starts coarser instead
    assert BlazeFaceDetector(tile_side=None).tiles(8660, 5773) == []
    assert BlazeFaceDetector(max_tiles=0).tiles(1920, 1080) == []


def test_tiles_add_no_false_faces(bgr, blaze):
    """Tile-only candidates must be found again in a zoomed crop: an enlarged star field and the enlarged
    astronaut photo give no face beyond the whole-picture pass's."""
    stars = np.ascontiguousarray(data.hubble_deep_field()[..., ::-1])
    stars = cv2.resize(stars, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    assert blaze.tiles(stars.shape[1], stars.shape[0])  # tiled
    assert blaze.detect(stars) == []
    big = cv2.resize(bgr, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    assert len(blaze.detect(big)) == 1


def test_blazeface_batch_and_opencv_runtime_agree(bgr, blaze):
    shifted = np.roll(bgr, (40, -60), axis=(0, 1))
    batch = blaze.detect_many([bgr, shifted, np.zeros((100, 80, 3), np.uint8)])
    assert [len(b) for b in batch] == [1, 1, 0]
    assert batch[0][0].box == blaze.detect(bgr)[0].box
    sx, sy = _centre(batch[1][0].box)
    ox, oy = _centre(batch[0][0].box)
    assert abs((sx - ox) - (-60)) < 6 and abs((sy - oy) - 40) < 6  # the box moved with the face
    cv = BlazeFaceDetector(runtime="opencv").detect(bgr)[0]
    assert np.abs(np.subtract(cv.box, batch[0][0].box)).max() <= 1


def test_gray_and_odd_shapes(bgr, blaze, haar):
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert len(blaze.detect(gray)) == 1 and len(haar.detect(gray)) == 1
    wide = np.zeros((300, 1400, 3), np.uint8)
    wide[:, 500:1012] = bgr[100:400]
    assert len(blaze.detect(wide)) == 1  # letterboxing keeps the aspect ratio
    assert blaze.detect(np.full((480, 640, 3), 127, np.uint8)) == []
    assert haar.detect(np.full((480, 640), 127, np.uint8)) == []


def test_close_up_and_single_networks(bgr, blaze):
    close = cv2.resize(bgr[40:220, 130:310], (400, 400))  # the face fills the picture
    assert len(blaze.detect(close)) == 1
    assert len(BlazeFaceDetector("short").detect(close)) == 1
    assert len(BlazeFaceDetector("full").detect(bgr)) == 1
    with pytest.raises(ValueError):
        BlazeFaceDetector("medium")


def test_get_detector():
    assert get_detector("auto").name == "blazeface"
    assert get_detector("blazeface-full").name == "blazeface-full"
    fast = get_detector("blazeface-fast")
    assert fast.name == "blazeface-fast" and fast.tile_side is None
    assert get_detector("blazeface-short").name == "blazeface-short"
    assert get_detector("haar").name == "haar"
    with pytest.raises(ValueError, match="unknown face detector"):
        get_detector("nope")

    class Custom:
        name = "custom"

        def detect(self, image):
            return [Detection((0, 0, 10, 10), 1.0)]

    c = Custom()
    assert get_detector(c) is c and isinstance(c, FaceDetector)


def test_crop_is_a_centred_48px_face(bgr, blaze):
    d = blaze.detect(bgr)[0]
    crops = crop_faces(bgr, [d], 48, margin=0.15)
    assert crops.shape == (1, 48, 48) and crops.dtype == np.uint8
    # the crop centre is face (skin), not background; a wider margin shows more of the picture
    wide = align_crop(bgr, d.box, d.landmarks, 48, margin=0.6)
    assert wide.shape == (48, 48)
    assert not np.array_equal(wide, crops[0])
    assert crop_faces(bgr, [], 48).shape == (0, 48, 48)


def test_alignment_levels_the_eyes(bgr, blaze):
    rot = cv2.warpAffine(bgr, cv2.getRotationMatrix2D(FACE_CENTRE, 20, 1.0), (512, 512),
                         borderMode=cv2.BORDER_REPLICATE)
    d_up, d_rot = blaze.detect(bgr)[0], blaze.detect(rot)[0]
    assert abs(eye_angle(d_rot.landmarks) + 20) < 6  # image rotated 20 degrees counter-clockwise
    upright = align_crop(bgr, d_up.box, d_up.landmarks, 48, 0.15).astype(float)
    aligned = align_crop(rot, d_rot.box, d_rot.landmarks, 48, 0.15).astype(float)
    unaligned = align_crop(rot, d_rot.box, None, 48, 0.15).astype(float)

    def corr(a, b):
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]

    assert corr(aligned, upright) > corr(unaligned, upright) + 0.1


def test_group_photo_puts_eight_faces_where_it_says_and_refuses_faces_that_do_not_fit():
    photo, centres = group_photo(800, 400, 40)
    assert photo.shape == (400, 800, 3) and len(centres) == 8 and len(set(centres)) == 8
    patches = [photo[cy - 15 : cy + 15, cx - 15 : cx + 15] for cx, cy in centres]
    assert all(np.array_equal(p, patches[0]) for p in patches)  # the same face at every centre ...
    assert not np.array_equal(photo[:30, :30], photo[30:60, :30])  # ... on noise that differs from place to place
    with pytest.raises(ValueError, match="do not fit"):
        group_photo(800, 400, 120)


# -- staged detection (the video tracker's cheaper path) ----------------------------------------------------
def _same(a: list[Detection], b: list[Detection]) -> bool:
    return [(d.box, d.score) for d in a] == [(d.box, d.score) for d in b] and all(
        np.array_equal(x.landmarks, y.landmarks) for x, y in zip(a, b))


def _count_runs(det: BlazeFaceDetector, monkeypatch) -> list[int]:
    """Per network of ``det``, how many times it ran (patched on the instances)."""
    counts = [0] * len(det._nets)
    for k, net in enumerate(det._nets):
        def run(batch, _k=k, _orig=net._run):
            counts[_k] += 1
            return _orig(batch)
        monkeypatch.setattr(net, "_run", run)
    return counts


def test_detect_until_never_enough_is_detect(blaze, bgr):
    moved = np.ascontiguousarray(np.roll(bgr, (40, -30), axis=(0, 1)))
    for img in (bgr, moved):
        assert _same(blaze.detect_until(img, lambda d: False), blaze.detect(img))
        assert _same(blaze.detect_until(img, lambda d: False, blaze.prepare(img)), blaze.detect(img))


def test_detect_until_stops_after_the_full_range_network(blaze, bgr, monkeypatch):
    seen: list[int] = []
    counts = _count_runs(blaze, monkeypatch)
    faces = blaze.detect_until(bgr, lambda d: seen.append(len(d)) or True)
    assert counts == [1, 0] and seen == [1]  # the short-range network never ran
    assert _same(faces, BlazeFaceDetector(("full",), tile_side=None).detect(bgr))


def test_detect_until_asks_before_the_tiles(blaze, monkeypatch):
    img, _ = group_photo()
    assert blaze.tiles(img.shape[1], img.shape[0])
    counts = _count_runs(blaze, monkeypatch)
    asked = []
    blaze.detect_until(img, lambda d: asked.append(len(d)) or len(asked) == 2)
    assert counts == [1, 1] and len(asked) == 2  # tiles (the full-range network again) skipped
    assert _same(blaze.detect_until(img, lambda d: False), blaze.detect(img))


def test_single_threaded_copy_finds_the_same_faces(bgr):
    det = BlazeFaceDetector()
    one = det.single_threaded()
    assert one is not det and one.threads == 1 and one.name == det.name and one.models == det.models
    assert det.single_threaded() is one and one.single_threaded() is one
    assert _same(one.detect(bgr), det.detect(bgr))


def test_largest_face_cropper_cuts_the_biggest_face_as_the_recognizer_does(bgr):
    from emoscope.faces import largest_face_cropper
    from emoscope.recognizer import Recognizer

    class TwoFaces:
        name = "blazeface"

        def detect(self, image):
            return [Detection((10, 10, 8, 8), 0.9), Detection((150, 40, 150, 160), 0.8),
                    Detection((20, 300, 40, 40), 0.99)]

    crop = largest_face_cropper(TwoFaces(), size=48)
    out = crop(bgr)
    assert out.shape == (48, 48) and out.dtype == np.uint8
    assert np.array_equal(out, align_crop(bgr, (150, 40, 150, 160), None, 48, 0.10))  # blazeface's margin
    rec = Recognizer(detector=TwoFaces())
    assert rec.margin == 0.10

    class Tiny:
        def detect(self, image):
            return [Detection((0, 0, 11, 11), 0.9)]  # under the 12-pixel smallest face

    assert largest_face_cropper(Tiny())(bgr) is None
    rec_tiny = Recognizer(detector=Tiny())
    assert rec_tiny.min_face == 12 and rec_tiny.predict(bgr) == []  # the same smallest face as the Recognizer's
    real = largest_face_cropper("blazeface")(bgr)
    assert real is not None and real.shape == (48, 48)


def test_big_enough_keeps_faces_of_at_least_min_face_in_their_order():
    from emoscope.faces import big_enough

    dets = [Detection((0, 0, 30, 12), 0.9), Detection((5, 5, 11, 40), 0.9), Detection((9, 9, 12, 12), 0.5)]
    assert big_enough(dets) == [dets[0], dets[2]]  # the shorter side decides; exactly 12 px is kept
    assert big_enough(dets, min_face=0) == dets and big_enough(dets, min_face=31) == []
