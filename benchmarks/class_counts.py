"""Record how many training labels each class had for the shipped models (``weights/class_counts.json``).

A classifier learns its training set's class frequencies along with the faces; ``Recognizer(balance=T)`` (CLI
``--balance``) divides them out so that every emotion is read as equally likely. Models trained by this version
record the counts in their checkpoints; the shipped files predate that, so their counts live beside them. Both
shipped models learnt from FER-2013 Training's labels (v4's fine-tune blended in a quarter of FER+'s vote shares
on the same faces; the fast model was distilled on the same faces), so both record those counts:

    python benchmarks/class_counts.py --data ../shared/datasets/fer2013 --split Training \
        --models emovgg_m_fer2013 emovgg_t_fer2013
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emoscope.datasets import load_dataset
from emoscope.weights import CLASS_COUNTS_FILE, WEIGHTS_DIR


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="the dataset the models were trained on")
    p.add_argument("--split", default="Training", help="its training split (default: Training)")
    p.add_argument("--models", nargs="+", required=True, help="file stems in src/emoscope/weights/")
    args = p.parse_args()
    for stem in args.models:
        if not (WEIGHTS_DIR / f"{stem}.pt").is_file():
            sys.exit(f"{WEIGHTS_DIR / stem}.pt not found: give the stem of a shipped model file")
    train = load_dataset(args.data).split(args.split)
    counts = train.class_counts()
    table = json.loads(CLASS_COUNTS_FILE.read_text(encoding="utf-8")) if CLASS_COUNTS_FILE.is_file() else {}
    for stem in args.models:
        table[stem] = {"counts": counts, "source": f"{args.data.name} {args.split} labels ({len(train)} faces)",
                       "command": "python benchmarks/class_counts.py " + " ".join(sys.argv[1:])}
    CLASS_COUNTS_FILE.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"{', '.join(args.models)}: {counts} -> {CLASS_COUNTS_FILE}")


if __name__ == "__main__":
    main()
