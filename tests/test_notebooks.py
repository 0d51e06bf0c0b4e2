"""The lab notebooks, executed by a real Jupyter kernel with the tiny settings CI uses (``TINY = True`` in the cell
tagged ``parameters``), as a student would run them top to bottom."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
MAX_OUTPUT = 5_000  # characters of text a cell may print: a progress bar per step would be far more


def execute(name: str, folder: Path):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "TINY = False" in tagged[0].source, "one parameters cell, TINY = False by default"
    tagged[0].source = tagged[0].source.replace("TINY = False", "TINY = True")
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": folder}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, when a cell fails
    return nb


def test_the_notebooks_are_the_ones_make_notebooks_writes(tmp_path):
    """The .ipynb files are generated: a cell changed by hand in one would be lost the next time they are written."""
    script = (NOTEBOOKS / "make_notebooks.py").read_text()
    copy = tmp_path / "make_notebooks.py"
    copy.write_text(script)
    subprocess.run([sys.executable, str(copy)], check=True, cwd=tmp_path)
    written = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    assert written == NAMES
    for name in NAMES:
        assert json.loads((tmp_path / name).read_text()) == json.loads((NOTEBOOKS / name).read_text()), name


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, tmp_path):
    nb = execute(name, tmp_path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        text = "".join(str(o.get("text", "")) for o in cell.outputs)
        assert len(text) < MAX_OUTPUT, f"a cell printed {len(text)} characters:\n{text[:2000]}"
        assert "Traceback" not in text, text
    pictures = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert pictures, "each lab draws its samples or curves"
    trained = sorted(p.parent.name for p in (tmp_path / "runs").glob("*/genkit.json"))
    assert trained, "each lab trains at least one model into runs/"
    for run in trained:  # every model it trained was saved as safetensors, never pickled
        files = [p.name for p in (tmp_path / "runs" / run).rglob("*") if p.is_file()]
        assert any(f.endswith(".safetensors") for f in files), (run, files)
        assert not any(f.endswith((".bin", ".pt", ".pkl", ".ckpt")) for f in files), (run, files)
