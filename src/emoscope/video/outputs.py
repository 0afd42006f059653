"""What a video run writes: the summary, the timeline, the CSV, the annotated video and the captures."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2

from ..labels import EMOTIONS
from .sources import Frame, VideoSourceError, _Quiet
from .tracking import TrackedFace


class EmotionSummary:
    """Running totals: seconds per emotion per track and overall (face-seconds), shots, frames without a face.

    Per track also: the shot it lives in, how often its label changed, and its confidence (the mean raw
    probability of the label it showed).
    """

    def __init__(self, classes: Sequence[str] = EMOTIONS) -> None:
        self.classes = tuple(classes)
        self.tracks: dict[int, dict[str, Any]] = {}
        self.shots: list[dict[str, float]] = []
        self.no_face_s = 0.0
        self.frames = 0

    def add(self, faces: Sequence[TrackedFace], t: float, dt: float, shot: int = 0) -> None:
        """Count ``dt`` seconds of the frame at time ``t`` (in shot ``shot``) for each face's smoothed label."""
        self.frames += 1
        while len(self.shots) <= shot:
            self.shots.append({"shot": len(self.shots), "start_s": t, "end_s": t})
        self.shots[shot]["end_s"] = t + dt
        if not faces:
            self.no_face_s += dt
        for f in faces:
            tr = self.tracks.setdefault(f.track_id, {"first_s": t, "last_s": t, "frames": 0, "shot": f.shot,
                                                     "changes": 0, "label": f.label, "conf": 0.0,
                                                     "seconds": dict.fromkeys(self.classes, 0.0)})
            tr["changes"] += f.label != tr["label"]
            tr["last_s"], tr["frames"], tr["label"] = t, tr["frames"] + 1, f.label
            tr["conf"] += f.confidence
            tr["seconds"][f.label] = tr["seconds"].get(f.label, 0.0) + dt

    def as_dict(self) -> dict[str, Any]:
        """Per track and overall: seconds and share of time in each emotion, dominant emotion, confidence."""
        total = dict.fromkeys(self.classes, 0.0)
        tracks = {}
        for tid, tr in sorted(self.tracks.items()):
            secs = tr["seconds"]
            s = sum(secs.values()) or 1.0
            for k, v in secs.items():
                total[k] = total.get(k, 0.0) + v
            tracks[tid] = {
                "shot": tr["shot"], "first_s": round(tr["first_s"], 3), "last_s": round(tr["last_s"], 3),
                "frames": tr["frames"], "label_changes": tr["changes"],
                "confidence": round(tr["conf"] / max(tr["frames"], 1), 4),
                "seconds": {k: round(v, 3) for k, v in secs.items()},
                "share": {k: round(v / s, 4) for k, v in secs.items()},
                "dominant": max(secs, key=secs.get),
            }
        s = sum(total.values())
        return {
            "tracks": tracks,
            "shots": [{k: round(v, 3) if isinstance(v, float) else v for k, v in sh.items()} for sh in self.shots],
            "overall": {
                "face_seconds": round(s, 3),
                "share": {k: round(v / s, 4) if s else 0.0 for k, v in total.items()},
                "dominant": max(total, key=total.get) if s else None,
            },
            "no_face_seconds": round(self.no_face_s, 3),
        }

    def format(self) -> str:
        """Readable table: one line per face (track) and one overall; emotion names are never cut."""
        d = self.as_dict()
        w = max(7, *(len(c) for c in self.classes))
        head = (f"{'face':>5} {'shot':>4} {'from':>7} {'to':>7}  " + " ".join(f"{c:>{w}}" for c in self.classes)
                + "  dominant  confidence")
        lines = [head]
        for tid, tr in d["tracks"].items():
            shares = " ".join(f"{100 * tr['share'][c]:{w - 1}.1f}%" for c in self.classes)
            lines.append(f"{'#' + str(tid):>5} {tr['shot'] + 1:>4} {tr['first_s']:6.1f}s {tr['last_s']:6.1f}s  "
                         f"{shares}  {tr['dominant']:<8}  {100 * tr['confidence']:9.0f}%")
        o = d["overall"]
        shares = " ".join(f"{100 * o['share'][c]:{w - 1}.1f}%" for c in self.classes)
        lines.append(f"{'all':>5} {'':>4} {o['face_seconds']:6.1f}s {'':>7}  {shares}  {o['dominant'] or '-'}")
        if len(d["shots"]) > 1:
            cuts = ", ".join(f"{sh['start_s']:.1f}" for sh in d["shots"][1:])
            lines.append(f"{len(d['shots'])} shots (cuts at {cuts} s); faces never carry over a cut")
        if not d["tracks"]:
            lines.append("no face found")
        if d["no_face_seconds"]:
            lines.append(f"no face visible for {d['no_face_seconds']:.1f} s")
        return "\n".join(lines)


