"""The DCGAN plugin: networks, both losses, the gradient penalty, the collapse guard, save/load, resume, the
pipeline, evaluation and clear errors, on tiny real models trained by the real CLI."""

import json
import logging
import os

import pytest
import torch
from conftest import populate_hub_cache, run_card_usage, train_cli
from genkit_dcgan import DCGANDiscriminator, DCGANGenerator, DCGANPipeline, DCGANPlugin
from genkit_dcgan.modeling_dcgan import gradient_penalty
from genkit_dcgan.plugin import batch_diversity, collapse_warnings
from PIL import Image
from safetensors.torch import load_file

import genkit
import genkit.cli.main
from genkit.errors import ConfigError
from genkit.plugin import DataInfo, StepContext

DIGITS = DataInfo(task="image", dataset="digits", num_channels=1, image_size=8, num_classes=10)


def step_config(**kwargs):
    plugin = genkit.get_plugin("dcgan")
    config = {**plugin.defaults, **plugin.presets["tiny"], "seed": 0, "log_every": 10, **kwargs}
    plugin.optimizers(config)  # resolves lr and betas, as the trainer does before building
    return config


def run_step(plugin, modules, batch, config, phase, step=0):
    """One phase the way the trainer runs it: only that phase's network is trainable."""
    for name, module in modules.items():
        module.requires_grad_(name == phase)
        module.zero_grad(set_to_none=True)
    out = plugin.training_step(modules, batch, StepContext(phase, step, config, {}))
    out["loss"].backward()
    return out


def tiny_gan(tmp_path_factory, name, *args):
    out = tmp_path_factory.mktemp(name) / "model"
    assert train_cli("dcgan", "--preset", "tiny", "--output", str(out), *args) == 0
    return out


@pytest.fixture(scope="module")
def tiny_dcgan(tmp_path_factory):
    """A BCE DCGAN trained for 10 steps on digits with the tiny preset (evaluated at the end)."""
    return tiny_gan(tmp_path_factory, "tiny-dcgan")


@pytest.fixture(scope="module")
def conditional_dcgan(tmp_path_factory):
    """A conditional BCE DCGAN trained long enough (400 steps at 8 px, ~10 s) to draw its classes."""
    return tiny_gan(
        tmp_path_factory,
        "cond-dcgan",
        "--conditional",
        "--max-steps",
        "400",
        "--checkpoint-every",
        "400",
        "--no-eval",
        "--log-with",
        "none",
    )


# ---- networks --------------------------------------------------------------------------------------------------


def test_registered_through_the_entry_point():
    plugin = genkit.get_plugin("dcgan")
    assert isinstance(plugin, DCGANPlugin)
    assert "dcgan" in genkit.list_plugins()
    assert plugin.pipeline_class is DCGANPipeline


