"""``emoscope batch``: sources, the Parquet layout, error rows, exactly-once resume after kills, and the Ray engine.

Inputs are generated here: skimage's astronaut (a real face the shipped detector finds), a flat gray picture (no
face), a corrupt JPEG and a short MP4. Most runs use the fast shipped model; the no-detector runs classify each
picture whole, which makes face counts exact and runs quick.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="the batch extra is not installed: pip install 'emoscope[batch]'")
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.dataset as pads  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from emoscope import batch as B  # noqa: E402
from emoscope.cli import main  # noqa: E402
from emoscope.labels import EMOTIONS  # noqa: E402
from emoscope.samples import astronaut_bgr  # noqa: E402

FACE_COLUMNS = ["source", "frame", "time_s", "face", "x", "y", "w", "h", "detector_score", "label", *EMOTIONS]
FAST = dict(weights="fast")
WHOLE = dict(weights="fast", detector=None)  # no detector: every picture is one face crop


def write_video(path: Path, frames: int = 15, fps: int = 5, size: int = 160) -> Path:
    face = cv2.resize(astronaut_bgr(), (size, size))
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    for _ in range(frames):
        w.write(face)
    w.release()
    return path


@pytest.fixture
def media(tmp_path) -> Path:
    """A folder with two face photos (one in a sub-folder), a face-less picture, a corrupt JPEG and a 3 s video."""
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    face = cv2.resize(astronaut_bgr(), (256, 256))
    cv2.imwrite(str(root / "a.jpg"), face)
    cv2.imwrite(str(root / "sub" / "b.png"), cv2.flip(face, 1))
    cv2.imwrite(str(root / "blank.png"), np.full((120, 160, 3), 128, np.uint8))
    (root / "bad.jpg").write_bytes(b"\xff\xd8 this is not a JPEG" * 20)
    write_video(root / "clip.mp4")
    (root / "notes.md").write_text("not media")  # ignored in folders
    return root


def photos(tmp_path: Path, n: int) -> list[str]:
    """n distinct small pictures (noise, so no detector needed: runs use detector=None)."""
    rng = np.random.default_rng(0)
    d = tmp_path / "photos"
    d.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        p = d / f"p{i:03d}.png"
        cv2.imwrite(str(p), rng.integers(0, 255, (40 + i % 7, 48, 3), dtype=np.uint8))
        paths.append(str(p))
    return paths


# ------------------------------------------------------------------------------------------------ sources


def test_sources_folders_globs_and_lists(media, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# inputs\n{media / 'a.jpg'}\n\nmedia/blank.png\n")
    table = tmp_path / "list.parquet"
    pq.write_table(pa.table({"path": [str(media / "clip.mp4"), str(media / "a.jpg")]}), table)
    files, failures = B.expand_sources([str(listing), str(table), str(media / "sub" / "*.png"), "nowhere.jpg",
                                        str(tmp_path / "*.nothing")])
    names = [Path(f).name for f in files]
    assert names == ["a.jpg", "blank.png", "clip.mp4", "b.png"]  # in order, each once, relative to the list
    assert all(os.path.isabs(f) for f in files)
    assert [(r.source, r.message) for r in failures] == [
        ("nowhere.jpg", "no such file or folder"), (str(tmp_path / "*.nothing"), "pattern matches no file")]

    files, _ = B.expand_sources([media])
    assert sorted(Path(f).name for f in files) == ["a.jpg", "b.png", "bad.jpg", "blank.png", "clip.mp4"]
    chunks = B.make_chunks(files, chunk_size=2)
    assert [len(c.sources) for c in chunks] == [2, 1, 1, 1]  # photos two by two, the video alone
    assert chunks == B.make_chunks(files, chunk_size=2)  # chunk ids are stable


def test_parquet_list_needs_a_path_column(tmp_path):
    table = tmp_path / "l.parquet"
    pq.write_table(pa.table({"a": ["x"], "b": ["y"]}), table)
    with pytest.raises(B.BatchError, match="'path' column"):
        B.expand_sources([table])


# ------------------------------------------------------------------------------------------------ output


def test_mixed_inputs_to_one_parquet_table(media, tmp_path):
    out = tmp_path / "out"
    report = B.run_batch([media], out, B.BatchOptions(fps=1.0, **FAST), progress=False)
    assert report.status == {"ok": 3, "no_face": 1, "error": 1} and report.processed == 5

    faces = pd.read_parquet(out)  # the whole folder is one table; _inputs and _batch.json are not part of it
    assert list(faces.columns) == FACE_COLUMNS
    assert pads.dataset(out, format="parquet").to_table().num_rows == len(faces)
    by_source = faces.groupby(faces["source"].map(lambda s: Path(s).name))
    assert set(by_source.groups) == {"a.jpg", "b.png", "clip.mp4"}
    video = by_source.get_group("clip.mp4")
    assert list(video["frame"]) == [0, 5, 10] and list(video["time_s"]) == [0.0, 1.0, 2.0]  # 5 fps, 1 sampled/s
    photo = by_source.get_group("a.jpg")
    assert list(photo["frame"]) == [0] and photo["time_s"].isna().all()
    assert (faces["face"] == 1).all()  # faces are numbered from 1
    probs = faces[list(EMOTIONS)].to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    assert (faces["label"] == np.array(EMOTIONS)[probs.argmax(1)]).all()
    assert (faces[["w", "h"]] > 20).all().all() and (faces["detector_score"] > 0.5).all()

    inputs = pd.read_parquet(out / "_inputs")
    inputs["name"] = inputs["source"].map(lambda s: Path(s).name)
    status = dict(zip(inputs["name"], inputs["status"]))
    assert status == {"a.jpg": "ok", "b.png": "ok", "blank.png": "no_face", "bad.jpg": "error", "clip.mp4": "ok"}
    bad = inputs[inputs["name"] == "bad.jpg"].iloc[0]
    assert bad["message"] and "Traceback" not in bad["message"]
    clip = inputs[inputs["name"] == "clip.mp4"].iloc[0]
    assert clip["kind"] == "video" and clip["frames"] == 3 and clip["faces"] == 3
    assert (inputs["peak_rss_mb"] > 0).all() and (inputs["worker_cpu_s"] > 0).all()


def test_every_n_frames_and_max_frames(media, tmp_path):
    out = tmp_path / "out"
    B.run_batch([media / "clip.mp4"], out, B.BatchOptions(every=4, max_frames=3, **WHOLE), progress=False)
    assert list(pd.read_parquet(out)["frame"]) == [0, 4, 8]


def test_missing_sources_are_error_rows_not_a_failed_run(media, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["batch", str(media / "a.jpg"), str(tmp_path / "gone.png"), "--out", str(out), "--weights", "fast",
                 "--no-progress"])
    assert code == 0
    inputs = pd.read_parquet(out / "_inputs")
    assert sorted(inputs["status"]) == ["error", "ok"]
    assert "no such file" in inputs.loc[inputs["status"] == "error", "message"].iloc[0]
    err = capsys.readouterr().err
    assert "1 ok" in err and "1 errors" in err and "gone.png" in err
    # nothing readable at all: exit status 1
    assert main(["batch", str(media / "bad.jpg"), "--out", str(tmp_path / "o2"), "--no-progress"]) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--every", "0"], "must be 1 or more"),
        (["--fps", "-5"], "above 0"),
        (["--every", "2", "--fps", "1"], "not allowed with"),
        (["--engine", "spark"], "invalid choice"),
        (["--margin", "-5"], "margin"),
        (["--detector", "nope"], "invalid choice"),
        (["--max-frames", "0"], "must be 1 or more"),
        (["--balance", "3"], "balance must be a number from 0"),
    ],
)
def test_cli_refuses_bad_options(media, tmp_path, capsys, argv, message):
    try:
        code = main(["batch", str(media), "--out", str(tmp_path / "o"), *argv])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_output_folder_refusals(media, tmp_path, capsys):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    assert main(["batch", str(media / "a.jpg"), "--out", str(afile)]) == 2
    assert "is a file" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    assert main(["batch", str(media / "a.jpg"), "--out", str(other)]) == 2
    assert "not empty" in capsys.readouterr().err
    out = tmp_path / "out"
    B.run_batch([media / "a.jpg"], out, B.BatchOptions(**WHOLE), progress=False)
    with pytest.raises(B.BatchError, match="other options"):  # a resume must not mix settings
        B.run_batch([media / "a.jpg"], out, B.BatchOptions(fps=2.0, **WHOLE), progress=False)


def test_balance_is_a_recorded_option_and_old_folders_read_as_trained(media, tmp_path):
    import json

    out = tmp_path / "out"
    B.run_batch([media / "a.jpg"], out, B.BatchOptions(**WHOLE), progress=False)
    with pytest.raises(B.BatchError, match="balance: 0.0 -> 1.0"):  # a resume must not mix readings
        B.run_batch([media / "a.jpg"], out, B.BatchOptions(balance=1.0, **WHOLE), progress=False)
    recorded = json.loads((out / B.OPTIONS_FILE).read_text())
    del recorded["balance"]  # a folder written before --balance existed
    (out / B.OPTIONS_FILE).write_text(json.dumps(recorded))
    B.run_batch([media / "a.jpg"], out, B.BatchOptions(**WHOLE), progress=False)  # resumes: it read as trained


def test_progress_bar_shows_rate_and_eta(tmp_path, capsys):
    B.run_batch(photos(tmp_path, 6), tmp_path / "out", B.BatchOptions(**WHOLE), chunk_size=2, progress=True)
    err = capsys.readouterr().err
    assert "6/6" in err and "input/s" in err and "<" in err  # tqdm: elapsed<remaining (the ETA)


# ------------------------------------------------------------------------------------------------ resume


class Killed(Exception):
    pass


def rows_per_source(out: Path) -> pd.Series:
    return pd.read_parquet(out).groupby("source").size()


def test_resume_after_kills_gives_every_row_exactly_once(tmp_path, monkeypatch):
    """Interrupt the run after some chunks and between a chunk's two renames, again and again; the final folder
    equals one uninterrupted run's, and every input has its rows once."""
    paths = photos(tmp_path, 23)
    opts = B.BatchOptions(**WHOLE)
    clean = tmp_path / "clean"
    B.run_batch(paths, clean, opts, chunk_size=4, progress=False)

    out = tmp_path / "out"
    real_write_inputs = B.write_inputs
    kills = 0
    for attempt in range(12):
        plan = attempt % 3  # 0: die after one chunk, 1: die between faces file and commit, 2: die after two chunks
        seen = []

        def on_chunk(rows, plan=plan, seen=seen):
            seen.append(rows)
            if (plan == 0 and len(seen) == 1) or (plan == 2 and len(seen) == 2):
                raise Killed

        def write_inputs(*a, plan=plan):
            if plan == 1:
                raise Killed  # the faces file is in place, the commit never happens
            return real_write_inputs(*a)

        monkeypatch.setattr(B, "write_inputs", write_inputs)
        try:  # chunk sizes change between runs, so a killed chunk's orphan faces file is not simply overwritten
            B.run_batch(paths, out, opts, chunk_size=3 + attempt % 4, progress=False, on_chunk=on_chunk)
            break
        except Killed:
            kills += 1
    monkeypatch.setattr(B, "write_inputs", real_write_inputs)
    final = B.run_batch(paths, out, opts, chunk_size=4, progress=False)
    assert kills >= 3 and final.processed == 0 and final.skipped == 23

    counts = rows_per_source(out)
    assert len(counts) == 23 and (counts == 1).all()
    inputs = pd.read_parquet(out / "_inputs")
    assert sorted(inputs["source"]) == sorted(paths)  # one input row each
    a = pd.read_parquet(out).sort_values("source").reset_index(drop=True)
    b = pd.read_parquet(clean).sort_values("source").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert not list(out.glob(".*.tmp")) and not list((out / "_inputs").glob(".*.tmp"))


