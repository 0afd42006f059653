"""Video: sources and their errors, tracking and per-face smoothing, writers, capture, and the CLI.

Also holds the clip maker the other ``test_video_*`` files import (``write_clip``): PyAV-written clips with a
chosen start time, frame times (variable frame rate) and a sine tone for sound.
"""

from __future__ import annotations

import csv
import math
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from emoscope.cli import main
from emoscope.labels import EMOTIONS
from emoscope.recognizer import Face, Recognizer
from emoscope.video import (
    VIDEO_CODECS,
    CaptureTrigger,
    FaceTracker,
    Frame,
    TrackedFace,
    VideoOut,
    VideoSourceError,
    analyze,
    open_source,
    run_video,
)

N_FRAMES, FPS = 10, 8.0


def _face_patch() -> np.ndarray:
    return cv2.resize(np.ascontiguousarray(data.astronaut()[30:230, 130:330, ::-1]), (120, 120))


def _frames(n: int = N_FRAMES):
    """480 x 360 frames with two faces moving towards each other (one mirrored)."""
    face = _face_patch()
    for i in range(n):
        fr = np.full((360, 480, 3), 90, np.uint8)
        x1, x2 = 10 + 8 * i, 350 - 8 * i
        fr[20:140, x1 : x1 + 120] = face
        fr[220:340, x2 : x2 + 120] = face[:, ::-1]
        yield fr


def write_clip(path: Path, frames, fps: float = FPS, start: float = 0.0, times=None, audio: bool = False,
               video: bool = True) -> Path:
    """Write BGR ``frames`` as H.264 (PyAV) shown from ``start`` s at ``fps`` (or at ``times``), with an
    optional 440 Hz tone as AAC sound covering the clip; ``video=False`` writes the sound only."""
    import av

    frames = list(frames)
    times = list(times) if times is not None else [start + i / fps for i in range(len(frames))]
    out = av.open(str(path), "w")
    if video:
        h, w = frames[0].shape[:2]
        v = out.add_stream("libx264", rate=int(fps), options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.codec_context.time_base = Fraction(1, 90000)
    if audio:
        a = out.add_stream("aac", rate=44100)
        a.layout = "mono"
        dur = times[-1] + 1 / fps if times else 2.0
        n = int(dur * 44100)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 44100)).astype(np.float32)[None]
        af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        af.sample_rate, af.pts = 44100, 0
        for pk in a.encode(af):
            out.mux(pk)
        for pk in a.encode():
            out.mux(pk)
    if video:
        for img, t in zip(frames, times):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
            f.pts, f.time_base = round(t * 90000), Fraction(1, 90000)
            for pk in v.encode(f):
                out.mux(pk)
        for pk in v.encode():
            out.mux(pk)
    out.close()
    return path


def read_clip(path: Path) -> tuple[list[float], dict]:
    """Frame times of a file's video and a description of its streams (PyAV)."""
    import av

    with av.open(str(path)) as c:
        info = {s.type: (s.codec_context.name, getattr(s.codec_context, "pix_fmt", None)) for s in c.streams}
        times = [float(f.time) for f in c.decode(video=0)] if c.streams.video else []
    return times, info


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("video") / "two_faces.mp4", _frames())


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    return Recognizer(backend="torch")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _probs(label: str, p: float = 0.7) -> dict[str, float]:
    rest = (1 - p) / (len(EMOTIONS) - 1)
    return {c: (p if c == label else rest) for c in EMOTIONS}


def _face(x: int, y: int, label: str, p: float = 0.7, side: int = 100) -> Face:
    probs = _probs(label, p)
    return Face((x, y, side, side), 0.9, probs, label)


