"""The README and the docs stay what a newcomer needs: short, the title first, the test command CI runs, and no
link to a file that is not there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]


def _code_lines(markdown: str) -> list[str]:
    blocks = re.findall(r"```[a-z]*\n(.*?)```", markdown, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines()]


def test_readme_is_short_and_starts_with_its_title():
    text = (REPO / "README.md").read_text()
    assert len(text) <= 8500, f"README.md has {len(text)} characters; keep it near 8,000 (details go in docs/)"
    assert text.startswith("# emoscope\n\n")


def test_readme_test_command_is_the_one_ci_runs():
    """CI's last command is the README's test command, whole (it may install earlier to start its servers)."""
    commands = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.strip().startswith("#") and not line.startswith((" ", "\t"))]
    readme = [line for line in _code_lines((REPO / "README.md").read_text()) if "python -m pytest" in line]
    assert len(readme) == 1 and "pip install" in readme[0]
    assert commands[-1] == readme[0]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_and_pictures_exist(doc):
    text = doc.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'<img[^>]* src="([^"]+)"', text)
    missing = []
    for target in targets:
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor in the same page
        path = (doc.parent / target.split("#")[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert missing == [], f"{doc.name} links to files that do not exist"
