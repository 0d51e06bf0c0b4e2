"""docs/architecture.md draws the tree as it is, and the layering it describes is the one import-linter checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text()


def _tree_block() -> str:
    return DOC.split("## The tree", 1)[1].split("```", 2)[1]


def test_the_tree_names_every_module_and_nothing_else():
    tree = _tree_block()
    drawn, folder = set(), None
    for line in tree.splitlines():
        name = re.search(r"[├└]── (\S+)", line)
        if not name:
            continue
        entry, top = name.group(1), name.start() == 0  # a top-level entry, or one inside the folder above it
        if entry.endswith("/"):
            folder = entry.rstrip("/") if top else folder
            continue
        drawn.add(entry if top else f"{folder}/{entry}")
    shims = {"datatypes.py", "pipeline.py", "streaming.py", "trainer.py", "demo.py", "metrics.py"}
    actual = (
        {
            p.relative_to(ROOT / "genkit").as_posix()
            for p in (ROOT / "genkit").rglob("*.py")
            if p.name not in ("__main__.py",) and (p.name != "__init__.py" or p.parent.name == "genkit")
        }
        - shims
        - {"ui/space_template/app.py"}
    )
    assert drawn == actual, f"drawn but missing: {sorted(drawn - actual)}; not drawn: {sorted(actual - drawn)}"
    for shim in shims:  # the forwarding modules are named in the text
        assert f"`genkit.{shim[:-3]}`" in DOC
        assert len((ROOT / "genkit" / shim).read_text().splitlines()) <= 12


def test_the_layers_drawn_are_the_contract_checked():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in config if c["type"] == "layers")["layers"]
    drawn = DOC.split("## The layers", 1)[1].split("```", 2)[1].strip().splitlines()
    assert drawn == layers
    assert {c["type"] for c in config} >= {"layers", "acyclic_siblings", "forbidden"}
