"""What genkit guarantees beyond one clear line (docs/safety.md): no file leaves a model folder through a link, cached
Hub folders get the same checks, runs never lose each other's work, images are read as they are, demos stay
answerable, and signals and full disks leave resumable state.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import RecordingHfApi
from PIL import Image

import genkit
from genkit.cli.main import main
from genkit.errors import ConfigError, DataError, GenkitError, TrainingError, WeightsError

T = ["train", "vae", "--preset", "tiny", "--log-with", "none", "--no-eval"]


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(*argv: str, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


# ---- 1. no file leaves a model folder through a link ---------------------------------------------------------------
@pytest.fixture
def cloned_with_links(tiny_vae, tmp_path, monkeypatch):
    """A model committed to a git repo with two links, one to a Hugging Face token and one to /etc/passwd, and
    cloned as a user would get it: ``git clone`` recreates the links on this machine."""
    home = tmp_path / "home"
    token = home / ".cache" / "huggingface" / "token"
    token.parent.mkdir(parents=True)
    token.write_text("hf_SECRETtokenThatMustNeverLeave")
    monkeypatch.setenv("HOME", str(home))
    repo = tmp_path / "repo"
    shutil.copytree(tiny_vae, repo, ignore=shutil.ignore_patterns("checkpoint-*", "logs", ".*"))
    (repo / "vae" / "LICENSE.txt").symlink_to(token)
    (repo / "notes.txt").symlink_to("/etc/passwd")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "model"]):
        subprocess.run([*git, *args], cwd=repo, check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert (clone / "vae" / "LICENSE.txt").is_symlink() and (clone / "notes.txt").is_symlink()
    return clone, token


@pytest.mark.parametrize(
    "argv",
    [
        ["space", "build", "{m}", "--out", "{tmp}/space"],
        ["push", "{m}", "someone/x", "--dry-run"],
        ["sample", "{m}", "--out", "{tmp}/s.png"],
        ["info", "{m}"],
        ["eval", "{m}", "--no-card"],
    ],
    ids=["space-build", "push", "sample", "info", "eval"],
)
def test_links_out_of_a_cloned_model_are_refused(cloned_with_links, tmp_path, capsys, argv):
    clone, token = cloned_with_links
    before = files_of(clone)
    code, err = run_cli(*(a.format(m=clone, tmp=tmp_path) for a in argv), capsys=capsys)
    assert code == 2 and "refusing" in err and "a link to" in err
    assert "LICENSE.txt" in err or "notes.txt" in err
    assert "SECRET" not in err and not (tmp_path / "space").exists() and not (tmp_path / "s.png").exists()
    assert files_of(clone) == before


def test_a_link_planted_in_a_built_space_is_refused_by_space_push(tiny_vae, tmp_path, capsys):
    space = tmp_path / "space"
    assert run_cli("space", "build", str(tiny_vae), "--out", str(space), capsys=capsys)[0] == 0
    (space / "model" / "token").symlink_to("/etc/passwd")
    code, err = run_cli("space", "push", str(space), "someone/x", "--dry-run", capsys=capsys)
    assert code == 2 and "model/token (a link to /etc/passwd)" in err


def test_python_paths_refuse_links_too(cloned_with_links):
    from genkit.hub.push import push_to_hub
    from genkit.io import upload_plan

    clone, _ = cloned_with_links
    with pytest.raises(GenkitError, match="a link to"):
        genkit.load(clone)
    with pytest.raises(GenkitError, match="a link to"):
        upload_plan(clone)
    api = RecordingHfApi()
    with pytest.raises(GenkitError, match="a link to"):
        push_to_hub(clone, "someone/x", api=api)
    assert api.calls == []  # refused before the repo is even created


def test_links_inside_the_folder_and_special_files(tiny_vae, tmp_path):
    from genkit.io import folder_files, upload_plan

    m = tmp_path / "m"
    shutil.copytree(tiny_vae, m, ignore=shutil.ignore_patterns("checkpoint-*", "logs"))
    (m / "samples-link.png").symlink_to(m / "samples.png")  # a link to a file of the folder itself is fine
    assert dict(upload_plan(m))["samples-link.png"] == (m / "samples.png").stat().st_size
    assert genkit.load(m) is not None
    (m / "sub").symlink_to(tmp_path, target_is_directory=True)  # a link to a folder is not followed
    with pytest.raises(GenkitError, match=r"sub \(a link to"):
        folder_files(m)
    (m / "sub").unlink()
    os.mkfifo(m / "pipe.json")  # reading it would hang
    with pytest.raises(GenkitError, match=r"pipe\.json \(a named pipe\)"):
        genkit.load(m)


# ---- 2. cached Hub snapshots get the same checks ------------------------------------------------------------------
def hub_snapshot(model: Path, repo_id: str, damage=None) -> Path:
    """A model laid out in the HF cache as huggingface_hub downloads it: every file a blob, the snapshot's files
    links to ../../blobs/<name>."""
    repo = Path(os.environ["HF_HOME"]) / "hub" / f"models--{repo_id.replace('/', '--')}"
    sha = "a" * 40
    snapshot = repo / "snapshots" / sha
    for rel, content in files_of(model).items():
        if rel.startswith(("checkpoint-", "logs/", ".")):
            continue
        blob = repo / "blobs" / hashlib.sha256(rel.encode() + content).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(content)
        (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / rel).symlink_to(os.path.relpath(blob, (snapshot / rel).parent))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    if damage:
        damage(snapshot)
    return snapshot


def test_a_cached_hub_model_loads_and_builds_a_space_through_its_blob_links(tiny_vae, tmp_path, capsys):
    hub_snapshot(tiny_vae, "someone/cached-links")
    pipe = genkit.load("someone/cached-links")
    assert pipe.vae.config.latent_dim == 4
    code, _ = run_cli("space", "build", "someone/cached-links", "--out", str(tmp_path / "space"), capsys=capsys)
    assert code == 0
    copied = tmp_path / "space" / "model" / "vae" / "diffusion_pytorch_model.safetensors"
    assert not copied.is_symlink() and copied.read_bytes() == (tiny_vae / "vae" / copied.name).read_bytes()


def _broken_json(snapshot: Path) -> None:
    link = snapshot / "vae" / "config.json"
    Path(os.path.realpath(link)).write_text('{"latent_dim": ')


def _list_header(snapshot: Path) -> None:
    weights = Path(os.path.realpath(snapshot / "vae" / "diffusion_pytorch_model.safetensors"))
    weights.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00[1,2]")


def _header_bomb(snapshot: Path) -> None:
    weights = Path(os.path.realpath(snapshot / "vae" / "diffusion_pytorch_model.safetensors"))
    weights.write_bytes((2**40).to_bytes(8, "little") + b"{}")


def _link_out_of_the_cache(snapshot: Path) -> None:
    (snapshot / "LICENSE.txt").symlink_to("/etc/passwd")


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (_broken_json, ConfigError, "invalid JSON"),
        (_list_header, WeightsError, "truncated or corrupt"),
        (_header_bomb, WeightsError, "header too large"),
        (_link_out_of_the_cache, GenkitError, "LICENSE.txt (a link to /etc/passwd)"),
    ],
    ids=["broken-json", "header-list", "header-2-40", "link-out"],
)
def test_a_damaged_cached_hub_model_is_refused_like_a_local_folder(tiny_vae, damage, error, message):
    repo_id = f"someone/cached-{damage.__name__.strip('_').replace('_', '-')}"
    hub_snapshot(tiny_vae, repo_id, damage)
    with pytest.raises(error) as info:
        genkit.load(repo_id)
    assert message in str(info.value)


# ---- 3. image paths in a table stay in the table's folder -------------------------------------------------------
def test_a_table_cannot_make_genkit_open_a_file_elsewhere(tmp_path, capsys):
    import datasets

    images = tmp_path / "elsewhere"
    images.mkdir()
    for i in range(20):
        Image.new("L", (8, 8), 10 * i).save(images / f"{i}.png")
    table = tmp_path / "table"
    table.mkdir()
    rows = [{"image": {"bytes": None, "path": "/etc/passwd"}}] + [
        {"image": {"bytes": None, "path": str(images / f"{i}.png")}} for i in range(20)
    ]
    datasets.Dataset.from_list(rows).to_parquet(str(table / "data.parquet"))
    argv = [*T, "--dataset", str(table / "data.parquet"), "--output", str(tmp_path / "run"), "--batch-size", "2"]
    code, err = run_cli(*argv, "--image-column", "image", capsys=capsys)
    assert code == 2 and "outside the dataset's folder" in err and "--image-root" in err
    assert "exist" not in err and "Permission" not in err  # says nothing of the file itself
    # allowed with --image-root, the row naming /etc/passwd still refused
    code, err = run_cli(*argv, "--image-column", "image", "--image-root", str(images), capsys=capsys)
    assert code == 2 and "'/etc/passwd' is outside" in err
    datasets.Dataset.from_list(rows[1:]).to_parquet(str(table / "data.parquet"))
    code, err = run_cli(*argv, "--image-column", "image", "--image-root", str(images), capsys=capsys)
    assert code == 0, err


# ---- 4. runs never lose each other's work --------------------------------------------------------------------------
def test_save_into_a_run_folder_replaces_only_the_model(tiny_vae, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_vae, run)
    kept = {rel: data for rel, data in files_of(run).items() if rel.startswith(("checkpoint-", "logs/", "samples"))}
    kept.update({k: files_of(run)[k] for k in ("README.md", "eval_results.json")})
    pipe = genkit.load(run)
    with torch.no_grad():
        pipe.vae.from_latent.bias.add_(1.0)
    assert genkit.save(pipe, run) == run
    after = files_of(run)
    assert {rel: after.get(rel) for rel in kept} == kept  # checkpoints, logs, samples, card, results untouched
    meta = json.loads(after["genkit.json"])
    assert meta["saved_by"] == "genkit.save" and meta["config"]["preset"] == "tiny"  # the run's settings carried
    assert torch.equal(genkit.load(run).vae.from_latent.bias, pipe.vae.from_latent.bias)


HOLD_LOCK = """
import sys, time
from genkit.io import folder_lock
with folder_lock(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_second_run_into_the_same_output_is_refused_naming_the_first(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        code, err = run_cli(*T, "--output", str(out), capsys=capsys)
        assert code == 2 and f"pid {holder.pid}" in err and "another genkit run" in err
        assert sorted(p.name for p in out.iterdir()) == [".genkit.lock"]  # nothing of the second run
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed without cleaning up: its lock file stays, and the next run takes it over
    assert json.loads((out / ".genkit.lock").read_text())["pid"] == holder.pid
    code, err = run_cli(*T, "--output", str(out), capsys=capsys)
    assert code == 0, err
    assert (out / ".genkit.lock").read_text() == ""  # held by no one


def test_a_refused_run_leaves_no_folder_behind(tmp_path, capsys):
    out = tmp_path / "new" / "run"
    code, _ = run_cli(*T, "--output", str(out), "--streaming", "--epochs", "1", capsys=capsys)
    assert code == 2 and not (tmp_path / "new").exists()


def test_overwrite_starts_afresh_and_resume_continues_the_new_run(tiny_vae, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_vae, run)
    old = sorted(p.name for p in run.glob("checkpoint-*"))
    assert old == ["checkpoint-10", "checkpoint-20"]
    code, err = run_cli(*T, "--output", str(run), "--overwrite", "--max-steps", "6", "--checkpoint-every", "3",
                        capsys=capsys)  # fmt: skip
    assert code == 0 and ".previous-run" in err
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]  # only the new run's
    assert not (run / ".previous-run").exists()
    state = json.loads((run / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["config"]["max_steps"] == 6
    code, err = run_cli(*T, "--output", str(run), "--resume", "latest", "--max-steps", "9", capsys=capsys)
    assert code == 0, err
    assert json.loads((run / "checkpoint-9" / "trainer_state.json").read_text())["step"] == 9


def test_a_staging_folder_of_a_killed_process_is_removed_on_the_next_try(tiny_vae, tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = tmp_path / f".space.tmp-{int(dead.stdout)}"
    (left / "model").mkdir(parents=True)
    code, _ = run_cli("space", "build", str(tiny_vae), "--out", str(tmp_path / "space"), capsys=capsys)
    assert code == 0 and not left.exists()
    alive = tmp_path / f".space.tmp-{os.getppid()}"  # a live process's staging is not touched
    alive.mkdir()
    code, _ = run_cli("space", "build", str(tiny_vae), "--out", str(tmp_path / "space"), "--overwrite", capsys=capsys)
    assert code == 0 and alive.exists()


def test_output_inside_the_dataset_folder_is_refused(tmp_path, capsys):
    data = tmp_path / "pictures"
    data.mkdir()
    for i in range(4):
        Image.new("L", (8, 8), 40 * i).save(data / f"{i}.png")
    code, err = run_cli(*T, "--dataset", str(data), "--output", str(data / "model"), capsys=capsys)
    assert code == 2 and "inside --dataset" in err and not (data / "model").exists()


# ---- 5. images as they are ---------------------------------------------------------------------------------------
def _train_on(folder: Path, tmp_path: Path, **settings):
    from genkit.config.resolve import resolve_config
    from genkit.data import splits_for
    from genkit.plugin.registry import get_plugin

    plugin = get_plugin("vae")
    config = resolve_config(plugin, "tiny", {"dataset": str(folder), "image_size": 8, **settings})
    data = plugin.prepare_data(splits_for(config, "image"), config)
    return torch.stack([data.train[i]["pixel_values"] for i in range(len(data.train))]), data.info


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    folder = tmp_path / "deep"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 65536, (8, 8)).astype(np.uint16)).save(folder / f"{i}.png")
    assert Image.open(folder / "0.png").mode == "I;16"
    pixels, info = _train_on(folder, tmp_path)
    white = (pixels > 0.99).float().mean().item()
    assert info.num_channels == 1 and white < 0.05  # clipping made 98% of random 16-bit pixels white
    assert abs(pixels.mean().item()) < 0.1  # uniform over [-1, 1]


@pytest.mark.parametrize("background, value", [("white", 1.0), ("black", -1.0)])
def test_transparent_pixels_become_the_background(tmp_path, background, value):
    folder = tmp_path / "clear"
    folder.mkdir()
    for i in range(10):
        Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(folder / f"{i}.png")  # fully transparent red
    pixels, _ = _train_on(folder, tmp_path, background=background)
    assert torch.allclose(pixels, torch.full_like(pixels, value))


def test_pipelines_read_images_as_training_does(tiny_vae):
    pipe = genkit.load(tiny_vae)
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # transparent black: white, as on a page
    assert torch.equal(pipe._to_tensor(clear), pipe._to_tensor(Image.new("L", (8, 8), 255)))
    deep = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    assert torch.equal(pipe._to_tensor(deep), pipe._to_tensor(Image.new("L", (8, 8), 255)))
    mid = Image.fromarray(np.full((8, 8), 32896, dtype=np.uint16))  # 128 * 257
    assert torch.equal(pipe._to_tensor(mid), pipe._to_tensor(Image.new("L", (8, 8), 128)))
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 255] * 256)
    palette.info["transparency"] = 0
    assert torch.equal(pipe._to_tensor(palette), pipe._to_tensor(Image.new("L", (8, 8), 255)))


