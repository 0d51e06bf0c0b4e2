"""The shared trainer: exact resume after a real interruption, NaN stops, two processes, checkpoint limits."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import free_port, train_cli
from safetensors.torch import load_file

import genkit


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "vae" / "diffusion_pytorch_model.safetensors")


def genkit_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "genkit", *args]


def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
    args = [
        "train",
        "vae",
        "--preset",
        "tiny",
        "--max-steps",
        "120",
        "--checkpoint-every",
        "15",
        "--checkpoints-total-limit",
        "3",
        "--no-eval",
        "--log-with",
        "none",
    ]
    full = tmp_path / "full"
    subprocess.run(genkit_cmd(*args, "--output", str(full)), check=True, capture_output=True)

    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        genkit_cmd(*args, "--output", str(cut)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not list(cut.glob("checkpoint-*/trainer_state.json")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # a real interruption, mid-epoch and possibly mid-write
    proc.wait()
    assert not (cut / "model_index.json").exists(), "the run finished before it could be interrupted"
    steps = sorted(int(p.parent.name.split("-")[1]) for p in cut.glob("checkpoint-*/trainer_state.json"))
    assert steps and steps[-1] < 120

    result = subprocess.run(
        genkit_cmd(*args, "--output", str(cut), "--resume", "latest"), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert f"resumed from {cut / f'checkpoint-{steps[-1]}'}" in result.stdout + result.stderr
    a, b = weights(full), weights(cut)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # Checkpoints hold no pickle: every file is safetensors or JSON.
    assert {p.suffix for p in cut.glob("checkpoint-*/*")} == {".safetensors", ".json"}
    assert len(list(cut.glob("checkpoint-*"))) <= 3


def test_existing_run_is_not_overwritten_without_resume(tiny_vae, capsys):
    assert train_cli("vae", "--preset", "tiny", "--output", str(tiny_vae)) == 2
    err = capsys.readouterr().err
    assert "already holds checkpoints" in err and "--resume latest" in err


def test_nan_loss_stops_with_step_and_checkpoint(tmp_path, capsys):
    code = train_cli(
        "vae",
        "--preset",
        "tiny",
        "--output",
        str(tmp_path / "nan"),
        "--lr",
        "1e9",
        "--max-grad-norm",
        "0",
        "--log-with",
        "none",
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "loss became" in err and "at step" in err and "last good checkpoint" in err
    assert "Traceback" not in err


def test_gradient_accumulation_and_warmup_run(tmp_path):
    out = tmp_path / "acc"
    assert (
        train_cli(
            "vae",
            "--preset",
            "tiny",
            "--output",
            str(out),
            "--grad-accum",
            "2",
            "--warmup-steps",
            "5",
            "--lr-scheduler",
            "linear",
            "--max-steps",
            "6",
            "--checkpoint-every",
            "3",
            "--no-eval",
        )
        == 0
    )
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["batch_in_epoch"] == 12  # two micro-batches per update
    scheduler = json.loads((out / "checkpoint-3" / "scheduler-model.json").read_text())
    assert "__dict__" in scheduler


def test_two_process_training_on_cpu(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        "-m",
        "genkit",
        "train",
        "vae",
        "--preset",
        "tiny",
        "--output",
        str(out),
        "--max-steps",
        "10",
        "--checkpoint-every",
        "5",
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((out / "checkpoint-10" / "trainer_state.json").read_text())
    assert state["num_processes"] == 2
    rng = json.loads((out / "checkpoint-10" / "rng.json").read_text())
    assert len(rng["__list__"]) == 2  # both processes' RNG states, written by the main process
    # TensorBoard event files are named events.out.tfevents.<time>.<host>.<pid>.<n>: all come from one process.
    writers = {p.name.split(".")[-2] for p in (out / "logs").rglob("events.out.tfevents.*")}
    assert len(writers) == 1
    assert (out / "README.md").exists() and (out / "samples.png").exists()
    assert not list(out.glob(".tmp-*"))
    import genkit

    assert genkit.load(out).sample(2, seed=0)[0].size == (8, 8)


def test_tied_weights_resume_exactly(tmp_path):
    """An LSTM whose head shares the embedding's tensor: the checkpoint stores it once and resuming re-ties it.
    (A constant LR: a run planned for 2 steps then extended to 4 follows the schedule of one planned for 4.)"""
    from safetensors import safe_open

    args = ["lstm", "--preset", "tiny", "--tie-embeddings", "--embedding-size", "32", "--hidden-size", "32"]
    args += ["--checkpoint-every", "2", "--lr-scheduler", "constant", "--no-eval", "--log-with", "none"]
    assert train_cli(*args, "--max-steps", "4", "--output", str(tmp_path / "whole")) == 0
    cut = tmp_path / "cut"
    assert train_cli(*args, "--max-steps", "2", "--output", str(cut)) == 0
    with safe_open(str(cut / "checkpoint-2" / "model-model.safetensors"), "pt") as f:
        assert "lm_head.weight" not in f.keys()
        assert json.loads(f.metadata()["genkit_aliases"]) == {"lm_head.weight": "embeddings.weight"}
    assert train_cli(*args, "--max-steps", "4", "--output", str(cut), "--resume", "latest") == 0
    a, b = (load_file(tmp_path / run / "model.safetensors") for run in ("whole", "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # FSDP on CPU: a niche path, 10 s
def test_full_state_checkpoint_under_fsdp(tmp_path):
    """Real FSDP2 sharding on two CPU processes (tests/fsdp_worker.py): gathered, written, loaded back exactly."""
    worker = Path(__file__).with_name("fsdp_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*cmd, str(worker), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["equal"] == report["keys"] and "lm_head.weight" in report["keys"]
    assert report["local_head_shape"] == [19, 16]  # each process held half of the 37 rows...
    assert load_file(tmp_path / "model-model.safetensors")["lm_head.weight"].shape == (37, 16)  # ...the file all
    assert report["tied_after_load"]
    assert {p.suffix for p in tmp_path.iterdir()} == {".safetensors", ".json", ".done"}


def test_random_flip_is_seeded_by_the_batch_and_leaves_text_alone():
    from genkit.data import random_flip
    from genkit.plugin import StepContext

    pixels = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).reshape(2, 1, 2, 3).repeat(32, 1, 1, 1)
    flipped = random_flip(pixels, seed=7)
    mirrored = [bool(torch.equal(a, b.flip(-1))) for a, b in zip(flipped, pixels, strict=True)]
    kept = [bool(torch.equal(a, b)) for a, b in zip(flipped, pixels, strict=True)]
    assert all(m != k for m, k in zip(mirrored, kept, strict=True))  # each image is either mirrored or as it was
    assert 16 <= sum(mirrored) <= 48  # about half of 64
    assert torch.equal(random_flip(pixels, seed=7), flipped) and not torch.equal(random_flip(pixels, seed=8), flipped)
    plugin = genkit.get_plugin("lstm")
    text = {"input_ids": torch.ones(2, 3, dtype=torch.long)}
    ctx = StepContext("model", 0, {"random_flip": True}, {})
    assert plugin.augment(text, ctx, 0) is text
    vae = genkit.get_plugin("vae")
    off = {"pixel_values": pixels}
    assert vae.augment(off, StepContext("model", 0, {"random_flip": False}, {}), 0) is off


def test_random_flip_default_resume_and_never_in_evaluation(tmp_path, monkeypatch):
    """Off for digits, on for a folder of the user's images; a flipping run resumes exactly; evaluation and the
    test split never see a flip."""
    from PIL import Image

    import genkit.data

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(40):
        Image.new("L", (8, 8), color=i * 6).save(folder / f"{i:02d}.png")
    args = ["vae", "--preset", "tiny", "--log-with", "none", "--max-steps", "4", "--checkpoint-every", "2"]
    assert train_cli(*args, "--no-eval", "--output", str(tmp_path / "digits")) == 0
    assert json.loads((tmp_path / "digits" / "genkit.json").read_text())["config"]["random_flip"] is False
    calls = []
    import genkit.plugin.contract as contract

    real = contract.random_flip  # what Plugin.augment calls
    monkeypatch.setattr(contract, "random_flip", lambda pixels, seed: calls.append(seed) or real(pixels, seed))
    from genkit.config.resolve import resolve_config
    from genkit.training.trainer import Trainer

    plugin = genkit.get_plugin("vae")
    overrides = {"dataset": str(folder), "output": str(tmp_path / "mine"), "max_steps": 4, "checkpoint_every": 2}
    config = resolve_config(plugin, "tiny", {**overrides, "log_with": "none"})
    run = Trainer(plugin, config)
    run.train()
    assert run.config["random_flip"] is True and len(calls) == 4  # one per training batch, none in the evaluation
    test_before = torch.stack([run.data.test[i]["pixel_values"] for i in range(len(run.data.test))])
    prepared = plugin.prepare_data(genkit.data.splits_for(config, "image"), dict(config))
    run_test_pixels = torch.stack([prepared.test[i]["pixel_values"] for i in range(len(prepared.test))])
    assert torch.equal(test_before, run_test_pixels)
    whole = weights(tmp_path / "mine")
    shutil.rmtree(tmp_path / "mine" / "checkpoint-4")
    assert train_cli(*args, "--dataset", str(folder), "--output", str(tmp_path / "mine"), "--resume", "latest") == 0
    resumed = weights(tmp_path / "mine")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def _frozen_run(plugin, tmp_path, name: str, **settings):
    from genkit.config.resolve import resolve_config
    from genkit.training.trainer import Trainer

    overrides = {"output": str(tmp_path / name), "eval": False, "log_with": "none", "max_steps": 6, **settings}
    run = Trainer(plugin, resolve_config(plugin, "tiny", overrides))
    run.train()
    return run


def _parts(family: str, modules: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the part a plugin freezes, a part that trains): the VAE's decoder and encoder, the generator's first and
    last layers."""
    if family == "vae":
        return modules["model"].decoder, modules["model"].encoder
    return modules["generator"].net[0], modules["generator"].net[-2]


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights (not buffers such as BatchNorm's running statistics, which any forward pass in train mode moves)."""
    return {k: v.detach().clone() for k, v in module.named_parameters()}


@pytest.mark.parametrize("family", ["vae", "dcgan"])
def test_a_module_the_plugin_froze_stays_frozen_through_every_phase(family, tmp_path):
    """A plugin that trains only part of its model (the VAE without its decoder; the GAN with the generator's first
    layer frozen) gets those weights back bit for bit, though every phase switches gradients on and off (the GAN
    has two phases per step), and the flags are left as the plugin set them."""

    class PartlyFrozen(type(genkit.get_plugin(family))):
        def build(self, config, info):
            modules = super().build(config, info)
            frozen, trained = _parts(family, modules)
            frozen.requires_grad_(False)
            self.before = _state(frozen), _state(trained)
            return modules

    plugin = PartlyFrozen()
    run = _frozen_run(plugin, tmp_path, family, **({"n_critic": 1} if family == "dcgan" else {}))
    frozen, trained = _parts(family, run.unwrapped)
    frozen_before, trained_before = plugin.before
    assert all(torch.equal(frozen_before[k], v) for k, v in _state(frozen).items())
    assert not any(p.requires_grad for p in frozen.parameters())
    assert any(not torch.equal(trained_before[k], v) for k, v in _state(trained).items())  # the rest trained
    assert all(p.requires_grad for p in trained.parameters())