@pytest.mark.parametrize("size", [8, 16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_power_of_two_size_and_channel_count(size, channels):
    G = DCGANGenerator(latent_dim=8, image_size=size, out_channels=channels, base_channels=4)
    D = DCGANDiscriminator(image_size=size, in_channels=channels, base_channels=4)
    images = G(torch.randn(3, 8))
    assert images.shape == (3, channels, size, size)
    assert images.abs().max() <= 1  # tanh output
    assert D(images).shape == (3,)
    # one stride-2 layer per doubling from 4x4 (Radford et al.): log2(size) - 2 of them in each network
    strided = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == size.bit_length() - 3


def test_architecture_follows_radford_et_al():
    torch.manual_seed(0)
    G = DCGANGenerator(latent_dim=100, image_size=64, out_channels=3, base_channels=64)
    D = DCGANDiscriminator(image_size=64, in_channels=3, base_channels=64)
    g_layers, d_layers = list(G.modules()), list(D.modules())
    assert any(isinstance(m, torch.nn.ReLU) for m in g_layers) and isinstance(g_layers[-1], torch.nn.Tanh)
    assert all(m.negative_slope == 0.2 for m in d_layers if isinstance(m, torch.nn.LeakyReLU))
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in g_layers) == 4  # every layer but the output
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d_layers) == 3  # every layer but the input
    big = [m.weight for m in (*g_layers, *d_layers) if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    weights = torch.cat([w.flatten() for w in big])
    assert abs(weights.mean().item()) < 1e-3 and abs(weights.std().item() - 0.02) < 1e-3


def test_wgan_gp_critic_has_no_batchnorm_and_gulrajani_optimizer():
    plugin = genkit.get_plugin("dcgan")
    config = step_config(loss="wgan-gp", n_critic=5)
    critic = plugin.build(config, DIGITS)["discriminator"]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules())
    with pytest.raises(ConfigError, match="wgan-gp needs --discriminator-norm layer"):
        plugin.build(step_config(loss="wgan-gp", discriminator_norm="batch"), DIGITS)
    d_spec, g_spec = plugin.optimizers(config)
    assert (d_spec.name, d_spec.modules, g_spec.name, g_spec.modules) == (
        "discriminator",
        ["discriminator"],
        "generator",
        ["generator"],
    )
    assert (d_spec.lr, d_spec.betas, d_spec.every, g_spec.every) == (1e-4, (0.0, 0.9), 1, 5)
    d_spec, g_spec = plugin.optimizers(step_config(loss="bce"))
    assert (d_spec.lr, g_spec.betas, g_spec.every) == (2e-4, (0.5, 0.999), 1)
    assert plugin.optimizers(step_config(loss="bce", lr=1e-3, adam_beta1=0.3))[1].betas == (0.3, 0.999)


@pytest.mark.parametrize("loss", ["bce", "wgan-gp"])
@pytest.mark.parametrize("conditional", [False, True])
def test_forward_backward_every_variant(loss, conditional):
    plugin = genkit.get_plugin("dcgan")
    config = step_config(loss=loss, conditional=conditional)
    torch.manual_seed(0)
    modules = plugin.build(config, DIGITS)
    G, D = modules["generator"], modules["discriminator"]
    assert (G.label_embedding is not None) == conditional
    assert D.features[0].in_channels == (11 if conditional else 1)  # one-hot label planes next to the image
    batch = {"pixel_values": torch.rand(6, 1, 8, 8) * 2 - 1, "labels": torch.arange(6)}

    out = run_step(plugin, modules, batch, config, "discriminator")
    assert out["loss"].shape == () and torch.isfinite(out["loss"])
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters())
    assert all(p.grad is None for p in G.parameters())  # fakes were made under no_grad
    assert ("gradient_penalty" in out) == (loss == "wgan-gp") and ("d_real" in out) == (loss == "bce")
    assert 0 <= out["diversity"] < 10

    out = run_step(plugin, modules, batch, config, "generator")
    assert torch.isfinite(out["loss"])
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())
    assert all(p.grad is None for p in D.parameters())


def test_bce_losses_are_the_non_saturating_gan_losses():
    plugin = genkit.get_plugin("dcgan")
    config = step_config(diffaugment="none")  # the plain losses, by hand
    torch.manual_seed(0)
    modules = plugin.build(config, DIGITS)
    batch = {"pixel_values": torch.rand(4, 1, 8, 8) * 2 - 1}
    torch.manual_seed(1)
    out = run_step(plugin, modules, batch, config, "generator")
    torch.manual_seed(1)  # the same latents
    G, D = modules["generator"], modules["discriminator"]
    z = torch.randn(4, 16)
    expected = -torch.log(torch.sigmoid(D(G(z)))).mean()  # -log D(G(z))
    assert torch.allclose(out["loss"], expected, atol=1e-6)


# ---- the gradient penalty, by hand -------------------------------------------------------------------------------


