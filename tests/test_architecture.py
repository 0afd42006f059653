"""The package's import graph keeps its shape: no cycle, nothing imports a higher layer, every module has a layer,
and docs/ARCHITECTURE.md lists the modules that exist (tools/import_graph.py draws it)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph_tool():
    spec = importlib.util.spec_from_file_location("import_graph", REPO / "tools" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("import_graph", None)


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "emoscope"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_package_has_no_cycle_no_upward_import_and_no_module_without_a_layer(graph_tool):
    modules = graph_tool.read_graph()
    assert "emoscope.recognizer" in modules and "emoscope.cli" in modules
    assert graph_tool.problems(modules) == []


def test_architecture_doc_lists_every_module(graph_tool):
    modules = graph_tool.read_graph()
    listed = graph_tool.documented_modules(graph_tool.DOC.read_text())
    assert listed == set(modules), "run: python tools/import_graph.py --write"


def test_relative_imports_resolve_to_modules(graph_tool, tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "from .labels import X\n",
        "labels.py": "X = 1\n",
        "datasets/__init__.py": "from .images import read\n",
        "datasets/images.py": "from ..labels import X\nfrom . import helpers\n",
        "datasets/helpers.py": "",
        "cli/__init__.py": "class UserError(Exception): ...\n",
        "cli/data.py": "def f():\n    from . import UserError\n    from ..datasets.images import read\n",
    })
    modules = graph_tool.read_graph(root)
    assert modules["emoscope.datasets.images"].imports == {"emoscope.labels", "emoscope.datasets.helpers"}
    # `from . import UserError` names the package itself, which a module's parent always is: no edge
    assert modules["emoscope.cli.data"].imports == {"emoscope.datasets.images"}
    assert modules["emoscope"].imports == {"emoscope.labels"}


def test_an_upward_import_is_found_even_inside_a_function(graph_tool, tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "",
        "labels.py": "def f():\n    from .recognizer import Recognizer\n",
        "recognizer.py": "from .labels import f\n",
    })
    modules = graph_tool.read_graph(root)
    assert graph_tool.upward_imports(modules) == [("emoscope.labels", "emoscope.recognizer")]
    assert graph_tool.find_cycles(modules) == [["emoscope.labels", "emoscope.recognizer"]]
    assert any("sits above it" in p for p in graph_tool.problems(modules))


def test_a_cycle_within_one_layer_is_found(graph_tool, tmp_path):
    root = _package(tmp_path, {"__init__.py": "", "training.py": "import emoscope.budget\n",
                               "budget.py": "from emoscope import training\n"})
    modules = graph_tool.read_graph(root)
    assert graph_tool.upward_imports(modules) == []
    assert graph_tool.find_cycles(modules) == [["emoscope.budget", "emoscope.training"]]


def test_a_module_without_a_layer_is_reported(graph_tool, tmp_path):
    root = _package(tmp_path, {"__init__.py": "", "mystery.py": ""})
    assert graph_tool.unassigned(graph_tool.read_graph(root)) == ["emoscope.mystery"]


def test_the_longest_layer_prefix_wins(graph_tool):
    layer = graph_tool.layer_of
    assert layer("emoscope") < layer("emoscope.datasets.images") < layer("emoscope.models.vgg")
    assert layer("emoscope.labels") == layer("emoscope")  # the root's own prefix does not swallow its modules
    assert layer("emoscope.cli.data") == len(graph_tool.LAYERS) - 1
    assert layer("emoscope.training") > layer("emoscope.models.checkpoint")


def test_write_doc_replaces_only_the_generated_block(graph_tool, tmp_path):
    root = _package(tmp_path, {"__init__.py": "", "labels.py": '"""Names."""\n', "mood.py": "from .labels import x\n"})
    doc = tmp_path / "ARCH.md"
    doc.write_text(f"# Title\n\nhand text\n\n{graph_tool.START}\nold\n{graph_tool.END}\n\nmore hand text\n")
    modules = graph_tool.read_graph(root)
    graph_tool.write_doc(modules, doc)
    text = doc.read_text()
    assert text.startswith("# Title\n\nhand text\n\n") and text.endswith("\n\nmore hand text\n")
    assert "old" not in text and "| `mood` | mood log |  | `labels` |" in text
    assert graph_tool.documented_modules(text) == {"emoscope", "emoscope.labels", "emoscope.mood"}
