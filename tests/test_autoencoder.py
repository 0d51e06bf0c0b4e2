"""The autoencoder plugin: every variant trained, saved, loaded (also by stock diffusers without genkit) and evaluated;
the penalties against their definitions; the noise at its configured rate; the pipeline's methods."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_card_usage, train_cli
from genkit_autoencoder import AutoencoderModel, AutoencoderPipeline, corrupt
from genkit_autoencoder.modeling_autoencoder import contractive_penalty, kl_sparsity_penalty
from test_interop import run_without_genkit

import genkit
from genkit.cli.main import main

FAST = ("--log-with", "none")
VARIANTS = {
    "plain": (),
    "denoising": ("--variant", "denoising", "--noise", "masking", "--noise-strength", "0.4"),
    "sparse-l1": ("--variant", "sparse"),
    "sparse-kl": ("--variant", "sparse", "--sparsity", "kl"),
    "contractive": ("--variant", "contractive"),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Every variant trained with the tiny preset (20 steps on digits at 8 px) and evaluated."""
    root = tmp_path_factory.mktemp("autoencoder")
    for name, args in VARIANTS.items():
        assert train_cli("autoencoder", "--preset", "tiny", "--output", str(root / name), *FAST, *args) == 0
    return root


def _digits(n: int = 64) -> torch.Tensor:
    from genkit.data import load_splits, prepare_images

    splits = load_splits("digits", "image", image_size=8)
    test = prepare_images(splits, {"image_size": 8, "channels": None, "dataset": "digits"}).test
    return torch.stack([test[i]["pixel_values"] for i in range(min(n, len(test)))])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_trains_saves_loads_and_reports_its_metrics(trained, variant):
    folder = trained / variant
    pipe = genkit.load(folder)
    assert isinstance(pipe, AutoencoderPipeline)
    config = json.loads((folder / "genkit.json").read_text())["config"]
    expected_activation = {"sparse-l1": "relu", "sparse-kl": "sigmoid", "contractive": "sigmoid"}.get(
        variant, "linear"
    )
    assert pipe.autoencoder.config.code_activation == expected_activation
    metrics = json.loads((folder / "eval_results.json").read_text())["metrics"]
    assert 0 < metrics["reconstruction_mse"] < 0.25
    assert ("activation_rate" in metrics) == variant.startswith("sparse")
    assert ("denoising_mse" in metrics) == (variant == "denoising")
    # the saved code Gaussian is the training codes' own
    assert not torch.equal(pipe.autoencoder.code_std, torch.ones_like(pipe.autoencoder.code_std))
    x = _digits(8)
    recon = pipe.reconstruct(x, output_type="pt")
    assert recon.shape == (8, 1, 8, 8) and recon.min() >= -1 and recon.max() <= 1
    assert config["variant"] == variant.split("-")[0]
    logged = genkit.read_history(folder)
    assert "reconstruction" in logged.columns
    assert ("penalty" in logged.columns) == (variant.startswith("sparse") or variant == "contractive")


def test_sparse_activation_rate_falls_as_the_penalty_weight_grows(tmp_path):
    rates = {}
    for sparsity, weights in (("l1", (0.0, 1.0)), ("kl", (0.0, 1.0))):
        for weight in weights:
            out = tmp_path / f"{sparsity}-{weight}"
            args = ["--variant", "sparse", "--sparsity", sparsity, "--sparsity-weight", str(weight), "--no-eval"]
            assert (
                train_cli("autoencoder", "--preset", "tiny", "--max-steps", "150", "--output", str(out), *FAST, *args)
                == 0
            )
            code = genkit.load(out).encode(_digits(180))
            rates[sparsity, weight] = float((code > 0).float().mean() if sparsity == "l1" else code.mean())
    assert rates["l1", 1.0] < rates["l1", 0.0] - 0.1, rates
    assert rates["kl", 1.0] < rates["kl", 0.0] - 0.1, rates
    assert abs(rates["kl", 1.0] - 0.05) < 0.03, rates  # pulled to the target rate, --sparsity-target 0.05


