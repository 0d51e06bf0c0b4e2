"""The GPU speed-up flags, run on the CPU: each reaches the run, and none changes what is trained beyond rounding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import train_cli
from safetensors.torch import load_file

import genkit
from genkit.config.resolve import resolve_config
from genkit.training.trainer import Trainer

TINY = ("vae", "--preset", "tiny", "--max-steps", "6", "--no-eval", "--report-to", "none")


def vae_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "vae" / "diffusion_pytorch_model.safetensors")


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """||a - b|| / ||b|| over all weights together."""
    diff = sum(float(((a[k] - b[k]) ** 2).sum()) for k in b) ** 0.5
    return diff / sum(float((b[k] ** 2).sum()) for k in b) ** 0.5


def trainer(tmp_path: Path, **settings) -> Trainer:
    plugin = genkit.get_plugin("vae")
    overrides = {"output": str(tmp_path / "run"), "max_steps": 2, "eval": False, "log_with": "none", **settings}
    run = Trainer(plugin, resolve_config(plugin, "tiny", overrides))
    run.train()
    return run


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> dict[str, torch.Tensor]:
    out = tmp_path_factory.mktemp("speed") / "baseline"
    assert train_cli(*TINY, "--output", str(out)) == 0
    return vae_weights(out)


def test_data_loader_workers_give_the_same_batches(tmp_path, baseline):
    """Workers only fetch; the sampler in the main process fixes the order, so the run is the same run."""
    assert train_cli(*TINY, "--num-workers", "2", "--output", str(tmp_path / "w")) == 0
    workers = vae_weights(tmp_path / "w")
    assert all(torch.equal(workers[k], baseline[k]) for k in baseline)
    assert json.loads((tmp_path / "w" / "genkit.json").read_text())["config"]["num_workers"] == 2


def test_fused_optimizer_and_channels_last_train_the_same_model(tmp_path, baseline):
    run = trainer(tmp_path, fused_optimizer=True, channels_last=True)
    optimizer = run.optimizers[0].optimizer
    assert optimizer.defaults["fused"] is True
    # (a convolution over several channels: with one input channel both layouts are the same)
    conv = next(m for m in run.wrapped["model"].modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    # The same 6 steps with both options: the same model up to rounding, which Adam's normalised steps amplify
    # where gradients are near zero (single weights move by up to ~1 lr), so the whole weight vector is compared.
    assert train_cli(*TINY, "--fused-optimizer", "--channels-last", "--output", str(tmp_path / "fc")) == 0
    assert relative_difference(vae_weights(tmp_path / "fc"), baseline) < 1e-2
    # For scale: another seed gives another model.
    assert train_cli(*TINY, "--seed", "1", "--output", str(tmp_path / "seed")) == 0
    assert relative_difference(vae_weights(tmp_path / "seed"), baseline) > 0.1


def test_allow_tf32_sets_the_matmul_and_cudnn_flags(tmp_path):
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        trainer(tmp_path, allow_tf32=True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.slow  # torch.compile's first compilation takes 35 s on 2 cores
def test_compile_runs_the_compiled_module_and_checkpoints_plain_names(tmp_path):
    run = trainer(tmp_path, compile=True, checkpoint_every=1)
    assert isinstance(run.wrapped["model"], torch._dynamo.eval_frame.OptimizedModule)
    assert run.accelerator.state.dynamo_plugin.backend.value == "INDUCTOR"
    names = load_file(tmp_path / "run" / "checkpoint-2" / "model-model.safetensors").keys()
    assert names and not any("_orig_mod" in name for name in names)
    assert genkit.load(tmp_path / "run").sample(2, seed=0)[0].size == (8, 8)
