"""Canonical emotion names, label schemes and cleaning of messy label strings.

Every dataset reader maps its labels onto one canonical order (FER-2013 ids 0-6):
angry, disgust, fear, happy, sad, surprise, neutral. Other schemes (6-class without
disgust, 8-class FER+ with contempt) are subsets/supersets of the same names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .errors import EmoscopeError

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Lower-case synonyms seen in public datasets, mapped to canonical names.
SYNONYMS: dict[str, str] = {
    "anger": "angry",
    "mad": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happiness": "happy",
    "joy": "happy",
    "joyful": "happy",
    "smile": "happy",
    "sadness": "sad",
    "unhappy": "sad",
    "surprised": "surprise",
    "suprise": "surprise",
    "neutrality": "neutral",
    "calm": "neutral",
    "contemptuous": "contempt",
}

#: Default merges applied after synonyms (contempt folded into disgust, as FER-7 has no contempt).
DEFAULT_MERGES: dict[str, str] = {"contempt": "disgust"}


class LabelError(EmoscopeError, ValueError):
    """Raised when labels cannot be mapped onto a scheme; the message lists the offenders."""


@dataclass(frozen=True)
class LabelScheme:
    """An ordered set of class names plus merges that fold other names into them."""

    name: str
    classes: tuple[str, ...]
    merges: Mapping[str, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def index(self, name: str) -> int:
        return self.classes.index(name)


SCHEMES: dict[str, LabelScheme] = {
    "fer7": LabelScheme("fer7", EMOTIONS, DEFAULT_MERGES),
    "fer6": LabelScheme(
        "fer6", ("angry", "fear", "happy", "sad", "surprise", "neutral"), {"contempt": "angry", "disgust": "angry"}
    ),
    "ferplus8": LabelScheme("ferplus8", EMOTIONS + ("contempt",), {}),
}


def get_scheme(scheme: str | LabelScheme) -> LabelScheme:
    """Return a scheme by name (``fer7``, ``fer6``, ``ferplus8``) or pass one through."""
    if isinstance(scheme, LabelScheme):
        return scheme
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise LabelError(f"unknown label scheme {scheme!r}; choose one of {sorted(SCHEMES)}") from None


def canonical_name(raw: str) -> str:
    """Lower-case, strip and resolve synonyms: ``' HAPPINESS '`` -> ``'happy'``."""
    name = str(raw).strip().lower().replace("-", " ").replace("_", " ")
    name = " ".join(name.split())
    return SYNONYMS.get(name, name)


def clean_labels(
    raw_labels: Iterable[str],
    scheme: str | LabelScheme = "fer7",
    merges: Mapping[str, str] | None = None,
    where: str = "labels",
) -> list[int]:
    """Map raw label strings (any case, synonyms) to class ids of ``scheme``.

    ``merges`` overrides the scheme's own merge table (e.g. ``{"contempt": "disgust"}``).
    Unknown labels raise :class:`LabelError` listing every unknown name with its count.
    """
    sch = get_scheme(scheme)
    table = dict(sch.merges if merges is None else merges)
    ids: list[int] = []
    unknown: Counter[str] = Counter()
    for raw in raw_labels:
        name = canonical_name(raw)
        name = table.get(name, name)
        if name in sch.classes:
            ids.append(sch.classes.index(name))
        else:
            unknown[str(raw)] += 1
            ids.append(-1)
    if unknown:
        listing = ", ".join(f"{k!r} x{v}" for k, v in unknown.most_common())
        raise LabelError(
            f"{where}: {sum(unknown.values())} label(s) not in scheme {sch.name!r} "
            f"(classes {', '.join(sch.classes)}): {listing}. "
            "Add a merge (e.g. merges={'contempt': 'disgust'}) or fix the labels."
        )
    return ids
