"""The import graph of ``src/emoscope``, read with ``ast``: its layers, cycles and upward imports.

``docs/ARCHITECTURE.md`` shows the layer diagram and module list this script writes between its markers, and
``tests/test_architecture.py`` fails on an import cycle, an upward import or a module no layer claims.

    python tools/import_graph.py            # print problems (exit 1 if any) and whether the doc is current
    python tools/import_graph.py --write    # redraw the generated part of docs/ARCHITECTURE.md
    python tools/import_graph.py --check    # exit 1 when the doc's module list differs from the code

Every import counts, including those inside functions (the CLI imports lazily) and under ``TYPE_CHECKING``:
a lazy import still makes the lower module depend on the upper one.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_ROOT = REPO / "src" / "emoscope"
DOC = REPO / "docs" / "ARCHITECTURE.md"
START, END = "<!-- import-graph:start -->", "<!-- import-graph:end -->"

#: Layers from the bottom up: a module may import its own layer and the layers below, never one above.
#: Each entry is (layer name, module prefixes); a prefix matches the module and everything inside it, except the
#: package root ``emoscope``, which matches only itself (its ``__init__``: the version and lazy re-exports).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("emoscope", "emoscope.labels", "emoscope.errors", "emoscope.durations", "emoscope.weights",
                    "emoscope.samples", "emoscope.plots")),
    ("data", ("emoscope.datasets", "emoscope.imaging")),
    ("faces and pixels", ("emoscope.preprocess", "emoscope.augment", "emoscope.faces")),
    ("models", ("emoscope.models",)),
    ("learning", ("emoscope.training", "emoscope.distributed", "emoscope.budget", "emoscope.evaluation",
                  "emoscope.classic", "emoscope.explain", "emoscope.export", "emoscope.results")),
    ("inference", ("emoscope.recognizer", "emoscope.annotate", "emoscope.frames")),
    ("video and batch", ("emoscope.video", "emoscope.batch")),
    ("mood log", ("emoscope.mood",)),
    ("web server", ("emoscope.server",)),
    ("command line", ("emoscope.cli", "emoscope.__main__")),
]


@dataclass
class Module:
    """One module of the package: its dotted name, file, first docstring line and the package modules it imports."""

    name: str
    path: Path
    summary: str
    imports: set[str] = field(default_factory=set)


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    """``emoscope.datasets.images`` for ``src/emoscope/datasets/images.py``; a package is its ``__init__``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _raw_imports(tree: ast.AST, name: str, is_package: bool) -> set[str]:
    """Dotted names this module imports from the package (``from . import x`` gives ``pkg.x``)."""
    package = name.split(".") if is_package else name.split(".")[:-1]
    top = name.split(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == top}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == top:
                target = node.module
            else:
                continue
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}  # `from pkg import submodule`
    return found


def read_graph(root: Path = PACKAGE_ROOT) -> dict[str, Module]:
    """Every module under ``root`` with the package modules it imports (names resolved to real modules)."""
    modules: dict[str, Module] = {}
    trees = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        doc = (ast.get_docstring(tree) or "").strip().splitlines()
        modules[name] = Module(name, path, doc[0] if doc else "")
        trees[name] = (tree, path.name == "__init__.py")
    for name, (tree, is_package) in trees.items():
        for target in _raw_imports(tree, name, is_package):
            while target and target not in modules:  # `from .cli import UserError` -> emoscope.cli
                target = target.rpartition(".")[0]
            if target and not (name == target or name.startswith(target + ".")):  # a parent package is
                modules[name].imports.add(target)  # imported before its modules anyway: not an edge
    return modules


def layer_of(name: str) -> int | None:
    """Index of the layer claiming ``name`` (the longest matching prefix wins), or None."""
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = name == prefix or (prefix != "emoscope" and name.startswith(prefix + "."))
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def unassigned(modules: dict[str, Module]) -> list[str]:
    """Modules no layer claims (add them to ``LAYERS``)."""
    return sorted(n for n in modules if layer_of(n) is None)


