"""Emotions for large collections of photos and videos: resumable, in one process or on a Ray cluster.

``run_batch(sources, out_dir)`` expands the sources (folders, globs, files, and text or Parquet files that list
paths), splits the inputs into chunks (up to ``chunk_size`` photos, or one video, per chunk), runs each chunk
through one :class:`~emoscope.recognizer.Recognizer` per worker and writes, per chunk:

- ``DIR/part-<chunk>.parquet``: one row per face (:func:`face_schema`): ``source``, ``frame``, ``time_s``
  (null for photos), ``face`` (numbered from 1, left to right), ``x``, ``y``, ``w``, ``h``, ``detector_score``,
  ``label`` and one column per emotion. ``pandas.read_parquet(DIR)`` reads all parts as one table.
- ``DIR/_inputs/part-<chunk>.parquet``: one row per input (:data:`INPUT_SCHEMA`): ``status`` ``ok``,
  ``no_face`` or ``error`` with its ``message``. Readers of ``DIR`` skip it (pyarrow ignores ``_`` names).

**Exactly once.** Each file is written to a hidden temporary name and renamed into place; the face file goes
first and the inputs file, renamed second, is the chunk's commit. A rerun of the same command deletes face files
whose inputs file never arrived (a kill between the two renames) and processes only inputs no inputs file
lists, so after any number of kills and reruns each input's rows are in ``DIR`` once. A chunk's name is a hash
of its sources, so a chunk that Ray retries after a worker died overwrites its own files instead of adding a
second copy.

Engines: ``"local"`` runs the chunks in this process; ``"ray"`` runs them with Ray Data on an actor pool (one
model load per actor), on a local cluster that ``ray.init()`` starts or on an existing one (``address``). On a
cluster of several machines, ``DIR`` and the inputs must be on storage every machine sees at the same path.
A bad file becomes an error row; it never stops the run.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import resource
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .datasets.images import IMAGE_EXTENSIONS
from .errors import EmoscopeError
from .labels import EMOTIONS

ENGINES = ("local", "ray")
#: Files that list inputs, one path per line (text) or in a ``path`` column (Parquet).
LIST_SUFFIXES = {".txt", ".list", ".lst"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
OPTIONS_FILE = "_batch.json"
INPUTS_DIR = "_inputs"
#: Photos decoded and sent through the detector together (bounds memory; the classifier batches all their faces).
PHOTO_GROUP = 16
#: Sampled video frames sent through the recognizer together.
FRAME_GROUP = 8


class BatchError(EmoscopeError):
    """A batch run cannot start: no inputs, bad options, an output folder made with other options."""


@dataclass(frozen=True)
class BatchOptions:
    """What decides a run's rows; recorded in ``DIR/_batch.json`` so a resume uses the same settings.

    Videos are sampled every ``every`` frames, or ``fps`` frames per second of video (default: 1 per second).
    ``threads`` caps ONNX Runtime's threads per worker (None: its default).
    """

    weights: str | None = None
    detector: str | None = "auto"
    backend: str = "auto"
    tta: str = "none"
    margin: float | None = None
    every: int | None = None
    fps: float | None = None
    max_frames: int | None = None
    threads: int | None = None
    balance: float = 0.0

    def __post_init__(self) -> None:
        from .recognizer import check_options

        if isinstance(self.detector, str) and self.detector.lower() == "none":
            object.__setattr__(self, "detector", None)  # one spelling, so a resume compares equal
        # the recognizer's one validation path, before any model loads
        check_options(backend=self.backend, detector=self.detector, tta=self.tta, margin=self.margin,
                      threads=self.threads, balance=self.balance)
        if self.every is not None and self.fps is not None:
            raise BatchError("give --every or --fps, not both")
        if self.every is not None and self.every < 1:
            raise BatchError(f"--every must be a whole number of frames >= 1, not {self.every}")
        if self.fps is not None and not (self.fps > 0 and np.isfinite(self.fps)):
            raise BatchError(f"--fps must be a number of frames per second above 0, not {self.fps}")
        if self.max_frames is not None and self.max_frames < 1:
            raise BatchError(f"--max-frames must be >= 1, not {self.max_frames}")

    def recorded(self) -> dict[str, Any]:
        """The settings that change the output (threads do not)."""
        d = asdict(self)
        d.pop("threads")
        return d

    def make_recognizer(self):  # -> Recognizer
        from .recognizer import Recognizer

        return Recognizer(weights=self.weights, detector=self.detector, backend=self.backend, tta=self.tta,
                          margin=self.margin, threads=self.threads, balance=self.balance)


# ------------------------------------------------------------------------------------------------ schema


def face_schema(classes: Sequence[str] = EMOTIONS):  # -> pyarrow.Schema
    """Columns of the per-face table (one float32 probability column per class)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("source", pa.string()),
            ("frame", pa.int64()),
            ("time_s", pa.float64()),
            ("face", pa.int32()),
            ("x", pa.int32()),
            ("y", pa.int32()),
            ("w", pa.int32()),
            ("h", pa.int32()),
            ("detector_score", pa.float32()),
            ("label", pa.string()),
            *((c, pa.float32()) for c in classes),
        ]
    )


