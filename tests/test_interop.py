"""Both directions of the ecosystem: what genkit saves loads where genkit is not installed, and what diffusers saves
(a stock DDPMPipeline) genkit fine-tunes.

Stock loading runs in a new virtual environment that sees torch/diffusers/transformers but cannot import genkit
(`genkit_free_python` in conftest.py), started outside the checkout.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_cli
from safetensors.torch import load_file

import genkit

FAST = ("--log-with", "none", "--no-eval")


def run_without_genkit(python: Path, cwd: Path, body: str) -> str:
    """Run ``body`` in the genkit-free environment; it saves tensors to ``out.safetensors`` in ``cwd``."""
    script = textwrap.dedent(
        """
        import importlib.util, os
        assert importlib.util.find_spec("genkit") is None, "genkit must not be importable here"
        import torch
        from diffusers import DiffusionPipeline
        from safetensors.torch import save_file
        """
    ) + textwrap.dedent(body)
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(cwd / "hf"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(python), "-c", script], cwd=cwd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_saved_folders_name_their_shipped_code(tiny_vae):
    index = json.loads((tiny_vae / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_vae", "VAEPipeline"]
    assert index["vae"] == ["modeling_vae", "VAEModel"]
    for file in ("pipeline_vae.py", "modeling_vae.py", "vae/modeling_vae.py"):
        source = (tiny_vae / file).read_text()
        assert "import genkit" not in source and "from genkit" not in source, file


def test_vae_loads_in_stock_diffusers_without_genkit(tiny_vae, genkit_free_python, tmp_path):
    out = run_without_genkit(
        genkit_free_python,
        tmp_path,
        f"""
        folder = {str(tiny_vae)!r}
        try:
            DiffusionPipeline.from_pretrained(folder)
        except Exception as err:  # shipped code never runs without the user's consent
            assert "trust_remote_code" in str(err), err
        else:
            raise SystemExit("custom code loaded without trust_remote_code=True")
        pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
        x = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
        mean, logvar = pipe.encode(x)
        samples = pipe(batch_size=3, generator=torch.Generator().manual_seed(0), output_type="pt").images
        strip = pipe.interpolate(x, -x, steps=5, output_type="pt")
        decoded = pipe.decode(mean, output_type="pt")
        torch.manual_seed(0)
        score = pipe.anomaly_score(x, num_samples=4)
        save_file({{"mean": mean, "samples": samples, "strip": strip, "decoded": decoded, "score": score}},
                  "out.safetensors")
        print(type(pipe).__module__)
        """,
    )
    assert out.split()[-1].startswith("diffusers_modules.")  # the folder's own code ran
    stock = load_file(tmp_path / "out.safetensors")
    pipe = genkit.load(tiny_vae)
    assert type(pipe).__module__ == "genkit_vae.pipeline_vae"  # genkit used its own class
    x = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
    mean, _ = pipe.encode(x)
    torch.testing.assert_close(stock["mean"], mean)
    torch.testing.assert_close(
        stock["samples"], pipe(batch_size=3, generator=torch.Generator().manual_seed(0), output_type="pt").images
    )
    assert stock["strip"].shape == (5, 1, 8, 8)
    torch.testing.assert_close(stock["decoded"], pipe.decode(mean, output_type="pt"))
    torch.manual_seed(0)
    torch.testing.assert_close(stock["score"], pipe.anomaly_score(x, num_samples=4))


@pytest.fixture(scope="module")
def tiny_dcgan(tmp_path_factory):
    out = tmp_path_factory.mktemp("interop") / "dcgan"
    assert train_cli("dcgan", "--preset", "tiny", "--conditional", "--output", str(out), *FAST) == 0
    return out


def test_conditional_dcgan_loads_in_stock_diffusers_without_genkit(tiny_dcgan, genkit_free_python, tmp_path):
    run_without_genkit(
        genkit_free_python,
        tmp_path,
        f"""
        pipe = DiffusionPipeline.from_pretrained({str(tiny_dcgan)!r}, trust_remote_code=True)
        images = pipe.sample(4, seed=3, labels=[0, 1, 2, 3], output_type="pt")
        realness = pipe.discriminate(images, labels=[0, 1, 2, 3])
        save_file({{"images": images, "realness": realness}}, "out.safetensors")
        """,
    )
    stock = load_file(tmp_path / "out.safetensors")
    pipe = genkit.load(tiny_dcgan)
    images = pipe.sample(4, seed=3, labels=[0, 1, 2, 3], output_type="pt")
    torch.testing.assert_close(stock["images"], images)
    torch.testing.assert_close(stock["realness"], pipe.discriminate(images, labels=[0, 1, 2, 3]))


@pytest.fixture(scope="module")
def conditional_ddpm(tmp_path_factory):
    out = tmp_path_factory.mktemp("interop") / "ddpm"
    assert train_cli("ddpm", "--preset", "tiny", "--conditional", "--output", str(out), *FAST) == 0
    return out


def test_conditional_ddpm_loads_in_stock_diffusers_without_genkit(conditional_ddpm, genkit_free_python, tmp_path):
    run_without_genkit(
        genkit_free_python,
        tmp_path,
        f"""
        pipe = DiffusionPipeline.from_pretrained({str(conditional_ddpm)!r}, trust_remote_code=True)
        pipe.set_progress_bar_config(disable=True)
        out = pipe(batch_size=2, class_labels=[3, 7], guidance_scale=2.0, num_inference_steps=5, scheduler="ddim",
                   generator=torch.Generator().manual_seed(0), output_type="pt")
        save_file({{"images": out.images}}, "out.safetensors")
        print(pipe.class_names)
        """,
    )
    stock = load_file(tmp_path / "out.safetensors")
    pipe = genkit.load(conditional_ddpm)
    pipe.set_progress_bar_config(disable=True)
    ours = pipe(
        batch_size=2,
        class_labels=[3, 7],
        guidance_scale=2.0,
        num_inference_steps=5,
        scheduler="ddim",
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
    )
    np.testing.assert_allclose(stock["images"].numpy(), ours.images.numpy(), atol=1e-6)


def test_shipped_code_is_never_imported_by_genkit(tiny_vae, tmp_path):
    """A folder whose shipped files are swapped for hostile ones still loads in genkit, with genkit's classes."""
    model = tmp_path / "model"
    import shutil

    shutil.copytree(tiny_vae, model, ignore=shutil.ignore_patterns("checkpoint-*"))
    for file in ("pipeline_vae.py", "modeling_vae.py", "vae/modeling_vae.py"):
        (model / file).write_text(f"open({str(tmp_path / 'PWNED')!r}, 'w').write('ran')\n")
    pipe = genkit.load(model)
    assert pipe.sample(1)[0].size == (8, 8)
    assert not (tmp_path / "PWNED").exists()


