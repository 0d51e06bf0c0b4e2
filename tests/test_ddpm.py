"""The DDPM plugin: training on the core trainer, EMA, stock-diffusers output, samplers, guidance, resume, errors."""

import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_card_usage
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel
from genkit_ddpm import ClassConditionalDDPMPipeline, GenkitDDPMPipeline, compatible_scheduler_names
from safetensors.torch import load_file

import genkit
from genkit.cli.main import main
from genkit.errors import PickleRefusedError
from genkit.images import tensor_to_pil
from genkit.plugin import StepContext
from genkit.training.checkpoint import load_tensors_and_json

FAST = ("--log-with", "none", "--no-eval")


def train(out, *args: str) -> None:
    assert main(["train", "ddpm", "--preset", "tiny", "--output", str(out), *args]) == 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Unconditional, epsilon, linear schedule: 20 steps on digits at 8 px, checkpoints at 10 and 20."""
    out = tmp_path_factory.mktemp("ddpm") / "tiny"
    train(out, *FAST)
    return out


@pytest.fixture(scope="module")
def tiny_conditional(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddpm") / "conditional"
    train(out, "--conditional", *FAST)
    return out


def _noise_prediction_loss(unet: UNet2DModel, config: dict, images: torch.Tensor) -> float:
    """The training loss on fixed images, noise and timesteps (the same draws for every model)."""
    plugin = genkit.get_plugin("ddpm")
    torch.manual_seed(123)
    with torch.no_grad():
        ctx = StepContext(phase="model", step=0, config=config, carry={})
        return plugin.training_step({"model": unet}, {"pixel_values": images}, ctx)["loss"].item()


def _test_images(folder) -> tuple[torch.Tensor, dict]:
    from genkit.data import load_splits

    config = json.loads((folder / "genkit.json").read_text())["config"]
    splits = load_splits("digits", "image", image_size=config["image_size"], seed=config["seed"])
    data = genkit.get_plugin("ddpm").prepare_data(splits, config)
    return torch.stack([data.test[i]["pixel_values"] for i in range(len(data.test))]), config


@pytest.mark.parametrize(
    "objective", [(), ("--prediction-type", "v_prediction", "--beta-schedule", "squaredcos_cap_v2")], ids=["eps", "v"]
)
def test_noise_prediction_loss_decreases(tmp_path, tiny, objective):
    folder = tiny if not objective else tmp_path / "v"
    if objective:
        train(folder, *objective, *FAST)
    pipe = genkit.load(folder)
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert (scheduler["prediction_type"], scheduler["beta_schedule"]) == (
        ("epsilon", "linear") if not objective else ("v_prediction", "squaredcos_cap_v2")
    )
    images, config = _test_images(folder)
    torch.manual_seed(0)
    untrained = UNet2DModel.from_config(pipe.unet.config)
    before = _noise_prediction_loss(untrained, config, images)
    after = _noise_prediction_loss(pipe.unet, config, images)
    assert after < 0.75 * before, (before, after)


def test_min_snr_gamma_weights_each_timestep(tiny):
    """--snr-gamma G weights an image's noise-prediction error by min(SNR_t, G) / SNR_t (Hang et al. 2023), computed
    here by hand from the same draws; a G above every SNR is the plain MSE."""
    from diffusers.training_utils import compute_snr

    pipe = genkit.load(tiny)
    images, config = _test_images(tiny)
    images = images[:16]
    plain = _noise_prediction_loss(pipe.unet, config, images)
    assert _noise_prediction_loss(pipe.unet, {**config, "snr_gamma": 1e6}, images) == pytest.approx(plain, rel=1e-5)

    weighted = _noise_prediction_loss(pipe.unet, {**config, "snr_gamma": 1.0}, images)
    scheduler = DDPMScheduler.from_pretrained(tiny, subfolder="scheduler")
    torch.manual_seed(123)  # the draws of training_step: the noise, then the timesteps
    noise = torch.randn_like(images)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (images.shape[0],))
    with torch.no_grad():
        error = (pipe.unet(scheduler.add_noise(images, noise, t), t).sample - noise).pow(2).mean(dim=(1, 2, 3))
    snr = compute_snr(scheduler, t)
    assert (snr > 1).any() and (snr < 1).any()  # both sides of gamma are drawn, so the weighting shows
    assert weighted == pytest.approx((error * snr.clamp(max=1.0) / snr).mean().item(), rel=1e-5)
    assert weighted < plain  # the clean timesteps' large-SNR errors are weighted down


def test_output_is_a_stock_ddpm_pipeline_folder(tiny):
    index = json.loads((tiny / "model_index.json").read_text())
    assert index["_class_name"] == "DDPMPipeline"
    assert index["unet"] == ["diffusers", "UNet2DModel"] and index["scheduler"] == ["diffusers", "DDPMScheduler"]
    assert (tiny / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert json.loads((tiny / "genkit.json").read_text())["plugin"] == "ddpm"
    # genkit's loop with the saved DDPM scheduler is diffusers' own DDPMPipeline loop, image for image
    stock = DDPMPipeline.from_pretrained(tiny)
    ours = genkit.load(tiny)
    assert isinstance(ours, GenkitDDPMPipeline) and isinstance(ours, DDPMPipeline)
    for pipe in (stock, ours):
        pipe.set_progress_bar_config(disable=True)
    a = stock(batch_size=3, generator=torch.Generator().manual_seed(1), num_inference_steps=20, output_type="np")
    b = ours(batch_size=3, generator=torch.Generator().manual_seed(1), num_inference_steps=20, output_type="np")
    np.testing.assert_array_equal(a.images, b.images)


def test_loads_with_stock_diffusers_where_genkit_is_not_importable(tiny, tmp_path, genkit_free_python):
    script = textwrap.dedent(
        """
        import importlib.util, sys

        assert importlib.util.find_spec("genkit") is None, "genkit must not be importable here"

        import numpy as np, torch
        from diffusers import DiffusionPipeline

        pipe = DiffusionPipeline.from_pretrained(sys.argv[1])
        pipe.set_progress_bar_config(disable=True)
        out = pipe(batch_size=1, num_inference_steps=5, generator=torch.Generator().manual_seed(0), output_type="np")
        np.save(sys.argv[2], out.images)
        print(type(pipe).__module__, type(pipe).__name__, sorted(m for m in sys.modules if m.startswith("genkit")))
        """
    )
    result = subprocess.run(
        [str(genkit_free_python), "-c", script, str(tiny), str(tmp_path / "image.npy")],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # a virtual environment without genkit, started outside the checkout
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[:2] == ["diffusers.pipelines.ddpm.pipeline_ddpm", "DDPMPipeline"]
    assert result.stdout.strip().endswith("[]")  # no genkit module was loaded
    ours = genkit.load(tiny)
    ours.set_progress_bar_config(disable=True)
    expected = ours(1, generator=torch.Generator().manual_seed(0), num_inference_steps=5, output_type="np").images
    np.testing.assert_allclose(np.load(tmp_path / "image.npy"), expected, atol=1e-6)


def test_saved_weights_are_the_ema_weights(tiny):
    checkpoint = tiny / "checkpoint-20"
    raw = load_file(str(checkpoint / "model-model.safetensors"))
    ema = load_tensors_and_json(checkpoint / "ema-model")
    assert ema["optimization_step"] == 20
    saved = UNet2DModel.from_pretrained(tiny / "unet")
    names = [name for name, _ in saved.named_parameters()]
    differ = 0
    for name, shadow in zip(names, ema["shadow_params"], strict=True):
        weight = saved.get_parameter(name).detach()
        torch.testing.assert_close(weight, shadow, rtol=0, atol=0)
        differ += not torch.equal(weight, raw[name])
    assert differ > len(names) // 2  # the raw (checkpointed) weights are not what was saved


def test_resume_equals_uninterrupted_run(tiny, tmp_path):
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(tiny / "checkpoint-10", resumed / "checkpoint-10")  # what a run killed after step 10 leaves
    train(resumed, "--resume", "latest", *FAST)
    for file in (
        "checkpoint-20/model-model.safetensors",
        "checkpoint-20/ema-model.safetensors",
        "unet/diffusion_pytorch_model.safetensors",
    ):
        a, b = load_file(str(tiny / file)), load_file(str(resumed / file))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{file}: {key}"


def test_scheduler_swap(tiny):
    pipe = genkit.load(tiny)
    pipe.set_progress_bar_config(disable=True)
    calls = []
    out = pipe(
        batch_size=2,
        scheduler="ddim",
        num_inference_steps=7,
        eta=0.0,
        return_intermediates=3,
        callback_on_step_end=lambda p, i, t, kw: calls.append((i, int(t), kw["latents"].shape)) or {},
        generator=torch.Generator().manual_seed(0),
    )
    assert isinstance(pipe.scheduler, DDPMScheduler)  # the saved scheduler is never replaced
    assert [i for i, _, _ in calls] == list(range(7))
    ddim = DDIMScheduler.from_config(pipe.scheduler.config)
    ddim.set_timesteps(7)
    assert [t for _, t, _ in calls] == ddim.timesteps.tolist()
    assert out.intermediate_steps == [0, 3, 6, 7] and len(out.intermediates) == 4
    assert out.intermediates[-1][0].tobytes() == out.images[0].tobytes()
    assert len(out.images) == 2 and out.images[0].size == (8, 8)
    # a class name works like the short name, and eta = 0 (deterministic DDIM) is DDIM's default
    a = pipe(1, scheduler="ddim", num_inference_steps=5, output_type="np", generator=torch.Generator().manual_seed(3))
    b = pipe(
        1,
        scheduler="DDIMScheduler",
        num_inference_steps=5,
        output_type="np",
        eta=0.0,
        generator=torch.Generator().manual_seed(3),
    )
    np.testing.assert_array_equal(a.images, b.images)
    for name in compatible_scheduler_names(pipe.scheduler):
        image = pipe(1, scheduler=name, num_inference_steps=4, output_type="pt").images
        assert image.shape == (1, 1, 8, 8) and torch.isfinite(image).all(), name


def test_named_samplers_and_the_default(tiny, tmp_path):
    from diffusers import DPMSolverMultistepScheduler
    from genkit_ddpm import SAMPLERS, make_scheduler
    from genkit_ddpm.plugin import SAMPLE_SCHEDULER

    pipe = genkit.load(tiny)
    pipe.set_progress_bar_config(disable=True)
    sde = make_scheduler(pipe.scheduler, "dpm++2m-sde")
    assert isinstance(sde, DPMSolverMultistepScheduler) and sde.config.algorithm_type == "sde-dpmsolver++"
    assert sde.config.num_train_timesteps == pipe.scheduler.config.num_train_timesteps  # the model's schedule
    assert make_scheduler(pipe.scheduler, "DDIM_trailing").config.timestep_spacing == "trailing"
    assert set(SAMPLERS) <= set(compatible_scheduler_names(pipe.scheduler))
    # The stochastic sampler draws its noise from the generator: one seed, one result.
    images = [
        pipe(
            2,
            scheduler="dpm++2m-sde",
            num_inference_steps=6,
            output_type="np",
            generator=torch.Generator().manual_seed(s),
        )
        for s in (4, 4, 5)
    ]
    np.testing.assert_array_equal(images[0].images, images[1].images)
    assert not np.array_equal(images[0].images, images[2].images)
    # genkit sample and genkit eval default to it; the protocol names the variant.
    assert SAMPLE_SCHEDULER == "dpm++2m-sde"
    folder = tmp_path / "model"
    shutil.copytree(tiny, folder, ignore=shutil.ignore_patterns("checkpoint-*"))
    assert main(["eval", str(folder), "--steps", "4", "--eval-samples", "32"]) == 0
    protocol = json.loads((folder / "eval_results.json").read_text())["protocol"]
    assert protocol["sampler"] == "DPMSolverMultistepScheduler"
    assert protocol["sampler_settings"]["algorithm_type"] == "sde-dpmsolver++"
    plugin = genkit.get_plugin("ddpm")
    default = plugin.sample(pipe, 2, seed=1, steps=6)
    chosen = plugin.sample(pipe, 2, seed=1, steps=6, scheduler="dpm++2m-sde")
    assert [a.tobytes() for a in default] == [b.tobytes() for b in chosen]


def test_noise_shows_the_forward_process(tiny):
    pipe = genkit.load(tiny)
    x0 = -torch.ones(1, 8, 8)
    x0[:, 2:6, 2:6] = 1.0  # a white square on black, in [-1, 1]
    T = pipe.scheduler.config.num_train_timesteps
    steps = pipe.noise(x0, timesteps=[0, T // 2, T - 1], generator=torch.Generator().manual_seed(1), output_type="pt")
    assert steps.shape == (3, 1, 8, 8)
    again = pipe.noise(x0, timesteps=[0, T // 2, T - 1], generator=torch.Generator().manual_seed(1), output_type="pt")
    assert torch.equal(steps, again)  # one noise draw per generator
    clean = (x0.reshape(1, 8, 8) / 2 + 0.5).clamp(0, 1)
    alpha_bar = pipe.scheduler.alphas_cumprod
    # x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps: at t = 0 almost the image, at T - 1 almost only noise
    assert (steps[0] - clean).abs().max() < 0.1 + (1 - alpha_bar[0]).sqrt()
    correlation = [float(torch.corrcoef(torch.stack([s.flatten(), clean.flatten()]))[0, 1]) for s in steps]
    assert correlation[0] > 0.9 and correlation[0] > correlation[1] > correlation[2]
    assert len(pipe.noise(x0)) == 7  # default timesteps, PIL images
    with pytest.raises(ValueError, match="timesteps must be in"):
        pipe.noise(x0, timesteps=[T])


def _square_and_mask():
    """Four 8x8 images (a white square on black, in [-1, 1]) and a mask of their right half (1 = fill in)."""
    x0 = -torch.ones(4, 1, 8, 8)
    x0[..., 2:6, 2:6] = 1.0
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 4:] = 1
    return x0, mask


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
def test_inpaint_keeps_the_known_pixels_and_fills_the_region(tiny, tiny_conditional, conditional):
    pipe = genkit.load(tiny_conditional if conditional else tiny)
    x0, mask = _square_and_mask()
    labels = {"class_labels": 1, "guidance_scale": 2.0} if conditional else {}

    def inpaint(seed, **kwargs):
        generator = torch.Generator().manual_seed(seed)
        args = {"num_inference_steps": 20, "jump_length": 5, "jump_n_sample": 2, **labels, **kwargs}
        return pipe.inpaint(x0, mask, generator=generator, output_type="pt", **args).images

    out = inpaint(0)
    assert out.shape == (4, 1, 8, 8)
    assert torch.equal(out[..., :4], (x0[..., :4] / 2 + 0.5))  # the left half exactly as given
    assert (out[..., 4:] - (x0[..., 4:] / 2 + 0.5)).abs().mean() > 0.05  # the right half is the model's
    assert torch.equal(out, inpaint(0)) and not torch.equal(out, inpaint(1))  # one image per seed
    if conditional:
        assert not torch.equal(out, inpaint(0, class_labels=0))
        with pytest.raises(ValueError, match="class-conditional: pass class_labels"):
            pipe.inpaint(x0, mask)
        # image-to-image takes the class too: the same noise, another class, another result
        redraw = {"strength": 0.8, "num_inference_steps": 10, "scheduler": "ddim", "output_type": "pt"}
        one = pipe.img2img(x0, generator=torch.Generator().manual_seed(0), class_labels=1, **redraw).images
        other = pipe.img2img(x0, generator=torch.Generator().manual_seed(0), class_labels=7, **redraw).images
        assert one.shape == (4, 1, 8, 8) and not torch.equal(one, other)


def test_inpaint_takes_noise_from_every_prediction_type(tiny):
    """RePaint's steps take the noise; a v- or x0-predicting model's output is converted to it exactly."""
    pipe = genkit.load(tiny)
    t = torch.tensor(pipe.scheduler.config.num_train_timesteps * 7 // 10)
    x0, noise = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    for kind in ("epsilon", "v_prediction", "sample"):
        scheduler = DDPMScheduler.from_config(pipe.scheduler.config, prediction_type=kind)
        other = GenkitDDPMPipeline(unet=pipe.unet, scheduler=scheduler)
        xt = scheduler.add_noise(x0, noise, t)
        output = {"epsilon": noise, "v_prediction": scheduler.get_velocity(x0, noise, t), "sample": x0}[kind]
        assert torch.allclose(other._epsilon(output, xt, t), noise, atol=1e-4)


def test_img2img_moves_away_from_the_image_as_strength_grows(tiny):
    pipe = genkit.load(tiny)
    x0, _ = _square_and_mask()
    given = x0 / 2 + 0.5

    def redraw(strength, seed=0, **kwargs):
        generator = torch.Generator().manual_seed(seed)
        args = {"num_inference_steps": 20, "scheduler": "ddim", "output_type": "pt", **kwargs}
        return pipe.img2img(x0, strength, generator=generator, **args).images

    assert torch.equal(redraw(0.0), given)  # strength 0: the image itself
    distance = [float((redraw(s) - given).abs().mean()) for s in (0.1, 0.5, 1.0)]
    assert distance[0] < distance[1] < distance[2]
    assert torch.equal(redraw(0.5), redraw(0.5)) and not torch.equal(redraw(0.5), redraw(0.5, seed=1))
    # every compatible sampler starts at the right noise level (DPM-Solver keeps its step index)
    assert redraw(0.5, scheduler="dpm++2m").shape == (4, 1, 8, 8)
    assert len(pipe.img2img(tensor_to_pil(x0[:1])[0], 0.3, num_inference_steps=5, scheduler="ddim").images) == 1


def test_the_inpainting_section_of_the_ddpm_page_runs_as_written(tiny):
    doc = (Path(__file__).parents[1] / "docs" / "ddpm.md").read_text()
    section = doc.split("## Inpainting and image-to-image")[1].split("\n## ")[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace: dict = {}
    exec(compile(block.replace('"outputs/ddpm-digits"', repr(str(tiny))), "docs/ddpm.md", "exec"), namespace)
    image, filled, redrawn = (np.asarray(namespace[k]) for k in ("image", "filled", "redrawn"))
    assert filled.shape == redrawn.shape == image.shape == (8, 8)
    assert np.array_equal(filled[:4], image[:4]) and not np.array_equal(filled[4:], image[4:])


def test_sample_cli(tiny, tmp_path, capsys):
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.enable_progress_bar()
    out = tmp_path / "grid.png"
    args = ["sample", str(tiny), "--n", "6", "--scheduler", "ddim", "--steps", "5", "--eta", "1", "--out", str(out)]
    capsys.readouterr()
    assert main(args) == 0
    printed, err = capsys.readouterr()
    assert printed.strip() == f"wrote 6 samples to {out}"
    assert "Loading pipeline components" not in err and "it/s]" not in err, err  # no library bars, the result line
    assert diffusers_logging.is_progress_bar_enabled()  # the library's setting is put back
    from PIL import Image

    grid = Image.open(out)
    assert grid.size == (3 * 10 + 2, 2 * 10 + 2)  # 6 images of 8 px in a 3 x 2 grid with 2 px borders


def test_guidance_scale_one_is_the_conditional_prediction(tiny_conditional):
    pipe = genkit.load(tiny_conditional)
    assert isinstance(pipe, ClassConditionalDDPMPipeline)
    assert pipe.class_names == [str(i) for i in range(10)] and pipe.null_class == 10
    torch.manual_seed(0)
    x, t, labels = torch.randn(4, 1, 8, 8), torch.tensor(37), torch.tensor([0, 3, 7, 9])
    cond = pipe.unet(x, t, class_labels=labels).sample
    uncond = pipe.unet(x, t, class_labels=torch.full_like(labels, 10)).sample
    assert not torch.allclose(cond, uncond)  # the label matters
    assert torch.equal(pipe.predict(x, t, labels, guidance_scale=1.0), cond)
    assert torch.equal(pipe.predict(x, t, labels, guidance_scale=0.0), uncond)
    torch.testing.assert_close(pipe.predict(x, t, labels, guidance_scale=3.0), uncond + 3.0 * (cond - uncond))
    loaded = ClassConditionalDDPMPipeline.from_pretrained(tiny_conditional)
    loaded.set_progress_bar_config(disable=True)
    images = loaded(2, class_labels="7", guidance_scale=2.0, scheduler="ddim", num_inference_steps=3).images
    assert len(images) == 2


def test_eval_records_sampler_and_steps(tiny, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny, folder, ignore=shutil.ignore_patterns("checkpoint-*"))
    assert main(["eval", str(folder), "--scheduler", "ddim", "--steps", "4", "--eval-samples", "32"]) == 0
    results = json.loads((folder / "eval_results.json").read_text())
    assert {"frechet_distance", "precision", "recall", "class_coverage"} <= results["metrics"].keys()
    protocol = results["protocol"]
    assert (protocol["sampler"], protocol["sampling_steps"], protocol["num_samples"]) == ("DDIMScheduler", 4, 32)
    card = (folder / "README.md").read_text()
    assert "frechet_distance" in card and "DDIMScheduler" in card


def test_model_card_usage_runs(tiny):
    used = run_card_usage(tiny)
    assert len(used["images"]) == 16 and used["images"][0].size == (8, 8)


def test_guidance_on_an_unconditional_model_is_an_error(tiny):
    pipe = genkit.load(tiny)
    with pytest.raises(ValueError, match="guidance_scale applies only to class-conditional models"):
        pipe(1, guidance_scale=2.0, num_inference_steps=2)


def test_pickle_weights_are_refused(tiny, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny, folder, ignore=shutil.ignore_patterns("checkpoint-*"))
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(str(weights)), folder / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()
    with pytest.raises(PickleRefusedError):
        genkit.load(folder)
    with pytest.raises(PickleRefusedError):
        GenkitDDPMPipeline.from_pretrained(folder)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["train", "ddpm", "--preset", "tiny", "--image-size", "10", "--block-out-channels", "8", "16", "16"],
            "image size 10 is not divisible by 4",
        ),
        (["train", "ddpm", "--preset", "tiny", "--norm-num-groups", "3"], "--norm-num-groups 3 must divide"),
        (["train", "ddpm", "--preset", "tiny", "--attention-levels", "2"], "--attention-levels [2] must be in 0..1"),
        (["sample", "{tiny}", "--scheduler", "nope"], "unknown scheduler 'nope'; schedulers compatible"),
        (["sample", "{tiny}", "--guidance-scale", "3"], "guidance_scale applies only to class-conditional models"),
        (["sample", "{tiny}", "--label", "3"], "class_labels applies only to class-conditional models"),
        (["sample", "{tiny}", "--scheduler", "ddpm", "--eta", "0.5"], "eta applies to DDIM-type samplers"),
        (["sample", "{conditional}", "--label", "eleven"], "unknown class 'eleven'; classes: 0, 1, 2"),
    ],
)
def test_bad_input_is_one_clear_error(args, message, tiny, tiny_conditional, tmp_path, capsys):
    args = [a.format(tiny=tiny, conditional=tiny_conditional) for a in args]
    if args[0] == "train":
        args += ["--output", str(tmp_path / "out"), *FAST]
    assert main(args) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("genkit: error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err, err


def test_conditional_needs_labels(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8), mode="L").save(folder / f"{i}.png")
    assert (
        main(
            [
                "train",
                "ddpm",
                "--preset",
                "tiny",
                "--dataset",
                str(folder),
                "--conditional",
                "--output",
                str(tmp_path / "out"),
                *FAST,
            ]
        )
        == 2
    )
    assert "genkit: error: --conditional needs labelled data" in capsys.readouterr().err