def upward_imports(modules: dict[str, Module]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where the imported module sits in a higher layer."""
    bad = []
    for name, mod in sorted(modules.items()):
        here = layer_of(name)
        for target in sorted(mod.imports):
            there = layer_of(target)
            if here is not None and there is not None and there > here:
                bad.append((name, target))
    return bad


def find_cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Import cycles (strongly connected components of more than one module), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the package has ~60 modules, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in modules[v].imports:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(modules):
        if v not in index:
            visit(v)
    return sorted(cycles)


def problems(modules: dict[str, Module]) -> list[str]:
    """Human-readable problems: unassigned modules, upward imports, cycles."""
    out = [f"{n}: no layer in tools/import_graph.py LAYERS claims this module" for n in unassigned(modules)]
    out += [f"{a} imports {b}, which sits above it ({LAYERS[layer_of(a)][0]} -> {LAYERS[layer_of(b)][0]})"
            for a, b in upward_imports(modules)]
    out += [f"import cycle: {' <-> '.join(c)}" for c in find_cycles(modules)]
    return out


def _short(name: str) -> str:
    return name.removeprefix("emoscope.") if name != "emoscope" else "emoscope (package root)"


def _top(name: str) -> str:
    """The top-level name a module belongs to, as the diagram shows it: ``datasets/``, ``training``."""
    if name == "emoscope":
        return "emoscope/__init__"
    top = name.split(".")[1]
    return top + "/" if (PACKAGE_ROOT / top).is_dir() else top


def render(modules: dict[str, Module]) -> str:
    """The generated part of ARCHITECTURE.md: the layer diagram and one line per module."""
    lines = [START, "<!-- drawn by `python tools/import_graph.py --write` from the imports in src/emoscope -->", "",
             "Layers, top to bottom; a module imports only from its own layer and the layers below it:", "", "```"]
    by_layer: dict[int, list[str]] = {}
    for name in modules:
        by_layer.setdefault(layer_of(name) if layer_of(name) is not None else -1, []).append(name)
    tops = {i: sorted({_top(n) for n in by_layer.get(i, [])}) for i in range(len(LAYERS))}
    width = max(len(name) for name, _ in LAYERS)
    for i in reversed(range(len(LAYERS))):
        lines.append(f"{LAYERS[i][0]:>{width}} | {'  '.join(tops[i])}")
        if i:
            lines.append(f"{'':>{width}} |   ^")
    lines += ["```", "", "| module | layer | what it is | imports from the package |", "|---|---|---|---|"]
    for name in sorted(modules, key=lambda n: (layer_of(n) if layer_of(n) is not None else -1, n)):
        mod = modules[name]
        layer = LAYERS[layer_of(name)][0] if layer_of(name) is not None else "**none**"
        deps = ", ".join(f"`{_short(d)}`" for d in sorted(mod.imports)) or "none"
        summary = mod.summary.replace("|", "\\|")
        lines.append(f"| `{_short(name)}` | {layer} | {summary} | {deps} |")
    lines += ["", END]
    return "\n".join(lines)


def documented_modules(text: str) -> set[str]:
    """Module names listed in the generated table of a document's text."""
    block = text.partition(START)[2].partition(END)[0]
    names = set()
    for m in re.finditer(r"^\| `([^`]+)` \|", block, flags=re.M):
        short = m.group(1)
        names.add("emoscope" if short.startswith("emoscope ") else f"emoscope.{short}")
    return names


def write_doc(modules: dict[str, Module], doc: Path = DOC) -> None:
    """Replace the generated block of ``doc`` (or append one) with :func:`render`'s."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    block = render(modules)
    if START in text and END in text:
        head, _, rest = text.partition(START)
        text = head + block + rest.partition(END)[2]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="redraw the generated part of docs/ARCHITECTURE.md")
    p.add_argument("--check", action="store_true", help="exit 1 when docs/ARCHITECTURE.md lists other modules")
    args = p.parse_args(argv)
    modules = read_graph()
    found = problems(modules)
    for line in found:
        print(line, file=sys.stderr)
    if args.write:
        write_doc(modules)
        print(f"wrote {DOC.relative_to(REPO)} ({len(modules)} modules)")
    listed = documented_modules(DOC.read_text(encoding="utf-8")) if DOC.exists() else set()
    stale = listed != set(modules)
    if stale:
        print(f"{DOC.relative_to(REPO)} is out of date: run python tools/import_graph.py --write "
              f"(missing {sorted(set(modules) - listed)}, gone {sorted(listed - set(modules))})", file=sys.stderr)
    if not found and not stale:
        print(f"{len(modules)} modules, {sum(len(m.imports) for m in modules.values())} imports: "
              "no cycle, no upward import")
    return 1 if found or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
