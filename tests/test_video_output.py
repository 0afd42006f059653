"""The annotated video plays with its sound and timestamps, and bad input gives clear messages and valid
(possibly empty) CSV and summary."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from emoscope.cli import main
from emoscope.labels import EMOTIONS
from emoscope.recognizer import Recognizer
from emoscope.video import VideoSourceError, open_source, run_video
from test_video import FPS, _face_patch, _frames, read_clip, write_clip

pytest.importorskip("av")


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    return Recognizer(backend="torch")


@pytest.fixture(scope="module")
def late_clip(tmp_path_factory):
    """Two faces, the picture starting 0.85 s in (as some cameras write), with a sound track."""
    return write_clip(tmp_path_factory.mktemp("late") / "late.mp4", _frames(), start=0.85, audio=True)


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("suffix, vcodec, acodec", [(".mp4", "h264", "aac"), (".webm", "vp9", "opus")])
def test_output_keeps_sound_and_source_timestamps(late_clip, rec, tmp_path, suffix, vcodec, acodec, capfd):
    out = tmp_path / f"annotated{suffix}"
    report = run_video(open_source(late_clip), rec, out=out)
    src_times, _ = read_clip(late_clip)
    times, info = read_clip(out)
    assert info["video"] == (vcodec, "yuv420p") and info["audio"][0] == acodec
    assert times == pytest.approx(src_times, abs=2e-3) and times[0] == pytest.approx(0.85, abs=2e-3)
    assert report.frames == len(src_times)
    assert "warn" not in capfd.readouterr().err.lower()


def test_variable_frame_rate_times_are_kept(rec, tmp_path):
    times = [0.0, 0.04, 0.08, 0.2, 0.24, 0.5, 0.54, 0.58]  # bursts and pauses
    clip = write_clip(tmp_path / "vfr.mp4", _frames(len(times)), times=times)
    csv_path, out = tmp_path / "vfr.csv", tmp_path / "vfr_out.mp4"
    report = run_video(open_source(clip), rec, csv_path=csv_path, out=out)
    assert sorted({float(r["time_s"]) for r in _csv(csv_path)}) == pytest.approx(times, abs=2e-3)
    assert read_clip(out)[0] == pytest.approx(times, abs=2e-3)
    assert set(report.summary["tracks"]) == {1, 2}


def test_a_clip_without_faces_gives_an_empty_but_valid_csv_and_summary(rec, tmp_path):
    clip = write_clip(tmp_path / "empty_room.mp4", [np.full((240, 320, 3), 120, np.uint8)] * 6)
    csv_path = tmp_path / "none.csv"
    report = run_video(open_source(clip), rec, csv_path=csv_path)
    rows = _csv(csv_path)
    assert len(rows) == 6 and all(r["track_id"] == "" for r in rows)
    assert report.summary["tracks"] == {} and report.summary["no_face_seconds"] == pytest.approx(6 / FPS)
    assert "no face found" in report.summary_text


def test_a_clip_of_only_cuts(rec, tmp_path):
    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255), (0, 0, 0), (0, 255, 255)]
    frames = []
    face = _face_patch()
    for i, c in enumerate(colours):
        fr = np.full((240, 320, 3), c, np.uint8)
        if i % 2:
            fr[60:180, 100:220] = face
        frames.append(fr)
    report = run_video(open_source(write_clip(tmp_path / "cuts.mp4", frames, fps=2.0)), rec,
                       csv_path=tmp_path / "cuts.csv")
    shots = {r["shot"] for r in _csv(tmp_path / "cuts.csv")}
    assert len(report.cuts) == 5 and shots == {str(i) for i in range(1, 7)}
    assert len({t["track_id"] for t in report.tracks}) == len(report.tracks)  # every face its own id


def test_a_file_with_sound_but_no_video(tmp_path, capsys):
    clip = write_clip(tmp_path / "voice.m4a", [], audio=True, video=False, times=[1.0])
    with pytest.raises(VideoSourceError, match="has sound but no video"):
        open_source(clip)
    csv_path = tmp_path / "voice.csv"
    assert main(["video", str(clip), "--csv", str(csv_path)]) == 2
    out, err = capsys.readouterr()
    assert "has sound but no video" in err and len(err.strip().splitlines()) == 1
    assert "no face found" in out
    with open(csv_path, newline="") as f:
        header = next(csv.reader(f))
    assert header[:4] == ["time_s", "frame", "shot", "track_id"] and f"smooth_{EMOTIONS[-1]}" in header


class _LiveFrames:
    """A webcam stand-in: a live FrameSource over generated frames (times as a camera would give them)."""

    kind, name, fps, live, skipped, problems = "webcam", "0", FPS, True, 0, []

    def __init__(self, frames):
        self.frames = list(frames)

    def __iter__(self):
        from emoscope.video import Frame

        for i, img in enumerate(self.frames):
            yield Frame(i, i / FPS, img)

    def close(self):
        pass

    def describe(self):
        return "webcam 0"


def test_a_live_source_streams_causal_labels_and_captures_smiles(rec, tmp_path):
    from emoscope.video import CaptureTrigger

    cap = CaptureTrigger("happy", tmp_path / "smiles", hold=2)
    report = run_video(_LiveFrames(_frames(8)), rec, csv_path=tmp_path / "live.csv", capture=cap)
    rows = _csv(tmp_path / "live.csv")
    assert len(rows) == 16 and report.rows == []  # streamed to the CSV, nothing kept in memory
    assert {r["track_id"] for r in rows} == {"1", "2"}
    happy = [r for r in rows if r["label"] == "happy"]
    assert len(happy) == 16 and len(report.captures) == 1  # the smile trigger, once, on the causal labels
