"""How FER-2013 frames its faces, in the detector's own terms: the crop margin and centre that match it.

FER-2013's 48 x 48 faces were cut by another detector long ago. To crop new photos the same way, run the
pipeline's detector on FER-2013 faces themselves: each face is scaled up and set in the middle of a larger
canvas (its border pixels repeated outwards, so the detector sees a whole head, not a tile edge), and the box
found is compared with the face's own square. The median ratio ``crop side / box side`` gives the margin
(``(ratio - 1) / 2``, the ``margin`` of ``emoscope.faces.align_crop``), and the median offset of the crop's centre
from the box's centre (in box sides) gives the framing shift. Only Training faces are used: the result is fitted
to FER-2013, never to a test set.

    python benchmarks/framing.py --faces 1000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from emoscope.datasets import load_dataset
from emoscope.faces import get_detector

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "fer2013")
    p.add_argument("--faces", type=int, default=1000, help="Training faces to measure (seeded sample)")
    p.add_argument("--scale", type=int, default=4, help="upscaling of each 48-px face")
    p.add_argument("--detector", default="auto")
    p.add_argument("--out", type=Path, default=HERE / "FRAMING.md")
    args = p.parse_args()
    train = load_dataset(args.data).split("training")
    idx = np.random.default_rng(0).choice(len(train), size=min(args.faces, len(train)), replace=False)
    det = get_detector(args.detector)
    side = 48 * args.scale
    pad = side  # the canvas is 3x the face: room for the head around it
    ratios, dx, dy, missed = [], [], [], 0
    for i in tqdm(idx, desc="detecting FER-2013 faces", unit="face"):
        face = cv2.resize(train.images[i], (side, side), interpolation=cv2.INTER_CUBIC)
        canvas = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        found = det.detect(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR))
        centre = pad + side / 2
        # the face the crop holds: the detection nearest the canvas centre
        found = [d for d in found if abs(d.box[0] + d.box[2] / 2 - centre) < side / 2
                 and abs(d.box[1] + d.box[3] / 2 - centre) < side / 2]
        if not found:
            missed += 1
            continue
        x, y, w, h = min(found, key=lambda d: abs(d.box[0] + d.box[2] / 2 - centre)).box
        s = max(w, h)
        ratios.append(side / s)
        dx.append((centre - (x + w / 2)) / s)
        dy.append((centre - (y + h / 2)) / s)
    if not ratios:
        sys.exit("the detector found no face in any FER-2013 face: nothing to measure")
    r, ox, oy = (np.array(v) for v in (ratios, dx, dy))
    q = lambda v: f"{np.median(v):+.3f} (IQR {np.percentile(v, 25):+.3f} to {np.percentile(v, 75):+.3f})"  # noqa: E731
    lines = ["# FER-2013's framing in the detector's terms", "",
             f"Command: `python benchmarks/framing.py {' '.join(sys.argv[1:])}`".rstrip(), "",
             f"{len(idx)} seeded Training faces, scaled x{args.scale} on a border-repeated canvas; detector "
             f"`{getattr(det, 'name', args.detector)}`; no face found in {missed}.", "",
             "| quantity | median (interquartile range) |", "|---|---|",
             f"| crop side / box side | {q(r)} |",
             f"| margin = (ratio - 1) / 2 | {q((r - 1) / 2)} |",
             f"| crop centre - box centre, x (box sides) | {q(ox)} |",
             f"| crop centre - box centre, y (box sides; + is down) | {q(oy)} |", ""]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
