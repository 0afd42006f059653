"""Does int8 cost accuracy? Export the model to ONNX, quantise it, and compare on FER-2013 PrivateTest.

    python benchmarks/int8_accuracy.py              # measure only; writes benchmarks/INT8.md
    python benchmarks/int8_accuracy.py --install    # also put the .onnx (and the .int8.onnx if it passes) beside
                                                    # the shipped weights, where backend="auto" picks them up

The rule: keep int8 only if it loses at most ``--max-drop`` (0.5) points of PrivateTest accuracy against the
PyTorch model (no TTA). Calibration uses ``--calib`` training faces, stratified by class, never test faces.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from emoscope.datasets import load_dataset
from emoscope.evaluation import classification_metrics
from emoscope.export import export_onnx, quantize_int8
from emoscope.recognizer import Recognizer
from emoscope.weights import DEFAULT_ONNX, default_weights_path

HERE = Path(__file__).resolve().parent


def stratified(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """About ``n`` indices spread evenly over the classes."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = max(1, n // len(classes))
    idx = [rng.choice(np.nonzero(labels == c)[0], size=min(per, int((labels == c).sum())), replace=False)
           for c in classes]
    return np.sort(np.concatenate(idx))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "fer2013")
    ap.add_argument("--weights", type=Path, help="checkpoint (default: the shipped model)")
    ap.add_argument("--calib", type=int, default=1000, help="calibration faces from the training split")
    ap.add_argument("--max-drop", type=float, default=0.5, help="largest accuracy loss in points to keep int8")
    ap.add_argument("--install", action="store_true", help="write the ONNX file(s) beside the shipped weights")
    ap.add_argument("--out", type=Path, default=HERE / "INT8.md")
    args = ap.parse_args()
    weights = args.weights or default_weights_path()
    fs = load_dataset(args.data)
    train, test = fs.split("training"), fs.split("privatetest")
    calib = train.images[stratified(train.labels, args.calib)]
    rows, acc = [], {}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        pt = tmp / "model.pt"
        shutil.copy(weights, pt)
        fp32 = export_onnx(pt, tmp / "model.onnx")
        t = time.perf_counter()
        int8 = quantize_int8(fp32, tmp / "model.int8.onnx", calib)
        quant_s = time.perf_counter() - t
        for name, kw in [("PyTorch fp32", {"weights": pt, "backend": "torch"}),
                         ("ONNX Runtime fp32", {"weights": fp32}), ("ONNX Runtime int8", {"weights": int8})]:
            rec = Recognizer(detector=None, **kw)
            t = time.perf_counter()
            probs = rec.classify(test.images)
            dt = time.perf_counter() - t
            m = classification_metrics(test.labels, probs.argmax(1), test.classes)
            acc[name] = 100 * m["accuracy"]
            top2 = np.sort(probs, axis=1)[:, -2:]
            ties = int(np.sum(top2[:, 0] == top2[:, 1]))  # faces whose runner-up equals the winner exactly
            rows.append(f"| {name} | {acc[name]:.2f}% | {m['macro_f1']:.4f} | {len(test) / dt:,.0f} | {ties} |")
            print(rows[-1], flush=True)
        drop = acc["PyTorch fp32"] - acc["ONNX Runtime int8"]
        keep = drop <= args.max_drop
        verdict = (f"int8 changes accuracy by {-drop:+.2f} points against PyTorch fp32 "
                   f"(largest loss allowed {args.max_drop}): "
                   + ("**keep** it" if keep else "**do not ship** it"))
        installed = []
        if args.install:
            if args.weights and Path(args.weights).resolve() != default_weights_path().resolve():
                target = Path(args.weights).with_suffix(".onnx")
            else:
                target = DEFAULT_ONNX
            shutil.copy(fp32, target)
            installed.append(str(target))
            int8_target = target.with_name(target.stem + ".int8.onnx")
            if keep:
                shutil.copy(int8, int8_target)
                installed.append(str(int8_target))
            elif int8_target.exists():
                int8_target.unlink()
                installed.append(f"removed stale {int8_target}")
    lines = ["# int8 quantisation check (FER-2013 PrivateTest)", "",
             f"Command: `python benchmarks/int8_accuracy.py {' '.join(sys.argv[1:])}`".rstrip(), "",
             f"Weights: `{weights}`; {len(test)} PrivateTest faces, no TTA; static QDQ int8 (per-channel weights) "
             f"calibrated on {len(calib)} training faces in {quant_s:.0f} s.", "",
             "| model | accuracy | macro-F1 | faces/s (batch 64) | exact top-2 ties |",
             "|---|---:|---:|---:|---:|", *rows, "", verdict, ""]
    if installed:
        lines += ["Installed: " + ", ".join(installed), ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
