"""What fp16 touches, checked on the CPU: every plugin's losses under float16 autocast with a loss scaler driving its
optimizers one phase at a time (as accelerate does on a GPU: scale, backward, step, update per optimizer), the
WGAN-GP penalty's float32 pass, the VAE likelihood, DDPM sampling from the same noise in every precision, and the
scaler's state in a checkpoint. The GPU itself is checked by ``bench/gpu_check.py`` (``make gpu-check``).

accelerate does not autocast to fp16 on a CPU (its fp16 needs a GPU), so these tests use torch's own CPU autocast and
``torch.amp.GradScaler("cpu")``: the same arithmetic, without the device.
"""

from __future__ import annotations

import pytest
import torch
from conftest import train_cli

from genkit.config.resolve import resolve_config
from genkit.data import splits_for
from genkit.plugin import StepContext
from genkit.plugin.registry import get_plugin

CASES = {
    "vae": {},
    "dcgan-bce": {"loss": "bce"},
    "dcgan-wgan-gp": {"loss": "wgan-gp", "n_critic": 1},
    "ddpm": {},
    "lstm": {},
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_every_plugin_trains_under_fp16_autocast_with_a_loss_scaler(case, tmp_path):
    plugin = get_plugin(case.split("-")[0])
    config = resolve_config(plugin, "tiny", {"output": str(tmp_path), **CASES[case]})
    data = plugin.prepare_data(splits_for(config, plugin.task), config)
    torch.manual_seed(0)
    modules = plugin.build(config, data.info)
    specs = plugin.optimizers(config)
    optimizers = [torch.optim.AdamW([p for m in s.modules for p in modules[m].parameters()], lr=s.lr) for s in specs]
    scaler = torch.amp.GradScaler("cpu")
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in modules.items()}
    loader = torch.utils.data.DataLoader(data.train, batch_size=int(config["batch_size"]), drop_last=True)
    carry: dict = {}
    for step, batch in zip(range(10), loader, strict=False):  # the scaler backs off from overflows in the first few
        for spec, optimizer in zip(specs, optimizers, strict=True):
            for name, module in modules.items():
                module.requires_grad_(name in spec.modules)
            with torch.autocast("cpu", dtype=torch.float16):
                loss = plugin.training_step(modules, batch, StepContext(spec.name, step, config, carry))["loss"]
            assert torch.isfinite(loss), f"{case} {spec.name} loss {loss} at step {step}"
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
    for name, module in modules.items():
        params = list(module.parameters())
        assert all(torch.isfinite(p).all() for p in params), f"{case}: {name} has non-finite weights"
        assert any(not torch.equal(p, q) for p, q in zip(params, before[name], strict=True)), f"{name} never moved"


def test_the_gradient_penalty_runs_in_float32_under_fp16_autocast():
    from genkit_dcgan.modeling_dcgan import gradient_penalty

    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(1))
    real, fake, eps = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8), torch.rand(4, 1, 1, 1)
    reference = gradient_penalty(critic, real, fake, eps)
    with torch.autocast("cpu", dtype=torch.float16):
        half = gradient_penalty(critic, real, fake, eps)
    assert half.dtype == torch.float32 and torch.allclose(half, reference, rtol=1e-6)
    half.backward()  # the penalty trains the critic through the double backward
    conv = critic[0].weight.grad
    assert conv is not None and torch.isfinite(conv).all() and conv.abs().sum() > 0


def test_the_vae_likelihood_under_fp16_autocast_matches_float32(tiny_vae):
    import genkit

    vae = genkit.load(tiny_vae).vae
    x = torch.rand(8, 1, 8, 8) * 2 - 1
    torch.manual_seed(0)
    reference = vae.log_likelihood(vae(x, sample_posterior=False).decoded, x)
    with torch.autocast("cpu", dtype=torch.float16):
        torch.manual_seed(0)
        half = vae.log_likelihood(vae(x, sample_posterior=False).decoded, x)
    assert torch.isfinite(half).all()
    assert torch.allclose(half.float(), reference, rtol=1e-2)


@pytest.fixture(scope="module")
def tiny_ddpm(tmp_path_factory):
    out = tmp_path_factory.mktemp("fp16") / "ddpm"
    assert train_cli("ddpm", "--preset", "tiny", "--output", str(out), "--no-eval", "--log-with", "none") == 0
    return out


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_ddpm_samples_from_the_same_noise_in_every_precision(tiny_ddpm, dtype):
    """A seed draws the same float32 noise whatever the model's precision, so the samples agree up to rounding."""
    import genkit

    def sample(pipe):
        pipe.set_progress_bar_config(disable=True)
        generator = torch.Generator().manual_seed(0)
        return pipe(4, num_inference_steps=10, scheduler="ddim", generator=generator, output_type="pt").images

    reference = sample(genkit.load(tiny_ddpm))
    half = sample(genkit.load(tiny_ddpm, torch_dtype=dtype))
    assert half.dtype == dtype and torch.isfinite(half).all()
    assert (half.float() - reference).abs().mean() < 0.02


def test_a_loss_scalers_state_round_trips_through_a_checkpoint_file(tmp_path):
    from genkit.training.checkpoint import load_tensors_and_json, save_tensors_and_json

    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    weight = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    for value in (1.0, float("inf"), 2.0):  # one overflow: the scale backs off and the step is skipped
        scaler.scale(weight.sum() * value).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
    save_tensors_and_json(tmp_path / "grad_scaler", scaler.state_dict())
    restored = torch.amp.GradScaler("cpu")
    restored.load_state_dict(load_tensors_and_json(tmp_path / "grad_scaler"))
    assert restored.state_dict() == scaler.state_dict() and restored.get_scale() == 512.0
