"""Speed benchmarks of the real-world pipeline; writes ``benchmarks/SPEED.md``.

    python benchmarks/speed.py                      # everything (about 10-15 minutes on 2 cores)
    python benchmarks/speed.py --only classifier,detector --quick

Sections:
- classifier: face crops/s at batch 1 and 64 for each shipped model (default, fast), PyTorch fp32 vs
  ONNX Runtime fp32 vs ONNX Runtime int8, using the installed files;
- detector: milliseconds per 640 x 480 frame for each face detector (and dlib's HOG when installed);
- photos: milliseconds per picture of ``Recognizer.predict`` (detect, crop, classify) for each shipped model
  with each test-time augmentation (``--tta none|flip|crops``), on the two-face 640 x 480 frame;
- video: end-to-end frames/s of ``emoscope video`` (annotated mp4 written) on generated 640 x 480 videos
  with 1, 2 and 3 faces: the default model on torch and on the auto backend (int8 ONNX), the fast model;
- memory: peak resident memory of ``emoscope video`` on a 1-minute and a 10-minute video (flat = streaming);
- fer: the same figures (classifier, detector, video, memory) and FER-2013 PrivateTest accuracy for the
  ``fer`` package's own pipeline, run by ``benchmarks/fer_pipeline.py`` in fer's own environment (skipped
  with a message when that environment is absent). Make it with::

      python -m venv benchmarks/.fer-venv
      benchmarks/.fer-venv/bin/pip install ai-edge-litert numpy "opencv-python-headless<5" setuptools pillow
      benchmarks/.fer-venv/bin/pip install --no-deps fer

Run it on an idle machine: it refuses to start while ``emoscope train`` runs unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from machine import cpu_name

from emoscope.samples import astronaut_bgr, group_photo

HERE = Path(__file__).resolve().parent
SECTIONS = ("classifier", "detector", "photos", "video", "memory", "fer")


def busy_training() -> list[str]:
    """Command lines of running ``emoscope train`` processes (timings would be meaningless). A run paused with
    ``kill -STOP`` (resumed with ``kill -CONT``) uses no CPU and does not count."""
    try:
        out = subprocess.run(["pgrep", "-af", "emoscope train"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [line for line in out.splitlines() if "pgrep" not in line and str(os.getpid()) != line.split()[0]
            and not _stopped(line.split()[0])]


def _stopped(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False


def timeit(fn, min_time: float = 2.0, min_iters: int = 5) -> float:
    """Seconds per call (median of repeated timed blocks after a warm-up)."""
    fn()
    times, total, n = [], 0.0, 0
    while total < min_time or n < min_iters:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        times.append(dt)
        total += dt
        n += 1
    return float(np.median(times))


# ------------------------------------------------------------------------------------------------ sections
def untrained_checkpoint(spec: str, tmp: Path) -> Path:
    """``name:key=value,...`` (e.g. ``emovgg_m:width=24``) as a checkpoint of that registered architecture with
    its initial weights: speed does not depend on what a network has learnt, so an architecture can be timed
    before anyone trains it."""
    import torch

    from emoscope.cli.options import json_or_word
    from emoscope.labels import EMOTIONS
    from emoscope.models import create_model
    from emoscope.models.checkpoint import atomic_save, model_meta

    name, _, params = spec.partition(":")
    kwargs = {}
    for part in filter(None, params.split(",")):
        key, eq, value = part.partition("=")
        if not eq:
            raise SystemExit(f"--candidate {spec}: give name:key=value,... (e.g. emovgg_m:width=24)")
        kwargs[key] = json_or_word(value)  # as `emoscope train --set` reads a value
    torch.manual_seed(0)
    model = create_model(name, num_classes=len(EMOTIONS), **kwargs)
    path = tmp / (spec.replace(":", "_").replace("=", "").replace(",", "_") + ".pt")
    atomic_save({**model_meta(name, EMOTIONS, **kwargs), "model": model.state_dict()}, path)
    return path


def candidate_files(weights: Path, tmp: Path, data: Path) -> Path:
    """A candidate checkpoint copied into ``tmp`` with its fp32 and int8 ONNX files beside it, as shipped ones are
    (int8 calibrated on 500 FER-2013 training faces, stratified by class, as ``int8_accuracy.py`` does)."""
    import shutil

    from emoscope.datasets import load_dataset
    from emoscope.export import export_onnx, quantize_int8

    folder = tmp / f"candidate_{len(list(tmp.glob('candidate_*')))}"
    folder.mkdir()
    pt = folder / weights.name
    shutil.copy(weights, pt)
    fp32 = export_onnx(pt, pt.with_suffix(".onnx"))
    train = load_dataset(data).split("training")
    rng = np.random.default_rng(0)
    pick = np.concatenate([rng.permutation(np.flatnonzero(train.labels == c))[:72] for c in np.unique(train.labels)])
    quantize_int8(fp32, fp32.with_name(fp32.stem + ".int8.onnx"), train.images[pick[:500]])
    return pt


def bench_classifier(quick: bool, candidates: tuple[Path, ...] = (), tmp: Path | None = None,
                     data: Path | None = None) -> list[str]:
    """Crops/s of each shipped model and each backend, exactly the files a user gets; then any candidate
    checkpoints (``--candidate``), exported and quantised the same way, in the same run."""
    from emoscope.recognizer import Recognizer
    from emoscope.weights import SHIPPED_MODELS, shipped_weights

    faces = np.random.default_rng(1).integers(0, 256, (256, 48, 48), dtype=np.uint8)
    rows = ["| model | backend | batch 1 (crops/s) | batch 64 (crops/s) |", "|---|---|---:|---:|"]
    budget = 1.0 if quick else 3.0
    models: list[tuple[str, str, Path | None]] = []
    for role, stem in SHIPPED_MODELS.items():
        try:
            models.append((role, stem, shipped_weights(role)))
        except FileNotFoundError:
            models.append((role, stem, None))
    tmp = tmp or Path(tempfile.mkdtemp())
    for c in candidates:
        pt = c if c.is_file() else untrained_checkpoint(str(c), tmp)
        label = str(c) if c.is_file() else f"{c} (untrained)"
        models.append(("candidate", label, candidate_files(pt, tmp, data or Path("."))))
    for role, stem, pt in models:
        if pt is None:
            rows.append(f"| {role} ({stem}) | not installed | | |")
            continue
        for name, kw in [("PyTorch fp32", {"weights": pt, "backend": "torch"}),
                         ("ONNX Runtime fp32", {"weights": pt, "backend": "onnx"}),
                         ("ONNX Runtime int8 (static QDQ)", {"weights": pt, "backend": "onnx-int8"})]:
            try:
                rec = Recognizer(detector=None, **kw)
            except FileNotFoundError as exc:
                rows.append(f"| {role} | {name}: {exc} | | |")
                continue
            one = timeit(lambda r=rec: r.classify(faces[:1]), budget)
            batch = timeit(lambda r=rec: r.classify(faces[:64]), budget)
            rows.append(f"| {role} ({stem}) | {name} | {1 / one:,.1f} | {64 / batch:,.1f} |")
            print(rows[-1], flush=True)
    rows.append("")
    rows.append("Input: uint8 48 x 48 crops through `Recognizer.classify` (preprocessing and softmax included), "
                "the shipped files as installed"
                + (" and each candidate checkpoint exported the same way." if candidates else "."))
    return rows


def detector_frame() -> np.ndarray:
    """A 640 x 480 frame with two copies of the sample face (one mirrored)."""
    frame = np.full((480, 640, 3), 100, np.uint8)
    face = cv2.resize(astronaut_bgr()[20:240, 110:340], (180, 172))
    frame[60:232, 60:240] = face
    frame[250:422, 380:560] = face[:, ::-1]
    return frame


def bench_detector(quick: bool) -> list[str]:
    from emoscope.faces import BlazeFaceDetector, HaarDetector

    frame = detector_frame()
    detectors = [("BlazeFace full + short range (default), ONNX Runtime", BlazeFaceDetector(runtime="onnxruntime")),
                 ("BlazeFace full + short range, OpenCV DNN", BlazeFaceDetector(runtime="opencv")),
                 ("BlazeFace full range, ONNX Runtime", BlazeFaceDetector("full", runtime="onnxruntime")),
                 ("BlazeFace full range, OpenCV DNN", BlazeFaceDetector("full", runtime="opencv")),
                 ("BlazeFace short range, ONNX Runtime", BlazeFaceDetector("short", runtime="onnxruntime")),
                 ("Haar cascade + eye cascade", HaarDetector()),
                 ("Haar cascade, no eyes", HaarDetector(eyes=False))]
    try:
        import dlib

        hog = dlib.get_frontal_face_detector()

        class _Hog:
            name = "dlib-hog"

            def detect(self, img):
                return hog(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), 0)

        detectors.append(("dlib HOG (no upsampling)", _Hog()))
    except ImportError:
        pass
    rows = ["| detector | ms per 640x480 frame | faces found (of 2) |", "|---|---:|---:|"]
    for name, det in detectors:
        sec = timeit(lambda d=det: d.detect(frame), 1.0 if quick else 3.0)
        rows.append(f"| {name} | {1000 * sec:.1f} | {len(det.detect(frame))} |")
        print(rows[-1], flush=True)
    photo, _ = group_photo()
    rows += ["", "Small faces in a big picture: a 1920 x 1080 picture with eight 60-px faces (the sample face).", "",
             "| detector | ms per picture | faces found (of 8) |", "|---|---:|---:|"]
    for name, det in (("BlazeFace, tiles (default)", BlazeFaceDetector()),
                      ("BlazeFace, no tiles (`blazeface-fast`)", BlazeFaceDetector(tile_side=None)),
                      ("Haar cascade + eye cascade", HaarDetector())):
        sec = timeit(lambda d=det: d.detect(photo), 1.0 if quick else 3.0)
        rows.append(f"| {name} | {1000 * sec:.1f} | {len(det.detect(photo))} |")
        print(rows[-1], flush=True)
    return rows


def bench_photos(quick: bool) -> list[str]:
    """What a still picture costs end to end with each TTA mode (what ``emoscope predict --tta`` changes)."""
    from emoscope.recognizer import Recognizer

    frame = detector_frame()
    rows = ["| model | --tta | ms per picture (2 faces) | x the cost without TTA |", "|---|---|---:|---:|"]
    for role in ("default", "fast"):
        base = None
        for tta in ("none", "flip", "crops"):
            rec = Recognizer(weights=role, tta=tta)
            assert len(rec.predict(frame)) == 2
            sec = timeit(lambda r=rec: r.predict(frame), 1.0 if quick else 3.0)
            base = base or sec
            rows.append(f"| {role} ({rec.backend_name}) | {tta} | {1000 * sec:.1f} | {sec / base:.2f} |")
            print(rows[-1], flush=True)
    rows += ["", "The default detector (BlazeFace, auto backend); the same frame as the detector section."]
    return rows


def make_video(path: Path, frames: int, faces: int, fps: float = 25.0, size=(640, 480)) -> Path:
    """A synthetic video: ``faces`` copies of the sample face drifting around a plain background."""
    w, h = size
    face = cv2.resize(astronaut_bgr()[20:240, 110:340], (200, 191))  # the face itself is ~90 px wide
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    starts = [(50, 30), (390, 50), (210, 265)][:faces]
    for i in range(frames):
        fr = np.full((h, w, 3), 95, np.uint8)
        for k, (x0, y0) in enumerate(starts):
            x = int(x0 + 40 * np.sin(i / 40 + k))
            y = int(y0 + 20 * np.cos(i / 50 + k))
            patch = face if k % 2 == 0 else face[:, ::-1]
            fr[y : y + 191, x : x + 200] = patch
        writer.write(fr)
    writer.release()
    return path


_CHILD = (
    "import resource, sys\n"
    "from emoscope.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def _run_cli(args: list[str]) -> tuple[dict, float]:
    """Run ``emoscope video ... --json`` in a fresh process; returns its report and its own peak RSS in MiB."""
    cmd = [sys.executable, "-c", _CHILD, "video", *args, "--json", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"emoscope video {' '.join(args)} failed: {proc.stderr[-2000:]}")
    peak = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB")]
    return json.loads(proc.stdout), (peak[-1] / 1024.0 if peak else float("nan"))


def bench_video(tmp: Path, quick: bool) -> list[str]:
    from emoscope.weights import SHIPPED_MODELS, WEIGHTS_DIR

    n = 100 if quick else 250
    rows = ["| faces | model | backend | frames/s (whole pipeline, annotated mp4 written) |", "|---:|---|---|---:|"]
    runs = [("default", "torch"), ("default", "auto"), ("fast", "auto")]
    for faces in (1, 2, 3):
        video = make_video(tmp / f"faces{faces}.mp4", n, faces)
        for role, backend in runs:
            if not (WEIGHTS_DIR / f"{SHIPPED_MODELS[role]}.pt").exists():
                continue
            rep, _ = _run_cli([str(video), "--weights", role, "--backend", backend, "--out", str(tmp / "out.mp4")])
            found = len(rep["summary"]["tracks"])
            rows.append(f"| {faces} | {role} | {backend} | {rep['processing_fps']:.1f} (tracks found: {found}) |")
            print(rows[-1], flush=True)
    rows.append("")
    rows.append(f"{n} frames of 640 x 480 per run; default detector (BlazeFace full + short); decoding, detection, "
                "classification, tracking, drawing and mp4 encoding included. `auto` picks the shipped int8 "
                "ONNX file when there is one.")
    return rows


def bench_memory(tmp: Path, quick: bool) -> list[str]:
    fps = 10.0
    rows = ["| model | video length | frames | peak RSS of `emoscope video` (MiB) | frames/s |",
            "|---|---|---:|---:|---:|"]
    for minutes in ((0.2, 1) if quick else (1, 10)):
        frames = int(minutes * 60 * fps)
        video = make_video(tmp / f"long{minutes}.mp4", frames, 2, fps=fps, size=(640, 480))
        for model in ("default", "fast"):
            rep, peak = _run_cli([str(video), "--weights", model, "--out", str(tmp / "long_out.mp4"),
                                  "--csv", str(tmp / "long.csv"), "--timeline", str(tmp / "long.png")])
            rows.append(f"| {model} | {minutes:g} min at {fps:g} fps | {rep['frames']} | {peak:.0f} | "
                        f"{rep['processing_fps']:.1f} |")
            print(rows[-1], flush=True)
        video.unlink()
    rows.append("")
    rows.append("Two faces, 640 x 480, with --out, --csv and --timeline; peak RSS is the ru_maxrss of the process "
                "running the command. Equal values for both lengths mean memory does not grow with the video.")
    return rows


def bench_fer(python: Path, tmp: Path, data_dir: Path | None, quick: bool) -> list[str]:
    """fer's own pipeline (``benchmarks/fer_pipeline.py`` in fer's environment) on the same inputs as ours."""
    if not python.exists():
        msg = (f"skipped: no fer environment at {python} (see this script's docstring to make one; "
               "pip's `fer` pulls TensorFlow, so it lives in its own venv)")
        print(msg)
        return [msg]

    def fer(*args: str) -> dict:
        proc = subprocess.run([str(python), str(HERE / "fer_pipeline.py"), *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"fer_pipeline.py {' '.join(args)} failed: {proc.stderr[-1500:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    budget = "1" if quick else "3"
    rows = ["| figure | fer | note |", "|---|---:|---|"]
    res = fer("classifier", budget)
    rows.append(f"| classifier, batch 1 | {res['batch1_crops_per_s']:,.0f} crops/s | "
                "int8 mini-Xception, 64 x 64 input |")
    rows.append(f"| classifier, 64 crops | {res['batch64_crops_per_s']:,.0f} crops/s | fer invokes once per face |")
    print(*rows[-2:], sep="\n", flush=True)
    np.save(tmp / "frame.npy", detector_frame())
    res = fer("detector", str(tmp / "frame.npy"), budget)
    rows.append(f"| detector (Haar, fer's settings) | {res['ms_per_frame']:.1f} ms per 640x480 frame | "
                f"faces found: {res['faces']} of 2 |")
    print(rows[-1], flush=True)
    if data_dir and data_dir.exists():
        from emoscope.datasets import load_dataset

        private = load_dataset(data_dir, progress=False).split("privatetest")
        np.savez(tmp / "private.npz", images=private.images, labels=private.labels)
        res = fer("accuracy", str(tmp / "private.npz"))
        rows.append(f"| FER-2013 PrivateTest accuracy / macro-F1 | {res['accuracy']:.4f} / {res['macro_f1']:.3f} | "
                    f"{res['n']} faces, no TTA |")
        print(rows[-1], flush=True)
    n = 100 if quick else 250
    for faces in (1, 2, 3):
        res = fer("video", str(make_video(tmp / f"fer_faces{faces}.mp4", n, faces)), str(tmp / "fer_out.mp4"))
        rows.append(f"| video, {faces} face(s) | {res['fps']:.1f} frames/s | faces found per frame: "
                    f"{res['faces_per_frame']:.2f} |")
        print(rows[-1], flush=True)
    fps = 10.0
    for minutes in ((0.2, 1) if quick else (1, 10)):
        video = make_video(tmp / f"fer_long{minutes}.mp4", int(minutes * 60 * fps), 2, fps=fps)
        res = fer("video", str(video), str(tmp / "fer_long_out.mp4"))
        rows.append(f"| peak memory, {minutes:g}-min video | {res['peak_rss_mib']:.0f} MiB | {res['frames']} frames, "
                    f"{res['fps']:.1f} frames/s |")
        print(rows[-1], flush=True)
        video.unlink()
    rows += ["", "Same inputs as the sections above (the detector frame, the generated videos, FER-2013 PrivateTest). "
             "fer 25.10 runs its default path (Haar cascade + int8 TFLite model) on `ai-edge-litert`, the "
             "TFLite runtime, because TensorFlow does not install here; its video loop is decode -> "
             "`detect_emotions` -> boxes and labels drawn -> mp4 written, like ours."]
    return rows


def machine() -> str:
    import onnxruntime
    import torch

    return (f"{cpu_name()}, {os.cpu_count()} logical cores; Python {platform.python_version()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}, "
            f"OpenCV {cv2.__version__}")


def main() -> None:
    ap = argparse.ArgumentParser(description="Speed benchmarks -> benchmarks/SPEED.md")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "fer2013",
                    help="FER-2013 folder (int8 calibration faces)")
    ap.add_argument("--fer-python", type=Path, default=Path(os.environ.get(
        "EMOSCOPE_FER_PYTHON", HERE / ".fer-venv" / "bin" / "python")))
    ap.add_argument("--out", type=Path, default=HERE / "SPEED.md")
    ap.add_argument("--quick", action="store_true", help="shorter timings and videos (a smoke run)")
    ap.add_argument("--force", action="store_true", help="run even while a training run uses the CPU")
    ap.add_argument("--candidate", type=Path, action="append", default=[], metavar="PT",
                    help="also time this checkpoint in the classifier section (exported to ONNX fp32 and int8 "
                         "here, as the shipped files are), or an untrained architecture given as "
                         "name:key=value,... (e.g. emovgg_m:width=24); repeatable")
    args = ap.parse_args()
    missing = [str(c) for c in args.candidate if not c.is_file() and ":" not in str(c)]
    if missing:
        ap.error(f"--candidate: no such checkpoint: {', '.join(missing)}")
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {bad}; choose from {SECTIONS}")
    busy = busy_training()
    if busy and not args.force:
        sys.exit(f"a training run is using the CPU ({busy[0][:100]}); timings would be wrong. Wait or use --force.")
    command = " ".join(["python", "benchmarks/" + Path(__file__).name, *sys.argv[1:]])
    lines = ["# Speed of the real-world pipeline", "", f"Command: `{command}`", "", f"Machine: {machine()}", ""]
    if busy:
        lines += ["**Warning: measured while a training run was using the CPU; numbers are pessimistic.**", ""]
    sections: dict[str, list[str]] = {}
    titles = {"classifier": "Classifier throughput", "detector": "Face detectors", "photos": "Still pictures",
              "video": "End-to-end `emoscope video`", "memory": "Memory on long videos",
              "fer": "The `fer` package (for comparison)"}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for section in only:
            print(f"== {section}", flush=True)
            t0 = time.perf_counter()
            if section == "classifier":
                body = bench_classifier(args.quick, tuple(args.candidate), tmp, args.data)
            elif section == "detector":
                body = bench_detector(args.quick)
            elif section == "photos":
                body = bench_photos(args.quick)
            elif section == "video":
                body = bench_video(tmp, args.quick)
            elif section == "memory":
                body = bench_memory(tmp, args.quick)
            else:
                body = bench_fer(args.fer_python, tmp, args.data, args.quick)
            sections[titles[section]] = ["", *body, "", f"_({time.perf_counter() - t0:.0f} s)_", ""]
    if set(only) != set(SECTIONS) and args.out.exists():  # a partial run replaces its sections, keeps the rest
        old = _split_sections(args.out.read_text())
        note = f"_(updated by `{command}`; machine: {machine()})_" + (
            " **Measured while a training run was using the CPU.**" if busy else "")
        for title, body in sections.items():
            old[title] = [*body[:-1], note, ""]
        lines = old.pop("")
        sections = old
    for title, body in sections.items():
        lines += [f"## {title}", *body]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


def _split_sections(text: str) -> dict[str, list[str]]:
    """A markdown file as {"": lines before the first ``## ``, title: the lines under it}, in order."""
    out: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.split("\n"):
        if line.startswith("## "):
            current = line[3:]
            out[current] = []
        else:
            out[current].append(line)
    return out


if __name__ == "__main__":
    main()
