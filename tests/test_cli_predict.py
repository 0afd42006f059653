"""``emoscope predict``: table/JSON/CSV output, annotation, folders and globs, and bad inputs that don't stop it."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from unittest import mock

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data

from emoscope.cli import main
from emoscope.labels import EMOTIONS


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """A folder with a one-face photo, a two-face photo, a blank picture and broken files."""
    root = tmp_path_factory.mktemp("pics")
    bgr = np.ascontiguousarray(data.astronaut()[..., ::-1])
    good = root / "good"
    good.mkdir()
    cv2.imwrite(str(good / "one.jpg"), bgr)
    cv2.imwrite(str(good / "two.png"), np.hstack([bgr, bgr[:, ::-1]]))
    cv2.imwrite(str(good / "blank.png"), np.full((200, 200, 3), 80, np.uint8))
    bad = root / "mixed"
    bad.mkdir()
    cv2.imwrite(str(bad / "one.jpg"), bgr)
    ok, jpg = cv2.imencode(".jpg", bgr)
    (bad / "truncated.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 3])
    (bad / "empty.png").write_bytes(b"")
    (bad / "text.jpg").write_text("not a picture")
    (bad / "readme.md").write_text("ignored: not an image extension")
    return root


def test_example_table(capsys):
    assert main(["predict", "--example"]) == 0
    out = capsys.readouterr().out
    assert "astronaut" in out and "1 picture(s) read, 1 face(s) found" in out
    assert "faces per emotion:" in out


def test_balance_reads_every_emotion_as_equally_likely(capsys):
    """--balance alone is balance 1: disgust (1.5 % of FER-2013 Training) rises, happy (25 %) falls."""
    assert main(["predict", "--example", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)["results"][0]["faces"][0]["probs"]
    assert main(["predict", "--example", "--json", "--balance"]) == 0
    balanced = json.loads(capsys.readouterr().out)["results"][0]["faces"][0]["probs"]
    assert balanced["disgust"] > plain["disgust"] and balanced["happy"] < plain["happy"]
    assert sum(balanced.values()) == pytest.approx(1, abs=1e-3)


def test_still_pictures_are_read_with_crops_tta_unless_told(capsys):
    """predict's default is the 12-view TTA (run 9 of benchmarks/V4.md); --tta none is the plain reading."""
    from emoscope import Recognizer
    from emoscope.samples import astronaut_bgr

    assert main(["predict", "--example", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["tta"] == "crops" and doc["summary"]["balance"] == 0
    assert main(["predict", "--example", "--json", "--tta", "none"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["summary"]["tta"] == "none"
    expected = Recognizer(tta="crops").predict(astronaut_bgr())[0].probs
    got = doc["results"][0]["faces"][0]["probs"]
    assert got == pytest.approx(expected, abs=1e-3) and got != plain["results"][0]["faces"][0]["probs"]


def test_folder_json(pictures, capsys):
    assert main(["predict", str(pictures / "good"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_name = {r["path"].split("/")[-1]: r for r in doc["results"]}
    assert [len(by_name[n]["faces"]) for n in ("one.jpg", "two.png", "blank.png")] == [1, 2, 0]
    f = by_name["one.jpg"]["faces"][0]
    assert [g["face"] for g in by_name["two.png"]["faces"]] == [1, 2]
    assert list(f["probs"]) == list(EMOTIONS) and f["label"] in EMOTIONS
    assert doc["summary"]["faces"] == 3 and doc["summary"]["no_face"] == 1 and doc["summary"]["failed"] == 0
    assert sum(doc["summary"]["emotions"].values()) == 3


def test_failures_reported_and_run_carries_on(pictures, capsys):
    missing = str(pictures / "nope.jpg")
    assert main(["predict", str(pictures / "mixed"), missing]) == 1
    cap = capsys.readouterr()
    out, err = cap.out, cap.err
    assert "1 picture(s) read, 1 face(s) found, 4 failed" in out
    for name, reason in [("truncated.jpg", "truncated"), ("empty.png", "empty file"), ("text.jpg", "not an image"),
                         ("nope.jpg", "no such file")]:
        assert any(name in line and reason in line for line in out.splitlines()), (name, out)
        assert name in err
    assert "readme.md" not in out


def test_csv_and_glob(pictures, capsys):
    assert main(["predict", str(pictures / "good" / "*.png"), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["path"].split("/")[-1] for r in rows] == ["blank.png", "two.png", "two.png"]
    assert rows[0]["error"] == "no face"
    assert [r["face"] for r in rows] == ["", "1", "2"]  # faces shown to people are numbered from 1
    assert sum(float(rows[1][c]) for c in EMOTIONS) == pytest.approx(1, abs=1e-3)


def test_annotate_and_no_detect(pictures, tmp_path, capsys):
    out_dir = tmp_path / "ann"
    assert main(["predict", str(pictures / "good" / "one.jpg"), str(pictures / "good" / "blank.png"),
                 "--annotate", str(out_dir)]) == 0
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["blank.png", "one.jpg"]
    assert all(cv2.imread(str(out_dir / n)) is not None for n in written)
    capsys.readouterr()
    assert main(["predict", str(pictures / "good" / "blank.png"), "--no-detect", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["results"][0]["faces"]) == 1 and doc["summary"]["detector"] == "none"


def test_nothing_readable_is_an_error(pictures, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "missing.png")]) == 2
    assert "none of the 1 input(s) could be read" in capsys.readouterr().err
    assert main(["predict"]) == 2
    assert "--example" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--batch", "0"], "--batch: must be 1 or more, got 0"),
    (["--batch", "-1"], "--batch: must be 1 or more, got -1"),
    (["--margin", "-5"], "margin must be a number from 0 to 1"),
    (["--margin", "inf"], "--margin: want a finite number"),
    (["--detector", "magic"], "invalid choice: 'magic'"),
    (["--backend", "tensorflow"], "invalid choice: 'tensorflow'"),
    (["--tta", "more"], "invalid choice: 'more'"),
    (["--balance", "2"], "balance must be a number from 0"),
    (["--balance", "lots"], "--balance: want a number"),
])
def test_bad_arguments_are_one_line_errors(args, message, capsys):
    """Issue 25 item 7: --batch 0 and --margin -5 gave tracebacks, --batch -1 did nothing."""
    try:
        rc = main(["predict", "--example", *args])
    except SystemExit as exc:  # argparse's own refusals
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_annotate_onto_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "picture.png"
    target.write_bytes(b"x")
    assert main(["predict", "--example", "--annotate", str(target)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert target.read_bytes() == b"x"


def test_empty_path_is_not_the_current_folder(capsys):
    """Issue 25 item 7: an empty path said "is a folder" (it was read as '.')."""
    assert main(["predict", ""]) == 2
    assert "empty path" in capsys.readouterr().out


# ------------------------------------------------------------------------------- properties (Hypothesis)
class _Built(Exception):
    """Raised by the stand-in Recognizer: the options passed every check and a model would load now."""


def _stand_in(**kwargs):
    raise _Built(kwargs)


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6)


@settings(max_examples=120, deadline=None)
@given(batch=st.one_of(st.integers(-3, 70).map(str), _TEXT),
       margin=st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), _TEXT),
       detector=st.one_of(st.sampled_from(["auto", "haar", "none", "blazeface-fast"]), _TEXT),
       backend=st.one_of(st.sampled_from(["auto", "torch", "onnx"]), _TEXT),
       tta=st.one_of(st.sampled_from(["none", "flip", "crops"]), _TEXT))
def test_any_argument_values_give_a_clear_answer(batch, margin, detector, backend, tta):
    """Every value of predict's options is either refused in one line (exit status 2) or reaches the model
    with a valid value; nothing else escapes."""
    argv = ["predict", "--example", f"--batch={batch}", f"--margin={margin}", f"--detector={detector}",
            f"--backend={backend}", f"--tta={tta}"]
    err = io.StringIO()
    with mock.patch("emoscope.recognizer.Recognizer", _stand_in), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse's refusals
            rc = exc.code
        except _Built as built:
            kw = built.args[0]
            assert 0 <= kw["margin"] <= 1 and int(batch) >= 1
            assert kw["tta"] in ("none", "flip", "crops") and kw["backend"] in ("auto", "torch", "onnx")
            return
    assert rc == 2
    lines = [ln for ln in err.getvalue().splitlines() if "error" in ln]
    assert len(lines) == 1 and "Traceback" not in err.getvalue()
