"""The DDPM plugin: diffusers' ``UNet2DModel`` + ``DDPMScheduler`` trained with the simplified objective of Ho et al.
2020 (https://arxiv.org/abs/2006.11239, eq. 14: MSE between the true and predicted noise, or v), EMA weights,
optional class conditioning with label dropout for classifier-free guidance, and sampling with any compatible
diffusers scheduler.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.training_utils import compute_snr
from genkit_ddpm.pipeline_ddpm import ClassConditionalDDPMPipeline, GenkitDDPMPipeline, make_scheduler

from genkit.errors import ConfigError
from genkit.images import seeded
from genkit.plugin import DataInfo, Plugin, PreparedData, StepContext, check_base_classes
from genkit.validation import check_value

__all__ = ["DDPMPlugin"]

# model_index.json `_class_name` -> the genkit class that loads it
PIPELINE_CLASSES = {
    "DDPMPipeline": GenkitDDPMPipeline,
    "GenkitDDPMPipeline": GenkitDDPMPipeline,
    "ClassConditionalDDPMPipeline": ClassConditionalDDPMPipeline,
}
SAMPLE_BATCH = 256  # images denoised together: bounds memory for large --n
# For `genkit sample`, training grids and `genkit eval`: DPM-Solver++ 2M SDE, within 10% of DDPM-1000's Fréchet
# distance at 20-50 model calls where DDIM-50 is 57% above it (docs/benchmarks.md); 50 steps unless --steps says.
SAMPLE_SCHEDULER = "dpm++2m-sde"


# The noise-schedule keys of a run's config, as DDPMScheduler names them; a fine-tuning base fixes all of them.
SCHEDULE_KEYS = (
    "num_train_timesteps",
    "beta_schedule",
    "beta_start",
    "beta_end",
    "variance_type",
    "clip_sample",
    "prediction_type",
)
# The UNet's architecture keys of a run's config; a fine-tuning base fixes them too.
ARCHITECTURE_KEYS = ("block_out_channels", "layers_per_block", "attention_levels", "norm_num_groups", "conditional")
# Schedulers whose config is a DDPM noise schedule (the samplers diffusers lists as DDPMScheduler-compatible).
BASE_SCHEDULERS = {cls.__name__ for cls in DDPMScheduler().compatibles} | {"DDPMScheduler"}


@functools.lru_cache(maxsize=8)
def noise_scheduler(**schedule) -> DDPMScheduler:
    """The forward-process schedule used in training and saved with the model."""
    return DDPMScheduler(**schedule)


def _sampler_settings(sampler) -> dict[str, Any]:
    """The config settings that tell a named sampler from its class's others (dpmsolver++ or sde-dpmsolver++, the
    solver order, leading or trailing spacing), for the evaluation protocol."""
    keys = ("algorithm_type", "solver_order", "timestep_spacing")
    return {key: sampler.config[key] for key in keys if key in sampler.config}


def _scheduler_for(config: dict[str, Any]) -> DDPMScheduler:
    return noise_scheduler(**{k: config[k] for k in SCHEDULE_KEYS})


class DDPMPlugin(Plugin):
    name = "ddpm"
    task = "image"
    pipeline_tag = "unconditional-image-generation"
    card_usage = (
        'images = pipe(16, num_inference_steps=50, scheduler="ddim").images  # PIL images\n'
        "# without genkit: diffusers.DiffusionPipeline.from_pretrained(...) loads the same folder"
    )
    default_dataset = "digits"
    pipeline_class = GenkitDDPMPipeline
    base_keys = ARCHITECTURE_KEYS + SCHEDULE_KEYS
    # diffusers' train_unconditional.py recipe: decay rises as 1 - (1 + step)^-0.75 towards 0.9999, so a short run
    # averages over its last ~10% of steps (decay 0.9967 at step 2000) instead of its random start.
    ema = {"model": {"decay": 0.9999, "use_ema_warmup": True, "inv_gamma": 1.0, "power": 0.75}}
    defaults = {
        "image_size": 16,  # digits are 8x8; 16 px keeps a 3-level UNet meaningful and CPU sampling fast
        "block_out_channels": [32, 64, 64],  # channels per UNet level; len - 1 = number of 2x downsamplings
        "layers_per_block": 1,  # ResNet blocks per level (Ho et al. use 2; 1 halves the CPU cost)
        "attention_levels": [2],  # levels with self-attention (0 = full resolution); Ho et al.: 16x16 only
        "norm_num_groups": 8,  # GroupNorm groups; must divide every entry of block_out_channels
        "num_train_timesteps": 1000,  # T in Ho et al. 2020
        "beta_schedule": "linear",  # linear (Ho et al.: 1e-4 .. 0.02) | squaredcos_cap_v2 (Nichol & Dhariwal 2021)
        "beta_start": 0.0001,  # Ho et al. 2020, Sec. 4: betas rise linearly from 1e-4 to 0.02
        "beta_end": 0.02,
        "variance_type": "fixed_small",  # DDPM sampling variance: beta-tilde (Ho et al.: similar to beta, fixed_large)
        "clip_sample": True,  # clip the predicted x_0 to [-1, 1] while sampling (diffusers' default)
        "prediction_type": "epsilon",  # epsilon (Ho et al.) | v_prediction (Salimans & Ho 2022)
        "conditional": False,  # class-conditional UNet with classifier-free guidance; needs labelled data
        "label_dropout": 0.1,  # fraction of labels replaced by the null class (Ho & Salimans 2022 use 0.1-0.2)
        "snr_gamma": None,  # Min-SNR-gamma loss weighting (Hang et al. 2023; they use 5); None: the plain MSE
        "lr": 1e-3,  # small UNets train stably at 1e-3 with warmup + cosine decay; Ho et al. use 2e-4 at 35.7M params
        "lr_scheduler": "cosine",
        "warmup_steps": 100,
        "batch_size": 64,
        "max_grad_norm": 1.0,  # Ho et al. clip at 1
        "eval_scheduler": SAMPLE_SCHEDULER,  # sampler for `genkit eval` and the end-of-training evaluation
        "eval_steps": 50,  # 1/20 of DDPM-1000's cost
        "eval_eta": None,  # None: the sampler's default (0 = deterministic DDIM)
        "eval_guidance_scale": None,  # conditional models: None = 1, the plain conditional model
        "eval_samples": 500,  # generated images compared with the test split
    }
    limits = {
        "layers_per_block": (int, "[1, 16]"),
        "block_out_channels": (int, "[1, 4096]"),
        "attention_levels": (int, "[0, 16]"),
        "norm_num_groups": (int, "[1, 4096]"),
        "num_train_timesteps": (int, "[2, 100000]"),
        "beta_start": (float, "(0, 1)"),
        "beta_end": (float, "(0, 1)"),
        "label_dropout": (float, "[0, 1)"),
        "snr_gamma": (float, "(0, 1e6]"),
        "eval_steps": (int, "[1, 100000]"),
        "eval_eta": (float, "[0, 1]"),
        "eval_guidance_scale": (float, "[0, 100]"),
        "eval_samples": (int, "[2, 100000]"),
    }
    presets = {
        "tiny": {
            "image_size": 8,
            "block_out_channels": [8, 16],
            "attention_levels": [],
            "norm_num_groups": 4,
            "num_train_timesteps": 100,
            "batch_size": 32,
            "max_steps": 20,
            "warmup_steps": 0,
            "lr": 2e-3,
            "checkpoint_every": 10,
            "sample_every": 0,
            "num_sample_images": 16,
            "eval_samples": 64,
            "eval_steps": 10,
        },
        # Measured (docs/benchmarks.md, "DDPM: time to a good model"): half the width trains twice as many steps in
        # the same time at 16 px, 2e-3 suits the smaller UNet with warm-up and cosine decay, and leaving out the
        # 4x4 self-attention saves 13% of the time for a Fréchet distance within the runs' noise.
        "small": {
            "block_out_channels": [16, 32, 64],
            "attention_levels": [],
            "lr": 2e-3,
            "max_steps": 3000,
            "checkpoint_every": 1000,
            "sample_every": 1000,
        },
        "base": {
            "image_size": 32,
            "block_out_channels": [128, 256, 256, 256],
            "attention_levels": [1],
            "layers_per_block": 2,
            "norm_num_groups": 32,
            "lr": 2e-4,
            "warmup_steps": 1000,
            "batch_size": 128,
            "max_steps": 50000,
            "checkpoint_every": 5000,
            "sample_every": 5000,
            "eval_samples": 2000,
        },
    }

    # ---- configuration -------------------------------------------------------------------------------------------
    flag_options = {
        "block_out_channels": "channels per UNet level",
        "layers_per_block": "ResNet blocks per UNet level",
        "attention_levels": {"nargs": "*", "help": "UNet levels with self-attention (0 = full resolution)"},
        "norm_num_groups": "GroupNorm groups",
        "num_train_timesteps": "diffusion steps T",
        "beta_schedule": {"choices": ("linear", "squaredcos_cap_v2")},
        "beta_start": "first beta of a linear schedule",
        "beta_end": "last beta of a linear schedule",
        "variance_type": "the DDPM sampler's variance (diffusers' DDPMScheduler)",
        "clip_sample": "clip predicted x_0 to [-1, 1] while sampling",
        "prediction_type": {"choices": ("epsilon", "v_prediction")},
        "conditional": "class-conditional model with classifier-free guidance (labelled data)",
        "label_dropout": "fraction of labels replaced by the null class when --conditional",
        "snr_gamma": "Min-SNR-gamma loss weighting (Hang et al. 2023 use 5)",
        "eval_scheduler": "sampler of the final evaluation (as genkit eval --scheduler)",
        "eval_steps": "sampling steps of the final evaluation",
        "eval_eta": "DDIM eta of the final evaluation",
        "eval_guidance_scale": "guidance scale of the final evaluation (conditional models)",
        "eval_samples": "generated images of the final evaluation",
    }

    def add_sample_arguments(self, parser) -> None:
        parser.add_argument(
            "--scheduler",
            default=None,
            help=f"{SAMPLE_SCHEDULER} (default) | ddim | ddpm | any name of compatible_scheduler_names()",
        )
        parser.add_argument(
            "--steps",
            type=int,
            default=None,
            help="denoising steps (default 50; every training step for ddpm)",
        )
        parser.add_argument("--eta", type=float, default=None, help="DDIM noise: 0 deterministic, 1 DDPM-like")
        parser.add_argument(
            "--guidance-scale",
            type=float,
            default=None,
            help="classifier-free guidance weight (conditional models; 1 = no guidance)",
        )
        parser.add_argument(
            "--label",
            dest="labels",
            default=None,
            help="class id or name to sample (conditional models; default: cycle through classes)",
        )

    def add_eval_arguments(self, parser) -> None:
        parser.add_argument(
            "--scheduler", dest="eval_scheduler", default=None, help=f"sampler (default {SAMPLE_SCHEDULER})"
        )
        parser.add_argument("--steps", dest="eval_steps", type=int, default=None, help="denoising steps (default 50)")
        parser.add_argument("--eta", dest="eval_eta", type=float, default=None, help="DDIM noise")
        parser.add_argument(
            "--guidance-scale",
            dest="eval_guidance_scale",
            type=float,
            default=None,
            help="classifier-free guidance weight (conditional models)",
        )
        parser.add_argument("--eval-samples", type=int, default=None, help="number of generated images (default 500)")

    def _setting(self, config: dict[str, Any], key: str):
        """``config[key]``, or the plugin default where a command left it unset (None)."""
        value = config.get(key)
        return self.defaults[key] if value is None else value

    # ---- model ---------------------------------------------------------------------------------------------------
    def build(self, config: dict[str, Any], info: DataInfo) -> dict[str, torch.nn.Module]:
        if config["conditional"] and not info.num_classes:
            raise ConfigError(f"--conditional needs labelled data, and {info.dataset!r} has no labels")
        if not 0 <= float(config["label_dropout"]) < 1:
            raise ConfigError(f"--label-dropout must be in [0, 1), got {config['label_dropout']}")
        channels = [int(c) for c in config["block_out_channels"]]
        levels = sorted(int(i) for i in config["attention_levels"])
        groups = int(config["norm_num_groups"])
        factor = 2 ** (len(channels) - 1)
        if info.image_size % factor:
            raise ConfigError(
                f"image size {info.image_size} is not divisible by {factor}, the UNet's total downsampling "
                f"({len(channels)} levels = {len(channels) - 1} halvings); use --image-size "
                f"{_round_up(info.image_size, factor)} or fewer --block-out-channels"
            )
        if any(c % groups for c in channels):
            raise ConfigError(f"--norm-num-groups {groups} must divide every --block-out-channels entry {channels}")
        if any(not 0 <= i < len(channels) for i in levels):
            raise ConfigError(f"--attention-levels {levels} must be in 0..{len(channels) - 1} (one per UNet level)")
        down = tuple("AttnDownBlock2D" if i in levels else "DownBlock2D" for i in range(len(channels)))
        up = tuple(b.replace("Down", "Up") for b in reversed(down))
        _scheduler_for(config)  # fail early on a bad schedule or prediction type (diffusers raises)
        unet = UNet2DModel(
            sample_size=info.image_size,
            in_channels=info.num_channels,
            out_channels=info.num_channels,
            block_out_channels=tuple(channels),
            layers_per_block=int(config["layers_per_block"]),
            down_block_types=down,
            up_block_types=up,
            norm_num_groups=groups,
            # the last embedding is the null class of classifier-free guidance
            num_class_embeds=info.num_classes + 1 if config["conditional"] else None,
        )
        return {"model": unet}

    def training_step(self, modules, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        """Ho et al. 2020, Algorithm 1: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps; MSE on eps (or on v)."""
        scheduler = _scheduler_for(ctx.config)
        x0 = batch["pixel_values"]
        noise = torch.randn_like(x0)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
        noisy = scheduler.add_noise(x0, noise, t)
        target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(x0, noise, t)
        unet = modules["model"]
        if ctx.config["conditional"]:
            null_class = ctx.bare(modules, "model").config.num_class_embeds - 1
            drop = torch.rand(x0.shape[0], device=x0.device) < float(ctx.config["label_dropout"])
            labels = torch.where(drop, torch.full_like(batch["labels"], null_class), batch["labels"])
            prediction = unet(noisy, t, class_labels=labels).sample
        else:
            prediction = unet(noisy, t).sample
        if ctx.config.get("snr_gamma") is None:
            return {"loss": F.mse_loss(prediction.float(), target.float())}
        # Min-SNR-gamma (Hang et al. 2023, https://arxiv.org/abs/2303.09556): each timestep's loss weighted by
        # min(SNR, gamma) / SNR for noise targets, min(SNR, gamma) / (SNR + 1) for v (the weighting of diffusers'
        # training scripts), so the nearly clean timesteps stop dominating the gradient.
        snr = compute_snr(scheduler, t)
        epsilon = scheduler.config.prediction_type == "epsilon"
        weight = snr.clamp(max=float(ctx.config["snr_gamma"])) / (snr if epsilon else snr + 1)
        per_image = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        return {"loss": (per_image * weight).mean()}

    # ---- pipeline ------------------------------------------------------------------------------------------------
    def to_pipeline(self, modules, data: PreparedData, config: dict[str, Any]):
        unet = modules["model"]
        scheduler = DDPMScheduler.from_config(_scheduler_for(config).config)
        if unet.config.num_class_embeds:
            names = data.info.class_names or [str(i) for i in range(unet.config.num_class_embeds - 1)]
            return ClassConditionalDDPMPipeline(unet=unet, scheduler=scheduler, id2label=dict(enumerate(names)))
        return GenkitDDPMPipeline(unet=unet, scheduler=scheduler)

    def modules_from_pipeline(self, pipeline) -> dict[str, torch.nn.Module]:
        return {"model": pipeline.unet}

    # ---- fine-tuning any diffusers DDPM ----------------------------------------------------------------------------
    def base_settings(self, folder: Path) -> dict[str, Any]:
        """A genkit DDPM folder, a stock diffusers pipeline folder (``unet/`` holding a ``UNet2DModel``, ``scheduler/``
        a DDPM-family scheduler: the layout of ``google/ddpm-cifar10-32``), or a bare ``UNet2DModel`` folder. The UNet
        fixes the image size, channels and architecture; the scheduler, the noise schedule (a bare UNet has none:
        the run's own schedule applies)."""
        if (folder / "genkit.json").is_file():
            return super().base_settings(folder)
        from genkit.io import check_folder, validate_pipeline_folder

        check_folder(folder)
        unet_dir = _unet_dir(folder)
        settings = _unet_settings(unet_dir)
        if unet_dir != folder:
            validate_pipeline_folder(folder, GenkitDDPMPipeline)
            settings.update(_schedule_settings(folder / "scheduler"))
        return settings

    def modules_from_base(self, folder: Path, data: PreparedData) -> dict[str, torch.nn.Module]:
        if (folder / "genkit.json").is_file():
            modules = super().modules_from_base(folder, data)
        else:
            modules = {"model": UNet2DModel.from_pretrained(str(_unet_dir(folder)), use_safetensors=True)}
        embeds = modules["model"].config.num_class_embeds  # classes + the null class of classifier-free guidance
        check_base_classes(embeds - 1 if embeds else 0, data.info)
        return modules

    def load_pipeline(self, path: str | Path):
        index = json.loads((Path(path) / "model_index.json").read_text())
        name = index.get("_class_name")
        name = name[1] if isinstance(name, list) and len(name) == 2 else name  # [file, class]: shipped code
        cls = PIPELINE_CLASSES.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ConfigError(
                f"{Path(path) / 'model_index.json'}: _class_name {index.get('_class_name')!r} is not a DDPM pipeline; "
                f"expected one of {', '.join(PIPELINE_CLASSES)}"
            )
        return cls.from_pretrained(str(path))

    def sample(
        self,
        pipeline,
        n: int,
        seed: int = 0,
        scheduler=None,
        steps=None,
        eta=None,
        guidance_scale=None,
        labels=None,
        **kwargs,
    ) -> list:
        """``n`` PIL images; conditional models cycle through the classes unless ``labels`` names one."""
        check_value("n", n, int, "[1, 100000]")
        scheduler = SAMPLE_SCHEDULER if scheduler is None else scheduler
        conditional = isinstance(pipeline, ClassConditionalDDPMPipeline)
        if conditional and labels is None:
            labels = [i % pipeline.num_classes for i in range(n)]
        generator = seeded(seed)
        images = []
        for start in range(0, n, SAMPLE_BATCH):
            count = min(SAMPLE_BATCH, n - start)
            batch_labels = labels[start : start + count] if isinstance(labels, list) else labels
            call = {"scheduler": scheduler, "eta": eta, "class_labels": batch_labels, "guidance_scale": guidance_scale}
            try:
                pipeline.check_inputs(**call, batch_size=count)
                out = pipeline(batch_size=count, generator=generator, num_inference_steps=steps, **call, **kwargs)
            except ValueError as exc:  # a bad flag: one clear line from the CLI
                raise ConfigError(str(exc)) from None
            images += out.images
        return images

    def evaluate(self, pipeline, data: PreparedData, config: dict[str, Any]) -> dict[str, Any]:
        """Fréchet distance, precision/recall and class metrics of generated images against the test split."""
        from genkit.eval.metrics import evaluate_images

        n = int(self._setting(config, "eval_samples"))
        scheduler, steps = self._setting(config, "eval_scheduler"), int(self._setting(config, "eval_steps"))
        eta, guidance = config.get("eval_eta"), config.get("eval_guidance_scale")
        seed = int(config.get("seed") or 0)
        conditional = isinstance(pipeline, ClassConditionalDDPMPipeline)
        labels = [i % pipeline.num_classes for i in range(n)] if conditional else None
        pipeline.set_progress_bar_config(disable=True)
        generator = seeded(seed)
        batches = []
        for start in range(0, n, SAMPLE_BATCH):
            count = min(SAMPLE_BATCH, n - start)
            out = pipeline(
                batch_size=count,
                generator=generator,
                num_inference_steps=steps,
                scheduler=scheduler,
                eta=eta,
                class_labels=labels[start : start + count] if conditional else None,
                guidance_scale=guidance if conditional else None,
                output_type="pt",
            )
            batches.append(out.images.float().cpu() * 2 - 1)  # [0, 1] -> the data's [-1, 1]
        pipeline.set_progress_bar_config(disable=False)
        info = data.info
        result = evaluate_images(
            torch.cat(batches),
            data.test,
            train=data.train,
            sample_labels=torch.tensor(labels) if conditional else None,
            num_classes=info.num_classes,
            cache_key=f"{Path(str(info.dataset)).name}-{info.image_size}px",
            seed=seed,
        )
        sampler = make_scheduler(pipeline.scheduler, scheduler)
        result["protocol"].update(
            {
                "split": "test",
                "sampler": type(sampler).__name__,
                "sampler_settings": _sampler_settings(sampler),
                "sampling_steps": steps,
                "eta": eta,
                "guidance_scale": (1.0 if guidance is None else guidance) if conditional else None,
                "ema": True,
                "sample_seed": seed,
            }
        )
        return result

    def build_demo(self, pipeline):
        from genkit_ddpm.demo import build_demo

        return build_demo(pipeline)


def _round_up(value: int, factor: int) -> int:
    return -(-value // factor) * factor


def _unet_dir(folder: Path) -> Path:
    """A base's UNet: ``unet/`` of a pipeline folder, or the folder itself when it is a bare UNet2DModel."""
    return folder / "unet" if (folder / "model_index.json").is_file() else folder


def _unet_settings(unet_dir: Path) -> dict[str, Any]:
    """Run settings that describe a saved ``UNet2DModel`` (its config.json), or an error naming what does not fit."""
    config_file = unet_dir / "config.json"
    if not config_file.is_file():
        raise ConfigError(
            f"{unet_dir}: no config.json; --init-from takes a genkit DDPM folder, a diffusers pipeline folder "
            "(unet/ + scheduler/) or a UNet2DModel folder"
        )
    config = json.loads(config_file.read_text())
    if config.get("_class_name") != "UNet2DModel":
        raise ConfigError(f"{config_file}: _class_name {config.get('_class_name')!r} is not a UNet2DModel")
    if config.get("out_channels") != config.get("in_channels"):
        raise ConfigError(
            f"{config_file}: out_channels {config.get('out_channels')} != in_channels {config.get('in_channels')} "
            "(a learned-variance UNet); genkit trains UNets that predict the noise or v, one value per pixel"
        )
    if config.get("class_embed_type") is not None:
        raise ConfigError(f"{config_file}: class_embed_type {config.get('class_embed_type')!r} is not supported")
    size = config.get("sample_size")
    size = size[0] if isinstance(size, list) and len(set(size)) == 1 else size
    if not isinstance(size, int):
        raise ConfigError(f"{config_file}: sample_size {config.get('sample_size')!r}; genkit trains square images")
    down = config.get("down_block_types") or []
    return {
        "image_size": size,
        "channels": config["in_channels"],
        "block_out_channels": list(config["block_out_channels"]),
        "layers_per_block": config.get("layers_per_block", 2),
        "attention_levels": [i for i, block in enumerate(down) if "Attn" in block],
        "norm_num_groups": config.get("norm_num_groups", 32),
        "conditional": bool(config.get("num_class_embeds")),
    }


def _schedule_settings(scheduler_dir: Path) -> dict[str, Any]:
    """The noise schedule of a saved DDPM-family scheduler (its scheduler_config.json)."""
    config_file = scheduler_dir / "scheduler_config.json"
    if not config_file.is_file():
        raise ConfigError(f"{scheduler_dir}: no scheduler_config.json")
    config = json.loads(config_file.read_text())
    name = config.get("_class_name")
    if name not in BASE_SCHEDULERS:
        raise ConfigError(
            f"{config_file}: {name} is not a DDPM-family scheduler; genkit fine-tunes models trained with one of "
            f"{', '.join(sorted(BASE_SCHEDULERS))}"
        )
    if config.get("trained_betas") is not None:
        raise ConfigError(f"{config_file}: trained_betas (a hand-made schedule) is not supported")
    schedule = DDPMScheduler.from_config(config).config  # diffusers' defaults for keys an older config lacks
    settings = {k: schedule[k] for k in SCHEDULE_KEYS}
    if settings["variance_type"] not in ("fixed_small", "fixed_large"):
        raise ConfigError(f"{config_file}: variance_type {settings['variance_type']!r} (learned) is not supported")
    return settings