# --------------------------------------------------------------------------------------------- tracking
def test_track_ids_are_stable_and_smoothing_stays_per_face():
    tr = FaceTracker(smoothing="ema", time_constant=1.0)
    ids = None
    for i in range(20):
        a = _face(50 + 10 * i, 50, "happy", 0.9)
        b = _face(500 - 10 * i, 300, "sad", 0.6)
        faces = [a, b] if i % 2 else [b, a]  # the order of detections must not matter
        out = tr.update(faces, i / 10)
        by_label = {f.probs["happy"] > 0.5: f for f in out}
        pair = (by_label[True].track_id, by_label[False].track_id)
        ids = ids or pair
        assert pair == ids
        # fixed raw probabilities: each track's smoothed value must stay exactly its own face's
        for f in out:
            assert np.allclose(list(f.smoothed.values()), list(f.probs.values()))
    assert set(ids) == {1, 2}


def test_ema_uses_the_time_constant():
    tr = FaceTracker(smoothing="ema", time_constant=0.5)
    tr.update([_face(10, 10, "sad", 1.0)], 0.0)
    out = tr.update([_face(12, 10, "happy", 1.0)], 0.5)[0]
    alpha = 1 - math.exp(-1)
    assert out.smoothed["happy"] == pytest.approx(alpha, abs=1e-6)
    assert out.smoothed["sad"] == pytest.approx(1 - alpha, abs=1e-6)
    assert out.label == "happy" and out.probs["happy"] == 1.0
    # the same interval in more, smaller steps ends at the same value: frame-rate independent
    tr2 = FaceTracker(smoothing="ema", time_constant=0.5)
    tr2.update([_face(10, 10, "sad", 1.0)], 0.0)
    for k in range(1, 6):
        last = tr2.update([_face(10, 10, "happy", 1.0)], k * 0.1)[0]
    assert last.smoothed["happy"] == pytest.approx(alpha, abs=1e-6)


def test_vote_smoothing_window():
    tr = FaceTracker(smoothing="vote", time_constant=0.35)
    labels = ["happy", "happy", "sad", "happy", "sad", "sad", "sad"]
    outs = [tr.update([_face(10, 10, lab)], k * 0.1)[0] for k, lab in enumerate(labels)]
    assert outs[2].label == "happy"  # 2 of 3 votes
    assert outs[-1].label == "sad"
    assert sum(outs[-1].smoothed.values()) == pytest.approx(1.0)
    assert outs[-1].smoothed["sad"] == pytest.approx(0.75, abs=1e-3)  # window: t = 0.3 .. 0.6


def test_tracks_expire_and_new_faces_get_new_ids():
    tr = FaceTracker(max_missing=2)
    assert tr.update([_face(10, 10, "happy")], 0)[0].track_id == 1
    for k in range(3):
        assert tr.update([], 0.1 * (k + 1)) == []
    assert tr.update([_face(10, 10, "happy")], 0.5)[0].track_id == 2
    far = tr.update([_face(10, 10, "happy"), _face(400, 10, "sad")], 0.6)
    assert [f.track_id for f in far] == [2, 3]


def test_fast_move_matched_by_centre_distance():
    tr = FaceTracker(iou_threshold=0.3)
    tr.update([_face(100, 100, "happy")], 0)
    out = tr.update([_face(150, 110, "happy")], 0.1)  # IoU ~0.3-, centres close
    assert out[0].track_id == 1


# ----------------------------------------------------------------------------------------------- sources
def test_video_file_tracks_two_faces(video, rec):
    src = open_source(video)
    assert src.kind == "file" and src.fps == pytest.approx(FPS)
    tracker = FaceTracker(classes=rec.classes)
    results = list(analyze(src, rec, tracker))
    src.close()
    assert len(results) == N_FRAMES
    first = {f.track_id: f.box for f in results[0].faces}
    assert len(first) == 2
    top_id = min(first, key=lambda t: first[t][1])
    for r in results:
        assert len(r.faces) == 2 and {f.track_id for f in r.faces} == set(first)
        top = min(r.faces, key=lambda f: f.box[1])
        assert top.track_id == top_id  # the upper face keeps its id while moving right
        assert r.frame.t == pytest.approx(r.frame.index / FPS)


