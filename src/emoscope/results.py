"""The results table: benchmark scripts append rows to a JSON store; ``RESULTS.md`` is rendered from it.

``RESULTS.md`` is a short summary (one line per experiment); each experiment's full tables go to
``results/<experiment>.md`` beside it, so no page holds every column of every row.

A row is identified by (experiment, dataset, setting, model, params): writing the same experiment again
replaces its row instead of duplicating it. Every row carries the exact command that produced it, so any
number in ``RESULTS.md`` can be re-run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .labels import EMOTIONS

#: How a row's notes say why its run ended before the planned epochs (written by benchmarks/common.py's ``row``).
STOPPED_EARLY = re.compile(r"stopped after \d+ of \d+ epochs \(([^)]+)\)")

#: Where the benchmark scripts keep their rows and the rendered table, relative to the repository root.
DEFAULT_STORE = Path("benchmarks/results.json")
DEFAULT_MARKDOWN = Path("benchmarks/RESULTS.md")


@dataclass
class ResultRow:
    """One measured result. ``params`` holds whatever distinguishes runs of the same model (recipe knobs)."""

    experiment: str
    dataset: str
    setting: str
    model: str
    accuracy: float
    macro_f1: float
    params: dict[str, Any] = field(default_factory=dict)
    train_time_s: float | None = None
    per_class_f1: dict[str, float] = field(default_factory=dict)
    command: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    date: str = ""

    def key(self) -> tuple[str, str, str, str, str]:
        return self._key(self.params)

    def recipe_key(self) -> tuple[str, str, str, str, str]:
        """:meth:`key` without ``params["device"]``: the same recipe trained on another device."""
        return self._key({k: v for k, v in self.params.items() if k != "device"})

    def _key(self, params: dict[str, Any]) -> tuple[str, str, str, str, str]:
        return self.experiment, self.dataset, self.setting, self.model, json.dumps(params, sort_keys=True, default=str)

    @property
    def stopped_by(self) -> str | None:
        """Why the run ended before its planned epochs ("time limit", "early stopping"), as its notes say; else None."""
        found = STOPPED_EARLY.search(self.notes)
        return found.group(1) if found else None

    @property
    def cut_short(self) -> bool:
        """True when a time limit stopped the run before its planned epochs."""
        return self.stopped_by == "time limit"

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> ResultRow:
        known = set(ResultRow.__dataclass_fields__)
        return ResultRow(**{k: v for k, v in d.items() if k in known})

    @staticmethod
    def from_metrics(experiment: str, dataset: str, setting: str, model: str, metrics: Mapping[str, Any],
                     **kw: Any) -> ResultRow:
        """Build a row from :func:`emoscope.evaluation.classification_metrics` output."""
        per_class = {c: float(v["f1"]) for c, v in metrics.get("per_class", {}).items()}
        return ResultRow(experiment, dataset, setting, model, float(metrics["accuracy"]),
                         float(metrics["macro_f1"]), per_class_f1=per_class, **kw)


def current_command() -> str:
    """The command line of this process as a shell-ready string (``python benchmarks/x.py --flag ...``)."""
    argv = list(sys.argv)
    if not argv:
        return ""
    prog = argv[0]
    if os.path.isabs(prog) and Path(prog).is_relative_to(Path.cwd()):
        prog = os.path.relpath(prog)  # scripts inside the working folder are recorded by their relative path
    if prog.endswith("__main__.py"):  # python -m emoscope ...
        return shlex.join(["python", "-m", "emoscope", *argv[1:]])
    if prog.endswith(".py"):
        return shlex.join(["python", prog, *argv[1:]])
    return shlex.join([Path(prog).name, *argv[1:]])


class ResultsStore:
    """Rows kept in a JSON file; ``upsert`` + ``save`` update it, ``write_markdown`` renders the table."""

    def __init__(self, path: str | Path = DEFAULT_STORE) -> None:
        self.path = Path(path)
        self.rows: list[ResultRow] = []
        if self.path.exists():
            data = json.loads(self.path.read_text() or "[]")
            if not isinstance(data, list):
                raise ValueError(f"{self.path}: expected a JSON list of result rows")
            self.rows = [ResultRow.from_dict(d) for d in data]

    def upsert(self, row: ResultRow) -> bool:
        """Add ``row``, replacing a row with the same key; returns True when one was replaced.

        A replacing row without notes keeps the stored row's notes (they may have been added by hand).
        """
        if not row.date:
            row.date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        for i, old in enumerate(self.rows):
            if old.key() == row.key():
                row.notes = row.notes or old.notes
                self.rows[i] = row
                return True
        self.rows.append(row)
        return False

    def drop_cut_short(self, row: ResultRow) -> list[ResultRow]:
        """Remove the rows of ``row``'s recipe on any device that a time limit cut short, when ``row`` was not.

        A run that finishes a recipe supersedes the partial runs of the same recipe (e.g. a GPU run stopped by a
        session's time limit); returns the removed rows so the caller can say what went.
        """
        if row.cut_short:
            return []
        gone = [r for r in self.rows if r.cut_short and r.key() != row.key() and r.recipe_key() == row.recipe_key()]
        self.rows = [r for r in self.rows if all(r is not g for g in gone)]
        return gone

    def save(self) -> Path:
        """Write the store atomically (temp file + rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps([asdict(r) for r in self.rows], indent=1, default=str) + "\n")
        os.replace(tmp, self.path)
        return self.path

    def to_markdown(self, title: str = "Benchmark results", details: str = "results") -> str:
        """The summary page: one line per experiment, linking to its file in ``details`` (:func:`render_summary`)."""
        return render_summary(self.rows, title, source=self.path.name, details=details)

    def write_markdown(self, path: str | Path = DEFAULT_MARKDOWN, title: str = "Benchmark results") -> Path:
        """Write the summary to ``path`` and one details file per experiment to :func:`details_dir` (``path``).

        Details files of experiments no longer in the store are removed (the folder holds only generated files).
        """
        path = Path(path)
        folder = details_dir(path)
        folder.mkdir(parents=True, exist_ok=True)
        written = set()
        for exp, group in by_experiment(self.rows).items():
            detail = folder / f"{experiment_slug(exp)}.md"
            detail.write_text(render_markdown(group, exp, source=f"../{self.path.name}"))
            written.add(detail.name)
        for stale in folder.glob("*.md"):
            if stale.name not in written:
                stale.unlink()
        path.write_text(self.to_markdown(title, folder.name))
        return path


def details_dir(markdown: str | Path) -> Path:
    """The folder beside a summary page that holds its experiments' files: ``RESULTS.md`` -> ``results/``.

    Each summary gets its own folder, so stores kept side by side in one folder never remove each other's files.
    """
    markdown = Path(markdown)
    return markdown.parent / markdown.stem.lower()


def experiment_slug(experiment: str) -> str:
    """File stem of an experiment's details file: ``classic baselines`` -> ``classic_baselines``."""
    return re.sub(r"[^a-z0-9]+", "_", experiment.lower()).strip("_") or "experiment"


def by_experiment(rows: Iterable[ResultRow]) -> dict[str, list[ResultRow]]:
    """Rows grouped by experiment, in the order each experiment first appears."""
    groups: dict[str, list[ResultRow]] = {}
    for r in rows:
        groups.setdefault(r.experiment, []).append(r)
    return groups


def render_summary(rows: Sequence[ResultRow], title: str = "Benchmark results", source: str = "results.json",
                   details: str = "results") -> str:
    """A short page: per experiment, how many rows, its most accurate row and a link to its file in ``details``."""
    lines = [f"# {title}", "",
             f"Generated from `{source}` by `emoscope.results`; edit the store (or re-run the command), not this file.",
             "Each experiment's full table (parameters, training time, per-class F1, the command of every row) is in",
             f"its own file under [`{details}/`]({details}/). Accuracy is on the test split each row names.",
             "Rows whose notes say *reduced run* trained on a sample sized for a 2-core CPU: they compare recipes",
             "with each other, not with the published results.", "",
             "| experiment | rows | most accurate row | setting | accuracy | macro-F1 |",
             "|---|---:|---|---|---:|---:|"]
    for exp, group in by_experiment(rows).items():
        best = max(group, key=lambda r: r.accuracy)
        link = f"[{_cell(exp)}]({details}/{experiment_slug(exp)}.md)"
        lines.append(f"| {link} | {len(group)} | {_cell(best.model)} ({_cell(best.dataset)}) | {_cell(best.setting)} "
                     f"| {best.accuracy:.4f} | {best.macro_f1:.4f} |")
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "/".join(_fmt(x) for x in v)
    return str(v)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(rows: Sequence[ResultRow], title: str = "Benchmark results", source: str = "results.json") -> str:
    """One section per experiment: a results table, a per-class F1 table, the notes and numbered commands."""
    lines = [f"# {title}", "",
             f"Generated from `{source}` by `emoscope.results`; edit the store (or re-run the command), not this file.",
             ""]
    for exp, group in by_experiment(rows).items():
        lines += [f"## {exp}", ""] if len(by_experiment(rows)) > 1 or exp != title else []
        lines += _results_table(group)
    return "\n".join(lines)


def _results_table(group: Sequence[ResultRow]) -> list[str]:
    """Markdown lines for one experiment's rows."""
    names = {c for r in group for c in r.per_class_f1}
    classes = [c for c in EMOTIONS if c in names] + sorted(names - set(EMOTIONS))
    lines = ["| # | dataset | setting | model | params | train time | accuracy | macro-F1 | cmd |",
             "|---:|---|---|---|---|---:|---:|---:|---|"]
    commands: list[str] = []
    for n, r in enumerate(group, 1):
        if r.command and r.command not in commands:
            commands.append(r.command)
        ref = f"[{commands.index(r.command) + 1}]" if r.command else "-"
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in r.params.items()) or "-"
        t = "-" if r.train_time_s is None else _duration(r.train_time_s)
        cells = [n, r.dataset, r.setting, r.model, params, t, f"{r.accuracy:.4f}", f"{r.macro_f1:.4f}", ref]
        lines.append("| " + " | ".join(_cell(str(c)) for c in cells) + " |")
    if classes:
        lines += ["", "Per-class F1 (# is the row above):", "",
                  "| # | model | " + " | ".join(f"F1 {c}" for c in classes) + " |",
                  "|---:|---|" + "---:|" * len(classes)]
        for n, r in enumerate(group, 1):
            f1s = [f"{r.per_class_f1[c]:.3f}" if c in r.per_class_f1 else "-" for c in classes]
            lines.append("| " + " | ".join(_cell(str(c)) for c in [n, r.model, *f1s]) + " |")
    notes = list(dict.fromkeys(f"- {r.model} ({r.setting}): {r.notes}" for r in group if r.notes))
    if notes:
        lines += ["", *notes]
    if commands:
        lines += ["", "Commands:", ""]
        lines += [f"{i}. `{c}`" for i, c in enumerate(commands, 1)]
    lines.append("")
    return lines


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def record(rows: ResultRow | Iterable[ResultRow], store: str | Path = DEFAULT_STORE,
           markdown: str | Path | None = DEFAULT_MARKDOWN, drop_cut_short: bool = False) -> Path:
    """Upsert ``rows`` into ``store``, save it and re-render ``markdown`` (None: skip). Returns the store path.

    ``drop_cut_short``: also remove the time-limited rows of the same recipes (:meth:`ResultsStore.drop_cut_short`),
    each named on stderr.

    The read-upsert-write runs under an exclusive lock on ``<store>.lock``, so benchmark scripts running side by
    side (one per core, or one per GPU run) cannot drop each other's rows.
    """
    rows = [rows] if isinstance(rows, ResultRow) else list(rows)
    with _locked(Path(store)):
        st = ResultsStore(store)
        for r in rows:
            st.upsert(r)
            for gone in st.drop_cut_short(r) if drop_cut_short else []:
                print(f"{store}: dropped {gone.experiment} / {gone.model} {gone.params} ({gone.notes.split(';')[0]}), "
                      "superseded by a run of the whole recipe", file=sys.stderr)
        st.save()
        if markdown is not None:
            st.write_markdown(markdown)
    return st.path


@contextmanager
def _locked(store: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock beside ``store`` (POSIX); without ``fcntl`` (Windows) run unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store.with_name(store.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


__all__ = ["DEFAULT_MARKDOWN", "DEFAULT_STORE", "STOPPED_EARLY", "ResultRow", "ResultsStore", "by_experiment",
           "current_command", "details_dir", "experiment_slug", "record", "render_markdown", "render_summary"]
