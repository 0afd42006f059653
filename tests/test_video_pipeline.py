"""The speed-ups of the video pipeline keep its results: reading ahead and encoding in threads, one-thread
model copies, and staged detection (the short-range network skipped while the full-range one finds every
tracked face)."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from emoscope.recognizer import Recognizer
from emoscope.video import Frame, VideoOut, open_source, run_video
from emoscope.video.sources import Prefetch
from emoscope.video.tracking import FaceFinder, FaceTracker
from emoscope.video.writer import BackgroundVideoOut
from test_video import FPS, _frames, _probs, read_clip, write_clip

pytest.importorskip("av")


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    return Recognizer(backend="torch")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("pipe") / "two.mp4", _frames(16))


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


# -- reading ahead --------------------------------------------------------------------------------------------
def _frame_list(n: int) -> list[Frame]:
    return [Frame(i, i / FPS, np.full((4, 4, 3), i, np.uint8)) for i in range(n)]


def test_prefetch_keeps_order_does_the_work_and_stops_at_the_limit():
    seen = []
    got = list(Prefetch(_frame_list(30), work=lambda f: seen.append(f.index) or f.index * 2, limit=20, depth=3))
    assert [f.index for f, _ in got] == list(range(20)) and [w for _, w in got] == [2 * i for i in range(20)]
    assert seen == list(range(20))  # no work past the limit


def test_prefetch_raises_the_sources_error_in_the_reading_thread():
    def broken():
        yield from _frame_list(3)
        raise RuntimeError("disk gone")

    got = []
    with pytest.raises(RuntimeError, match="disk gone"):
        for f, _ in Prefetch(broken()):
            got.append(f.index)
    assert got == [0, 1, 2]


def test_prefetch_close_stops_the_thread_and_closes_the_source():
    closed = []

    def endless():
        try:
            i = 0
            while True:
                yield Frame(i, i / FPS, np.zeros((2, 2, 3), np.uint8))
                i += 1
        finally:
            closed.append(True)

    pre = Prefetch(endless(), depth=2)
    it = iter(pre)
    assert next(it)[0].index == 0
    pre.close()
    assert closed == [True] and not pre._thread.is_alive()


# -- writing in a thread --------------------------------------------------------------------------------------
def test_background_writer_writes_every_frame_in_order(tmp_path):
    frames = list(_frames(12))
    out = BackgroundVideoOut(VideoOut(tmp_path / "bg.mp4", FPS), depth=2)
    for i, img in enumerate(frames):
        out.write(img, 0.5 + i / FPS)
    out.close()
    times, info = read_clip(tmp_path / "bg.mp4")
    assert info["video"] == ("h264", "yuv420p") and out.frames == 12
    assert times == pytest.approx([0.5 + i / FPS for i in range(12)], abs=2e-3)
    assert not _threads("emoscope-write")


def test_background_writer_raises_the_threads_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = BackgroundVideoOut(VideoOut(blocker / "x.mp4", FPS))
    out.write(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(OSError):
        for _ in range(20):  # raised by a later write or by close, never lost
            out.write(np.zeros((32, 32, 3), np.uint8))
        out.close()


def test_annotated_colours_survive_the_yuv_conversion(tmp_path):
    img = np.zeros((64, 96, 3), np.uint8)
    img[:, :32] = (255, 0, 0)
    img[:, 32:64] = (0, 255, 0)
    img[:, 64:] = (40, 90, 230)
    out = VideoOut(tmp_path / "c.mp4", FPS)
    for i in range(3):
        out.write(img, i / FPS)
    out.close()
    with open_source(tmp_path / "c.mp4") as src:
        back = next(iter(src)).image
    inner = (slice(8, 56), np.r_[4:28, 36:60, 68:92])  # away from the colour edges (4:2:0 blurs them)
    assert np.abs(back[inner].astype(int) - img[inner]).max() <= 12


# -- the tracker and the face finder -----------------------------------------------------------------------
def _face(box):
    from emoscope.recognizer import Face

    return Face(box, 0.9, _probs("happy"), "happy")


def test_covers_says_whether_every_track_is_found():
    tr = FaceTracker()
    assert tr.covers([], 0.0)
    tr.update([_face((10, 10, 50, 50)), _face((200, 10, 50, 50))], 0.0)
    assert tr.covers([(12, 11, 50, 50), (203, 10, 50, 50)], 0.04)
    assert not tr.covers([(12, 11, 50, 50)], 0.04)  # one face missing
    assert not tr.covers([(12, 11, 50, 50), (400, 300, 50, 50)], 0.04)  # one far away
    assert [t.track_id for t in tr.tracks] == [1, 2] and all(t.missing == 0 for t in tr.tracks)  # unchanged


def test_staged_finder_gives_the_recognizers_faces(rec, clip):
    finder, tracker = FaceFinder(rec), FaceTracker(classes=rec.classes)
    with open_source(clip) as src:
        for fr in src:
            staged = finder.find(fr.image, fr.t, tracker, prepared=finder.prepare(fr.image))
            whole = rec.predict_arrays([fr.image])[0]
            assert [(f.box, f.probs) for f in staged] == [(f.box, f.probs) for f in whole]
            tracker.update(staged, fr.t)
    assert finder.short_runs > 0 and finder.full_runs > 0  # some frames skipped the short-range network


def test_run_video_rows_match_the_whole_detector(rec, clip):
    """All but the detector's score: skipping the short-range network leaves the full-range one's own."""
    staged = run_video(open_source(clip), rec).rows
    whole = run_video(open_source(clip), rec, recheck_s=0).rows
    assert [{k: v for k, v in r.items() if k != "score"} for r in staged] == \
        [{k: v for k, v in r.items() if k != "score"} for r in whole] and staged


def test_recheck_must_not_be_negative(rec, clip):
    with pytest.raises(ValueError, match="recheck_s"):
        run_video(open_source(clip), rec, recheck_s=-1)


def test_stopping_early_leaves_no_reading_thread(rec, clip):
    run_video(open_source(clip), rec, max_frames=3)
    assert not _threads("emoscope-read")


def test_finder_runs_onnx_models_on_one_thread():
    pytest.importorskip("onnxruntime")
    rec = Recognizer(backend="onnx")
    one = FaceFinder(rec).recognizer
    assert one is not rec and one.detector.threads == 1
    assert one.backend.sess.get_session_options().intra_op_num_threads == 1
    assert rec.backend.sess.get_session_options().intra_op_num_threads == 0  # the caller's own is untouched
    img = cv2.resize(next(iter(_frames(1))), (480, 360))
    assert [(f.box, f.label) for f in one.predict_arrays([img])[0]] == \
        [(f.box, f.label) for f in rec.predict_arrays([img])[0]]
    given = Recognizer(backend="onnx", threads=2)
    assert FaceFinder(given).recognizer.backend is given.backend  # threads given: kept