def test_run_video_writes_video_csv_timeline(video, rec, tmp_path):
    out, csv_path, png = tmp_path / "out.mp4", tmp_path / "faces.csv", tmp_path / "timeline.png"
    report = run_video(open_source(video), rec, every=2, out=out, csv_path=csv_path, timeline_png=png)
    assert report.frames == N_FRAMES and report.analysed == N_FRAMES // 2 and report.skipped == 0
    times, info = read_clip(out)
    assert len(times) == N_FRAMES  # every frame written, skipped ones with the last annotations
    assert info["video"] == ("h264", "yuv420p")
    rows = _read_csv(csv_path)
    assert len(rows) == 2 * (N_FRAMES // 2)
    assert sorted({int(r["frame"]) for r in rows}) == list(range(0, N_FRAMES, 2))
    assert {r["track_id"] for r in rows} == {"1", "2"} and {r["shot"] for r in rows} == {"1"}
    r0 = rows[0]
    assert sum(float(r0[f"raw_{c}"]) for c in EMOTIONS) == pytest.approx(1, abs=1e-3)
    assert sum(float(r0[f"smooth_{c}"]) for c in EMOTIONS) == pytest.approx(1, abs=1e-3)
    assert float(r0["confidence"]) == pytest.approx(float(r0[f"raw_{r0['label']}"]), abs=1e-3)
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 50
    s = report.summary
    assert set(s["tracks"]) == {1, 2}
    assert sum(s["overall"]["share"].values()) == pytest.approx(1, abs=1e-3)
    assert s["overall"]["face_seconds"] == pytest.approx(2 * N_FRAMES / FPS, rel=0.01)
    assert "#1" in report.summary_text and "all" in report.summary_text
    # the same table through the API: one row per face per analysed frame, one per face
    assert [(r["frame"], r["track_id"]) for r in report.rows] == [(int(r["frame"]), int(r["track_id"])) for r in rows]
    assert [t["track_id"] for t in report.tracks] == [1, 2]
    assert sum(v for k, v in report.tracks[0].items() if k.startswith("share_")) == pytest.approx(1, abs=1e-3)


def test_summary_header_names_every_emotion_in_full():
    from emoscope.video import EmotionSummary

    summ = EmotionSummary(EMOTIONS)
    summ.add([_tracked(1, "surprise")], 0.0, 0.1)
    head = summ.format().splitlines()[0]
    assert all(f" {c}" in head for c in EMOTIONS)  # "surprise", not "surpris"


def test_to_frame_gives_pandas_tables(video, rec):
    pd = pytest.importorskip("pandas")
    report = run_video(open_source(video), rec, max_frames=4)
    faces, tracks = report.to_frame(), report.to_frame("tracks")
    assert isinstance(faces, pd.DataFrame) and len(faces) == 8 and {"track_id", "label", "raw_happy"} <= set(faces)
    assert list(tracks["track_id"]) == [1, 2] and "share_happy" in tracks
    with pytest.raises(ValueError, match="faces' or 'tracks"):
        report.to_frame("shots")


def test_folder_source_skips_corrupt_frames(tmp_path, rec):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, fr in enumerate(_frames(5)):
        cv2.imwrite(str(folder / f"frame{i + 1}.jpg"), fr)
    (folder / "frame3.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")  # corrupt frame
    (folder / "frame10.jpg").write_bytes(b"")  # empty frame, sorts last (natural order)
    (folder / "notes.txt").write_text("ignored: not an image extension")
    src = open_source(folder, fps=5)
    frames = list(src)
    assert [f.index for f in frames] == [0, 1, 3, 4]
    assert frames[2].t == pytest.approx(3 / 5)
    assert src.skipped == 2
    assert any("frame3.jpg" in p for p in src.problems) and any("frame10.jpg" in p for p in src.problems)
    report = run_video(open_source(folder, fps=5), rec, csv_path=tmp_path / "f.csv", max_frames=2)
    assert report.frames == 2 and report.analysed == 2


def test_source_errors(tmp_path):
    with pytest.raises(VideoSourceError, match="no such file"):
        open_source(tmp_path / "nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoSourceError, match="empty"):
        open_source(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoSourceError, match="cannot open as a video"):
        open_source(junk)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(VideoSourceError, match="no image files"):
        open_source(tmp_path / "nothing")
    with pytest.raises(VideoSourceError, match="webcam 97"):
        open_source(97)
    with pytest.raises(VideoSourceError, match="cannot open the stream"):
        open_source("rtsp://127.0.0.1:9/none", timeout=2)


# ------------------------------------------------------------------------------------------------ capture
def _tracked(tid: int, label: str) -> TrackedFace:
    p = _probs(label)
    return TrackedFace(tid, (10 * tid, 10, 50, 50), 0.9, p, p, label)


def test_capture_when_all_faces_hold(tmp_path):
    img = np.zeros((60, 80, 3), np.uint8)
    cap = CaptureTrigger("happy", tmp_path / "cap", hold=3, all_faces=True)
    seq = [("happy", "sad")] * 4 + [("happy", "happy")] * 5 + [("sad", "happy")] + [("happy", "happy")] * 3
    saved = [cap.update(Frame(i, i / 10, img), [_tracked(1, a), _tracked(2, b)]) for i, (a, b) in enumerate(seq)]
    hits = [i for i, s in enumerate(saved) if s]
    assert hits == [6, 12]  # both happy for 3 frames; once per occasion; again after face 1 stopped smiling
    assert all(cv2.imread(str(saved[i])) is not None for i in hits)
    anyf = CaptureTrigger("happy", tmp_path / "cap2", hold=2, all_faces=False)
    got = [anyf.update(Frame(i, 0, img), [_tracked(1, "happy"), _tracked(2, "sad")]) for i in range(3)]
    assert got[0] is None and got[1] is not None and got[2] is None


@pytest.mark.parametrize("suffix, codec", [(".mp4", "h264"), (".webm", "vp9"), (".mkv", "h264"), (".avi", "mjpeg")])
def test_video_out_codec_follows_the_suffix(suffix, codec, tmp_path, capfd):
    assert suffix in VIDEO_CODECS
    out = VideoOut(tmp_path / f"o{suffix}", FPS)
    for frame in _frames(4):
        out.write(frame)
    out.close()
    times, info = read_clip(out.path)
    assert len(times) == 4 and info["video"][0] == codec
    assert times == pytest.approx([i / FPS for i in range(4)], abs=1e-3)
    err = capfd.readouterr().err
    assert "warn" not in err.lower() and "opencv" not in err.lower()  # no codec chatter on the console


def test_video_out_refuses_an_unknown_suffix_before_any_work(tmp_path):
    with pytest.raises(VideoSourceError, match=r"\.webm play in web browsers"):
        VideoOut(tmp_path / "o.gif", FPS)


# ---------------------------------------------------------------------------------------------------- CLI
def test_cli_video(video, tmp_path, capsys):
    out, csv_path = tmp_path / "o.mp4", tmp_path / "o.csv"
    rc = main(["video", str(video), "--out", str(out), "--csv", str(csv_path), "--timeline",
               str(tmp_path / "t.png"), "--quiet", "--every", "1", "--smoothing", "vote",
               "--capture-when", "happy", "--all-faces", "--hold", "2", "--capture-dir", str(tmp_path / "cap")])
    assert rc == 0
    text = capsys.readouterr().out
    assert f"{N_FRAMES} frame(s)" in text and "all" in text and "captured" in text
    assert out.is_file() and (tmp_path / "t.png").is_file()
    assert len(_read_csv(csv_path)) == 2 * N_FRAMES


@pytest.mark.parametrize("args, message", [
    (["97"], "webcam 97"),
    (["{missing}"], "no such file"),
    (["{video}", "--show"], "--show"),
    (["{video}", "--capture-when", "joy"], "--capture-when"),
    (["{video}", "--every", "0"], "--every"),
    (["{video}", "--fps", "-5"], "--fps must be a number above 0"),
    (["{video}", "--max-frames", "-1"], "--max-frames must be 1 or more"),
    (["{video}", "--max-frames", "0"], "--max-frames must be 1 or more"),
    (["{video}", "--switch-rate", "0"], "--switch-rate"),
    (["{video}", "--max-gap", "-1"], "--max-gap"),
    (["{video}", "--hysteresis", "1"], "--hysteresis"),
])
def test_cli_video_errors(args, message, video, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    args = [a.format(missing=tmp_path / "missing.mp4", video=video) for a in args]
    assert main(["video", *args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1  # one line, no traceback


def test_progress_bar_names_the_file_without_cutting_its_path():
    from emoscope.cli.video import _bar_name

    assert _bar_name("file", "/a/very/long/folder/name/that/goes/on/clip.mp4") == "file clip.mp4"
    long = _bar_name("file", "/x/" + "interview_with_a_very_long_name_2026_12_03_final.mp4")
    assert long.startswith("file interview") and long.endswith(".mp4") and "…" in long and "/" not in long
    assert _bar_name("webcam", "0") == "webcam 0"


def test_photo_faces_are_numbered_from_one_like_tracks():
    from emoscope.annotate import draw_faces

    img = np.full((300, 600, 3), 80, np.uint8)
    faces = [_face(40, 60, "happy"), _face(330, 60, "sad")]
    tracked = [TrackedFace(i + 1, f.box, f.score, f.probs, f.probs, f.label) for i, f in enumerate(faces)]
    numbered = draw_faces(img, faces)
    assert np.array_equal(numbered, draw_faces(img, tracked))  # "#1", "#2": the same numbers as tracks 1 and 2
    assert not np.array_equal(numbered, draw_faces(img, faces, numbers=False))
    wrong = [TrackedFace(i, f.box, f.score, f.probs, f.probs, f.label) for i, f in enumerate(faces)]
    assert not np.array_equal(numbered, draw_faces(img, wrong))  # numbering from 0 would draw differently


def test_face_table_round_trips_and_stays_small():
    import tracemalloc

    from emoscope.video import FaceTable

    faces = [_tracked(1, "happy"), _tracked(2, "sad")]
    table = FaceTable(tuple(EMOTIONS))
    img = np.empty((0,), np.uint8)
    tracemalloc.start()
    for i in range(2000):
        table.add(Frame(i, i / 10, img), faces, 0)
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert used / len(table) < 200  # bytes per face per frame: numbers, not dicts
    frame, back, shot = next(table.frames())
    assert [f.track_id for f in back] == [1, 2] and back[1].label == "sad" and back[0].box == faces[0].box
    assert back[0].probs["happy"] == pytest.approx(faces[0].probs["happy"], abs=1e-6)
    assert len(table.rows()) == 4000 and table.rows()[1]["track_id"] == 2


class _FakeCapture:
    """cv2.VideoCapture stand-in: ``n`` good frames, a frame count estimate of ``n + extra`` and an
    unreadable frame at ``bad`` (the container estimate is often a few frames over the real end)."""

    def __init__(self, n: int, extra: int, bad: int | None = None) -> None:
        self.n, self.extra, self.bad, self.i = n, extra, bad, 0

    def get(self, prop):
        return {cv2.CAP_PROP_FPS: 25.0, cv2.CAP_PROP_FRAME_COUNT: float(self.n + self.extra)}.get(prop, 0.0)

    def read(self):
        self.i += 1
        if self.i > self.n or self.i - 1 == self.bad:
            return False, None
        return True, np.zeros((8, 8, 3), np.uint8)

    def release(self):
        pass


def test_reads_past_the_estimated_end_are_not_unreadable_frames():
    from emoscope.video.sources import CaptureSource

    src = CaptureSource(_FakeCapture(10, 3), "file", "x.mp4", None, live=False)
    assert len(list(src)) == 10 and src.skipped == 0 and src.problems == []  # was "frame 10-12 unreadable"
    mid = CaptureSource(_FakeCapture(10, 3, bad=4), "file", "x.mp4", None, live=False)
    frames = list(mid)
    assert [f.index for f in frames] == [0, 1, 2, 3, 5, 6, 7, 8, 9] and mid.skipped == 1
    assert mid.problems == ["frame 4: could not be decoded"]


@pytest.mark.parametrize("fps", [-5, 0, float("nan"), float("inf")])
def test_open_source_refuses_a_bad_frame_rate(video, fps):
    with pytest.raises(VideoSourceError, match="fps must be above 0"):
        open_source(video, fps=fps)
