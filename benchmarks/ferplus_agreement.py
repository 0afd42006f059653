"""How far FER+'s ten annotators agree with FER-2013's own labels, and whether their votes hold anything the
shipped models lack. The ninth CPU attempt (``benchmarks/FLAGSHIP_CPU.md``) quotes these numbers to explain its
choice of soft-target weight::

    python benchmarks/ferplus_agreement.py --data ../shared/datasets/fer2013

Per split: the share of faces with FER+ emotion votes, how often FER+'s top emotion is the FER-2013 label, how
often FER+ gives the label no vote at all, and the mean vote share of the label. Then, on PrivateTest, each
shipped model's accuracy alone and with ``mix * votes`` added to its probabilities. That second number reads the
test faces' votes, so it is an oracle that no model could use; it only shows whether the votes carry information.
"""

from __future__ import annotations

import argparse

import numpy as np

from emoscope.datasets import load_dataset
from emoscope.datasets.ferplus import vote_distributions
from emoscope.evaluation import predict_proba
from emoscope.models.checkpoint import load_model
from emoscope.weights import WEIGHTS_DIR


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the FER-2013 image folder with its FER+ files")
    ap.add_argument("--mix", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5, 1.0],
                    help="weights of the votes added to a model's probabilities")
    args = ap.parse_args(argv)
    faces = load_dataset(args.data)
    print("| split | faces | with votes | top vote = label | label gets no vote | mean vote share of label |")
    print("|---|---:|---:|---:|---:|---:|")
    for split in ("training", "publictest", "privatetest"):
        part = faces.split(split)
        votes = vote_distributions(args.data, part.sources)
        has = votes.sum(1) > 0
        share = votes[np.arange(len(part)), part.labels][has]
        top = (votes.argmax(1) == part.labels)[has]
        print(f"| {split} | {len(part)} | {has.mean():.2%} | {top.mean():.2%} | {(share == 0).mean():.2%} "
              f"| {share.mean():.3f} |")

    test = faces.split("privatetest")
    votes = vote_distributions(args.data, test.sources)
    print("\nPrivateTest accuracy, no TTA, of each shipped model alone and plus mix * votes (an oracle):\n")
    print("| model | alone | " + " | ".join(f"+ {m:g} * votes" for m in args.mix) + " |")
    print("|---|---:|" + "---:|" * len(args.mix))
    for weights in sorted(WEIGHTS_DIR.glob("*_fer2013.pt")):
        model, meta = load_model(weights)
        probs = predict_proba(model, test.images, input_size=meta["input_size"], in_chans=meta["in_chans"])
        accs = [(np.argmax(probs + m * votes, 1) == test.labels).mean() for m in [0.0, *args.mix]]
        print(f"| {weights.stem} | " + " | ".join(f"{a:.2%}" for a in accs) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
