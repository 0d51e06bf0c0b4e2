"""How genkit is installed: as the distribution genkit-hf (PyPI's "genkit" is an unrelated SDK with the same import
name), from a wheel, or by the notebooks' install cell in Colab, where a clone named genkit sits in the working
folder."""

import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from conftest import stacked_venv

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "notebooks"))
from make_notebooks import INSTALL  # noqa: E402  (the cell every notebook starts with)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), ROOT]
    subprocess.run(command, check=True, capture_output=True)
    (built,) = out.glob("*.whl")
    return built


def test_the_wheel_is_genkit_hf_and_carries_every_plugin(wheel):
    assert wheel.name.startswith("genkit_hf-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(info).decode())
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert metadata["Name"] == "genkit-hf" and metadata["Requires-Python"] == ">=3.10"
    assert any(r.startswith("matplotlib") and 'extra == "lab"' in r for r in metadata.get_all("Requires-Dist"))
    assert "genkit = genkit.cli:main" in entry_points
    for family in ("vae", "dcgan", "ddpm", "lstm", "autoencoder", "flow"):
        assert f"{family} = genkit_{family}:plugin" in entry_points
        assert f"genkit_{family}/__init__.py" in names
    assert "genkit/lab.py" in names and "genkit/ui/space_template/app.py" in names
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "bench/")) or n.endswith(".pyc")]


def run(python, code: str, cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, cwd=cwd, env={**os.environ, **env}, timeout=600
    )


def test_the_other_genkit_installed_beside_is_named_at_import_with_the_fix(tmp_path):
    other = tmp_path / "site" / "genkit-0.12.0.dist-info"
    other.mkdir(parents=True)
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: genkit\nVersion: 0.12.0\nSummary: an AI SDK\n")
    done = run(sys.executable, "import genkit", tmp_path, PYTHONPATH=str(tmp_path / "site"))
    assert done.returncode == 0
    assert "the unrelated package 'genkit' 0.12.0 is installed beside genkit-hf" in done.stderr
    assert "pip uninstall -y genkit && pip install --force-reinstall --no-deps genkit-hf" in done.stderr
    quiet = run(sys.executable, "import genkit", tmp_path)
    assert quiet.returncode == 0 and "unrelated" not in quiet.stderr


def test_the_notebook_install_cell_installs_a_clone_named_genkit(tmp_path):
    """Colab: the user cloned the repository into ./genkit and runs the first cell. The folder must not pass for
    the package (it would import as an empty namespace package); the cell installs it, and genkit then imports from
    site-packages, also in a new process whose working folder holds the clone."""
    python = stacked_venv(tmp_path / "venv")
    content = tmp_path / "content"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    for name in files.stdout.splitlines():
        source = ROOT / name
        if source.is_file() and not name.startswith(("tests/", "bench/", "docs/")):
            target = content / "genkit" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    before = run(python, "import genkit; print(genkit.__file__, hasattr(genkit, 'train'))", content)
    assert before.stdout.strip() == "None False"  # the clone's folder alone is not genkit
    # The build backend (setuptools) is already here: no isolated build environment to download.
    cell = run(python, INSTALL, content, PIP_NO_BUILD_ISOLATION="false", PIP_NO_INDEX="1")
    assert cell.returncode == 0, cell.stderr[-3000:]
    assert cell.stdout.strip().splitlines()[-1] == "genkit 0.1.0"
    after = run(python, "import genkit; print(genkit.__file__); print(genkit.list_plugins())", content)
    where, plugins = after.stdout.strip().splitlines()
    assert where.startswith(str(tmp_path / "venv")) and "site-packages" in where
    assert plugins == "['autoencoder', 'dcgan', 'ddpm', 'flow', 'lstm', 'vae']"
    again = run(python, INSTALL, content)  # a re-run cell does not install a second time
    assert again.returncode == 0 and "pip" not in again.stderr