def test_noise_hits_the_configured_fraction_of_pixels():
    x = torch.zeros(64, 3, 32, 32)  # mid-gray RGB images: every changed pixel shows
    g = torch.Generator().manual_seed(0)
    masked = corrupt(x, "masking", 0.4, g)
    hit = (masked != x).any(1)
    assert abs(hit.float().mean().item() - 0.4) < 0.01
    assert ((masked == -1).all(1) == hit).all()  # a masked pixel is black in every channel at once
    salted = corrupt(x, "salt-pepper", 0.3, g)
    hit = (salted != x).any(1)
    assert abs(hit.float().mean().item() - 0.3) < 0.01
    white = (salted == 1).all(1).float().sum() / hit.float().sum()
    assert abs(white.item() - 0.5) < 0.02
    noisy = corrupt(x, "gaussian", 0.2, g)
    assert abs((noisy - x).std().item() - 0.2) < 0.005
    assert torch.equal(corrupt(x, "masking", 0.0, g), x)
    with pytest.raises(ValueError, match="fraction of the pixels"):
        corrupt(x, "masking", 1.5)


def test_contractive_penalty_is_the_squared_frobenius_norm_of_the_encoder_jacobian():
    torch.manual_seed(0)
    model = AutoencoderModel(in_channels=1, image_size=8, code_dim=3, hidden_channels=(4, 8)).double()
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    penalty = contractive_penalty(model(x).code, x)
    exact = [
        torch.autograd.functional.jacobian(lambda im: model.encode(im.unsqueeze(0))[0], x[i].detach()).pow(2).sum()
        for i in range(5)
    ]
    torch.testing.assert_close(penalty, torch.stack(exact).mean())
    penalty.backward()  # it trains: the graph reaches the weights
    assert model.encoder[0].weight.grad.abs().sum() > 0


def test_kl_sparsity_penalty_is_the_kl_of_target_and_mean_rates():
    code = torch.tensor([[0.1, 0.5], [0.3, 0.5]])
    rho, rho_hat = 0.05, torch.tensor([0.2, 0.5])
    expected = (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
    torch.testing.assert_close(kl_sparsity_penalty(code, rho), expected)
    assert kl_sparsity_penalty(torch.full((4, 3), 0.05), 0.05).abs() < 1e-6  # zero at the target rate


def test_pipeline_methods_and_a_two_value_code_plane(tmp_path):
    out = tmp_path / "plane"
    assert train_cli("autoencoder", "--preset", "tiny", "--code-dim", "2", "--output", str(out), *FAST) == 0
    pipe = genkit.load(out)
    x = _digits(6)
    codes = pipe.encode(x)
    assert codes.shape == (6, 2)
    torch.testing.assert_close(pipe.decode(codes, output_type="pt"), pipe.reconstruct(x, output_type="pt"))
    strip = pipe.interpolate(x[0], x[1], steps=5, output_type="pt")
    torch.testing.assert_close(strip[0], pipe.decode(codes[:1], output_type="pt")[0])
    torch.testing.assert_close(strip[-1], pipe.decode(codes[1:2], output_type="pt")[0])
    plane = pipe.latent_grid(n=4, extent=2.0)
    assert len(plane) == 16
    # row by row from the top: unit 0 grows along a row, unit 1 falls down the columns
    model = pipe.autoencoder
    first = model.code_mean + torch.tensor([-2.0, 2.0]) * model.code_std
    torch.testing.assert_close(
        pipe.latent_grid(n=4, extent=2.0, output_type="pt")[0], pipe.decode(first, output_type="pt")[0]
    )
    assert torch.equal(pipe.sample(4, seed=1, output_type="pt"), pipe.sample(4, seed=1, output_type="pt"))
    white = torch.ones(1, 1, 8, 8)
    assert pipe.anomaly_score(white)[0] > pipe.anomaly_score(x).mean()  # nothing like a digit
    pytest.importorskip("gradio")
    from PIL import Image
    from test_demos import grid_size, served

    with served(genkit.get_plugin("autoencoder").build_demo(pipe)) as client:  # a 2-value code: the plane tab
        assert Image.open(client.predict(5, 2.0, api_name="/code_plane")).size == grid_size(25, 64, nrow=5)
    noisy = pipe.corrupt(x, "masking", 0.5, seed=3, output_type="pt")
    torch.testing.assert_close(pipe.denoise(noisy, output_type="pt"), pipe.reconstruct(noisy, output_type="pt"))
    assert torch.equal(noisy, pipe.corrupt(x, "masking", 0.5, seed=3, output_type="pt"))


def test_inpaint_keeps_the_known_pixels_and_iterates_reconstruction(trained):
    pipe = genkit.load(trained / "plain")
    x0 = _digits(4)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, 4:] = 1
    out = pipe.inpaint(x0, mask, iterations=3, output_type="pt")
    assert torch.equal(out[..., :4], x0[..., :4])
    x = x0 * (1 - mask)
    for _ in range(3):
        x = x0 * (1 - mask) + pipe.reconstruct(x, output_type="pt") * mask
    torch.testing.assert_close(out, x)


