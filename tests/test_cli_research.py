"""``emoscope baselines`` and ``emoscope explain`` on generated image folders and a generated photo."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from threadpoolctl import threadpool_limits

from emoscope.cli import main
from emoscope.labels import EMOTIONS
from emoscope.models import create_model
from emoscope.models.checkpoint import atomic_save, model_meta


@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch, tmp_path):
    """One thread (busy machine) and a private dataset cache."""
    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path / "cache"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


def face(label: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:48, :48]
    img = np.where(((xx - 24) / 16) ** 2 + ((yy - 24) / 21) ** 2 < 1, 150.0, 40.0)
    img[(np.abs(yy - 30 - label) < 1.5) & (np.abs(xx - 24) < 4 + label)] = 60
    return np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def fer_folder(tmp_path) -> Path:
    """FER-2013-style folder: train/<label>/Training_*.png and test/<label>/{PublicTest,PrivateTest}_*.png."""
    root = tmp_path / "fer"
    rng = np.random.default_rng(0)
    for c, name in enumerate(EMOTIONS):
        for split, prefix, n in (("train", "Training", 8), ("test", "PublicTest", 3), ("test", "PrivateTest", 3)):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cv2.imwrite(str(d / f"{prefix}_{c}{i:03d}.png"), face(c, rng))
    return root


def is_png(path: str | Path) -> bool:
    with Image.open(path) as im:
        return im.format == "PNG" and im.size[0] > 0 and Path(path).stat().st_size > 0


def test_baselines_small(fer_folder, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["baselines", "--data", str(fer_folder), "--features", "lbp,hog", "--classifiers", "linsvc,rf",
               "--setting", "small", "--n-train", "5", "--n-val", "3", "--out", str(out)])
    assert rc == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "| lbp | linsvc |" in text and "| hog | rf |" in text
    # progress goes to stderr, so a pipeline (stdout redirected) still shows it: a bar over 4 pairs, a line per pair
    assert "baselines" in captured.err and "4/4" in captured.err
    assert captured.err.count("macro-F1") == 4 and "acc " not in text
    data = json.loads((out / "baselines.json").read_text())
    assert data["setting"] == "small" and len(data["rows"]) == 4
    assert all(r["n_train"] == 35 and r["n_test"] == 21 for r in data["rows"])
    assert "macro-F1" in (out / "baselines.md").read_text()


def test_baselines_full_grid_and_results_store(fer_folder, tmp_path, capsys):
    out, store = tmp_path / "out", tmp_path / "bench" / "results.json"
    rc = main(["baselines", "--data", str(fer_folder), "--features", "pca", "--classifiers", "linsvc",
               "--setting", "full", "--grid", "--cv", "2", "--out", str(out), "--results", str(store)])
    assert rc == 0
    row = json.loads((out / "baselines.json").read_text())["rows"][0]
    assert row["n_train"] == 56 and row["n_test"] == 21  # Training vs PrivateTest
    assert "clf__C" in row["best_params"]
    stored = json.loads(store.read_text())
    assert stored[0]["model"] == "pca + linsvc" and stored[0]["experiment"] == "classic baselines"
    assert (store.parent / "RESULTS.md").is_file()


def test_baselines_user_errors(fer_folder, tmp_path, capsys):
    assert main(["baselines", "--data", str(fer_folder), "--features", "sift", "--out", str(tmp_path)]) == 2
    assert "unknown" in capsys.readouterr().err
    rc = main(["baselines", "--data", str(fer_folder), "--setting", "full", "--test-split", "nope",
               "--out", str(tmp_path)])
    assert rc == 2 and "no split named" in capsys.readouterr().err
    assert main(["baselines", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2


@pytest.fixture
def photo(tmp_path) -> Path:
    """A non-square colour 'photo' with a face-like blob in the middle."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 60, (120, 90, 3), dtype=np.uint8)
    img[36:84, 21:69] = cv2.cvtColor(face(3, rng), cv2.COLOR_GRAY2BGR)
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), img)
    return path