class Timeline:
    """Run-length record of each track's smoothed label (memory grows with label changes, not frames)."""

    def __init__(self, classes: Sequence[str] = EMOTIONS) -> None:
        self.classes = tuple(classes)
        self.segments: dict[int, list[list[Any]]] = {}  # track -> [[label, t_start, t_end], ...]

    def add(self, faces: Sequence[TrackedFace], t: float, dt: float) -> None:
        for f in faces:
            segs = self.segments.setdefault(f.track_id, [])
            if segs and segs[-1][0] == f.label and t - segs[-1][2] <= 3 * dt + 1e-9:
                segs[-1][2] = t + dt
            else:
                segs.append([f.label, t, t + dt])

    def save_png(self, path: str | Path, title: str = "") -> Path:
        """One row per track, coloured by emotion over time."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        from ..annotate import color_for

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tids = sorted(self.segments)
        fig, ax = plt.subplots(figsize=(10, 1.6 + 0.45 * max(3, len(tids))), dpi=100)
        for row, tid in enumerate(tids):
            for label, t0, t1 in self.segments[tid]:
                b, g, r = color_for(label)
                ax.broken_barh([(t0, max(t1 - t0, 1e-3))], (row - 0.4, 0.8), color=(r / 255, g / 255, b / 255))
        ax.set_yticks(range(len(tids)), [f"face #{t}" for t in tids])
        ax.set_xlabel("time (s)")
        ax.set_ylim(-0.6, max(1, len(tids)) - 0.4)
        handles = [plt.Rectangle((0, 0), 1, 1, color=tuple(c / 255 for c in color_for(c)[::-1])) for c in self.classes]
        ax.legend(handles, self.classes, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
        ax.invert_yaxis()  # face #1 on top
        ax.set_title(title or "smoothed emotion per face")
        if not tids:
            ax.text(0.5, 0.5, "no face found", ha="center", va="center", transform=ax.transAxes)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return path


class CsvLog:
    """CSV rows: one per tracked face per analysed frame (a row with empty face fields when none is visible).

    ``track_id`` numbers faces from 1 in order of first appearance (as the summary, page and pictures do);
    ``shot`` numbers the camera shots from 1; ``confidence`` is the classifier's raw probability of ``label``.
    """

    def __init__(self, path: str | Path, classes: Sequence[str] = EMOTIONS) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.classes = tuple(classes)
        self._f = open(self.path, "w", newline="")  # noqa: SIM115 - closed in close()
        self._w = csv.writer(self._f)
        self._w.writerow(["time_s", "frame", "shot", "track_id", "x", "y", "w", "h", "score", "label", "confidence"]
                         + [f"raw_{c}" for c in self.classes] + [f"smooth_{c}" for c in self.classes])
        self.rows = 0

    def add(self, frame: Frame, faces: Sequence[TrackedFace], shot: int = 0) -> None:
        if not faces:
            self._w.writerow([f"{frame.t:.3f}", frame.index, shot + 1] + [""] * (8 + 2 * len(self.classes)))
            self.rows += 1
        for f in faces:
            self._w.writerow(
                [f"{frame.t:.3f}", frame.index, f.shot + 1, f.track_id, *f.box, f"{f.score:.3f}", f.label,
                 f"{f.confidence:.4f}"]
                + [f"{f.probs.get(c, 0.0):.4f}" for c in self.classes]
                + [f"{f.smoothed.get(c, 0.0):.4f}" for c in self.classes]
            )
            self.rows += 1

    def close(self) -> None:
        self._f.close()


class CaptureTrigger:
    """Save the frame when faces have shown ``emotion`` for ``hold`` analysed frames in a row.

    ``all_faces``: every visible face must qualify (else any one is enough). One capture per occasion: after
    saving, the trigger re-arms only once the condition has stopped holding (someone stopped smiling, a face
    left or arrived), so a long smile gives one picture, not one every ``hold`` frames.
    """

    def __init__(self, emotion: str, out_dir: str | Path, hold: int = 5, all_faces: bool = False) -> None:
        self.emotion, self.hold, self.all_faces = emotion, max(1, hold), all_faces
        self.out_dir = Path(out_dir)
        self.counts: dict[int, int] = {}
        self.armed = True
        self.saved: list[Path] = []

    def update(self, frame: Frame, faces: Sequence[TrackedFace]) -> Path | None:
        """Feed one analysed frame; returns the saved file's path when this frame was captured."""
        self.counts = {f.track_id: (self.counts.get(f.track_id, 0) + 1 if f.label == self.emotion else 0)
                       for f in faces}
        ok = [self.counts[f.track_id] >= self.hold for f in faces]
        holds = bool(faces) and (all(ok) if self.all_faces else any(ok))
        if not holds:
            self.armed = True
            return None
        if not self.armed:
            return None
        self.armed = False
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{self.emotion}_frame{frame.index:06d}.jpg"
        if not cv2.imwrite(str(path), frame.image):
            raise VideoSourceError(f"{path}: cannot write the captured frame")
        self.saved.append(path)
        return path


def display_available() -> tuple[bool, str]:
    """Whether ``--show`` can open a window here, and why not."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (DISPLAY/WAYLAND_DISPLAY not set)"
    try:
        with _Quiet():
            cv2.namedWindow("emoscope", cv2.WINDOW_NORMAL)
            cv2.destroyWindow("emoscope")
    except cv2.error:
        return False, "this OpenCV build has no GUI (opencv-python-headless); install opencv-python to use --show"
    return True, ""