def _input_schema():  # -> pyarrow.Schema
    import pyarrow as pa

    return pa.schema(
        [
            ("source", pa.string()),
            ("kind", pa.string()),  # photo, video, unknown
            ("status", pa.string()),  # ok, no_face, error
            ("message", pa.string()),
            ("faces", pa.int32()),
            ("frames", pa.int32()),  # frames analysed (1 for a photo)
            ("seconds", pa.float32()),  # worker time spent on this input
            ("chunk", pa.string()),
            ("worker", pa.string()),  # host:pid
            ("peak_rss_mb", pa.float32()),  # the worker's peak resident memory after this chunk
            ("worker_cpu_s", pa.float64()),  # the worker process's CPU time (user + system) so far, at the commit
        ]
    )


@dataclass
class InputResult:
    """One row of ``DIR/_inputs``."""

    source: str
    kind: str
    status: str
    message: str = ""
    faces: int = 0
    frames: int = 0
    seconds: float = 0.0
    chunk: str = ""
    worker: str = ""
    peak_rss_mb: float = 0.0
    worker_cpu_s: float = 0.0


# ------------------------------------------------------------------------------------------------ inputs


def input_kind(path: str) -> str:
    """``photo`` or ``video`` by file name (``.gif`` counts as a photo); ``unknown`` otherwise (tried as both)."""
    from .video import VIDEO_EXTENSIONS

    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "photo"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return "unknown"


def _media_suffixes() -> set[str]:
    from .video import VIDEO_EXTENSIONS

    return set(IMAGE_EXTENSIONS) | set(VIDEO_EXTENSIONS)


