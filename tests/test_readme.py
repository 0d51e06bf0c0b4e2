"""The README is executable: its quick start, its usage snippets and its third-party plugin example run as written."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port, wait_for_client
from huggingface_hub import SpaceCard
from PIL import Image

README = (Path(__file__).parents[1] / "README.md").read_text()


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def genkit(*args: str, cwd: Path, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "genkit", *args],
        cwd=cwd,
        env=env or os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory):
    """Run the quick start's training command exactly as the README writes it, in a fresh folder."""
    commands = re.findall(r"```bash\n(.*?)```", section("Quick start"), flags=re.S)[0].strip().splitlines()
    assert commands[0].startswith("pip install torch==2.13.0")  # the install step CI has already done
    assert commands[1] == "genkit train vae"
    cwd = tmp_path_factory.mktemp("quickstart")
    start = time.perf_counter()
    result = genkit(*commands[1].split()[1:], cwd=cwd)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"\nREADME quick start `{commands[1]}` took {seconds:.0f} s")
    return cwd


def test_quick_start_writes_model_samples_and_card(quick_start):
    out = quick_start / "outputs" / "vae-digits"
    for name in (
        "model_index.json",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "samples.png",
        "README.md",
        "genkit.json",
        "eval_results.json",
    ):
        assert (out / name).exists(), name
    assert list((out / "logs").rglob("events.out.tfevents.*"))
    card = (out / "README.md").read_text()
    assert "library_name: diffusers" in card and "negative_elbo_nats" in card and "pipeline_tag:" in card
    import json

    metrics = json.loads((out / "eval_results.json").read_text())["metrics"]
    print(f"test negative ELBO {metrics['negative_elbo_nats']:.2f} nats, {metrics['bits_per_dim']:.4f} bits/dim")


def test_usage_snippets_run(quick_start):
    snippets = re.findall(r"```python\n(.*?)```", section("Use a trained model"), flags=re.S)
    assert len(snippets) == 3  # genkit.load, the pipeline class, and stock diffusers
    for snippet in snippets:
        code = snippet.replace('"user/my-vae" from the Hub', "")
        result = subprocess.run([sys.executable, "-c", code], cwd=quick_start, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]


def test_cli_examples_run(quick_start, tmp_path):
    cli = re.findall(r"```bash\n(.*?)```", section("Use a trained model"), flags=re.S)[0]
    for line in cli.strip().splitlines():
        args = line.split("#")[0].split()
        assert args[0] == "genkit"
        result = genkit(*args[1:], cwd=quick_start)
        assert result.returncode == 0, (line, result.stderr[-2000:])
    assert (quick_start / "grid.png").exists()


def third_party_source() -> str:
    marker = "<!-- third-party-plugin: genkit_mmd/__init__.py -->\n```python\n"
    return README[README.index(marker) + len(marker) :].split("```", 1)[0]


def install_plugin(tmp_path: Path, source: str) -> dict:
    """Install ``source`` as the distribution genkit-mmd (with the README's entry point) on a PYTHONPATH of its own;
    returns the environment that sees it."""
    entry = re.search(r'\[project\.entry-points\."genkit\.plugins"\]\n(\w+) = "([\w:]+)"', README)
    site = tmp_path / "site"
    (site / "genkit_mmd").mkdir(parents=True)
    (site / "genkit_mmd" / "__init__.py").write_text(source)
    info = site / "genkit_mmd-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: genkit-mmd\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[genkit.plugins]\n{entry.group(1)} = {entry.group(2)}\n")
    return {**os.environ, "PYTHONPATH": str(site)}