def test_gradient_penalty_matches_a_hand_computation():
    # critic(x) = a * |x|^2 / 2 has gradient a * x, so the penalty is mean_i (a * |x_hat_i| - 1)^2.
    a = torch.tensor(1.0, requires_grad=True)

    def critic(x):
        return a * x.pow(2).flatten(1).sum(1) / 2

    real = torch.stack([torch.full((1, 2, 2), 1.0), torch.full((1, 2, 2), 2.0)])
    fake = torch.stack([torch.zeros(1, 2, 2), torch.full((1, 2, 2), -2.0)])
    eps = torch.tensor([0.25, 0.75]).view(2, 1, 1, 1)
    # x_hat_1 = 0.25 everywhere: |x_hat_1| = 0.5, (0.5 - 1)^2 = 0.25
    # x_hat_2 = 0.75 * 2 + 0.25 * -2 = 1 everywhere: |x_hat_2| = 2, (2 - 1)^2 = 1
    gp = gradient_penalty(critic, real, fake, eps)
    assert gp.item() == pytest.approx((0.25 + 1.0) / 2)
    # d gp / d a = mean_i 2 (a |x_hat_i| - 1) |x_hat_i| = (2 * -0.5 * 0.5 + 2 * 1 * 2) / 2 = 1.75: it trains the critic
    gp.backward()
    assert a.grad.item() == pytest.approx(1.75)


def test_gradient_penalty_of_a_linear_critic_is_its_weight_norm():
    torch.manual_seed(0)
    w = torch.randn(1, 3, 4, 4)
    gp = gradient_penalty(lambda x: (w * x).flatten(1).sum(1), torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4))
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)


def test_wgan_gp_discriminator_loss_is_wasserstein_plus_ten_times_the_penalty():
    plugin = genkit.get_plugin("dcgan")
    config = step_config(loss="wgan-gp")
    torch.manual_seed(0)
    modules = plugin.build(config, DIGITS)
    out = run_step(plugin, modules, {"pixel_values": torch.rand(4, 1, 8, 8) * 2 - 1}, config, "discriminator")
    assert out["loss"].item() == pytest.approx(
        -out["wasserstein"].item() + 10 * out["gradient_penalty"].item(), rel=1e-5
    )


# ---- collapse guard --------------------------------------------------------------------------------------------


def test_batch_diversity_is_zero_for_copies_and_about_one_for_data():
    real = torch.rand(16, 1, 8, 8) * 2 - 1
    assert batch_diversity(real[:1].expand(16, -1, -1, -1), real).item() == 0
    assert batch_diversity(torch.rand(16, 1, 8, 8) * 2 - 1, real).item() == pytest.approx(1, abs=0.15)
    assert collapse_warnings(1.0, 0.7, 0.3) == []
    assert "mode collapse" in collapse_warnings(0.05, 0.7, 0.3)[0]
    assert "saturated" in collapse_warnings(1.0, 0.995, 0.004)[0]
    assert collapse_warnings(1.0, None, None) == []  # WGAN-GP: no probabilities, no saturation signal


def test_collapse_guard_warns_during_a_step_of_a_collapsed_generator(caplog):
    plugin = genkit.get_plugin("dcgan")
    config = step_config(collapse_guard_after=0)
    torch.manual_seed(0)
    modules = plugin.build(config, DIGITS)
    with torch.no_grad():  # a generator that ignores z: every sample is the same image
        modules["generator"].net[0].weight.zero_()
    batch = {"pixel_values": torch.rand(8, 1, 8, 8) * 2 - 1}
    with caplog.at_level(logging.WARNING, logger="genkit_dcgan"):
        out = run_step(plugin, modules, batch, config, "discriminator", step=10)
        assert out["diversity"].item() < 1e-3
        assert "sample diversity collapsed" in caplog.text and "step 10" in caplog.text
        caplog.clear()
        run_step(plugin, modules, batch, config, "discriminator", step=11)  # not a logging step
        run_step(plugin, modules, batch, step_config(collapse_guard_after=100), "discriminator", step=10)
        assert caplog.text == ""


# ---- saving, loading, resuming ---------------------------------------------------------------------------------


