"""Metrics against scikit-learn on known arrays, TTA and the report writer."""

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from emoscope.datasets.faceset import FaceSet
from emoscope.evaluation import classification_metrics, evaluate_model, predict_proba, write_report
from emoscope.labels import EMOTIONS
from emoscope.models import create_model


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 7, 500)
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, 7, 500))
    y_pred[y_pred == 1] = 0  # a class never predicted: precision 0, as sklearn's zero_division=0
    m = classification_metrics(y_true, y_pred, EMOTIONS)
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert m["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted", zero_division=0))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=range(7), zero_division=0)
    for i, name in enumerate(EMOTIONS):
        assert m["per_class"][name]["precision"] == pytest.approx(p[i])
        assert m["per_class"][name]["recall"] == pytest.approx(r[i])
        assert m["per_class"][name]["f1"] == pytest.approx(f[i])
        assert m["per_class"][name]["support"] == s[i]
    assert np.array_equal(m["confusion_matrix"], confusion_matrix(y_true, y_pred, labels=range(7)))


def _faces(n=20):
    rng = np.random.default_rng(1)
    return FaceSet(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.arange(n) % 7, ["test"] * n,
                   [str(i) for i in range(n)])


@pytest.mark.parametrize("tta", ["none", "flip", "crops"])
def test_predict_proba_rows_sum_to_one(tta):
    torch.manual_seed(0)
    model = create_model("emovgg_s", width=8)
    probs = predict_proba(model, _faces().images, tta=tta, batch_size=8)
    assert probs.shape == (20, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_flip_tta_is_flip_invariant():
    torch.manual_seed(0)
    model = create_model("emovgg_s", width=8)
    imgs = _faces().images
    a = predict_proba(model, imgs, tta="flip")
    b = predict_proba(model, imgs[:, :, ::-1].copy(), tta="flip")
    assert np.allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="tta must be"):
        predict_proba(model, imgs, tta="rotate")


def test_report_files(tmp_path):
    torch.manual_seed(0)
    model = create_model("emovgg_s", width=8)
    faces = _faces()
    res = evaluate_model(model, faces, {"input_size": 48, "in_chans": 1}, tta=("none", "flip"))
    paths = write_report(res, faces, tmp_path, title="t", extra={"split": "test"})
    text = paths["report_md"].read_text()
    assert "| none |" in text and "| flip |" in text and "precision" in text
    import json

    data = json.loads(paths["report_json"].read_text())
    assert set(data["modes"]) == {"none", "flip"} and data["n"] == 20
    for key in ("confusion", "misclassified"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
