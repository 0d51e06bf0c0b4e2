"""A model of one's own, written in a notebook cell: genkit.SimplePlugin, genkit.register, the training history,
the toy point sets, pictures a notebook shows, and messages in Python spelling."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

import genkit
from genkit.data import mode_coverage, toy_points
from genkit.plugin import OptimizerSpec, registry
from genkit.training.progress import _Milestones


# ---- a sparse autoencoder, as a student writes it in a cell (under 40 lines with its plugin) -----------------------
class SparseAE(nn.Module):
    def __init__(self, in_channels=1, image_size=16, code=64):
        super().__init__()
        pixels = in_channels * image_size**2
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, code), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(code, pixels), nn.Tanh())

    def forward(self, x):
        code = self.encoder(x)
        return self.decoder(code).view_as(x), code


class SparseAEPlugin(genkit.SimplePlugin):
    name = "sparse-ae-test"
    models = {"model": SparseAE}
    defaults = {"code": 48, "l1": 1e-3, "image_size": 8}

    def training_step(self, modules, batch, ctx):
        x = batch["pixel_values"]
        recon, code = modules["model"](x)
        mse, l1 = F.mse_loss(recon, x), code.abs().mean()
        # seen_step: the update's own number, so the test can tell what a logged interval averaged
        return {"loss": mse + ctx.config["l1"] * l1, "mse": mse, "l1": l1, "seen_step": torch.tensor(float(ctx.step))}


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab") / "sae"
    pipe = genkit.train(SparseAEPlugin(), dataset="digits", preset="tiny", output=out, max_steps=20, log_every=5,
                        progress=False)  # fmt: skip
    return out, pipe


def test_a_cell_plugin_trains_into_a_folder_of_safetensors_and_json(sparse_run):
    out, pipe = sparse_run
    assert pipe.output_dir == out and isinstance(pipe, genkit.SimplePipeline)
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    assert {"model.safetensors", "modules.json", "genkit.json", "eval_results.json", "README.md"} <= set(files)
    assert not [p for p in out.rglob("*") if p.suffix in (".bin", ".pt", ".pkl", ".ckpt")]
    spec = json.loads((out / "modules.json").read_text())
    assert spec["modules"]["model"] == {"class": "SparseAE", "kwargs": {"in_channels": 1, "image_size": 8, "code": 48}}
    weights = load_file(out / "model.safetensors")  # stock safetensors reads it
    assert weights["encoder.1.weight"].shape == (48, 64)
    assert json.loads((out / "genkit.json").read_text())["in_process"] == "test_lab.SparseAEPlugin"
    metrics = json.loads((out / "eval_results.json").read_text())["metrics"]
    assert {"test_loss", "test_mse", "test_l1"} <= set(metrics) and 0 < metrics["test_mse"] < 2
    assert "genkit.register(SparseAEPlugin)" in (out / "README.md").read_text()


def test_the_history_holds_each_logging_interval_mean(sparse_run):
    out, pipe = sparse_run
    history = genkit.read_history(out)
    assert list(history.index) == [5, 10, 15, 20]
    # updates 0-4 are logged at step 5 as their mean 2.0, 5-9 at step 10 as 7.0, ...: a mean, not the last value
    assert history["seen_step"].tolist() == [2.0, 7.0, 12.0, 17.0]
    assert {"loss", "mse", "l1", "lr", "epoch"} <= set(history.columns)
    assert history["mse"].iloc[-1] < history["mse"].iloc[0]  # it learns
    assert pipe.history.equals(history)


def test_a_killed_runs_half_line_is_skipped_and_a_damaged_history_is_one_error(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "history.jsonl").write_text('{"step": 5, "loss": 1.0}\n{"step": 10, "loss": 0.5}\n{"step": 15, "lo')
    assert genkit.read_history(tmp_path)["loss"].tolist() == [1.0, 0.5]
    (logs / "history.jsonl").write_text('{"step": 5, "loss": 1.0}\nnot json\n{"step": 15, "loss": 0.5}\n')
    with pytest.raises(genkit.GenkitError, match="line 2 is not a JSON object"):
        genkit.read_history(tmp_path)


def test_a_cell_plugin_loads_back_and_resumes(sparse_run, tmp_path):
    out, pipe = sparse_run
    again = genkit.load(out)
    for key, value in pipe.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), key
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    assert torch.equal(pipe.model(x)[0], again.model(x)[0])
    saved = genkit.save(again, tmp_path / "copy")
    assert torch.equal(load_file(saved / "model.safetensors")["decoder.0.weight"], again.model.decoder[0].weight)
    resumed = genkit.train(SparseAEPlugin(), dataset="digits", preset="tiny", output=out, resume="latest",
                           max_steps=30, log_every=5, progress=False)  # fmt: skip
    history = resumed.history
    assert list(history.index) == [5, 10, 15, 20, 25, 30]  # every step once: the resumed run continued from 20
    assert history["seen_step"].tolist()[-2:] == [22.0, 27.0]


def test_loading_a_cell_plugin_model_in_a_new_process_says_what_to_run(sparse_run, monkeypatch):
    out, _ = sparse_run
    monkeypatch.delitem(registry._in_process, "sparse-ae-test")  # as in a fresh kernel: the cell has not run
    with pytest.raises(genkit.GenkitError) as info:
        genkit.load(out)
    message = str(info.value)
    assert "test_lab.SparseAEPlugin" in message and "genkit.register(SparseAEPlugin)" in message
    assert "\n" not in message


def test_tensors_a_cell_makes_without_a_device_land_on_its_modules_device():
    """``torch.randn(n, 2)`` in a cell's hooks follows the modules to a GPU (here: the meta device, which this CPU
    machine has), so one cell trains on a laptop and on a Colab GPU."""

    class Probe(genkit.SimplePlugin):
        name = "device-probe"
        models = {"model": SparseAE}

        def training_step(self, modules, batch, ctx):
            return {"loss": torch.randn(3).sum(), "const": torch.tensor(1.0)}

        def generate(self, modules, n, generator):
            return torch.zeros(n, 2)

    plugin = Probe()
    with torch.device("meta"):
        on_meta = {"model": SparseAE()}
    batch = {"pixel_values": torch.empty(2, 1, 16, 16, device="meta")}
    out = plugin.training_step(on_meta, batch, None)
    assert out["loss"].device.type == out["const"].device.type == "meta"
    assert plugin.generate(on_meta, 4, None).device.type == "meta"
    on_cpu = {"model": SparseAE()}
    assert plugin.generate(on_cpu, 4, None).device.type == "cpu"
    assert torch.randn(1).device.type == "cpu"  # nothing leaks out of the hook


def test_register_checks_the_contract_and_refuses_installed_names():
    class NoName(genkit.SimplePlugin):
        models = {"model": SparseAE}

        def training_step(self, modules, batch, ctx):
            return {}

    with pytest.raises(genkit.GenkitError, match="needs a name"):
        genkit.register(NoName)

    class Taken(SparseAEPlugin):
        name = "vae"

    with pytest.raises(genkit.GenkitError, match="belongs to the installed plugin"):
        genkit.register(Taken)

    class NoStep(genkit.Plugin):
        name = "no-step"

    with pytest.raises(genkit.GenkitError, match="missing .*training_step"):
        genkit.register(NoStep)

    class Again(SparseAEPlugin):
        name = "register-twice"

    first, second = genkit.register(Again), genkit.register(Again())
    assert genkit.get_plugin("register-twice") is second and first is not second  # a re-run cell replaces it
    assert "register-twice" in genkit.list_plugins()


def test_python_callers_get_python_spellings(sparse_run, tmp_path):
    out, _ = sparse_run
    with pytest.raises(genkit.GenkitError) as info:
        genkit.train(SparseAEPlugin(), dataset="digits", preset="tiny", output=out, max_steps=5, progress=False)
    assert "overwrite=True" in str(info.value) and "--overwrite" not in str(info.value)
    with pytest.raises(genkit.GenkitError, match="unknown setting.*bogus"):
        genkit.train(SparseAEPlugin(), dataset="digits", output=tmp_path / "x", bogus=1)
    assert not (tmp_path / "x").exists()


# ---- points: the toy sets, a GAN on them, mode coverage -----------------------------------------------------------
def mlp(inputs, outputs):
    return nn.Sequential(nn.Linear(inputs, 64), nn.ReLU(), nn.Linear(64, outputs))


class Generator(nn.Module):
    def __init__(self, dim=2, noise=4):
        super().__init__()
        self.noise, self.net = noise, mlp(noise, dim)

    def forward(self, z):
        return self.net(z)


class Critic(nn.Module):
    def __init__(self, dim=2):
        super().__init__()
        self.net = mlp(dim, 1)

    def forward(self, x):
        return self.net(x)


class PointGAN(genkit.SimplePlugin):
    name = "point-gan-test"
    task = "vector"
    default_dataset = "ring"
    models = {"generator": Generator, "discriminator": Critic}
    defaults = {"lr": 1e-3}

    def optimizers(self, config):
        return [OptimizerSpec("discriminator", ["discriminator"], config["lr"]),
                OptimizerSpec("generator", ["generator"], config["lr"])]  # fmt: skip

    def training_step(self, modules, batch, ctx):
        real = batch["points"]
        fake = modules["generator"](torch.randn(len(real), 4))
        if ctx.phase == "discriminator":
            real_logit, fake_logit = modules["discriminator"](real), modules["discriminator"](fake.detach())
            loss = F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()
        else:
            loss = F.softplus(-modules["discriminator"](fake)).mean()
        return {"loss": loss}

    def generate(self, modules, n, generator):
        return modules["generator"](torch.randn(n, 4, generator=generator))


def test_a_point_gan_trains_on_a_toy_set_and_reports_its_mode_coverage(tmp_path, capsys):
    pipe = genkit.train(PointGAN, output=tmp_path / "gan", max_steps=30, batch_size=64, sample_every=30,
                        progress=False)  # fmt: skip
    points = pipe.sample(500, seed=3)
    assert points.shape == (500, 2) and torch.equal(points, pipe.sample(500, seed=3))
    metrics = json.loads((tmp_path / "gan" / "eval_results.json").read_text())["metrics"]
    assert metrics["modes"] == 8 and 0 <= metrics["modes_covered"] <= 8
    assert {"test_discriminator_loss", "test_generator_loss"} <= set(metrics)
    history = pipe.history
    assert {"discriminator/loss", "generator/loss"} <= set(history.columns)
    assert all(math.isfinite(v) for v in history["generator/loss"])
    grids = list((tmp_path / "gan" / "samples").glob("*.png"))
    assert grids, "sample_every draws the points as a picture"
    capsys.readouterr()
    genkit.train(PointGAN, output=tmp_path / "gan", max_steps=2, overwrite=True, eval=False, progress=False)
    assert "overwrite=True: the earlier run in" in capsys.readouterr().err  # Python's spelling, not --overwrite


def test_toy_sets_and_mode_coverage():
    ring = toy_points("ring", 4000, seed=1)
    points = torch.tensor(ring["points"])
    assert points.shape == (4000, 2)
    assert torch.equal(points, torch.tensor(toy_points("ring", 4000, seed=1)["points"]))
    real = mode_coverage(points, "ring")
    assert real["modes_covered"] == 8 and real["high_quality"] > 0.95
    collapsed = points[(points[:, 0] > 1.5) & (points[:, 1].abs() < 0.5)]  # the samples of one mode only
    assert mode_coverage(collapsed, "ring")["modes_covered"] == 1
    spread = torch.randn(4000, 2) * 10  # far from every mode
    assert mode_coverage(spread, "ring")["high_quality"] < 0.05
    assert torch.tensor(toy_points("grid", 1000)["points"]).shape == (1000, 2)
    assert mode_coverage(torch.tensor(toy_points("grid", 4000)["points"]), "grid")["modes"] == 25
    with pytest.raises(genkit.GenkitError, match="unknown toy set"):
        toy_points("spiral-of-doom", 10)


def test_points_in_memory_train_as_a_vector_dataset(tmp_path):
    rng = np.random.default_rng(0)
    data = np.concatenate([rng.normal(-2, 0.1, (200, 2)), rng.normal(2, 0.1, (200, 2))]).astype(np.float32)
    pipe = genkit.train(PointGAN, data, output=tmp_path / "mine", max_steps=4, batch_size=32, progress=False)
    assert pipe.info["extra"]["dim"] == 2
    assert pipe.sample(3).shape == (3, 2)


# ---- pictures in a notebook, and progress that stays short -------------------------------------------------------
def test_show_and_scatter_render_as_png():
    images = torch.rand(6, 3, 8, 8) * 2 - 1
    picture = genkit.show(images, nrow=3, title="six")
    png = picture._repr_png_()
    assert png.startswith(b"\x89PNG") and picture.image.width >= 256 and "six" in repr(picture)
    assert picture.image.width / picture.image.height == pytest.approx(3 / 2, rel=0.1)
    dots = genkit.scatter(torch.randn(100, 2))
    assert dots._repr_png_().startswith(b"\x89PNG")
    assert genkit.show(torch.randn(50, 2)).image.size == dots.image.size  # points are drawn as a scatter
    with pytest.raises(genkit.GenkitError):
        genkit.show(["not an image"])


def test_progress_without_a_terminal_is_ten_lines(capsys):
    bar = _Milestones(total=1000, initial=0, desc="train")
    for step in range(1000):
        bar.set_postfix({"loss": f"{1 / (step + 1):.4g}"})
        bar.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and lines[-1].startswith("train: 100% (1000/1000 steps) loss=")
    resumed = _Milestones(total=1000, initial=500, desc="train")
    for _ in range(500):
        resumed.update(1)
    assert len(capsys.readouterr().err.splitlines()) == 5


def test_the_plugin_page_notebook_example_runs_as_written(tmp_path, monkeypatch):
    doc = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    marker = "<!-- in-process-plugin -->\n```python\n"
    code = doc[doc.index(marker) + len(marker) :].split("```", 1)[0]
    assert len(code.splitlines()) <= 45
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/plugins.md", "exec"), {"__name__": "docs_example"})
    metrics = json.loads((tmp_path / "runs" / "cae" / "eval_results.json").read_text())["metrics"]
    assert {"test_mse", "test_jacobian"} <= set(metrics) and metrics["test_jacobian"] > 0
    assert json.loads((tmp_path / "runs" / "cae" / "genkit.json").read_text())["in_process"].endswith(
        "ContractiveAEPlugin"
    )
