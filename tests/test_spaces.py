"""`genkit space build` writes a Space that runs on its own; `genkit space push` publishes it (recorded, offline)."""

import json
import os
import runpy
import subprocess
import sys
import time
import zipfile
from importlib.metadata import version
from pathlib import Path

import gradio
import pytest
from conftest import RecordingHfApi, populate_hub_cache, wait_for_client
from huggingface_hub import SpaceCard
from PIL import Image
from test_demos import free_port, grid_size, served, serving_threads, tile_size, trained_model  # noqa: F401

from genkit.cli.main import main
from genkit.errors import GenkitError
from genkit.ui.spaces import build_space, push_space


def files_under(folder: Path) -> set[str]:
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def space(tiny_vae, tmp_path_factory):
    out = tmp_path_factory.mktemp("space") / "vae-space"
    assert main(["space", "build", str(tiny_vae), "--out", str(out), "--title", "Tiny digits VAE"]) == 0
    return out


def test_space_has_front_matter_app_and_pinned_requirements(space, tiny_vae):
    card = SpaceCard.load(space / "README.md")
    data = card.data
    assert (data.title, data.sdk, data.sdk_version, data.app_file) == (
        "Tiny digits VAE",
        "gradio",
        gradio.__version__,
        "app.py",
    )
    assert data.python_version == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert data.license == "apache-2.0" and data.emoji and data.models == []
    assert {"genkit", "vae"} <= set(data.tags)
    assert "$" not in card.text  # every template field was filled in

    lines = [ln for ln in (space / "requirements.txt").read_text().splitlines() if not ln.startswith("#")]
    pins = dict(ln.split("==") for ln in lines)
    assert all(v for v in pins.values()) and "gradio" not in pins and "genkit" not in pins
    assert pins["torch"] == version("torch").split("+")[0]
    for name in ("diffusers", "transformers", "huggingface_hub", "safetensors", "accelerate"):
        assert pins[name] == version(name)

    # The model is copied without training checkpoints; genkit and the plugin are bundled with an entry point.
    model_files = files_under(space / "model")
    assert {"model_index.json", "genkit.json", "vae/config.json", "vae/diffusion_pytorch_model.safetensors"} <= (
        model_files
    )
    assert not any(f.startswith("checkpoint-") for f in model_files)
    assert (space / "genkit" / "demo.py").is_file() and (space / "genkit_vae" / "demo.py").is_file()
    entry_points = (space / "genkit_hf-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert entry_points == "[genkit.plugins]\nvae = genkit_vae:plugin\n"


def test_built_space_answers_when_run_as_python_app_py(space):
    """`python app.py` in the Space folder, with this interpreter, serves the demo (the fresh-venv run is slow)."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=space, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        image = call_space(proc, port)
    finally:
        proc.terminate()
        proc.wait(30)
    assert image.size == grid_size(4, tile_size(8))


def call_space(proc: subprocess.Popen, port: int) -> Image.Image:
    """Wait for a Space process to listen on ``port``, then ask it for 4 samples."""
    return Image.open(wait_for_client(proc, port).predict(7, 4, api_name="/sample"))


@pytest.mark.slow
def test_built_space_runs_in_a_fresh_venv_with_only_its_requirements(space, tmp_path):
    """The Space as the Hub runs it: a new venv, its requirements.txt plus the SDK's gradio, then `python app.py`."""
    venv = tmp_path / "venv"
    started = time.time()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", "requirements.txt", f"gradio=={gradio.__version__}"],
        cwd=space,
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    installed = time.time()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port))
    proc = subprocess.Popen(
        [str(python), "app.py"], cwd=space, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        image = call_space(proc, port)
    finally:
        proc.terminate()
        proc.wait(30)
    assert image.size == grid_size(4, tile_size(8))
    # The venv sees only what requirements.txt installed: no genkit but the copy bundled in the Space.
    where = subprocess.run(
        [str(python), "-c", "import genkit, genkit_vae; print(genkit.__file__); print(genkit_vae.__file__)"],
        cwd=space,
        capture_output=True,
        text=True,
        check=True,
    )
    assert all(Path(p).is_relative_to(space) for p in where.stdout.split())
    print(f"fresh venv: install {installed - started:.0f} s, first answer {time.time() - installed:.0f} s")


def test_space_with_hub_id_loads_the_model_from_the_hub_cache(tiny_vae, tmp_path):
    out = build_space(str(tiny_vae), tmp_path / "hub-space", hub_id="someone/tiny-vae-for-space")
    assert not (out / "model").exists()
    assert SpaceCard.load(out / "README.md").data.models == ["someone/tiny-vae-for-space"]
    assert "MODEL = 'someone/tiny-vae-for-space'" in (out / "app.py").read_text()
    # The Hub is unreachable here: put the model into the offline cache as a download would, then run app.py.
    populate_hub_cache(tiny_vae, "someone/tiny-vae-for-space")
    demo = runpy.run_path(str(out / "app.py"))["demo"]
    with served(demo) as client:
        assert Image.open(client.predict(1, 4, api_name="/sample")).size == grid_size(4, tile_size(8))


# One call per family's main endpoint: (train arguments, api_name, inputs, check of the answer).
FAMILIES = {
    "autoencoder": (
        ["autoencoder"],
        "/sample",
        (0, 4),
        lambda out: Image.open(out).size == grid_size(4, tile_size(8)),
    ),
    "dcgan": (["dcgan"], "/sample", (0, 4), lambda out: Image.open(out).size == grid_size(4, tile_size(8))),
    "flow": (["flow"], "/sample", (0, 4, 0.8), lambda out: Image.open(out).size == grid_size(4, 64)),
    "ddpm": (["ddpm"], "/generate", (0, "ddim", 5, 2), lambda out: Image.open(out[0]).size == grid_size(2, 64)),
    "lstm": (["lstm"], "/generate", ("def ", 20, 0.8, 0, 1.0, 0), lambda out: out.startswith("def ")),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_builds_a_space_that_serves(family, tmp_path_factory, tmp_path):
    train_args, api_name, inputs, check = FAMILIES[family]
    model = trained_model(tmp_path_factory, family, *train_args, "--no-eval")
    out = build_space(str(model), tmp_path / "space")
    card = SpaceCard.load(out / "README.md")
    assert card.data.sdk == "gradio" and family in card.data.tags and "$" not in card.text
    assert (out / f"genkit_{family}" / "demo.py").is_file() and (out / "model" / "genkit.json").is_file()
    demo = runpy.run_path(str(out / "app.py"))["demo"]
    with served(demo) as client:
        assert check(client.predict(*inputs, api_name=api_name))


def test_a_wheel_install_carries_the_space_templates(tiny_vae, tmp_path):
    """Built as a wheel (not an editable checkout), genkit still finds its Space templates and builds a Space."""
    root = Path(__file__).parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), root],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("genkit_hf-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:  # what pip install would put into site-packages
        archive.extractall(site)
    assert (site / "genkit" / "ui" / "space_template" / "app.py").is_file()
    for family in ("vae", "dcgan", "ddpm", "lstm", "autoencoder", "flow"):
        assert (site / f"genkit_{family}" / "space" / "README.md").is_file()
    script = (
        "import sys, genkit; from genkit.ui.spaces import space_template, build_space; "
        "print(*space_template(genkit.get_plugin('vae'))); print(build_space(sys.argv[1], sys.argv[2]))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}  # ahead of the editable checkout
    done = subprocess.run(
        [sys.executable, "-c", script, str(tiny_vae), str(tmp_path / "space")],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    app, card, out = done.stdout.split()[-3:]
    assert Path(app) == site / "genkit" / "ui" / "space_template" / "app.py"
    assert Path(card) == site / "genkit_vae" / "space" / "README.md"
    assert (Path(out) / "app.py").read_text() == Path(app).read_text()


def test_space_build_refuses_a_used_folder_and_a_non_model(tiny_vae, tmp_path, capsys):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    assert main(["space", "build", str(tiny_vae), "--out", str(tmp_path / "used")]) == 2
    assert "non-empty folder that genkit did not write" in capsys.readouterr().err
    assert main(["space", "build", str(tmp_path / "used"), "--out", str(tmp_path / "new")]) == 2
    assert "is not a genkit model" in capsys.readouterr().err


def test_space_push_dry_run_lists_every_file_and_the_repo_settings(space, capsys):
    assert main(["space", "push", str(space), "someone/tiny-vae-demo", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in plan.items() if k != "files"} == {
        "repo_id": "someone/tiny-vae-demo",
        "repo_type": "space",
        "private": False,
        "space_sdk": "gradio",
    }
    assert {f["path"] for f in plan["files"]} == files_under(space)
    assert all(f["bytes"] == (space / f["path"]).stat().st_size for f in plan["files"])


def test_space_push_creates_a_gradio_space_and_uploads_the_folder(space):
    api = RecordingHfApi()
    plan = push_space(space, "someone/tiny-vae-demo", private=True, api=api)
    (create, repo, create_kwargs), (upload, repo2, upload_kwargs) = api.calls
    assert (create, repo, upload, repo2) == ("create_repo", "someone/tiny-vae-demo", "upload_folder", repo)
    assert create_kwargs == {"repo_type": "space", "space_sdk": "gradio", "private": True, "exist_ok": True}
    assert upload_kwargs["repo_type"] == "space"
    assert upload_kwargs["sent"] == {rel: (space / rel).read_bytes() for rel in files_under(space)}
    assert plan["url"] == "https://huggingface.co/spaces/someone/tiny-vae-demo"


def test_space_push_refuses_a_folder_that_is_not_a_gradio_space(tiny_vae, tmp_path):
    with pytest.raises(GenkitError, match="not a built Space"):
        push_space(tiny_vae, "someone/x", dry_run=True)
    (tmp_path / "app.py").write_text("print('hi')\n")
    (tmp_path / "README.md").write_text("---\nsdk: docker\n---\n")
    with pytest.raises(GenkitError, match="sdk: 'docker'"):
        push_space(tmp_path, "someone/x", dry_run=True)