@pytest.fixture
def weights(tmp_path) -> Path:
    torch.manual_seed(0)
    model = create_model("emovgg_s", width=8)
    path = tmp_path / "w.pt"
    atomic_save({**model_meta("emovgg_s", EMOTIONS, width=8),
                 "model": model.state_dict()}, path)
    return path


def test_explain_with_weights_and_data(photo, weights, fer_folder, tmp_path, capsys):
    out = tmp_path / "figs"
    rc = main(["explain", str(photo), "--weights", str(weights), "--out", str(out), "--data", str(fer_folder),
               "--limit", "20"])
    assert rc == 0
    printed = [Path(p) for p in capsys.readouterr().out.split()]
    assert {p.name for p in printed} >= {"probabilities.png", "saliency.png", "feature_maps.png", "lbp.png",
                                          "eigenfaces.png", "misclassified.png", "sample_probabilities.png"}
    assert all(p.parent == out and is_png(p) for p in printed)


def test_explain_default_weights(photo, tmp_path, capsys):
    rc = main(["explain", str(photo), "--out", str(tmp_path / "f")])
    assert rc == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 4 and all(is_png(p) for p in printed)


def test_explain_bad_image(tmp_path, weights, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    assert main(["explain", str(bad), "--weights", str(weights), "--out", str(tmp_path / "o")]) == 2
    assert "decodable" in capsys.readouterr().err
    assert main(["explain", str(bad), "--weights", str(tmp_path / "none.pt"), "--out", str(tmp_path / "o")]) == 2


def test_explain_crops_the_largest_face_of_a_photo(tmp_path, capsys):
    from emoscope.samples import astronaut_bgr

    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut_bgr())
    assert main(["explain", str(photo), "--out", str(tmp_path / "a")]) == 0
    assert "explaining the largest of 1 face(s)" in capsys.readouterr().err
    assert main(["explain", str(photo), "--out", str(tmp_path / "b"), "--detector", "none"]) == 0
    assert "explaining the centre square (--detector none)" in capsys.readouterr().err


def test_explain_says_when_a_photo_has_no_face(photo, tmp_path, capsys):
    assert main(["explain", str(photo), "--out", str(tmp_path / "f")]) == 0  # 120x90 noise with a drawn blob
    err = capsys.readouterr().err
    assert "no face found" in err and "centre square" in err


def _subparser(name: str):
    import argparse

    from emoscope.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["baselines", "explain"])
def test_every_flag_has_help_and_the_command_a_description(command):
    parser = _subparser(command)
    assert parser.description and len(parser.description) > 100
    for action in parser._actions:
        assert action.help, f"emoscope {command}: {action.option_strings or action.dest} has no help text"


def test_explain_misclassified_grid_spreads_over_true_classes(monkeypatch, tmp_path):
    from emoscope import explain

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(7), 10)
    images = rng.integers(0, 255, (70, 48, 48), dtype=np.uint8)
    probs = np.full((70, 7), 0.01, np.float32)
    probs[np.arange(70), (labels + 1) % 7] = rng.uniform(0.3, 0.9, 70)  # every face wrong, varied confidence
    shown = {}
    monkeypatch.setattr("emoscope.plots.plot_face_grid",
                        lambda imgs, caps, path, cols=8, title="": shown.update(caps=caps, title=title) or path)
    explain.plot_misclassified(images, labels, probs.argmax(1), EMOTIONS, tmp_path / "m.png", max_faces=14,
                               confidence=probs.max(1))
    true_classes = [c.split(" -> ")[0] for c in shown["caps"]]
    assert [true_classes.count(e) for e in EMOTIONS] == [2] * 7  # two of each class, not the first 14 in order
    angry = [float(c.split()[-1]) for c in shown["caps"][:2]]
    assert angry == sorted(angry, reverse=True) and angry[0] == pytest.approx(probs[:10].max(), abs=0.005)
    assert "70 of 70" in shown["title"]