def _read_list(path: Path) -> list[str]:
    """Paths listed in a text file (one per line, ``#`` comments) or a Parquet file (a ``path`` or ``source``
    column, or its only text column); relative paths are taken from the list file's folder."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise BatchError(f"{path}: cannot read it as a Parquet list of paths: {exc}") from None
        names = [n for n in ("path", "source") if n in table.column_names]
        if not names:
            texts = [f.name for f in table.schema if str(f.type) in ("string", "large_string")]
            if len(texts) != 1:
                raise BatchError(f"{path}: a Parquet list of inputs needs a 'path' column (columns: "
                                 f"{', '.join(table.column_names) or 'none'})")
            names = texts
        entries = [str(v) for v in table.column(names[0]).to_pylist() if v]
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BatchError(f"{path}: cannot read the list of inputs: {exc}") from None
        entries = [s.strip() for s in text.splitlines() if s.strip() and not s.lstrip().startswith("#")]
    base = path.parent
    return [e if os.path.isabs(e) or "://" in e else str(base / e) for e in entries]


def expand_sources(items: Iterable[str | os.PathLike]) -> tuple[list[str], list[InputResult]]:
    """Input files (absolute paths, in order, each once) and error rows for items that match nothing.

    An item is a file (photo, video, or a ``.txt``/``.list``/``.parquet`` list of paths), a folder (searched
    recursively for photos and videos) or a glob pattern (``**`` recurses).
    """
    media = _media_suffixes()
    files: list[str] = []
    failures: list[InputResult] = []

    def add(item: str, from_list: bool) -> None:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(q) for q in p.rglob("*") if q.is_file() and q.suffix.lower() in media)
            if not found:
                failures.append(InputResult(item, "unknown", "error", "folder holds no photo or video files"))
            files.extend(found)
        elif p.is_file():
            if not from_list and p.suffix.lower() in LIST_SUFFIXES | PARQUET_SUFFIXES:
                for entry in _read_list(p):
                    add(entry, True)
            else:
                files.append(item)
        elif any(ch in item for ch in "*?["):
            found = sorted(q for q in glob.glob(item, recursive=True) if Path(q).is_file())
            if not found:
                failures.append(InputResult(item, "unknown", "error", "pattern matches no file"))
            files.extend(found)
        else:
            failures.append(InputResult(item, "unknown", "error", "no such file or folder"))

    for item in items:
        add(os.fspath(item), False)
    seen: set[str] = set()
    unique = []
    for f in files:
        a = os.path.abspath(f)
        if a not in seen:
            seen.add(a)
            unique.append(a)
    return unique, failures


@dataclass(frozen=True)
class Chunk:
    """Inputs processed and committed together; ``id`` is a hash of its sources (stable across retries)."""

    id: str
    sources: tuple[str, ...]


def make_chunks(sources: Sequence[str], chunk_size: int = 32) -> list[Chunk]:
    """Photos in chunks of up to ``chunk_size``, each video (or unknown file) in a chunk of its own, in order."""
    if chunk_size < 1:
        raise BatchError(f"chunk size must be >= 1, not {chunk_size}")
    chunks: list[Chunk] = []
    photos: list[str] = []

    def close(group: Sequence[str]) -> None:
        if group:
            digest = hashlib.sha1("\n".join(group).encode()).hexdigest()[:20]
            chunks.append(Chunk(digest, tuple(group)))

    for s in sources:
        if input_kind(s) == "photo":
            photos.append(s)
            if len(photos) == chunk_size:
                close(photos)
                photos = []
        else:
            close(photos)
            photos = []
            close([s])
    close(photos)
    return chunks


# ------------------------------------------------------------------------------------------- output folder


def _atomic_write_table(table, path: Path) -> None:
    """Write a Parquet file under a hidden temporary name, fsync it, and rename it into place."""
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def part_name(chunk_id: str) -> str:
    return f"part-{chunk_id}.parquet"


def prepare_output(out_dir: str | os.PathLike, options: BatchOptions) -> tuple[Path, set[str]]:
    """Create or reopen ``out_dir`` for ``options``; returns it and the sources already done.

    Reopening removes what a killed run left half-way: temporary files, and face files whose chunk was never
    committed (no inputs file). A folder made with other options is refused rather than mixed.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BatchError(f"--out {out} is a file; give a folder (it is created if missing)")
    recorded = {"format": 1, **options.recorded()}
    opt_path = out / OPTIONS_FILE
    try:
        (out / INPUTS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None
    if opt_path.is_file():
        try:
            before = json.loads(opt_path.read_text())
        except (OSError, ValueError) as exc:
            raise BatchError(f"{opt_path}: unreadable ({exc}); remove it or use another --out") from None
        before.setdefault("balance", 0.0)  # folders written before --balance existed read as trained
        if before != recorded:
            diff = ", ".join(f"{k}: {before.get(k)!r} -> {v!r}" for k, v in recorded.items() if before.get(k) != v)
            raise BatchError(f"{out} holds results made with other options ({diff}); rerun with the same options "
                             "to resume, or give another --out")
    else:
        existing = [p for p in out.iterdir() if p.name != INPUTS_DIR]
        if existing:
            raise BatchError(f"--out {out} is not empty and was not made by emoscope batch; give an empty or a new "
                             "folder")
        tmp = opt_path.with_name("." + OPTIONS_FILE + ".tmp")
        tmp.write_text(json.dumps(recorded, indent=1) + "\n")
        os.replace(tmp, opt_path)
    committed = {p.name for p in (out / INPUTS_DIR).glob("part-*.parquet")}
    for d in (out, out / INPUTS_DIR):
        for p in d.glob(".part-*.tmp"):
            p.unlink(missing_ok=True)
    for p in out.glob("part-*.parquet"):
        if p.name not in committed:
            p.unlink(missing_ok=True)  # faces of a chunk killed before its commit: it runs again
    return out, done_sources(out)


def done_sources(out_dir: str | os.PathLike) -> set[str]:
    """Sources that have a row in ``DIR/_inputs`` (their chunk committed)."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for p in sorted((Path(out_dir) / INPUTS_DIR).glob("part-*.parquet")):
        done.update(pq.read_table(p, columns=["source"]).column("source").to_pylist())
    return done


def read_faces(out_dir: str | os.PathLike):  # -> pandas.DataFrame
    """All face rows of an output folder as one DataFrame."""
    import pandas as pd

    parts = sorted(Path(out_dir).glob("part-*.parquet"))
    if not parts:
        return pd.DataFrame(columns=face_schema().names)
    return pd.read_parquet(out_dir)


def read_inputs(out_dir: str | os.PathLike):  # -> pandas.DataFrame
    """All input rows (status per input) of an output folder as one DataFrame."""
    import pandas as pd

    return pd.read_parquet(Path(out_dir) / INPUTS_DIR)


# ------------------------------------------------------------------------------------------------ workers


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, EmoscopeError) else f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ChunkProcessor:
    """One worker: loads the recognizer once and turns chunks into committed Parquet files."""

    def __init__(self, out_dir: str | os.PathLike, options: BatchOptions) -> None:
        self.out = Path(out_dir)
        self.options = options
        self.recognizer = options.make_recognizer()
        self.classes = tuple(self.recognizer.classes)
        self.schema = face_schema(self.classes)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    # ---- one chunk
    def process(self, chunk: Chunk) -> list[InputResult]:
        """Analyse a chunk, write its faces and then its inputs file (the commit); returns its input rows."""
        faces: list[dict[str, Any]] = []
        results: dict[str, InputResult] = {}
        photos = [s for s in chunk.sources if input_kind(s) == "photo"]
        for i in range(0, len(photos), PHOTO_GROUP):
            self._photos(photos[i : i + PHOTO_GROUP], faces, results)
        for s in chunk.sources:
            if s not in results:
                self._video_or_unknown(s, faces, results)
        if faces:
            cols = {name: [row[name] for row in faces] for name in self.schema.names}
            import pyarrow as pa

            _atomic_write_table(pa.table(cols, schema=self.schema), self.out / part_name(chunk.id))
        rows = [results[s] for s in chunk.sources]
        rss = _peak_rss_mb()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        for r in rows:
            r.chunk, r.worker, r.peak_rss_mb = chunk.id, self.worker, rss
            r.worker_cpu_s = usage.ru_utime + usage.ru_stime
        write_inputs(self.out, chunk.id, rows)
        return rows

    def _face_rows(self, source: str, frame: int, t: float | None, found: list) -> list[dict[str, Any]]:
        out = []
        for k, f in enumerate(found, start=1):
            x, y, w, h = (int(v) for v in f.box)
            row = {"source": source, "frame": frame, "time_s": t, "face": k, "x": x, "y": y, "w": w, "h": h,
                   "detector_score": float(f.score), "label": f.label}
            row.update({c: float(f.probs[c]) for c in self.classes})
            out.append(row)
        return out

    def _photos(self, paths: Sequence[str], faces: list, results: dict[str, InputResult]) -> None:
        from .recognizer import load_image

        loaded: list[tuple[str, np.ndarray, float]] = []
        for p in paths:
            t0 = time.perf_counter()
            try:
                loaded.append((p, load_image(p), time.perf_counter() - t0))
            except Exception as exc:  # any unreadable file is that input's error row
                results[p] = InputResult(p, "photo", "error", _message(exc), seconds=time.perf_counter() - t0)
        if not loaded:
            return
        t0 = time.perf_counter()
        try:
            found_all = self.recognizer.predict_arrays([im for _, im, _ in loaded])
        except Exception:  # one picture broke the batch: find which, one by one
            found_all = []
            for _, im, _ in loaded:
                try:
                    found_all.append(self.recognizer.predict_arrays([im])[0])
                except Exception as exc:
                    found_all.append(exc)
        share = (time.perf_counter() - t0) / len(loaded)
        for (p, _, load_s), found in zip(loaded, found_all):
            if isinstance(found, Exception):
                results[p] = InputResult(p, "photo", "error", _message(found), seconds=load_s + share)
                continue
            faces.extend(self._face_rows(p, 0, None, found))
            status = "ok" if found else "no_face"
            results[p] = InputResult(p, "photo", status, "", len(found), 1, load_s + share)

    def _video_or_unknown(self, path: str, faces: list, results: dict[str, InputResult]) -> None:
        kind = input_kind(path)
        t0 = time.perf_counter()
        if kind == "unknown":  # try it as a photo first, then as a video
            from .recognizer import load_image

            try:
                image = load_image(path)
            except Exception:
                image = None
            if image is not None:
                found = self.recognizer.predict_arrays([image])[0]
                faces.extend(self._face_rows(path, 0, None, found))
                results[path] = InputResult(path, "photo", "ok" if found else "no_face", "", len(found), 1,
                                            time.perf_counter() - t0)
                return
        rows: list[dict[str, Any]] = []
        try:
            n_frames, message = self._video(path, rows)
        except Exception as exc:
            results[path] = InputResult(path, kind, "error", _message(exc), seconds=time.perf_counter() - t0)
            return
        faces.extend(rows)
        n_faces = len(rows)
        if n_frames == 0:
            status, message = "error", message or "no readable frame"
        else:
            status = "ok" if n_faces else "no_face"
        results[path] = InputResult(path, "video", status, message, n_faces, n_frames, time.perf_counter() - t0)

    def _video(self, path: str, rows: list) -> tuple[int, str]:
        """Sampled frames of one video into ``rows``; returns (frames analysed, problems worth reporting)."""
        from .video import open_source

        opts = self.options
        n = 0
        group: list[tuple[int, float, np.ndarray]] = []

        def flush() -> None:
            found_all = self.recognizer.predict_arrays([im for _, _, im in group])
            for (index, t, _), found in zip(group, found_all):
                rows.extend(self._face_rows(path, index, round(float(t), 4), found))
            group.clear()

        with open_source(path) as src:
            step = 1.0 / opts.fps if opts.fps else None
            next_t = 0.0
            every = opts.every if opts.every else (None if step else max(1, round(src.fps)))
            for frame in src:
                if every is not None:
                    if frame.index % every:
                        continue
                else:
                    if frame.t + 1e-6 < next_t:
                        continue
                    next_t = (np.floor(frame.t / step + 1e-6) + 1) * step
                group.append((frame.index, frame.t, frame.image))
                n += 1
                if len(group) == FRAME_GROUP:
                    flush()
                if opts.max_frames is not None and n >= opts.max_frames:
                    break
            if group:
                flush()
            problems = "; ".join(src.problems[:3])
            if src.skipped:
                problems = f"{src.skipped} unreadable frames skipped" + (f" ({problems})" if problems else "")
        return n, problems


def write_inputs(out_dir: Path, chunk_id: str, rows: Sequence[InputResult]) -> None:
    """Commit a chunk: its rows in ``DIR/_inputs`` (written after its face file)."""
    import pyarrow as pa

    schema = _input_schema()
    cols = {name: [getattr(r, name) for r in rows] for name in schema.names}
    _atomic_write_table(pa.table(cols, schema=schema), Path(out_dir) / INPUTS_DIR / part_name(chunk_id))


# ------------------------------------------------------------------------------------------------ engines


@dataclass
class BatchReport:
    """What one run did; ``skipped`` inputs were done by an earlier run of the same command."""

    out_dir: str
    engine: str
    workers: int
    inputs: int = 0
    skipped: int = 0
    processed: int = 0
    status: dict[str, int] = field(default_factory=lambda: {"ok": 0, "no_face": 0, "error": 0})
    faces: int = 0
    frames: int = 0
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)  # first few (source, message)

    def add(self, rows: Iterable[InputResult]) -> None:
        for r in rows:
            self.processed += 1
            self.status[r.status] = self.status.get(r.status, 0) + 1
            self.faces += r.faces
            self.frames += r.frames
            if r.status == "error" and len(self.errors) < 20:
                self.errors.append((r.source, r.message))

    @property
    def inputs_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def format(self) -> str:
        s = self.status
        return (f"{self.processed} inputs in {self.seconds:.1f} s ({self.inputs_per_s:.1f}/s, {self.engine}, "
                f"{self.workers} worker{'s' * (self.workers != 1)}): {s.get('ok', 0)} ok, {s.get('no_face', 0)} "
                f"without a face, {s.get('error', 0)} errors; {self.faces} faces"
                + (f"; {self.skipped} done before" if self.skipped else "") + f" -> {self.out_dir}")


def run_batch(
    sources: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: BatchOptions | None = None,
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    chunk_size: int = 32,
    progress: bool | None = None,
    on_chunk: Callable[[Sequence[InputResult]], None] | None = None,
) -> BatchReport:
    """Analyse every input of ``sources`` not yet done in ``out_dir`` (see the module doc).

    ``workers``: Ray actors (default: one per CPU of the cluster); the local engine always uses one.
    ``progress``: a bar with inputs/s and ETA on stderr (None: only on a terminal). ``on_chunk`` is called with
    each committed chunk's rows (tests and benchmarks use it).
    """
    options = options or BatchOptions()
    if engine not in ENGINES:
        raise BatchError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if workers is not None and workers < 1:
        raise BatchError(f"--workers must be >= 1, not {workers}")
    from .weights import resolve_weights

    weights = resolve_weights(options.weights)
    if not weights.is_file():  # checked here: a Ray actor's failure to load would read far worse
        raise BatchError(f"--weights {weights}: no such file (give a .pt or .onnx file, or a shipped model name)")
    files, failures = expand_sources(sources)
    if not files and not failures:
        raise BatchError("no inputs: give photo or video files, folders, globs, or a list file")
    out, done = prepare_output(out_dir, options)
    todo = [f for f in files if f not in done]
    failures = [r for r in failures if r.source not in done]
    report = BatchReport(str(out), engine, 1 if engine == "local" else 0, inputs=len(files) + len(failures),
                         skipped=len(files) - len(todo))
    if failures:  # items that matched nothing: committed at once, as error rows
        fid = "missing-" + hashlib.sha1("\n".join(r.source for r in failures).encode()).hexdigest()[:12]
        for r in failures:
            r.chunk = fid
        write_inputs(out, fid, failures)
        report.add(failures)
    chunks = make_chunks(todo, chunk_size)
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="input", desc="batch", file=sys.stderr, dynamic_ncols=True,
               disable=(not progress) if progress is not None else None, smoothing=0.1)
    t0 = time.perf_counter()
    try:
        if not chunks:  # everything was done before: nothing to start (not even Ray)
            results: Iterable[list[InputResult]] = []
        elif engine == "local":
            results = _run_local(out, options, chunks)
        else:
            results = _run_ray(out, options, chunks, workers, address, report)
        for rows in results:
            report.add(rows)
            bar.update(len(rows))
            if on_chunk is not None:
                on_chunk(rows)
    finally:
        bar.close()
    report.seconds = time.perf_counter() - t0
    return report


def _run_local(out: Path, options: BatchOptions, chunks: Sequence[Chunk]) -> Iterator[list[InputResult]]:
    if not chunks:
        return
    proc = ChunkProcessor(out, options)
    for chunk in chunks:
        yield proc.process(chunk)


class _RayChunkWorker:
    """Ray Data actor: one recognizer per actor; each call gets one chunk (a row) and commits it."""

    def __init__(self, out_dir: str, options: dict[str, Any]) -> None:
        self.proc = ChunkProcessor(out_dir, BatchOptions(**options))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows: list[InputResult] = []
        for cid, sources in zip(batch["chunk"], batch["sources"]):
            rows += self.proc.process(Chunk(str(cid), tuple(str(s) for s in sources)))
        return {name: np.array([getattr(r, name) for r in rows], dtype=object) for name in _input_schema().names}


def _join_error(address: str | None, exc: BaseException) -> BatchError:
    """The one-line error for a cluster that could not be started or joined, with the likeliest fix."""
    if not address:
        return BatchError(f"cannot start a local Ray cluster: {_message(exc)}")
    hint = ""
    if not os.environ.get("RAY_AUTH_MODE"):  # Ray >= 2.59 starts clusters with token authentication by default
        hint = ("; if the cluster uses token authentication (the default of `ray start` since Ray 2.59), set "
                "RAY_AUTH_MODE=token here (the token is read from RAY_AUTH_TOKEN or ~/.ray/auth_token)")
    return BatchError(f"cannot join the Ray cluster at {address}: {_message(exc)}{hint}")


def _quiet_ray_data() -> None:
    """Ray Data's own progress bars and log lines off: our bar and report say the same once."""
    import logging

    import ray.data

    for name in ("ray.data", "ray.data._internal.execution.streaming_executor"):
        logging.getLogger(name).setLevel(logging.ERROR)  # after the import, which sets up Ray Data's logging
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def _run_ray(out: Path, options: BatchOptions, chunks: Sequence[Chunk], workers: int | None,
             address: str | None, report: BatchReport) -> Iterator[list[InputResult]]:
    try:
        import ray
    except ImportError:
        raise BatchError("--engine ray needs Ray: pip install 'emoscope[batch]'") from None
    import logging

    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # no C++ warnings about actor restarts on the console
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING,
                              "configure_logging": False}
        if address:
            kw["address"] = address
        else:  # a local cluster just for this run; the data it moves is small (chunk names and status rows)
            kw["object_store_memory"] = 256 * 2**20
        try:
            ray.init(**kw)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise _join_error(address, exc) from None
        started = True
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = workers or max(1, cpus)
        report.workers = n
        if not chunks:
            return
        opts = asdict(options)
        if opts["threads"] is None and not address:  # share this machine's cores between the actors
            opts["threads"] = max(1, (os.cpu_count() or 1) // n)
        _quiet_ray_data()
        items = [{"chunk": c.id, "sources": list(c.sources)} for c in chunks]
        ds = ray.data.from_items(items, override_num_blocks=min(len(items), 1000))  # about one chunk per block
        ds = ds.map_batches(
            _RayChunkWorker,
            fn_constructor_args=(str(out.resolve()), opts),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=n),
            num_cpus=max(0.01, min(1.0, cpus / n)),
        )  # fmt: skip
        names = _input_schema().names
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
                k = len(batch["source"])
                yield [InputResult(**{name: _plain(batch[name][i]) for name in names}) for i in range(k)]
        except ray.exceptions.RayError as exc:  # a worker could not start or died for good: one line, not Ray's dump
            lines = [s.strip() for s in str(exc).strip().splitlines() if s.strip()]
            raise BatchError(f"the Ray run stopped: {lines[-1] if lines else type(exc).__name__} (committed chunks "
                             "are kept; run the same command again to resume)") from None
    finally:
        if started:
            ray.shutdown()


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
