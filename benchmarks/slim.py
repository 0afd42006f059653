"""A narrower start for a fast network: a trained EmoVGG slimmed to a smaller width (``models.flagship.slim``).

    python benchmarks/slim.py src/emoscope/weights/emovgg_m_fer2013.pt --width 24 --out runs/slim24/init.pt

Writes a checkpoint that ``emoscope train --set init_weights=...`` starts from (with ``--model emovgg_m --set
model_kwargs={"width": 24}``), and prints how well the slimmed net reads FER-2013 PublicTest before any training,
beside the original: the distance a fine-tune has to make up.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from emoscope.datasets import load_dataset  # noqa: E402
from emoscope.evaluation import predict_proba  # noqa: E402
from emoscope.models.checkpoint import atomic_save, load_model, model_meta  # noqa: E402
from emoscope.models.flagship import EmoVGG, slim  # noqa: E402


def public_accuracy(model: torch.nn.Module, data: Path) -> float:
    test = load_dataset(data).split("PublicTest")
    probs = predict_proba(model.eval(), test.images, batch_size=256)
    return float(np.mean(probs.argmax(1) == test.labels))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("weights", type=Path, help="a trained EmoVGG checkpoint (e.g. the installed default)")
    p.add_argument("--width", type=int, required=True, help="first-stage width of the slimmed net (doubled after)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write")
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "fer2013",
                   help="FER-2013 folder, to score PublicTest before and after (skipped when absent)")
    args = p.parse_args()
    model, meta = load_model(args.weights)
    if not isinstance(model, EmoVGG):
        sys.exit(f"{args.weights}: a {meta['model_name']} checkpoint; slimming needs an EmoVGG (emovgg_*)")
    small = slim(model, args.width)
    kwargs = {**meta.get("model_kwargs", {}), "width": args.width, "widths": list(small.cfg.widths)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save({**model_meta(meta["model_name"], meta["classes"], **kwargs), "model": small.state_dict()}, args.out)
    print(f"wrote {args.out}: {meta['model_name']} {kwargs}")
    if args.data.is_dir():
        print(f"PublicTest before training: original {public_accuracy(model, args.data):.2%}, "
              f"slimmed {public_accuracy(small, args.data):.2%}")


if __name__ == "__main__":
    main()
