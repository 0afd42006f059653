"""The shipped models: weights live beside this file, with their model cards.

- ``default``: ``emovgg_m_fer2013`` (the flagship; ``MODEL_CARD.md``);
- ``fast``: ``emovgg_t_fer2013``, the same architecture at a third of the width, distilled from the flagship
  (``MODEL_CARD_FAST.md``): a few points less accurate, several times faster on a CPU.

Each ships as fp16 ``.pt`` (state_dict + config), its ONNX export and, when it passed the accuracy check,
an int8 ONNX file.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent
#: Shipped model names (``Recognizer(weights="fast")``, ``--weights fast``) -> file stem in this folder.
SHIPPED_MODELS = {"default": "emovgg_m_fer2013", "fast": "emovgg_t_fer2013"}
#: The default FER-2013 model (state_dict + config, fp16 weights); see MODEL_CARD.md.
DEFAULT_WEIGHTS = WEIGHTS_DIR / f"{SHIPPED_MODELS['default']}.pt"
#: The same model exported to ONNX (fp32), used by the ONNX Runtime backend.
DEFAULT_ONNX = DEFAULT_WEIGHTS.with_suffix(".onnx")


def shipped_weights(name: str = "default") -> Path:
    """Path of a shipped model's PyTorch weights; a clear error if it is unknown or was not installed."""
    if name not in SHIPPED_MODELS:
        raise ValueError(f"unknown shipped model {name!r}; choose {', '.join(SHIPPED_MODELS)} or pass a path")
    path = WEIGHTS_DIR / f"{SHIPPED_MODELS[name]}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"the shipped model {name!r} is missing ({path}); reinstall emoscope or pass "
                                "--weights PATH")
    return path


def default_weights_path() -> Path:
    """Path of the shipped default model's PyTorch weights."""
    return shipped_weights("default")


def resolve_weights(weights: str | Path | None) -> Path:
    """A ``--weights`` value -> a file: None is the default model, a shipped name that model, else a path."""
    if weights is None:
        return shipped_weights("default")
    if isinstance(weights, str) and weights in SHIPPED_MODELS:
        return shipped_weights(weights)
    return Path(weights)


#: Training-label counts of the shipped models (written by ``benchmarks/class_counts.py``): the prior each learnt.
CLASS_COUNTS_FILE = WEIGHTS_DIR / "class_counts.json"


def shipped_class_counts(path: str | Path) -> dict[str, int] | None:
    """How many training labels each class had, for a shipped model file (its .pt, .onnx or .int8.onnx), from
    ``class_counts.json``; None for any other file (a model trained here records them in its checkpoint)."""
    import json

    path = Path(path)
    if path.parent.resolve() != WEIGHTS_DIR.resolve() or not CLASS_COUNTS_FILE.is_file():
        return None
    stem = path.name.split(".")[0]
    entry = json.loads(CLASS_COUNTS_FILE.read_text(encoding="utf-8")).get(stem)
    return dict(entry["counts"]) if entry else None
