"""Weight-space ensembles of v3 and its fine-tunes, chosen on FER-2013 PublicTest (no training).

Runs 1, 3 and 4 of ``V4.md`` start from v3's weights, so they share its basin: averaging their weights
(WiSE-FT interpolates a fine-tune with its start; a "model soup" averages several fine-tunes) may keep a
fine-tune's gains and lose less of what the start knew. Each candidate is scored on PublicTest only (no TTA,
fp32); the best one is written as an ordinary checkpoint for ``generalisation.py`` and ``speed.py``. Test sets
(PrivateTest, the Taiwanese photos, muxspace) are not read here.

    python benchmarks/soup.py --out runs/v4_soup      # writes runs/v4_soup/best.pt and benchmarks/SOUP.md

``--pair START FINETUNE`` does the same for any start and one fine-tune of it (run 10): the candidates are the
fine-tune and the half-and-half average (the start is scored beside them for reference, never chosen):

    python benchmarks/soup.py --pair src/emoscope/weights/emovgg_m_fer2013.pt runs/v4_ensemble_distil_ft/best.pt \
        --out runs/v4_ensemble_soup --report benchmarks/SOUP_RUN10.md

Once the chosen soup is installed as the default (v4), v3 is no longer the shipped file: take it from git,
``git show 14b9c05:src/emoscope/weights/emovgg_m_fer2013.pt > runs/v3.pt``, and pass ``--v3 runs/v3.pt``.
The output folder also gets what ``flagship.py --run`` needs to install the soup and write its model card:
``command.txt``, the training stages' commands in the checkpoint (``recipe``), and the last fine-tune's
``history.json`` and ``curves.png``; and an ingredient's ``extra_data.json`` (the people its ``--extra-data`` run
held out, which ``generalisation.py`` reads).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from emoscope.cli.train import EXTRA_DATA_RECORD
from emoscope.datasets import load_dataset
from emoscope.evaluation import classification_metrics, predict_proba
from emoscope.models.checkpoint import atomic_save, half_precision, load_model, read_checkpoint
from emoscope.weights import default_weights_path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS = {
    "v3": None,  # the shipped default
    "run1": ROOT / "runs" / "v4_camera_ft" / "best.pt",
    "run3": ROOT / "runs" / "v4_camera_softferplus_ft" / "best.pt",
    "run4": ROOT / "runs" / "v4_camera_softferplus25_ft" / "best.pt",
}


@dataclass
class Candidate:
    """One weighted average of named ingredients and its PublicTest score."""

    name: str
    mix: dict[str, float]  # ingredient -> weight, summing to 1
    accuracy: float = float("nan")
    macro_f1: float = float("nan")


def average(states: dict[str, dict[str, torch.Tensor]], mix: dict[str, float]) -> dict[str, torch.Tensor]:
    """The weighted mean of floating-point tensors; integer buffers (BatchNorm's batch count) from the first."""
    first = states[next(iter(mix))]
    out = {}
    for key, ref in first.items():
        if ref.is_floating_point():
            out[key] = sum(w * states[name][key].float() for name, w in mix.items())
        else:
            out[key] = ref.clone()
    return out


def pair_candidates() -> list[Candidate]:
    """Run 10's fixed list: the start (reference only), the fine-tune, and their half-and-half average."""
    return [Candidate("start", {"start": 1.0}), Candidate("fine-tune", {"finetune": 1.0}),
            Candidate("start + 0.5 x (fine-tune - start)", {"start": 0.5, "finetune": 0.5})]


def candidates() -> list[Candidate]:
    """The fixed list written in V4.md's run 6 rule (the greedy soup is built later, from the scores)."""
    out = [Candidate(name, {name: 1.0}) for name in RUNS]
    for run in ("run4", "run3"):
        for a in (0.25, 0.5, 0.75):
            out.append(Candidate(f"v3 + {a:g} x ({run} - v3)", {"v3": 1 - a, run: a}))
    out.append(Candidate("uniform soup of v3, run1, run3, run4", {name: 0.25 for name in RUNS}))
    return out


def score(model: torch.nn.Module, meta: dict, state: dict, faces) -> tuple[float, float]:
    model.load_state_dict(state)
    probs = predict_proba(model, faces.images, input_size=meta["input_size"], in_chans=meta["in_chans"])
    m = classification_metrics(faces.labels, probs.argmax(1), faces.classes)
    return m["accuracy"], m["macro_f1"]


def greedy(scored: list[Candidate], evaluate) -> Candidate:
    """Wortsman et al.'s greedy soup: ingredients by PublicTest accuracy, each kept if the soup does not fall."""
    singles = sorted((c for c in scored if len(c.mix) == 1), key=lambda c: -c.accuracy)
    kept = [next(iter(singles[0].mix))]
    best = singles[0].accuracy, singles[0].macro_f1
    for c in singles[1:]:
        trial = kept + [next(iter(c.mix))]
        acc, f1 = evaluate({n: 1 / len(trial) for n in trial})
        if acc >= best[0]:
            kept, best = trial, (acc, f1)
    return Candidate("greedy soup of " + ", ".join(kept), {n: 1 / len(kept) for n in kept}, *best)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "fer2013")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "v4_soup", help="folder for best.pt")
    ap.add_argument("--report", type=Path, default=HERE / "SOUP.md")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--v3", type=Path, default=None, help="v3's checkpoint (default: the shipped default model)")
    ap.add_argument("--pair", type=Path, nargs=2, metavar=("START", "FINETUNE"),
                    help="average a start and one fine-tune of it instead of run 6's ingredients")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.pair:
        paths = dict(zip(("start", "finetune"), args.pair))
    else:
        paths = {name: p or args.v3 or default_weights_path() for name, p in RUNS.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        sys.exit(f"soup.py: missing checkpoints {missing}; train V4.md's runs 1, 3 and 4 first")
    states = {name: load_model(p)[0].state_dict() for name, p in paths.items()}
    model, meta = load_model(next(iter(paths.values())))  # the shared network; each candidate's weights go in it
    faces = load_dataset(args.data).split("publictest")
    t0 = time.perf_counter()

    def evaluate(mix: dict[str, float]) -> tuple[float, float]:
        return score(model, meta, average(states, mix), faces)

    scored = []
    for c in pair_candidates() if args.pair else candidates():
        c.accuracy, c.macro_f1 = evaluate(c.mix)
        print(f"{c.name:45s} PublicTest {100 * c.accuracy:.2f} %  macro-F1 {c.macro_f1:.3f}", flush=True)
        scored.append(c)
    if not args.pair:
        g = greedy(scored, evaluate)
        print(f"{g.name:45s} PublicTest {100 * g.accuracy:.2f} %  macro-F1 {g.macro_f1:.3f}", flush=True)
        scored.append(g)
    choosable = [c for c in scored if c.mix != {"start": 1.0}]
    best = max(choosable, key=lambda c: (c.accuracy, c.macro_f1))
    save_soup(args, paths, states, best)
    write_report(args, scored, best, time.perf_counter() - t0, len(faces))


def stage_command(name: str, path: Path) -> str:
    """The command that trained one ingredient: its run's command.txt, or the shipped file's own record."""
    f = path.parent / "command.txt"
    if f.is_file():
        return f.read_text().strip()
    return str(read_checkpoint(path).get("training_command", f"(no command recorded for {name})"))


def save_soup(args: argparse.Namespace, paths: dict[str, Path], states: dict, best: Candidate) -> None:
    """The chosen average as a checkpoint (fp16) plus what ``flagship.py --run`` reads to install it."""
    start = next(iter(paths))  # "v3", or "start" with --pair
    last = max((n for n in best.mix if n != start), key=lambda n: best.mix[n], default=start)
    ckpt = read_checkpoint(paths[last])
    ckpt.update(model=half_precision(average(states, best.mix)), best_acc=best.accuracy,
                soup=dict(best.mix),  # ingredient name (V4.md's run names) -> weight
                recipe=[stage_command(n, paths[n]) for n in paths if n in best.mix])
    ckpt.pop("optimizer", None)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_save(ckpt, args.out / "best.pt")
    (args.out / "command.txt").write_text(" ".join(["python benchmarks/soup.py", *sys.argv[1:]]) + "\n")
    for name in ("history.json", "curves.png"):
        if (paths[last].parent / name).is_file():
            shutil.copy(paths[last].parent / name, args.out / name)
    for n in best.mix:  # which people an ingredient's --extra-data run held out stay held out in the average
        if best.mix[n] > 0 and (paths[n].parent / EXTRA_DATA_RECORD).is_file():
            shutil.copy(paths[n].parent / EXTRA_DATA_RECORD, args.out / EXTRA_DATA_RECORD)
            break


def write_report(args: argparse.Namespace, scored: list[Candidate], best: Candidate, seconds: float, n: int) -> None:
    if args.pair:
        title = "# A start and its fine-tune, and their average (benchmarks/V4.md)"
        ingredients = f"start `{args.pair[0].as_posix()}`, fine-tune `{args.pair[1].as_posix()}` (the start is " \
                      "shown for reference and is not a candidate)"
    else:
        title = "# Weight-space ensembles of v3 and its fine-tunes (V4.md, run 6)"
        ingredients = "v3 (shipped), run 1 (camera augmentation), run 3 (FER+ share 0.5), run 4 (FER+ share 0.25)"
    lines = [title, "", "    python benchmarks/soup.py " + " ".join(sys.argv[1:]), "",
             f"FER-2013 PublicTest ({n} faces, no TTA, fp32 torch); {seconds / 60:.1f} min on "
             f"this machine. Ingredients: {ingredients}. Only PublicTest is read here.", "",
             "| candidate | PublicTest | macro-F1 |", "|---|---:|---:|"]
    for c in scored:
        mark = " **(chosen)**" if c is best else ""
        lines.append(f"| {c.name}{mark} | {100 * c.accuracy:.2f} % | {c.macro_f1:.3f} |")
    lines += ["", f"Chosen: {best.name}, written to `{args.out.as_posix()}/best.pt` "
              f"(mix {', '.join(f'{k} {v:.2f}' for k, v in best.mix.items())})."]
    args.report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.report}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
