"""Tests run offline: the Hub is unreachable here, so HF libraries must read only a temporary cache."""

import os
import shutil
import tempfile
from pathlib import Path

# Set before any Hugging Face library is imported by a test module.
_HF_HOME = tempfile.mkdtemp(prefix="genkit-test-hf-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402


def populate_hub_cache(model: Path, repo_id: str, sha: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """Lay out a model in the offline HF cache exactly as a download would: refs/main -> snapshots/<sha>/.

    The cache is shared by the whole test session, so every test must use its own repo id.
    """
    repo = Path(os.environ["HF_HOME"]) / "hub" / f"models--{repo_id.replace('/', '--')}"
    assert not repo.exists(), f"{repo_id} is already in the test cache: give this test its own repo id"
    shutil.copytree(model, repo / "snapshots" / sha, ignore=shutil.ignore_patterns("checkpoint-*", "logs"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    return repo / "snapshots" / sha


def run_card_usage(model: Path) -> dict:
    """Run the Python block of a model card's "Use" section as written; returns its variables."""
    card = (model / "README.md").read_text()
    code = card.split("## Use", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert code.count("\n") >= 4, code  # the import, the load and the plugin's own lines
    namespace: dict = {}
    exec(compile(code, f"{model}/README.md", "exec"), namespace)
    return namespace


class RecordingHfApi:
    """Stands in for huggingface_hub.HfApi (the Hub is unreachable here): records every call, and what a folder
    upload holds at the moment it would be sent ({path in repo: bytes})."""

    calls: list = []  # every instance's calls, for code that makes its own HfApi()

    def __init__(self, *args, **kwargs):
        RecordingHfApi.calls = self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        kind = "spaces/" if kwargs.get("repo_type") == "space" else ""
        return f"https://huggingface.co/{kind}{repo_id}"

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        kwargs["sent"] = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))


def free_port() -> int:
    """A free TCP port on the loopback, for a two-process run's rendezvous."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_client(proc, port: int, timeout: float = 240):
    """A gradio_client Client of the app that ``proc`` (a ``python app.py`` subprocess) serves on ``port``."""
    import time

    from gradio_client import Client

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"app.py exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            return Client(f"http://127.0.0.1:{port}/", verbose=False)
        except Exception:
            time.sleep(0.5)
    raise AssertionError(f"app.py did not serve on port {port} within {timeout} s")


def train_cli(*args: str) -> int:
    """Run `genkit train ...` in this process (the real CLI entry point)."""
    from genkit.cli.main import main

    return main(["train", *args])


@pytest.fixture(scope="session")
def tiny_vae(tmp_path_factory):
    """A VAE trained for 20 steps on digits with the tiny preset: a real saved model folder."""
    out = tmp_path_factory.mktemp("tiny-vae") / "model"
    assert train_cli("vae", "--preset", "tiny", "--output", str(out)) == 0
    return out


def stacked_venv(root: Path) -> Path:
    """A new virtual environment in ``root`` whose python sees this one's installed libraries (torch, diffusers,
    transformers, pip) but not genkit or its plugins: their editable install is a .pth hook of this site-packages,
    which a path added by another .pth line does not run. Returns its python."""
    import site
    import subprocess
    import venv

    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    Path(purelib, "stack.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


@pytest.fixture(scope="session")
def genkit_free_python(tmp_path_factory) -> Path:
    """The python of a ``stacked_venv``, where genkit cannot be imported. Start it with ``cwd`` outside the
    checkout."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("no-genkit-venv")
    python = stacked_venv(root)
    probe = subprocess.run(
        [python, "-c", "import importlib.util, diffusers, transformers; print(importlib.util.find_spec('genkit'))"],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert probe.returncode == 0 and probe.stdout.strip() == "None", (probe.stdout, probe.stderr, sys.executable)
    return python
