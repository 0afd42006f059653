"""int8 export keeps the logits in float, so distinct scores stay distinct (no exact ties)."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from emoscope.export import export_onnx, quantize_int8
from emoscope.recognizer import Recognizer
from emoscope.weights import shipped_weights

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def fast_int8(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8")
    pt = d / "fast.pt"
    shutil.copy(shipped_weights("fast"), pt)
    fp32 = export_onnx(pt, d / "fast.onnx")
    rng = np.random.default_rng(0)
    # smooth random "faces": blurred noise plus a gradient, so activations spread like real crops
    base = rng.integers(0, 256, (48, 6, 6)).astype(np.float32)
    calib = np.stack([np.kron(b, np.ones((8, 8))) for b in base]).clip(0, 255).astype(np.uint8)
    return quantize_int8(fp32, d / "fast.int8.onnx", calib), calib


def test_int8_logits_are_not_quantised(fast_int8):
    q, _ = fast_int8
    graph = onnx.load(str(q)).graph
    out = graph.output[0].name
    producer = next(n for n in graph.node if out in n.output)
    assert producer.op_type != "DequantizeLinear", "the logits come out of a quantise/dequantise pair"


def test_int8_probabilities_have_no_exact_ties(fast_int8):
    q, calib = fast_int8
    rec = Recognizer(weights=q, detector=None)
    assert rec.backend_name == "onnx-int8"
    rng = np.random.default_rng(1)
    crops = np.clip(calib.astype(np.int16) + rng.integers(-30, 30, calib.shape), 0, 255).astype(np.uint8)
    p = rec.classify(np.concatenate([calib, crops]))
    top2 = np.sort(p, axis=1)[:, -2:]
    assert not np.any(top2[:, 0] == top2[:, 1])
    # distinct faces give distinct score vectors (quantised logits collapsed many of them onto a few values)
    assert len({tuple(np.round(r, 7)) for r in p}) == len(p)