def test_non_finite_metrics_never_reach_the_card(tiny_vae, tmp_path, capsys):
    """Finite weights whose outputs overflow: the evaluation is NaN, so the command fails and writes nothing."""
    from safetensors.torch import load_file, save_file

    m = tmp_path / "m"
    shutil.copytree(tiny_vae, m, ignore=shutil.ignore_patterns("checkpoint-*"))
    weights = m / "vae" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    save_file({k: v * 1e30 if k.startswith("to_moments") else v for k, v in state.items()}, weights)
    before = files_of(m)
    code, err = run_cli("eval", str(m), capsys=capsys)
    assert code == 2 and "not finite" in err and "nothing was written" in err
    assert files_of(m) == before


def test_load_casts_to_the_requested_dtype(tiny_vae):
    pipe = genkit.load(tiny_vae, torch_dtype=torch.float64)
    assert pipe.vae.dtype == torch.float64
    assert pipe(2, output_type="pt").images.dtype == torch.float64


# ---- 6. demos ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vae_demo(tiny_vae):
    from gradio_client import Client

    from genkit.ui.demo import load_demo

    demo = load_demo(str(tiny_vae))
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    yield demo, Client(demo.local_url, verbose=False)
    demo.close()


def _bomb(path: Path) -> Path:
    """A 30,000 x 30,000 PNG of 1 MB: 900 megapixels once decoded."""
    import zlib

    width = height = 30_000
    raw = zlib.compress(b"".join(b"\x00" + b"\x00" * width for _ in range(height)), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


def _text(path: Path) -> Path:
    path.write_text("this is not an image\n")
    return path


def _truncated(path: Path) -> Path:
    Image.new("L", (64, 64), 100).save(path)
    path.write_bytes(path.read_bytes()[:-40])
    return path


@pytest.mark.parametrize("field", ["image", "paint"])
@pytest.mark.parametrize("make", [_text, _bomb, _truncated], ids=["text-file", "30000x30000", "truncated"])
def test_bad_uploads_get_a_clear_message_and_no_server_traceback(vae_demo, tmp_path, capfd, make, field):
    """In an image field and in the image editor one paints a mask on (its image and its painted layer)."""
    from gradio_client import handle_file

    _, client = vae_demo
    upload = handle_file(str(make(tmp_path / ("upload.png" if make is not _text else "upload.txt"))))
    digit = tmp_path / "digit.png"
    Image.new("L", (8, 8), 100).save(digit)
    capfd.readouterr()
    with pytest.raises(Exception) as info:
        if field == "image":
            client.predict(upload, api_name="/reconstruct")
        else:  # the bad file as the painted layer of a good image
            editor = {"background": handle_file(str(digit)), "layers": [upload], "composite": None}
            client.predict(editor, "Centre square", None, 20, api_name="/inpaint")
    assert "could not use the upload as an image" in str(info.value)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_a_hundred_concurrent_requests_get_a_result_or_the_busy_answer(vae_demo):
    """Every client gets a result or gradio's 'Queue is full' answer; none is dropped; memory stays bounded."""
    import threading

    import psutil
    from gradio_client import Client

    demo, _ = vae_demo
    outcomes, lock = [], threading.Lock()
    rss_before = psutil.Process().memory_info().rss

    def call(i: int) -> None:
        try:
            Client(demo.local_url, verbose=False, httpx_kwargs={"timeout": 120}).predict(
                i, i + 1, 16, api_name="/interpolate_seeds"
            )
            result = "result"
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test counts
            result = "busy" if "Queue is full" in str(exc) else f"other: {type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(outcomes) == 100
    assert [o for o in outcomes if o not in ("result", "busy")] == []
    assert outcomes.count("result") >= 2
    assert psutil.Process().memory_info().rss - rss_before < 500 * 2**20


# ---- 7. signals and full disks ------------------------------------------------------------------------------------
def _genkit(*argv: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "genkit", *argv], stderr=subprocess.PIPE, text=True, env=env, **kwargs
    )