def test_save_load_round_trip_is_bit_exact_for_both_networks(tiny_dcgan, tmp_path):
    pipe = genkit.load(tiny_dcgan)
    assert isinstance(pipe, DCGANPipeline)
    assert json.loads((tiny_dcgan / "model_index.json").read_text())["discriminator"][1] == "DCGANDiscriminator"
    # the saved networks are the trained ones: the tiny preset keeps no EMA, so they equal the last checkpoint
    for name in ("generator", "discriminator"):
        trained = load_file(tiny_dcgan / "checkpoint-10" / f"model-{name}.safetensors")
        state = getattr(pipe, name).state_dict()
        assert trained.keys() == state.keys()
        assert all(torch.equal(trained[k], state[k]) for k in trained), name
        assert {p.suffix for p in (tiny_dcgan / name).iterdir()} == {".json", ".safetensors", ".py"}  # + shipped code
    pipe.save_pretrained(tmp_path / "again")
    again = DCGANPipeline.from_pretrained(tmp_path / "again")
    for name in ("generator", "discriminator"):
        a, b = getattr(pipe, name).state_dict(), getattr(again, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    x = pipe.sample(6, seed=3, output_type="pt")
    assert torch.equal(x, again.sample(6, seed=3, output_type="pt"))
    assert not torch.equal(x, pipe.sample(6, seed=4, output_type="pt"))
    assert torch.equal(pipe.discriminate(x), again.discriminate(x))


def test_load_by_hub_repo_id_from_offline_cache(tiny_dcgan):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    populate_hub_cache(tiny_dcgan, "someone/tiny-dcgan")
    reference = genkit.load(tiny_dcgan).sample(4, seed=1, output_type="pt")
    assert torch.equal(genkit.load("someone/tiny-dcgan").sample(4, seed=1, output_type="pt"), reference)
    assert torch.equal(
        DCGANPipeline.from_pretrained("someone/tiny-dcgan").sample(4, seed=1, output_type="pt"), reference
    )


def test_resume_equals_an_uninterrupted_run(tmp_path):
    # WGAN-GP (the generator steps every n_critic = 2 batches), conditional, with a generator EMA: every piece of
    # state the game has must survive the interruption.
    args = [
        "--preset",
        "tiny",
        "--loss",
        "wgan-gp",
        "--conditional",
        "--ema-decay",
        "0.9",
        "--no-eval",
        "--log-with",
        "none",
        "--checkpoint-every",
        "5",
    ]
    assert train_cli("dcgan", *args, "--max-steps", "15", "--output", str(tmp_path / "full")) == 0
    assert train_cli("dcgan", *args, "--max-steps", "5", "--output", str(tmp_path / "parts")) == 0
    assert (
        train_cli("dcgan", *args, "--max-steps", "15", "--output", str(tmp_path / "parts"), "--resume", "latest") == 0
    )
    for name in ("generator", "discriminator"):
        full = load_file(tmp_path / "full" / "checkpoint-15" / f"model-{name}.safetensors")
        parts = load_file(tmp_path / "parts" / "checkpoint-15" / f"model-{name}.safetensors")
        assert all(torch.equal(full[k], parts[k]) for k in full), name
    full, parts = genkit.load(tmp_path / "full"), genkit.load(tmp_path / "parts")
    for name in ("generator", "discriminator"):  # the saved pipelines: EMA generator with standing statistics
        a, b = getattr(full, name).state_dict(), getattr(parts, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    # the EMA generator is not the raw one
    raw = load_file(tmp_path / "full" / "checkpoint-15" / "model-generator.safetensors")
    assert not torch.equal(raw["net.0.weight"], full.generator.state_dict()["net.0.weight"])


# ---- the pipeline ----------------------------------------------------------------------------------------------


def test_pipeline_interpolation_arithmetic_and_discrimination(tiny_dcgan):
    pipe = genkit.load(tiny_dcgan)
    z = pipe.make_latents(3, seed=5)
    ends = pipe(latents=z[:2], output_type="pt").images
    path = pipe.interpolate(z[0], z[1], steps=5, output_type="pt")
    assert path.shape == (5, 1, 8, 8)
    assert torch.allclose(path[0], ends[0], atol=1e-6) and torch.allclose(path[-1], ends[1], atol=1e-6)
    assert len(pipe.interpolate(z[0], z[1], steps=4)) == 4  # PIL by default
    mixed = pipe.latent_arithmetic(z[0], z[1], z[2], output_type="pt")
    assert torch.allclose(mixed, pipe(latents=z[0] - z[1] + z[2], output_type="pt").images, atol=1e-6)
    averaged = pipe.latent_arithmetic(z[:2], z[1:], z[2], output_type="pt")  # several exemplars are averaged
    assert torch.allclose(
        averaged, pipe(latents=z[:2].mean(0) - z[1:].mean(0) + z[2], output_type="pt").images, atol=1e-6
    )
    images = pipe.sample(4, seed=0)
    assert all(isinstance(im, Image.Image) and im.size == (8, 8) for im in images)
    scores = pipe.discriminate(images)
    assert scores.shape == (4,) and ((scores >= 0) & (scores <= 1)).all()  # BCE: P(real)
    with pytest.raises(ValueError, match="unconditional"):
        pipe.sample(2, labels=[0, 1])
    with pytest.raises(ValueError, match="latents must have 16 values"):
        pipe(latents=torch.randn(2, 7))
    with pytest.raises(ValueError, match=r"steps must be an integer in \[2, 10000\]"):
        pipe.interpolate(z[0], z[1], steps=1)


def test_conditional_samples_are_recognised_as_their_class(conditional_dcgan):
    pipe = genkit.load(conditional_dcgan)
    plugin = genkit.get_plugin("dcgan")
    assert pipe.num_classes == 10
    threes = pipe.sample(4, seed=0, labels=3, output_type="pt")
    fours = pipe.sample(4, seed=0, labels=4, output_type="pt")
    assert not torch.equal(threes, fours)  # the same latents, another class: other images
    with pytest.raises(ValueError, match="conditional: pass labels"):
        pipe.sample(2)
    with pytest.raises(ValueError, match="labels must be"):
        pipe.sample(2, labels=[3, 10])
    # the CLI's evaluation: a domain classifier trained on the real train split names the class of each sample
    assert genkit.cli.main(["eval", str(conditional_dcgan), "--eval-samples", "300"]) == 0
    result = json.loads((conditional_dcgan / "eval_results.json").read_text())
    assert result["protocol"]["conditional"] is True and result["protocol"]["num_samples"] == 300
    assert result["metrics"]["class_accuracy"] > 0.3  # chance is 0.1
    assert "class_accuracy" in (conditional_dcgan / "README.md").read_text()
    grid = plugin.sample(pipe, 20, seed=0)  # the sample hook draws classes in blocks: 0 0 1 1 2 2 ...
    assert len(grid) == 20


def test_unconditional_eval_reports_coverage_and_goes_into_the_card(tiny_dcgan):
    result = json.loads((tiny_dcgan / "eval_results.json").read_text())
    metrics, protocol = result["metrics"], result["protocol"]
    assert {"frechet_distance", "precision", "recall", "class_coverage", "class_entropy"} <= metrics.keys()
    assert "class_accuracy" not in metrics
    assert protocol["loss"] == "bce" and protocol["ema"] is False and protocol["num_samples"] == 200
    assert "10-class classifier" in protocol["feature_space"]
    card = (tiny_dcgan / "README.md").read_text()
    assert "frechet_distance" in card and "feature_space" in card


def test_model_card_usage_runs(tiny_dcgan):
    used = run_card_usage(tiny_dcgan)
    assert len(used["images"]) == 16 and used["scores"].shape == (16,)


# ---- clear errors ----------------------------------------------------------------------------------------------


def test_unsupported_image_size_is_a_clear_error(tmp_path, capsys):
    assert train_cli("dcgan", "--preset", "tiny", "--image-size", "24", "--output", str(tmp_path / "m")) == 2
    err = capsys.readouterr().err
    assert "--image-size 24 is not supported" in err and "power of two from 8 to 128" in err
    with pytest.raises(ValueError, match="power of two"):
        DCGANGenerator(image_size=48)


def test_unknown_loss_is_a_clear_error(tmp_path, capsys):
    assert train_cli("dcgan", "--preset", "tiny", "--loss", "hinge", "--output", str(tmp_path / "m")) == 2
    assert "invalid choice: 'hinge'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown loss 'hinge'; known: bce, wgan-gp"):
        genkit.get_plugin("dcgan").optimizers(step_config(loss="hinge"))


def test_conditional_training_on_unlabelled_data_is_a_clear_error(tmp_path, capsys):
    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(40):
        Image.new("L", (8, 8), i * 6).save(folder / f"{i}.png")
    out = tmp_path / "m"
    assert train_cli("dcgan", "--preset", "tiny", "--dataset", str(folder), "--conditional", "--output", str(out)) == 2
    assert "--conditional needs labelled data" in capsys.readouterr().err
    assert not list(out.glob("checkpoint-*"))


def test_fine_tuning_with_another_loss_is_a_clear_error(tiny_dcgan, tmp_path, capsys):
    args = ["--preset", "tiny", "--init-from", str(tiny_dcgan), "--output", str(tmp_path / "ft"), "--no-eval"]
    assert train_cli("dcgan", *args, "--loss", "wgan-gp") == 2
    assert "--loss 'wgan-gp' would change the base model" in capsys.readouterr().err
    assert train_cli("dcgan", *args, "--max-steps", "2") == 0  # the same game continues


def test_the_wgan_gp_generator_loss_reaches_the_history(tmp_path):
    """With n_critic 5 the generator steps on one update in five and log_every 10 writes on others: each interval's
    mean of every phase's values reaches logs/history.jsonl (once, the generator's loss never met a logging step)."""
    pipe = genkit.train("dcgan", preset="tiny", output=tmp_path / "wgan", loss="wgan-gp", n_critic=5, log_every=10,
                        max_steps=30, eval=False, progress=False)  # fmt: skip
    history = pipe.history
    assert list(history.index) == [10, 20, 30]
    for column in ("discriminator/loss", "generator/loss", "discriminator/gradient_penalty"):
        assert column in history and history[column].notna().all(), (column, list(history.columns))
    # the critic's Wasserstein estimate and the generator's loss are the two curves a WGAN-GP lab plots
    assert history["generator/loss"].nunique() == 3


# ---- R1, DiffAugment, two time-scale learning rates ----------------------------------------------------------------


def test_r1_penalty_of_a_quadratic_critic_by_hand():
    from genkit_dcgan.plugin import r1_penalty

    # D(x) = a |x|^2 / 2 has gradient a x, so E ||grad||^2 = a^2 mean_i |x_i|^2
    a = torch.tensor(2.0, requires_grad=True)
    real = torch.stack([torch.full((1, 2, 2), 1.0), torch.full((1, 2, 2), 3.0)])  # |x|^2 = 4 and 36
    r1 = r1_penalty(lambda x: a * x.pow(2).flatten(1).sum(1) / 2, real)
    assert r1.item() == pytest.approx(4 * (4 + 36) / 2)
    r1.backward()  # d/da a^2 * 20 = 2a * 20 = 80: it trains the discriminator
    assert a.grad.item() == pytest.approx(80)


def test_r1_adds_gamma_over_two_times_the_penalty_to_the_discriminator_loss():
    plugin = genkit.get_plugin("dcgan")
    batch = {"pixel_values": torch.rand(4, 1, 8, 8) * 2 - 1}
    losses = {}
    for gamma in (0.0, 3.0):
        config = step_config(r1_gamma=gamma, discriminator_norm="layer")
        torch.manual_seed(0)
        modules = plugin.build(config, DIGITS)
        torch.manual_seed(1)
        losses[gamma] = run_step(plugin, modules, batch, config, "discriminator")
    assert "r1_penalty" not in losses[0.0] and losses[3.0]["r1_penalty"].item() > 0
    assert losses[3.0]["loss"].item() == pytest.approx(
        losses[0.0]["loss"].item() + 1.5 * losses[3.0]["r1_penalty"].item(), rel=1e-5
    )


def test_diffaugment_policies_change_images_as_described_and_pass_gradients():
    from genkit_dcgan.augment import diff_augment, parse_policy

    torch.manual_seed(0)
    x = torch.rand(64, 1, 16, 16) * 2 - 1
    # translation moves whole pixels: every output pixel is an input pixel of its own image or a zero
    moved = diff_augment(x, ("translation",))
    for i in range(64):
        assert set(moved[i].unique().tolist()) <= set(x[i].unique().tolist()) | {0.0}
    assert (moved != x).flatten(1).any(1).float().mean() > 0.5  # most images shift (1 in 25 draws no shift)
    # cutout zeroes a square of half the side (or its part inside the image) and leaves the rest alone
    ones = diff_augment(torch.ones(64, 1, 16, 16), ("cutout",))
    zeroed = (ones == 0).flatten(1).sum(1)
    assert zeroed.max() == 64 and zeroed.min() > 0 and ((ones == 0) | (ones == 1)).all()
    # color: brightness and contrast are per image
    shifted = diff_augment(x, ("color",)) - x
    assert shifted.flatten(1).std(1).max() > 0.01 and not torch.allclose(shifted[0], shifted[1])
    leaf = x.clone().requires_grad_(True)
    diff_augment(leaf, parse_policy("color,translation,cutout")).sum().backward()
    assert leaf.grad.abs().sum() > 0
    assert parse_policy("") == () and parse_policy(None) == ()
    with pytest.raises(ValueError, match="unknown DiffAugment policy flip"):
        parse_policy("translation,flip")


def test_diffaugment_reaches_the_discriminator_in_both_phases():
    """With translation and cutout on, the discriminator sees augmented images: the same weights, batch and latents
    give another loss than without, in the discriminator and in the generator phase."""
    plugin = genkit.get_plugin("dcgan")
    batch = {"pixel_values": torch.rand(8, 1, 8, 8) * 2 - 1}
    for phase in ("discriminator", "generator"):
        results = []
        for policy in ("", "translation,cutout"):
            config = step_config(diffaugment=policy)
            torch.manual_seed(0)
            modules = plugin.build(config, DIGITS)
            torch.manual_seed(1)
            results.append(run_step(plugin, modules, batch, config, phase)["loss"].item())
        assert results[0] != pytest.approx(results[1]), phase


def test_two_time_scale_learning_rates():
    plugin = genkit.get_plugin("dcgan")
    specs = {s.name: s for s in plugin.optimizers(step_config(discriminator_lr=4e-4, lr=1e-4))}
    assert (specs["discriminator"].lr, specs["generator"].lr) == (4e-4, 1e-4)
    specs = {s.name: s for s in plugin.optimizers(step_config(lr=3e-4))}
    assert specs["discriminator"].lr == specs["generator"].lr == 3e-4


def test_unknown_diffaugment_policy_is_a_clear_error(tmp_path, capsys):
    code = train_cli("dcgan", "--preset", "tiny", "--diffaugment", "color,zoom", "--output", str(tmp_path / "o"))
    assert code != 0
    assert (
        "--diffaugment: unknown DiffAugment policy zoom; known: color, translation, cutout" in capsys.readouterr().err
    )
    assert not (tmp_path / "o").exists()


def test_diffaugment_default_is_translation_cutout_for_the_unconditional_bce_gan_only(tiny_dcgan):
    """The measured default (docs/benchmarks.md): on for the unconditional BCE GAN, off for WGAN-GP and conditional
    GANs; the effective policy is what genkit.json records."""
    recorded = json.loads((tiny_dcgan / "genkit.json").read_text())["config"]
    assert recorded["loss"] == "bce" and recorded["diffaugment"] == "translation,cutout"
    for overrides, expected in [
        ({}, "translation,cutout"),
        ({"loss": "wgan-gp"}, "none"),
        ({"conditional": True}, "none"),
        ({"diffaugment": "none"}, "none"),
        ({"loss": "wgan-gp", "diffaugment": "cutout"}, "cutout"),
    ]:
        assert step_config(**{"diffaugment": None, **overrides})["diffaugment"] == expected, overrides