def test_third_party_plugin_example(tmp_path):
    """The README's plugin, installed as its own distribution, trains through the CLI with no change to genkit."""
    env = install_plugin(tmp_path, third_party_source())

    listed = genkit("list", cwd=tmp_path, env=env)
    assert listed.returncode == 0 and re.search(r"^mmd\s+image", listed.stdout, flags=re.M), listed.stdout
    out = tmp_path / "mmd-model"
    trained = genkit("train", "mmd", "--preset", "tiny", "--output", str(out), cwd=tmp_path, env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (out / "generator" / "diffusion_pytorch_model.safetensors").exists() and (out / "samples.png").exists()
    check = f"import genkit; p = genkit.load(r'{out}'); print(type(p).__name__, tuple(p(2).shape))"
    loaded = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True)
    assert loaded.stdout.split() == ["MMDPipeline", "(2,", "1,", "8,", "8)"], loaded.stderr[-2000:]

    # It gets a Space with no change to genkit: genkit's generic app and card, and `python app.py` answers a client
    # call. The Space runs without PYTHONPATH: the plugin it imports is the copy bundled into the Space.
    space = tmp_path / "mmd-space"
    built = genkit("space", "build", str(out), "--out", str(space), cwd=tmp_path, env=env)
    assert built.returncode == 0, built.stderr[-3000:]
    assert (space / "genkit_mmd" / "__init__.py").is_file() and (space / "model" / "genkit.json").is_file()
    card = SpaceCard.load(space / "README.md")
    assert card.data.sdk == "gradio" and "mmd" in card.data.tags and "A genkit `mmd` model" in card.text
    port = free_port()
    served_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    served_env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port))
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=space,
        env=served_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        gallery = wait_for_client(proc, port).predict(3, api_name="/sample")
    finally:
        proc.terminate()
        proc.wait(30)
    assert len(gallery) == 16 and Image.open(gallery[0]["image"]).size == (8, 8)

    # And its self-check passes: tiny train, evaluation, save/load, exact resume, every demo endpoint.
    checked = genkit("check-plugin", "mmd", cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr[-2000:]
    assert "plugin 'mmd': all 6 checks passed" in checked.stdout


def test_check_plugin_names_what_fails(tmp_path):
    """A plugin whose sampling ignores the seed: `genkit check-plugin` says which check fails, and exits 1."""
    source = third_party_source().replace("generator=torch.Generator().manual_seed(seed)", "generator=None")
    assert "generator=None" in source
    env = install_plugin(tmp_path, source)
    checked = genkit("check-plugin", "mmd", cwd=tmp_path, env=env)
    assert checked.returncode == 1
    lines = {line.split()[1]: line.split()[0] for line in checked.stdout.splitlines() if line[:4] in ("ok  ", "FAIL")}
    assert lines["train"] == "ok" and lines["save/load"] == "FAIL" and lines["resume"] == "ok"
    assert "samples differently for the same seed" in checked.stdout
    assert "1 of 6 checks failed (save/load)" in checked.stdout


@pytest.mark.slow
def test_third_party_plugin_space_runs_in_a_fresh_venv(tmp_path):
    """The README plugin's Space as the Hub runs it: a new venv with only its requirements.txt and the SDK's gradio,
    then `python app.py` answering a client call (minutes: the venv installs torch, diffusers, ...)."""
    import gradio

    env = install_plugin(tmp_path, third_party_source())
    model, space = tmp_path / "mmd-model", tmp_path / "mmd-space"
    assert genkit("train", "mmd", "--preset", "tiny", "--output", str(model), cwd=tmp_path, env=env).returncode == 0
    assert genkit("space", "build", str(model), "--out", str(space), cwd=tmp_path, env=env).returncode == 0
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "-r", "requirements.txt", f"gradio=={gradio.__version__}"]
    installed = subprocess.run(pip, cwd=space, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    clean.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port))
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    proc = subprocess.Popen([str(python), "app.py"], cwd=space, env=clean, **pipes)
    try:
        gallery = wait_for_client(proc, port, timeout=600).predict(3, api_name="/sample")
    finally:
        proc.terminate()
        proc.wait(30)
    assert len(gallery) == 16
