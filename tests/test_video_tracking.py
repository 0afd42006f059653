"""Tracking through gaps, crossings and camera cuts (synthetic boxes, and one real clip with a cut)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from emoscope.video import FaceTracker, ShotDetector, open_source, run_video
from test_video import FPS, _face, _face_patch, write_clip


def _ids(tracker: FaceTracker, boxes_per_frame, fps: float = 30.0) -> list[list[int]]:
    out = []
    for i, boxes in enumerate(boxes_per_frame):
        faces = [_face(x, y, "happy", side=s) for x, y, s in boxes]
        out.append([f.track_id for f in tracker.update(faces, i / fps)])
    return out


@pytest.mark.parametrize("hidden_s, same", [(0.5, True), (1.0, True), (1.3, True), (2.5, False)])
def test_a_hidden_face_keeps_its_id_for_about_a_second(hidden_s, same):
    hidden = round(hidden_s * 30)
    frames = [[(100 + 2 * i, 80, 90)] if not 30 <= i < 30 + hidden else [] for i in range(60 + hidden)]
    ids = [x for x in _ids(FaceTracker(), frames) if x]
    assert (ids[0] == ids[-1]) is same
    assert len({x[0] for x in ids}) == (1 if same else 2)


def test_a_moving_face_is_found_where_its_motion_leads_after_a_gap():
    # 6 px per frame to the right; hidden for 0.8 s (24 frames = 144 px, more than its own side)
    frames = [[(20 + 6 * i, 100, 80)] if not 20 <= i < 44 else [] for i in range(60)]
    ids = [x[0] for x in _ids(FaceTracker(), frames) if x]
    assert set(ids) == {1}


def test_two_faces_that_cross_keep_their_ids():
    frames = [[(40 + 8 * i, 100, 90), (440 - 8 * i, 140, 90)] for i in range(50)]
    tracker = FaceTracker()
    for i, boxes in enumerate(frames):
        faces = [_face(x, y, "happy", side=s) for x, y, s in boxes]
        out = tracker.update(faces, i / 30)
        assert [f.track_id for f in out] == [1, 2], f"frame {i}"


def test_a_cut_ends_every_track_and_ids_keep_counting():
    tracker = FaceTracker()
    assert [f.track_id for f in tracker.update([_face(10, 10, "happy"), _face(300, 10, "sad")], 0.0)] == [1, 2]
    tracker.new_shot()
    out = tracker.update([_face(10, 10, "happy")], 0.04)  # same place, but after a cut: someone else
    assert out[0].track_id == 3 and out[0].shot == 1


def test_shot_detector_finds_cuts_not_motion():
    yy, xx = np.mgrid[0:120, 0:160]
    a = np.stack([(xx * 1.5) % 256, (yy * 2) % 256, np.full_like(xx, 120)], -1).astype(np.uint8)  # a smooth scene
    b = np.full((120, 160, 3), (30, 200, 90), np.uint8)
    for use in (None, False):  # PySceneDetect when installed, the built-in score otherwise: the same answer
        det = ShotDetector(use_scenedetect=use)
        hits = [i for i in range(60) if det.update(np.roll(a if i < 30 else b, i // 2, axis=1), i / 30)]
        assert hits == [30] and det.shot == 1 and det.cuts == [pytest.approx(1.0)]


def test_cut_in_a_clip_gives_new_ids_and_names_the_shot(tmp_path):
    from emoscope.recognizer import Recognizer

    face = _face_patch()
    frames = []
    for i in range(12):
        bg = (90, 90, 90) if i < 6 else (20, 160, 230)  # the second shot: another room, same place in frame
        fr = np.full((360, 480, 3), bg, np.uint8)
        fr[100:220, 150:270] = face
        frames.append(fr)
    clip = write_clip(tmp_path / "cut.mp4", frames)
    report = run_video(open_source(clip), Recognizer(backend="torch"), csv_path=tmp_path / "c.csv")
    assert report.cuts == [pytest.approx(6 / FPS, abs=1e-3)]
    with open(tmp_path / "c.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_shot = {(r["shot"], r["track_id"]) for r in rows}
    assert by_shot == {("1", "1"), ("2", "2")}  # no id crosses the cut
    assert [t["shot"] for t in report.tracks] == [1, 2]
    assert "2 shots" in report.summary_text
