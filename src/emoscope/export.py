"""ONNX export of an emoscope checkpoint, and optional static int8 quantisation for ONNX Runtime.

The ONNX graph holds the network only: input ``input`` = float32 N x C x S x S, already preprocessed exactly as
for PyTorch (``emoscope.preprocess``: uint8 gray -> /255 -> resize to S -> (x - 0.5) / 0.25 -> C channels);
output ``logits`` N x classes. Preprocessing stays in Python so that one function feeds both backends and the
two can never drift apart. The batch dimension is dynamic.

The model's description travels in the ONNX metadata (``classes`` as JSON, ``input_size``, ``in_chans``,
``model_name``, ``source_sha256`` of the .pt file, ``class_counts`` of its training labels when recorded), so a
Recognizer can load the .onnx alone and can tell when it is stale (the .pt was replaced after the export).

int8: :func:`quantize_int8` writes a static QDQ model calibrated on real faces (ONNX Runtime uses AMX/VNNI
int8 kernels where the CPU has them). Keep it only if it costs <= 0.5 points of accuracy; measure with
``python benchmarks/int8_accuracy.py``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from .models.checkpoint import load_model
from .preprocess import normalize, resize_batch, to_unit


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (identifies which .pt an .onnx was exported from)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def preprocess_faces(faces: np.ndarray, input_size: int, in_chans: int) -> np.ndarray:
    """uint8 N x H x W faces -> float32 N x C x S x S model input (the same transform as training)."""
    x = normalize(resize_batch(to_unit(faces), input_size), in_chans)
    return np.ascontiguousarray(x.numpy(), dtype=np.float32)


def export_onnx(weights_path: str | Path | None = None, onnx_path: str | Path | None = None, opset: int = 17
                ) -> Path:
    """Export a checkpoint to ONNX (dynamic batch, metadata attached); returns the .onnx path.

    Defaults: the shipped weights, and the .onnx beside them (``emoscope.weights.DEFAULT_ONNX``).
    """
    import onnx

    from .weights import DEFAULT_ONNX, default_weights_path

    weights_path = Path(weights_path) if weights_path is not None else default_weights_path()
    onnx_path = Path(onnx_path) if onnx_path is not None else (
        DEFAULT_ONNX if weights_path == default_weights_path() else weights_path.with_suffix(".onnx"))
    model, meta = load_model(weights_path)
    model = model.float().eval()
    dummy = torch.zeros(2, meta["in_chans"], meta["input_size"], meta["input_size"])
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_suffix(".tmp.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter needs only `onnx`
        torch.onnx.export(
            model, (dummy,), str(tmp), input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset, dynamo=False,
        )
    m = onnx.load(str(tmp))
    counts = {"class_counts": json.dumps(meta["class_counts"])} if meta.get("class_counts") else {}
    _set_metadata(m, {**counts,
        "classes": json.dumps(list(meta["classes"])),
        "input_size": str(meta["input_size"]),
        "in_chans": str(meta["in_chans"]),
        "model_name": str(meta["model_name"]),
        "source_sha256": file_sha256(weights_path),
        "preprocess": "uint8 gray /255, bilinear resize to input_size, (x-0.5)/0.25, repeat to in_chans",
    })
    onnx.save(m, str(onnx_path))
    tmp.unlink(missing_ok=True)
    return onnx_path


def _set_metadata(model, props: dict[str, str]) -> None:
    existing = {p.key: p for p in model.metadata_props}
    for k, v in props.items():
        if k in existing:
            existing[k].value = v
        else:
            entry = model.metadata_props.add()
            entry.key, entry.value = k, v


def read_onnx_metadata(onnx_path: str | Path) -> dict[str, str]:
    """The custom metadata written by :func:`export_onnx` (empty dict when absent)."""
    import onnx

    m = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


class _FaceReader:
    """Feeds calibration batches to ONNX Runtime's quantiser."""

    def __init__(self, faces: np.ndarray, input_size: int, in_chans: int, batch: int = 64) -> None:
        self._it: Iterator[dict[str, np.ndarray]] = (
            {"input": preprocess_faces(faces[i : i + batch], input_size, in_chans)}
            for i in range(0, len(faces), batch)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - not used by the MinMax calibrator
        raise NotImplementedError


def quantize_int8(
    onnx_path: str | Path, out_path: str | Path, calibration_faces: np.ndarray, per_channel: bool = True
) -> Path:
    """Static QDQ int8 quantisation (activations uint8, weights int8) calibrated on uint8 N x H x W faces.

    A few hundred faces spread over the classes are enough; more only slows calibration. The metadata of the
    fp32 model is copied over, plus ``quantized=int8``. The node that makes the logits (the classifier head,
    C x 7 multiply-adds) stays in float: quantised logits take a few hundred values, so two classes of one face
    often came out exactly equal and the runner-up was arbitrary.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    faces = np.asarray(calibration_faces)
    if faces.ndim != 3 or faces.dtype != np.uint8 or len(faces) == 0:
        raise ValueError("calibration_faces must be a non-empty uint8 N x H x W array")
    meta = read_onnx_metadata(onnx_path)
    size, chans = int(meta.get("input_size", 48)), int(meta.get("in_chans", 1))
    reader = _FaceReader(faces, size, chans)
    CalibrationDataReader.register(_FaceReader)
    prep = out_path.with_suffix(".prep.onnx")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        quant_pre_process(str(onnx_path), str(prep), skip_symbolic_shape=True)
        graph = onnx.load(str(prep)).graph
        outputs = {o.name for o in graph.output}
        head = [n.name for n in graph.node if outputs & set(n.output)]
        quantize_static(
            str(prep), str(out_path), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=head,
        )
    finally:
        prep.unlink(missing_ok=True)
    q = onnx.load(str(out_path))
    _set_metadata(q, {**meta, "quantized": "int8"})
    onnx.save(q, str(out_path))
    return out_path
