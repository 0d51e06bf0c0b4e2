"""The VAE plugin: model, loss, variants, pipeline methods and evaluation, on tiny real models."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_card_usage, train_cli
from genkit_vae import VAEModel, VAEPipeline
from genkit_vae.modeling_vae import kl_divergence
from PIL import Image

import genkit
from genkit.errors import ConfigError
from genkit.images import tensor_to_pil
from genkit.plugin import DataInfo, StepContext


def tiny_model(**kwargs) -> VAEModel:
    torch.manual_seed(0)
    return VAEModel(**{"in_channels": 1, "image_size": 8, "latent_dim": 4, "hidden_channels": (8, 16), **kwargs})


def step_config(**kwargs):
    plugin = genkit.get_plugin("vae")
    return {**plugin.defaults, **plugin.presets["tiny"], "seed": 0, **kwargs}


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("conditional", [False, True])
def test_forward_backward_every_variant(likelihood, conditional):
    plugin = genkit.get_plugin("vae")
    info = DataInfo(task="image", dataset="digits", num_channels=1, image_size=8, num_classes=10)
    config = step_config(likelihood=likelihood, conditional=conditional, denoise_std=0.2)
    model = plugin.build(config, info)["model"]
    batch = {"pixel_values": torch.rand(4, 1, 8, 8) * 2 - 1, "labels": torch.arange(4)}
    out = plugin.training_step({"model": model}, batch, StepContext("model", 0, config, {}))
    assert out["loss"].shape == () and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())
    assert (model.label_embedding is not None) == conditional


def test_kl_matches_closed_form_and_beta_weights_it():
    mean, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]])
    # KL(N(1,1)||N(0,1)) = 0.5; KL(N(0,4)||N(0,1)) = 0.5 * (4 - 1 - log 4)
    assert kl_divergence(mean, logvar).item() == pytest.approx(0.5 + 0.5 * (3 - math.log(4)))
    plugin = genkit.get_plugin("vae")
    info = DataInfo(task="image", dataset="digits", num_channels=1, image_size=8, num_classes=None)
    model = plugin.build(step_config(), info)["model"].eval()
    batch = {"pixel_values": torch.zeros(2, 1, 8, 8)}
    losses = []
    for beta in (1.0, 3.0):
        torch.manual_seed(0)
        losses.append(
            plugin.training_step({"model": model}, batch, StepContext("model", 0, step_config(beta=beta), {}))
        )
    expected = (losses[0]["reconstruction"] + 3 * losses[0]["kl"]).item()
    assert losses[1]["loss"].item() == pytest.approx(expected, rel=1e-5)


def test_loss_decreases_when_training(tmp_path):
    out = tmp_path / "run"
    assert train_cli("vae", "--preset", "tiny", "--output", str(out), "--max-steps", "60", "--no-eval") == 0
    pipe = genkit.load(out)
    untrained = VAEPipeline(vae=tiny_model(num_classes=0)).to("cpu")
    untrained.vae.eval()
    real = next(iter(torch.utils.data.DataLoader(_digits_test(), batch_size=64)))["pixel_values"]
    torch.manual_seed(0)
    trained_elbo = pipe.negative_elbo(real).mean()
    torch.manual_seed(0)
    assert trained_elbo < untrained.negative_elbo(real).mean() * 0.8


def _digits_test():
    from genkit.data import load_splits, prepare_images

    splits = load_splits("digits", "image", image_size=8)
    return prepare_images(splits, {"image_size": 8, "channels": None, "dataset": "digits"}).test


def test_pipeline_methods(tiny_vae):
    pipe = genkit.load(tiny_vae)
    images = pipe.sample(6, seed=0)
    assert len(images) == 6 and images[0].size == (8, 8) and images[0].mode == "L"
    assert pipe.sample(6, seed=0, output_type="pt").equal(pipe.sample(6, seed=0, output_type="pt"))
    mean, logvar = pipe.encode(images)
    assert mean.shape == logvar.shape == (6, 4)
    recon = pipe.reconstruct(images, output_type="pt")
    assert recon.shape == (6, 1, 8, 8) and recon.min() >= -1 and recon.max() <= 1
    strip = pipe.interpolate(images[0], images[1], steps=5, output_type="pt")
    assert strip.shape == (5, 1, 8, 8)
    assert torch.allclose(strip[0], pipe.decode(mean[:1], output_type="pt")[0], atol=1e-5)
    assert torch.allclose(strip[-1], pipe.decode(mean[1:2], output_type="pt")[0], atol=1e-5)
    z = torch.randn(3, 4)
    arithmetic = pipe.latent_arithmetic(z[0], z[1], z[2], output_type="pt")
    assert torch.allclose(arithmetic, pipe.decode(z[0] - z[1] + z[2], output_type="pt"), atol=1e-6)
    with pytest.raises(ValueError, match=r"steps must be an integer in \[2, 10000\]"):
        pipe.interpolate(z[0], z[1], steps=1)
    with pytest.raises(ValueError, match="unconditional"):
        pipe.sample(2, labels=[1, 2])


def test_inpaint_keeps_the_known_pixels_and_fills_the_region_by_iterated_reconstruction(tiny_vae):
    pipe = genkit.load(tiny_vae)
    x0 = torch.stack([_digits_test()[i]["pixel_values"] for i in range(4)])
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 4:, :] = 1  # fill in the bottom half
    out = pipe.inpaint(x0, mask, iterations=3, output_type="pt")
    assert torch.equal(out[..., :4, :], x0[..., :4, :])  # the top half exactly as given
    # Each round: encode the current image to its posterior mean, decode, put the decoding into the region only.
    x = x0 * (1 - mask)
    for _ in range(3):
        x = x0 * (1 - mask) + pipe.reconstruct(x, output_type="pt") * mask
    assert torch.allclose(out, x, atol=1e-6)
    assert not torch.allclose(out[..., 4:, :], x0[..., 4:, :], atol=0.05)

    # PIL in and out; a mask drawn on a transparent layer (its alpha) marks the same region as a white-on-black one
    image = tensor_to_pil(x0[:1])[0]
    white = Image.new("L", (8, 8), 0)
    white.paste(255, (0, 4, 8, 8))
    drawn = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    drawn.paste((255, 0, 0, 255), (0, 4, 8, 8))
    a, b = pipe.inpaint(image, white, iterations=3)[0], pipe.inpaint(image, drawn, iterations=3)[0]
    assert np.array_equal(np.asarray(a), np.asarray(b)) and np.array_equal(np.asarray(a)[:4], np.asarray(image)[:4])


def test_anomaly_score_ranks_noise_above_digits_and_iwae_bound_is_tighter(tmp_path):
    out = tmp_path / "run"
    assert (
        train_cli(
            "vae",
            "--preset",
            "tiny",
            "--output",
            str(out),
            "--max-steps",
            "150",
            "--no-eval",
            "--checkpoint-every",
            "150",
        )
        == 0
    )
    pipe = genkit.load(out)
    real = next(iter(torch.utils.data.DataLoader(_digits_test(), batch_size=32)))["pixel_values"]
    noise = torch.rand_like(real) * 2 - 1
    torch.manual_seed(0)
    assert pipe.anomaly_score(noise).mean() > pipe.anomaly_score(real).mean() * 1.5
    torch.manual_seed(0)
    elbo = pipe.anomaly_score(real, num_samples=32).mean()
    nll = pipe.importance_sampled_nll(real, k=64).mean()
    assert nll <= elbo + 1e-3  # importance weighting tightens the bound (Burda et al. 2016)


def test_conditional_vae_samples_by_class(tmp_path):
    out = tmp_path / "cvae"
    assert train_cli("vae", "--preset", "tiny", "--conditional", "--output", str(out)) == 0
    pipe = genkit.load(out)
    assert pipe.vae.config.num_classes == 10
    a = pipe.sample(4, seed=0, labels=3, output_type="pt")
    b = pipe.sample(4, seed=0, labels=7, output_type="pt")
    assert a.shape == (4, 1, 8, 8) and not torch.equal(a, b)
    with pytest.raises(ValueError, match="conditional: pass labels"):
        pipe.sample(2)
    with pytest.raises(ValueError, match=r"labels must be one or 2 integers in 0\.\.9"):
        pipe.sample(2, labels=[3, 12])
    result = genkit.get_plugin("vae").evaluate(pipe, _prepared(), {"seed": 0, "eval_importance_samples": 2})
    assert result["metrics"]["negative_elbo_nats"] > 0


def _prepared():
    from genkit.data import load_splits, prepare_images

    splits = load_splits("digits", "image", image_size=8)
    return prepare_images(splits, {"image_size": 8, "channels": None, "dataset": "digits"})


def test_traverse_and_latent_grid_decode_the_latents_they_name(tiny_vae):
    pipe = genkit.load(tiny_vae)
    strip = pipe.traverse(2, values=[-2.0, 0.0, 2.0], output_type="pt")
    expected = torch.zeros(3, 4)
    expected[:, 2] = torch.tensor([-2.0, 0.0, 2.0])
    assert torch.allclose(strip, pipe.decode(expected, output_type="pt"), atol=1e-6)
    z = torch.randn(4)
    around = pipe.traverse(0, values=[1.5], z=z, output_type="pt")
    assert torch.allclose(around[0], pipe.decode(torch.cat([torch.tensor([1.5]), z[1:]])[None], output_type="pt")[0])
    assert len(pipe.traverse(1)) == 7  # default: -3..3 in 7 steps, as PIL images
    grid = pipe.latent_grid(n=3, extent=1.0, dims=(1, 3))
    assert len(grid) == 9 and grid[0].size == (8, 8)
    corner = torch.zeros(1, 4)
    corner[0, 1], corner[0, 3] = -1.0, 1.0  # the first image: left of dim 1's axis, top of dim 3's
    first = np.asarray(grid[0], dtype=np.float32)
    assert np.abs(first - np.asarray(pipe.decode(corner)[0], dtype=np.float32)).max() <= 1
    with pytest.raises(ValueError, match="dim"):
        pipe.traverse(4)
    with pytest.raises(ValueError, match="two distinct latent dims"):
        pipe.latent_grid(dims=(1, 1))


def test_the_vae_page_runs_as_written(tiny_vae):
    doc = (Path(__file__).parents[1] / "docs" / "vae.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert len(blocks) == 2  # the pipeline's methods, then inpainting with the images of the first
    namespace: dict = {}
    for block in blocks:
        exec(compile(block.replace('"outputs/vae-digits"', repr(str(tiny_vae))), "docs/vae.md", "exec"), namespace)
    assert len(namespace["sweep"]) == 7 and len(namespace["plane"]) == 64
    assert namespace["scores"].shape == namespace["elbo"].shape == (16,)
    assert len(namespace["filled"]) == 4 and namespace["filled"][0].size == namespace["images"][0].size


def test_evaluation_reports_nats_and_bits_per_dim(tiny_vae):
    import json

    result = json.loads((tiny_vae / "eval_results.json").read_text())
    m, p = result["metrics"], result["protocol"]
    assert m["bits_per_dim"] == pytest.approx(m["negative_elbo_nats"] / (64 * math.log(2)))
    assert p["split"] == "test" and p["num_images"] == 180 and p["importance_samples"] == 4
    card = (tiny_vae / "README.md").read_text()
    assert "library_name: diffusers" in card and "negative_elbo_nats" in card and "importance_samples" in card


def test_model_card_usage_runs(tiny_vae):
    used = run_card_usage(tiny_vae)
    assert len(used["images"]) == 16 and used["scores"].shape == (16,)


def test_bad_inputs():
    with pytest.raises(ValueError, match="must be a multiple of 4"):
        VAEModel(image_size=10, hidden_channels=(8, 16))
    with pytest.raises(ValueError, match="likelihood must be"):
        VAEModel(likelihood="poisson")
    plugin = genkit.get_plugin("vae")
    info = DataInfo(task="image", dataset="./folder", num_channels=3, image_size=8, num_classes=None)
    with pytest.raises(ConfigError, match="--conditional needs labelled data"):
        plugin.build(step_config(conditional=True), info)