def test_cards_name_the_loading_library_and_parse_on_the_hub(tiny_vae, conditional_ddpm, tmp_path):
    from huggingface_hub import ModelCard

    card = ModelCard.load(tiny_vae / "README.md")
    assert card.data.library_name == "diffusers" and "genkit" in card.data.tags
    assert card.data.pipeline_tag == "unconditional-image-generation"
    assert "![Samples drawn by the trained model](samples.png)" in card.text
    assert {r.metric_name for r in card.data.eval_results} >= {"negative_elbo_nats", "bits_per_dim"}
    assert all(isinstance(r.metric_value, float) for r in card.data.eval_results)
    assert "trust_remote_code=True" in card.text
    conditional = ModelCard.load(conditional_ddpm / "README.md")
    assert conditional.data.library_name == "diffusers"
    assert conditional.data.pipeline_tag is None  # the Hub has no class-conditional task; not "unconditional"
    assert "class-conditional-image-generation" in conditional.data.tags


# ---- the other direction: fine-tune a stock diffusers DDPMPipeline ------------------------------------------------
@pytest.fixture(scope="module")
def stock_ddpm(tmp_path_factory):
    """A stock DDPMPipeline saved by plain diffusers (no genkit files): a tiny RGB UNet at 16 px, 500 timesteps,
    a cosine schedule and fixed_large variance (the google/ddpm-* layout)."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    scheduler = DDPMScheduler(num_train_timesteps=500, beta_schedule="squaredcos_cap_v2", variance_type="fixed_large")
    out = tmp_path_factory.mktemp("stock") / "ddpm-stock"
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(out)
    assert not (out / "genkit.json").exists()
    return out


TUNE = ("--preset", "tiny", "--max-steps", "4", "--checkpoint-every", "2", *FAST)


def _check_fine_tuned(out: Path, base: Path) -> None:
    from huggingface_hub import ModelCard

    scheduler = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["num_train_timesteps"] == 500  # the base's schedule, not the tiny preset's 100
    assert scheduler["beta_schedule"] == "squaredcos_cap_v2" and scheduler["variance_type"] == "fixed_large"
    unet = json.loads((out / "unet" / "config.json").read_text())
    assert unet["block_out_channels"] == [8, 16] and unet["sample_size"] == 16 and unet["in_channels"] == 3
    config = json.loads((out / "genkit.json").read_text())["config"]
    assert config["block_out_channels"] == [8, 16] and config["image_size"] == 16 and config["channels"] == 3
    assert config["attention_levels"] == [1] and config["num_train_timesteps"] == 500
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == "ddpm-stock" and card.data.to_dict()["base_model_relation"] == "finetune"
    tuned = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
    start = load_file(base / "unet" / "diffusion_pytorch_model.safetensors")
    assert tuned.keys() == start.keys() and all(tuned[k].shape == start[k].shape for k in start)
    assert any(not torch.equal(tuned[k], start[k]) for k in start)  # it trained


def test_fine_tunes_a_stock_ddpm_pipeline_and_keeps_its_schedule(stock_ddpm, tmp_path, genkit_free_python):
    out = tmp_path / "tuned"
    assert train_cli("ddpm", "--init-from", str(stock_ddpm), "--output", str(out), *TUNE) == 0  # 1-ch 8 px digits
    _check_fine_tuned(out, stock_ddpm)
    run_without_genkit(
        genkit_free_python,
        tmp_path,
        f"""
        pipe = DiffusionPipeline.from_pretrained({str(out)!r})
        assert type(pipe).__name__ == "DDPMPipeline", type(pipe)
        image = pipe(batch_size=1, num_inference_steps=3, output_type="np").images
        assert image.shape == (1, 16, 16, 3), image.shape
        """,
    )


def test_fine_tunes_a_bare_unet_folder(stock_ddpm, tmp_path):
    out = tmp_path / "tuned"
    assert train_cli("ddpm", "--init-from", str(stock_ddpm / "unet"), "--output", str(out), *TUNE) == 0
    unet = json.loads((out / "unet" / "config.json").read_text())
    assert unet["block_out_channels"] == [8, 16] and unet["sample_size"] == 16
    assert json.loads((out / "scheduler" / "scheduler_config.json").read_text())["num_train_timesteps"] == 100


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--num-train-timesteps", "100"], "--num-train-timesteps 100 would change the base model"),
        (["--beta-schedule", "linear"], "--beta-schedule 'linear' would change the base model"),
        (["--image-size", "32"], "--image-size 32 would change the base model"),
        (["--block-out-channels", "16", "32"], "--block-out-channels [16, 32] would change the base model"),
        (["--conditional"], "--conditional True would change the base model"),
        (["--channels", "1"], "--channels 1 would change the base model"),
    ],
)
def test_flags_that_change_the_base_are_refused(stock_ddpm, tmp_path, capsys, flags, message):
    from genkit.cli.main import main

    code = main(["train", "ddpm", "--init-from", str(stock_ddpm), "--output", str(tmp_path / "x"), *TUNE, *flags])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_fine_tunes_a_stock_ddpm_from_the_offline_hub_cache(stock_ddpm, tmp_path):
    from conftest import populate_hub_cache

    populate_hub_cache(stock_ddpm, "google-like/ddpm-stock")
    out = tmp_path / "tuned"
    assert train_cli("ddpm", "--init-from", "google-like/ddpm-stock", "--output", str(out), *TUNE) == 0
    from huggingface_hub import ModelCard

    assert ModelCard.load(out / "README.md").data.base_model == "google-like/ddpm-stock"


@pytest.mark.slow  # two processes again; the single-process fine-tune of the same stock DDPM stays in CI
def test_fine_tunes_a_stock_ddpm_with_two_processes(stock_ddpm, tmp_path):
    import os
    import sys

    from conftest import free_port

    port = free_port()
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    cmd += [
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port),
    ]
    cmd += ["-m", "genkit", "train", "ddpm", "--init-from", str(stock_ddpm), "--output", str(out), *TUNE]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["num_processes"] == 2
    _check_fine_tuned(out, stock_ddpm)


def test_a_conditional_base_needs_data_with_its_classes(conditional_ddpm, tmp_path, capsys):
    from genkit.cli.main import main

    out = tmp_path / "x"
    argv = ["train", "ddpm", "--init-from", str(conditional_ddpm), "--dataset", "shapes", "--output", str(out), *TUNE]
    assert main([*argv, "--num-samples", "100"]) == 2
    assert "conditional on 10 classes, and dataset 'shapes' has 5 classes" in capsys.readouterr().err