def test_kill_9_and_resume(tmp_path):
    """The real thing: SIGKILL the command while it writes, rerun it, and count duplicates."""
    paths = photos(tmp_path, 40)
    listing = tmp_path / "inputs.txt"
    listing.write_text("\n".join(paths))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "emoscope", "batch", str(listing), "--out", str(out), "--no-detect", "--weights",
           "fast", "--chunk-size", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list((out / "_inputs").glob("part-*"))) < 5:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = len(B.done_sources(out))
    assert 5 <= done_before < 40, "the kill came too late to test a resume"
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    counts = rows_per_source(out)
    assert len(counts) == 40 and (counts == 1).all()
    assert len(pd.read_parquet(out / "_inputs")) == 40


# ------------------------------------------------------------------------------------------------ ray


def test_ray_engine_matches_local(media, tmp_path):
    """Ray Data with two actors (a small local cluster) writes the same rows as the local engine."""
    pytest.importorskip("ray", reason="the batch extra is not installed: pip install 'emoscope[batch]'")
    sources = [*photos(tmp_path, 6), str(media / "bad.jpg"), str(media / "clip.mp4")]
    opts = B.BatchOptions(**WHOLE)
    local = B.run_batch(sources, tmp_path / "local", opts, chunk_size=2, progress=False)
    ray_report = B.run_batch(sources, tmp_path / "ray", opts, engine="ray", workers=2, chunk_size=2, progress=False)
    assert ray_report.workers == 2 and ray_report.status == local.status == {"ok": 7, "no_face": 0, "error": 1}
    cols = [c for c in FACE_COLUMNS if c not in EMOTIONS]
    a = pd.read_parquet(tmp_path / "local").sort_values(["source", "frame"]).reset_index(drop=True)
    b = pd.read_parquet(tmp_path / "ray").sort_values(["source", "frame"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert np.allclose(a[list(EMOTIONS)], b[list(EMOTIONS)], atol=1e-4)
    workers = set(pd.read_parquet(tmp_path / "ray" / "_inputs")["worker"])  # Ray actors, not this process
    assert workers and str(os.getpid()) not in {w.split(":")[-1] for w in workers}


def _running_cluster() -> tuple[str, Path]:
    """The address and temp folder of the Ray head node that .ci/run starts, or skip."""
    pytest.importorskip("ray", reason="the batch extra is not installed: pip install 'emoscope[batch]'")
    address, folder = os.environ.get("EMOSCOPE_TEST_RAY_ADDRESS"), os.environ.get("EMOSCOPE_TEST_RAY_DIR")
    if not address or not folder:
        pytest.skip("no running Ray cluster to join: .ci/run starts one (`ray start --head`) and sets "
                    "EMOSCOPE_TEST_RAY_ADDRESS and EMOSCOPE_TEST_RAY_DIR")
    return address, Path(folder)


def _batch_cli(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emoscope", "batch", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env})


def test_ray_engine_joins_a_running_cluster(media, tmp_path):
    """--address joins an existing cluster (token authentication, Ray's default): its actors do the work."""
    address, folder = _running_cluster()
    out = tmp_path / "joined"
    r = _batch_cli([*photos(tmp_path, 5), str(media / "bad.jpg"), "--out", str(out), "--engine", "ray",
                    "--address", address, "--workers", "2", "--weights", "fast", "--no-detect", "--chunk-size", "2",
                    "--no-progress"], RAY_AUTH_MODE="token")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "6 inputs" in r.stdout + r.stderr
    inputs = pd.read_parquet(out / "_inputs")
    assert sorted(inputs["status"]) == ["error", *["ok"] * 5]
    assert len(pd.read_parquet(out)) == 5
    # The workers are processes of that cluster: each worker's pid names a log file in the cluster's own folder.
    logs = {p.name for p in folder.glob("session_*/logs/*")}
    for pid in {w.rsplit(":", 1)[-1] for w in inputs["worker"]}:
        assert any(name.endswith(f"-{pid}.out") for name in logs), (pid, sorted(logs)[:20])


def test_joining_without_the_token_says_how(media, tmp_path):
    """Joining a token-authenticated cluster without RAY_AUTH_MODE: one clear line with the fix, no traceback."""
    address, _ = _running_cluster()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    r = subprocess.run([sys.executable, "-m", "emoscope", "batch", str(media / "a.jpg"), "--out",
                        str(tmp_path / "o"), "--engine", "ray", "--address", address, "--no-progress"],
                       capture_output=True, text=True, timeout=600, env=env)
    if r.returncode == 0:
        pytest.fail(f"joined {address} without a token: that head node does not enforce token authentication "
                    "(`ray start` enables it only when it finds a token; .ci/run starts it with RAY_AUTH_MODE=token)")
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert f"cannot join the Ray cluster at {address}" in r.stderr and "set RAY_AUTH_MODE=token" in r.stderr


def test_missing_weights_refused_before_any_work(media, tmp_path):
    with pytest.raises(B.BatchError, match="no such file"):
        B.run_batch([media / "a.jpg"], tmp_path / "out", B.BatchOptions(weights=str(tmp_path / "nope.pt")),
                    engine="ray", progress=False)
    assert not (tmp_path / "out").exists()
