"""The normalizing-flow plugin: exact inverses, the change of variables against a brute-force Jacobian, training by
maximum likelihood, bits/dim, stock-diffusers loading without genkit, the demo."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_card_usage, train_cli
from genkit_flow import FlowModel, FlowPipeline
from genkit_flow.modeling_flow import bits_per_dim, dequantize
from PIL import Image
from test_interop import run_without_genkit

import genkit
from genkit.cli.main import main

FAST = ("--log-with", "none")
ARCHITECTURES = {"realnvp": (), "glow": ("--architecture", "glow")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both architectures trained with the tiny preset (20 steps on digits at 8 px) and evaluated."""
    root = tmp_path_factory.mktemp("flow")
    for name, args in ARCHITECTURES.items():
        assert train_cli("flow", "--preset", "tiny", "--output", str(root / name), *FAST, *args) == 0
    return root


def _perturbed(architecture: str, image_size: int = 8, num_scales: int = 2) -> FlowModel:
    """A float64 flow whose couplings are not the identity (their last layers start at zero)."""
    torch.manual_seed(0)
    model = FlowModel(
        image_size=image_size, architecture=architecture, num_scales=num_scales, steps_per_scale=2, hidden_channels=8
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("architecture", ["realnvp", "glow"])
@pytest.mark.parametrize("num_scales", [1, 2, 3])
def test_the_inverse_reconstructs_its_input(architecture, num_scales):
    model = _perturbed(architecture, image_size=16, num_scales=num_scales)
    y = torch.rand(4, 1, 16, 16, dtype=torch.float64) * 0.9 + 0.05
    z, _ = model(y)
    assert z.shape == (4, 256)
    torch.testing.assert_close(model.inverse(z), y, atol=1e-10, rtol=0)
    x = 0.3 * torch.randn(4, 256, dtype=torch.float64)  # and the other way round (inside the logit's range)
    torch.testing.assert_close(model(model.inverse(x).clamp(1e-6, 1 - 1e-6))[0], x, atol=1e-6, rtol=0)


@pytest.mark.parametrize("architecture", ["realnvp", "glow"])
def test_log_likelihood_is_the_change_of_variables(architecture):
    """log p(y) = log N(f(y); 0, I) + log|det df/dy|, the determinant from the full Jacobian of a tiny flow."""
    model = _perturbed(architecture)
    y = torch.rand(2, 1, 8, 8, dtype=torch.float64) * 0.9 + 0.05
    for i in range(2):
        flat = y[i].flatten()
        jacobian = torch.autograd.functional.jacobian(lambda v: model(v.view(1, 1, 8, 8))[0][0], flat)
        z = model(flat.view(1, 1, 8, 8))[0][0]
        expected = -0.5 * (z.pow(2).sum() + 64 * math.log(2 * math.pi)) + torch.linalg.slogdet(jacobian)[1]
        torch.testing.assert_close(model.log_prob(y[i : i + 1])[0], expected)


def test_dequantization_and_bits_per_dim():
    x = torch.tensor([[-1.0, 1.0, 0.0]])  # pixels 0, 255 and 128 (127.5 rounds to even)
    centre = dequantize(x, noise=False)
    torch.testing.assert_close(centre, torch.tensor([[0.5, 255.5, 128.5]]) / 256)
    noisy = dequantize(x.repeat(1000, 1), torch.Generator().manual_seed(0))
    pixels = torch.tensor([0.0, 255.0, 128.0]) / 256
    assert ((noisy >= pixels) & (noisy < pixels + 1 / 256)).all()  # within each pixel's bin
    # the uniform density on [0, 1)^D (log p = 0) gives 8 bits per dimension of 8-bit data
    assert bits_per_dim(torch.zeros(1), 10).item() == pytest.approx(8.0)


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_trains_saves_loads_and_reports_bits_per_dim(trained, architecture):
    folder = trained / architecture
    pipe = genkit.load(folder)
    assert isinstance(pipe, FlowPipeline) and pipe.flow.config.architecture == architecture
    result = json.loads((folder / "eval_results.json").read_text())
    bpd = result["metrics"]["bits_per_dim"]
    assert result["protocol"]["dequantization"].startswith("uniform")
    assert json.loads((folder / "genkit.json").read_text())["config"]["dequantization"] == "uniform"
    history = genkit.read_history(folder)["bits_per_dim"]
    assert history.iloc[-1] < history.iloc[0]  # maximum likelihood trains: 20 steps from the identity flow
    assert 0 < bpd < history.iloc[0]
    images = pipe.sample(4, seed=1, output_type="pt")
    assert images.shape == (4, 1, 8, 8) and torch.equal(images, pipe.sample(4, seed=1, output_type="pt"))
    cold = pipe.sample(4, seed=1, temperature=0.0, output_type="pt")
    assert torch.equal(cold[0], cold[1])  # temperature 0: every code is 0
    # encode and decode are exact inverses on images (up to the 8-bit output)
    from genkit.data import load_splits, prepare_images

    splits = load_splits("digits", "image", image_size=8)
    test = prepare_images(splits, {"image_size": 8, "channels": None, "dataset": "digits"}).test
    x = torch.stack([test[i]["pixel_values"] for i in range(8)])
    back = pipe.decode(pipe.encode(x), output_type="pt")
    assert (back - x).abs().max() < 1 / 255 + 1e-5
    strip = pipe.interpolate(x[0], x[1], steps=5, output_type="pt")
    assert (strip[0] - x[0]).abs().max() < 1 / 255 + 1e-5 and (strip[-1] - x[1]).abs().max() < 1 / 255 + 1e-5
    g = torch.Generator().manual_seed(0)
    assert pipe.bits_per_dim(x, g).mean().item() == pytest.approx(
        bits_per_dim(pipe.log_prob(x, torch.Generator().manual_seed(0)), 64).mean().item()
    )


def test_loads_in_stock_diffusers_without_genkit(trained, genkit_free_python, tmp_path):
    folder = trained / "glow"
    out = run_without_genkit(
        genkit_free_python,
        tmp_path,
        f"""
        pipe = DiffusionPipeline.from_pretrained({str(folder)!r}, trust_remote_code=True)
        x = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
        save_file({{"z": pipe.encode(x), "samples": pipe.sample(3, seed=2, temperature=0.7, output_type="pt"),
                    "lp": pipe.log_prob(x, torch.Generator().manual_seed(0))}}, "out.safetensors")
        print(type(pipe).__module__)
        """,
    )
    assert out.split()[-1].startswith("diffusers_modules.")
    from safetensors.torch import load_file

    stock = load_file(tmp_path / "out.safetensors")
    pipe = genkit.load(folder)
    x = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
    torch.testing.assert_close(stock["z"], pipe.encode(x))
    torch.testing.assert_close(stock["samples"], pipe.sample(3, seed=2, temperature=0.7, output_type="pt"))
    torch.testing.assert_close(stock["lp"], pipe.log_prob(x, torch.Generator().manual_seed(0)))


def test_model_card_usage_runs(trained):
    namespace = run_card_usage(trained / "realnvp")
    assert namespace["z"].shape == (16, 64) and namespace["bpd"].shape == (16,)


def test_the_flow_page_runs_as_written(trained):
    doc = (Path(__file__).parents[1] / "docs" / "flow.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    namespace: dict = {}
    code = block.replace('"outputs/flow-digits"', repr(str(trained / "realnvp")))
    exec(compile(code, "docs/flow.md", "exec"), namespace)
    assert len(namespace["strip"]) == 8 and namespace["bpd"].shape == (16,)


def test_check_plugin_passes(capsys):
    assert main(["check-plugin", "flow"]) == 0
    assert "all 6 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--architecture", "maf"], "invalid choice: 'maf'"),
        (["--image-size", "12", "--num-scales", "4"], "must be a multiple of 8"),
        (["--alpha", "0.5"], "alpha"),
    ],
)
def test_bad_settings_are_one_clear_line(args, message, tmp_path, capsys):
    code = main(["train", "flow", "--preset", "tiny", "--output", str(tmp_path / "x"), *FAST, *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err


def test_bad_sampling_arguments(trained):
    pipe = genkit.load(trained / "realnvp")
    for temperature in (-1, 11, "hot", math.nan):
        with pytest.raises(ValueError, match="temperature must be"):
            pipe.sample(2, temperature=temperature)
    with pytest.raises(ValueError, match="steps must be"):
        pipe.interpolate(torch.zeros(64), torch.ones(64), steps=10**9)


def test_demo_endpoints(trained, tmp_path):
    pytest.importorskip("gradio")
    from gradio_client import handle_file
    from PIL import Image
    from test_demos import grid_size, served, tile_size, tiles

    pipe = genkit.load(trained / "glow")
    digit = tmp_path / "digit.png"
    Image.fromarray(np.full((8, 8), 40, dtype=np.uint8)).save(digit)
    with served(genkit.get_plugin("flow").build_demo(pipe)) as client:
        api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert set(api) == {"/sample", "/interpolate_seeds", "/interpolate_images", "/roundtrip", "/bits_per_dim"}
        tile = tile_size(8)
        assert Image.open(client.predict(0, 4, 0.8, api_name="/sample")).size == grid_size(4, tile)
        seen, back = tiles(Image.open(client.predict(handle_file(digit), api_name="/roundtrip")), tile, 2)
        assert np.abs(seen.astype(int) - back).max() <= 1  # decode(encode(x)) is x
        assert isinstance(client.predict(handle_file(digit), api_name="/bits_per_dim"), float)
        strip = Image.open(client.predict(0, 1, 5, 0.8, api_name="/interpolate_seeds"))
        assert strip.size == grid_size(5, tile, nrow=5)


def test_sample_cli_takes_a_temperature(trained, tmp_path):
    out = tmp_path / "grid.png"
    args = ["sample", str(trained / "realnvp"), "--n", "4", "--temperature", "0.5", "--out", str(out)]
    assert main(args) == 0 and out.is_file()
    hot, cold = tmp_path / "hot.png", tmp_path / "cold.png"
    assert main([*args[:-1], str(cold), "--seed", "3"]) == 0
    assert main([*args[:4], "--temperature", "1.2", "--seed", "3", "--out", str(hot)]) == 0
    assert not np.array_equal(np.asarray(Image.open(hot)), np.asarray(Image.open(cold)))
