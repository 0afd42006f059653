"""``emoscope data stats PATH``: counts per split and class, image sizes, duplicates across splits."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def image_size_stats(root: Path, limit: int = 20000, progress: bool = False) -> dict:
    """Width/height statistics of the image files under ``root`` (header reads only, up to ``limit`` files);
    ``progress`` shows a bar on stderr."""
    from PIL import Image
    from tqdm.auto import tqdm

    from ..datasets.images import IMAGE_EXTENSIONS

    files = [p for p in sorted(root.rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()][:limit]
    sizes = []
    for p in tqdm(files, desc="image sizes", unit="img", file=sys.stderr, disable=not progress, leave=False):
        try:
            with Image.open(p) as im:
                sizes.append(im.size)
        except Exception:  # unreadable files are counted by load_dataset; here they only have no size
            continue
    if not sizes:
        return {}
    a = np.array(sizes)
    return {"files_measured": len(a), "width": {"min": int(a[:, 0].min()), "median": float(np.median(a[:, 0])),
                                                "max": int(a[:, 0].max())},
            "height": {"min": int(a[:, 1].min()), "median": float(np.median(a[:, 1])), "max": int(a[:, 1].max())}}


def duplicate_stats(fs) -> dict:
    """Groups of pixel-identical faces, and how many span more than one split."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, img in enumerate(fs.images):
        groups[hashlib.blake2b(img.tobytes(), digest_size=16).hexdigest()].append(i)
    dup = [g for g in groups.values() if len(g) > 1]
    across = [g for g in dup if len({fs.splits[i] for i in g}) > 1]
    conflicting = [g for g in dup if len({int(fs.labels[i]) for i in g}) > 1]
    return {"duplicate_groups": len(dup), "redundant_copies": sum(len(g) - 1 for g in dup),
            "groups_across_splits": len(across), "groups_with_conflicting_labels": len(conflicting)}


def cmd_stats(args: argparse.Namespace) -> int:
    from ..datasets import load_dataset

    fs = load_dataset(args.path, scheme=args.scheme, progress=not args.json)
    counts = fs.counts_by_split()
    path = Path(args.path)
    stats = {
        "path": str(path), "faces": len(fs), "classes": list(fs.classes), "counts": counts,
        "unreadable": len(fs.failures),
        "image_sizes": image_size_stats(path, progress=not args.json) if path.is_dir() else {},
        "duplicates": duplicate_stats(fs),
    }
    if args.json:
        print(json.dumps(stats))
        return 0
    names = list(fs.classes)
    print(f"{path}: {len(fs)} faces, scheme {fs.scheme.name}")
    print(f"{'split':<14}" + "".join(f"{n:>9}" for n in names) + f"{'total':>9}")
    for split, c in counts.items():
        print(f"{split:<14}" + "".join(f"{c[n]:>9}" for n in names) + f"{sum(c.values()):>9}")
    total = fs.class_counts()
    print(f"{'all':<14}" + "".join(f"{total[n]:>9}" for n in names) + f"{len(fs):>9}")
    if stats["image_sizes"]:
        s = stats["image_sizes"]
        print(f"image sizes ({s['files_measured']} files): width {s['width']['min']}-{s['width']['max']} "
              f"(median {s['width']['median']:.0f}), height {s['height']['min']}-{s['height']['max']} "
              f"(median {s['height']['median']:.0f})")
    d = stats["duplicates"]
    print(f"duplicates: {d['duplicate_groups']} groups of identical faces ({d['redundant_copies']} redundant), "
          f"{d['groups_across_splits']} span splits, {d['groups_with_conflicting_labels']} with conflicting labels")
    if fs.failures:
        print(fs.failure_summary())
    return 0


STATS_DESCRIPTION = """\
Read a dataset as every command reads it and print what is in it: faces per split and class, the image sizes on
disk (a folder's first 20,000 files), groups of pixel-identical faces (and how many span two splits, which leaks
test faces into training, or carry conflicting labels), and the files that could not be read. Progress bars go
to stderr; --json prints one JSON object instead of the table.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect datasets",
                       description="Inspect a dataset before training on it (see: emoscope data stats --help).")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    s = dsub.add_parser("stats", help="counts per split and class, image sizes, duplicates across splits",
                        description=STATS_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("path", help="dataset: FER-2013 CSV (.csv or .csv.gz) or image folder, an image folder of "
                                "<split>/<label>/*, or a folder with legend.csv")
    s.add_argument("--scheme", default="fer7", choices=["fer7", "fer6", "ferplus8"],
                   help="label scheme: fer7 (7 emotions), fer6 (no disgust), ferplus8 (adds contempt) "
                        "(default: fer7)")
    s.add_argument("--json", action="store_true", help="print one JSON object to stdout, no progress bars")
    s.set_defaults(func=cmd_stats)
