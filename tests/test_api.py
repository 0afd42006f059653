"""The public Python API: Face values, flat rows and tables, a clean namespace, one version."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import emoscope
from emoscope.cli import main
from emoscope.labels import EMOTIONS
from emoscope.recognizer import Face, MissingExtraError, to_frame

ROOT = Path(__file__).resolve().parents[1]


def _face(x: int = 10, happy: float = 0.7, landmarks: bool = True) -> Face:
    probs = {e: (1 - happy) / (len(EMOTIONS) - 1) for e in EMOTIONS}
    probs["happy"] = happy
    lm = np.array([[98.8, 40.1], [120.3, 40.2]], np.float32) if landmarks else None
    return Face((x, 20, 50, 60), 0.93, probs, "happy", lm)


def test_faces_compare_and_hash_by_value():
    """Issue 26: face_a == face_b raised "truth value of an array is ambiguous"."""
    a, b, c = _face(), _face(), _face(x=11)
    assert a == b and a != c and a != _face(landmarks=False)
    assert hash(a) == hash(b) and len({a, b, c}) == 2
    assert {a: 1}[b] == 1
    assert a != "a face"
    assert "landmarks" not in repr(a)
    with pytest.raises(AttributeError):
        a.label = "sad"  # a result: immutable, so its hash cannot change


def test_to_dict_is_flat_and_rounded():
    row = _face().to_dict()
    assert list(row) == ["x", "y", "w", "h", "score", "label", "confidence", *EMOTIONS]
    assert not any(isinstance(v, (dict, list)) for v in row.values())
    assert row["happy"] == 0.7 and row["confidence"] == 0.7 and row["angry"] == 0.05
    with_lm = _face().to_dict(landmarks=True)
    assert with_lm["landmark1_x"] == 98.8 and with_lm["landmark2_y"] == 40.2  # not 98.80000305175781
    assert "98.8," in json.dumps(_face().to_json())
    assert "98.80000" not in json.dumps(_face().to_json())


def test_to_frame_shapes():
    pd = pytest.importorskip("pandas")
    one = to_frame([_face(), _face(x=80)])
    assert isinstance(one, pd.DataFrame) and list(one["face"]) == [1, 2]
    assert list(one.columns[:8]) == ["face", "x", "y", "w", "h", "score", "label", "confidence"]
    many = to_frame([[_face()], [], [_face(), _face(x=80)]])
    assert list(many["picture"]) == [0, 2, 2] and list(many["face"]) == [1, 1, 2]
    named = to_frame({"a.jpg": [_face()], "b.jpg": [_face(x=3)]})
    assert list(named["picture"]) == ["a.jpg", "b.jpg"]
    assert len(to_frame([])) == 0 and "label" in to_frame([]).columns
    assert to_frame(_face())["happy"].iloc[0] == 0.7
    assert emoscope.to_frame is to_frame


def test_to_frame_without_pandas_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingExtraError, match=r"emoscope\[dataframe\]"):
        to_frame([_face()])


def test_clean_namespace():
    """Issue 26: dir(emoscope) showed Any and annotations."""
    names = dir(emoscope)
    assert "Any" not in names and "annotations" not in names
    assert set(emoscope.__all__) <= set(names)
    for name in emoscope.__all__:
        assert getattr(emoscope, name) is not None
    with pytest.raises(AttributeError):
        emoscope.no_such_thing  # noqa: B018


def test_version_in_one_place(capsys):
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'attr = "emoscope.__version__"' in text
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"emoscope {emoscope.__version__}"


def test_package_files():
    assert (ROOT / "src" / "emoscope" / "py.typed").is_file()
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text()