def test_sigterm_prints_a_line_and_leaves_resumable_checkpoints(tmp_path):
    out = tmp_path / "run"
    args = [*T, "--output", str(out), "--max-steps", "100000", "--checkpoint-every", "5"]
    proc = _genkit(*args)
    deadline = time.time() + 240
    while time.time() < deadline and not any(out.glob("checkpoint-*/trainer_state.json")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, err
    assert "genkit: terminated (SIGTERM); continue a training run with --resume latest" in err
    assert "Traceback" not in err
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]  # nothing half-written
    done = max(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    resume = _genkit(*T, "--output", str(out), "--resume", "latest", "--max-steps", str(done + 5))
    err = resume.communicate(timeout=240)[1]
    assert resume.returncode == 0, err


def test_a_full_disk_while_checkpointing_leaves_the_old_model_and_says_so(tiny_vae, tmp_path):
    """A write limit (RLIMIT_FSIZE: writes past it fail with EFBIG, as a full disk fails them with ENOSPC) while a
    run trains over an earlier model: one line, exit 2, no staging folder left, the earlier model untouched."""
    import resource

    out = tmp_path / "run"
    shutil.copytree(tiny_vae, out)
    before = {rel: data for rel, data in files_of(out).items() if rel != ".genkit.lock"}
    size = (out / "checkpoint-20" / "model-model.safetensors").stat().st_size

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    proc = _genkit(*T, "--output", str(out), "--overwrite", "--max-steps", "4", preexec_fn=limit)
    err = proc.communicate(timeout=240)[1]
    assert proc.returncode == 2, err
    lines = [line for line in err.splitlines() if line.startswith("genkit:")]
    assert len(lines) == 1 and "could not write checkpoint-" in lines[0] and "--resume latest" in lines[0]
    assert "Traceback" not in err
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    # --overwrite had set the earlier run aside; the new one saved nothing, so it is back as it was
    assert {rel: data for rel, data in files_of(out).items() if rel != ".genkit.lock"} == before


def test_write_failures_are_training_errors():
    from genkit.training.outputs import write_failure as _write_failure

    with pytest.raises(TrainingError, match="could not write checkpoint-3 into x"):
        with _write_failure("checkpoint-3", Path("x")):
            raise OSError(28, "No space left on device")


def test_out_of_dataset_data_error_is_a_genkit_error():
    assert issubclass(DataError, GenkitError)