def test_loads_in_stock_diffusers_without_genkit(trained, genkit_free_python, tmp_path):
    folder = trained / "sparse-kl"
    out = run_without_genkit(
        genkit_free_python,
        tmp_path,
        f"""
        pipe = DiffusionPipeline.from_pretrained({str(folder)!r}, trust_remote_code=True)
        x = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
        save_file({{"code": pipe.encode(x), "recon": pipe.reconstruct(x, output_type="pt"),
                    "samples": pipe.sample(3, seed=2, output_type="pt"), "score": pipe.anomaly_score(x)}},
                  "out.safetensors")
        print(type(pipe).__module__)
        """,
    )
    assert out.split()[-1].startswith("diffusers_modules.")  # the folder's own code ran
    from safetensors.torch import load_file

    stock = load_file(tmp_path / "out.safetensors")
    pipe = genkit.load(folder)
    x = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
    torch.testing.assert_close(stock["code"], pipe.encode(x))
    torch.testing.assert_close(stock["recon"], pipe.reconstruct(x, output_type="pt"))
    torch.testing.assert_close(stock["samples"], pipe.sample(3, seed=2, output_type="pt"))
    torch.testing.assert_close(stock["score"], pipe.anomaly_score(x))
    index = json.loads((folder / "model_index.json").read_text())
    assert index["autoencoder"] == ["modeling_autoencoder", "AutoencoderModel"]


def test_model_card_usage_runs(trained):
    namespace = run_card_usage(trained / "denoising")
    assert namespace["codes"].shape == (8, 4) and namespace["errors"].shape == (8,)


def test_the_autoencoder_page_runs_as_written(trained):
    doc = (Path(__file__).parents[1] / "docs" / "autoencoder.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    namespace: dict = {}
    exec(
        compile(
            block.replace('"outputs/autoencoder-digits"', repr(str(trained / "denoising"))),
            "docs/autoencoder.md",
            "exec",
        ),
        namespace,
    )
    assert len(namespace["cleaned"]) == 8 and namespace["errors"].shape == (8,)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--variant", "stacked"], "invalid choice: 'stacked'"),
        (["--noise-strength", "-1"], "noise-strength"),
        (["--variant", "denoising", "--noise", "masking", "--noise-strength", "2"], "at most 1"),
        (["--variant", "contractive", "--code-dim", "300"], "at most 256"),
        (["--sparsity-target", "1"], "sparsity-target"),
    ],
)
def test_bad_settings_are_one_clear_line(args, message, tmp_path, capsys):
    code = main(["train", "autoencoder", "--preset", "tiny", "--output", str(tmp_path / "x"), *FAST, *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "x").exists()


def test_demo_endpoints(trained, tmp_path):
    pytest.importorskip("gradio")
    from gradio_client import handle_file
    from PIL import Image
    from test_demos import grid_size, served, tile_size, tiles, to_paint

    pipe = genkit.load(trained / "denoising")
    digit = tmp_path / "digit.png"
    Image.fromarray(((_digits(1)[0, 0].numpy() + 1) * 127.5).round().astype(np.uint8)).save(digit)
    with served(genkit.get_plugin("autoencoder").build_demo(pipe)) as client:
        api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert set(api) == {
            "/reconstruct",
            "/denoise",
            "/inpaint",
            "/inpaint_test_image",
            "/anomaly_score",
            "/sample",
        }  # code_dim 4: no plane
        tile = tile_size(8)
        strip = Image.open(client.predict(handle_file(digit), "masking", 0.5, 0, api_name="/denoise"))
        assert strip.size == grid_size(3, tile, nrow=3)
        seen, noisy, cleaned = tiles(strip, tile, 3)
        assert (noisy == 0).mean() > 0.3 and np.array_equal(seen[noisy != 0], noisy[noisy != 0])
        pair = Image.open(client.predict(handle_file(digit), api_name="/reconstruct"))
        assert pair.size == grid_size(2, tile, nrow=2)
        assert isinstance(client.predict(handle_file(digit), api_name="/anomaly_score"), float)
        filled = Image.open(client.predict(to_paint(digit), "Top half", None, 10, api_name="/inpaint"))
        assert filled.size == grid_size(2, tile, nrow=2)


def test_check_plugin_passes(capsys):
    assert main(["check-plugin", "autoencoder"]) == 0
    out = capsys.readouterr().out
    assert "all 6 checks passed" in out and "/denoise" in out
