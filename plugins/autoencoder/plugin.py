"""The autoencoder plugin: plain, denoising, sparse and contractive autoencoders; evaluation by reconstruction error
(and, per variant, the code's activation rate or the error on corrupted images)."""

from __future__ import annotations

from typing import Any

import torch
from genkit_autoencoder.modeling_autoencoder import (
    AutoencoderModel,
    contractive_penalty,
    corrupt,
    kl_sparsity_penalty,
)
from genkit_autoencoder.pipeline_autoencoder import AutoencoderPipeline

from genkit.errors import ConfigError
from genkit.plugin import DataInfo, Plugin, PreparedData, StepContext

__all__ = ["VARIANTS", "AutoencoderPlugin", "code_activation"]

VARIANTS = ("plain", "denoising", "sparse", "contractive")
FIT_IMAGES = 10_000  # training images whose codes fix the Gaussian that sample() draws from
EVAL_SEED = 1234  # the corruption of the test images in evaluation: the same for every model


def code_activation(config: dict[str, Any]) -> str:
    """The code's activation a variant needs: ReLU for the L1-sparse code (exact zeros), sigmoid for the KL-sparse
    one (activations are rates in (0, 1)) and the contractive one (as in Rifai et al. 2011), none otherwise."""
    if config["variant"] == "contractive":
        return "sigmoid"  # Rifai et al. 2011: saturating units are what the penalty can flatten
    if config["variant"] != "sparse":
        return "linear"
    return "relu" if config["sparsity"] == "l1" else "sigmoid"


def activation_rate(code: torch.Tensor, activation: str) -> float:
    """How active a code is: the fraction of units above 0 for ReLU codes, the mean activation for sigmoid codes
    (the rate the KL penalty pulls to its target); for linear codes, the fraction above 0 (about half)."""
    return float(code.mean()) if activation == "sigmoid" else float((code > 0).float().mean())


class AutoencoderPlugin(Plugin):
    name = "autoencoder"
    task = "image"
    pipeline_tag = "image-to-image"
    base_keys = ("code_dim", "hidden_channels", "reconstruction", "variant", "sparsity")
    card_usage = (
        "images = pipe.sample(8, seed=0)  # decodings of codes drawn from the training codes' Gaussian\n"
        "codes = pipe.encode(images)  # (8, code_dim)\n"
        "errors = pipe.anomaly_score(images)  # per-image reconstruction error"
    )
    default_dataset = "digits"
    pipeline_class = AutoencoderPipeline
    defaults = {
        "image_size": 16,
        "code_dim": 16,
        "hidden_channels": [32, 64],
        "variant": "plain",
        "reconstruction": "bce",
        "noise": "masking",  # denoising: gaussian | masking | salt-pepper
        "noise_strength": 0.3,  # gaussian: std; masking and salt-pepper: the fraction of pixels hit
        "sparsity": "l1",  # sparse: l1 (ReLU code) | kl (sigmoid code, KL to sparsity_target)
        "sparsity_weight": 0.003,
        "sparsity_target": 0.05,  # kl: the target mean activation rho
        "contractive_weight": 0.01,
        "lr": 1e-3,
        "batch_size": 64,
        "max_grad_norm": 5.0,
        "lr_scheduler": "cosine",
        "warmup_steps": 50,
    }
    limits = {
        "code_dim": (int, "[1, 4096]"),
        "hidden_channels": (int, "[1, 4096]"),
        "noise_strength": (float, "[0, 10]"),
        "sparsity_weight": (float, "[0, 1e6]"),
        "sparsity_target": (float, "[0.0001, 0.9999]"),
        "contractive_weight": (float, "[0, 1e6]"),
    }
    presets = {
        "tiny": {
            "image_size": 8,
            "code_dim": 4,
            "hidden_channels": [8, 16],
            "batch_size": 32,
            "max_steps": 20,
            "checkpoint_every": 10,
            "sample_every": 0,
            "num_sample_images": 16,
            "warmup_steps": 0,
        },
        "small": {"max_steps": 2000, "checkpoint_every": 1000, "sample_every": 1000},
        "base": {
            "image_size": 32,
            "code_dim": 64,
            "hidden_channels": [64, 128, 256],
            "batch_size": 128,
            "max_steps": 20000,
            "checkpoint_every": 2000,
            "sample_every": 2000,
        },
    }
    flag_options = {
        "variant": {"choices": VARIANTS, "help": "plain, denoising, sparse or contractive autoencoder"},
        "reconstruction": {"choices": ("bce", "mse"), "help": "reconstruction loss: per-pixel BCE or squared error"},
        "code_dim": "size of the code (2: a plane to plot)",
        "noise": {"choices": ("gaussian", "masking", "salt-pepper"), "help": "denoising: the input's corruption"},
        "noise_strength": "denoising: gaussian std, or the fraction of pixels masked / salted",
        "sparsity": {"choices": ("l1", "kl"), "help": "sparse: L1 on a ReLU code, or KL to a target rate"},
        "sparsity_weight": "sparse: weight of the sparsity penalty",
        "sparsity_target": "sparse, kl: the target mean activation of each code unit",
        "contractive_weight": "contractive: weight of the encoder Jacobian's squared Frobenius norm",
    }

    def build(self, config: dict[str, Any], info: DataInfo) -> dict[str, torch.nn.Module]:
        if config["noise"] != "gaussian" and config["noise_strength"] > 1:
            raise ConfigError(
                f"--noise-strength {config['noise_strength']} is the fraction of pixels {config['noise']} noise hits: "
                "at most 1 (it is a standard deviation only for --noise gaussian)"
            )
        if config["variant"] == "contractive" and config["code_dim"] > 256:
            raise ConfigError(
                f"--variant contractive takes one backward pass per code unit; --code-dim {config['code_dim']} "
                "is too many (at most 256)"
            )
        return {
            "model": AutoencoderModel(
                in_channels=info.num_channels,
                image_size=info.image_size,
                code_dim=int(config["code_dim"]),
                hidden_channels=tuple(config["hidden_channels"]),
                code_activation=code_activation(config),
                reconstruction=config["reconstruction"],
            )
        }

    def training_step(self, modules, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        config, x = ctx.config, batch["pixel_values"]
        variant = config["variant"]
        # The denoising autoencoder sees a corrupted image and is scored on the clean one.
        inputs = corrupt(x, config["noise"], config["noise_strength"]) if variant == "denoising" else x
        if variant == "contractive":
            inputs = inputs.detach().requires_grad_(True)
        out = modules["model"](inputs)
        model = ctx.bare(modules, "model")
        reconstruction = model.reconstruction_loss(out.decoded, x).mean()
        logs = {"reconstruction": reconstruction.detach()}
        penalty = torch.zeros((), device=x.device)
        if variant == "sparse":
            if config["sparsity"] == "l1":
                penalty = out.code.abs().mean()
            else:
                penalty = kl_sparsity_penalty(out.code, config["sparsity_target"])
            penalty = config["sparsity_weight"] * penalty
            logs["activation_rate"] = torch.tensor(activation_rate(out.code.detach(), code_activation(config)))
        elif variant == "contractive":
            penalty = config["contractive_weight"] * contractive_penalty(out.code, inputs)
        if variant in ("sparse", "contractive"):
            logs["penalty"] = penalty.detach()
        return {"loss": reconstruction + penalty, **logs}

    @torch.no_grad()
    def to_pipeline(self, modules, data: PreparedData, config: dict[str, Any]) -> AutoencoderPipeline:
        """The pipeline, with the Gaussian of the training codes (mean and std per unit) that ``sample`` draws
        from."""
        model = modules["model"]
        device = next(model.parameters()).device
        loader = torch.utils.data.DataLoader(data.train, batch_size=256)
        codes, seen = [], 0
        for batch in loader:
            codes.append(model.encode(batch["pixel_values"].to(device, model.dtype)).float())
            seen += codes[-1].shape[0]
            if seen >= FIT_IMAGES:
                break
        codes = torch.cat(codes)
        model.code_mean.copy_(codes.mean(0))
        model.code_std.copy_(codes.std(0).clamp_min(1e-6) if codes.shape[0] > 1 else torch.ones_like(codes[0]))
        return AutoencoderPipeline(autoencoder=model)

    def modules_from_pipeline(self, pipeline: AutoencoderPipeline) -> dict[str, torch.nn.Module]:
        return {"model": pipeline.autoencoder}

    def sample(self, pipeline: AutoencoderPipeline, n: int, seed: int = 0, **kwargs):
        return pipeline.sample(n, seed=seed)

    @torch.no_grad()
    def evaluate(self, pipeline: AutoencoderPipeline, data: PreparedData, config: dict[str, Any]) -> dict[str, Any]:
        """Test reconstruction error (squared error per pixel value in [0, 1], and the training loss); the code's
        activation rate for sparse models; the error on corrupted test images for denoising ones."""
        model = pipeline.autoencoder
        generator = torch.Generator().manual_seed(EVAL_SEED)
        totals = {"mse": 0.0, "loss": 0.0, "rate": 0.0, "noisy": 0.0}
        n = 0
        for batch in torch.utils.data.DataLoader(data.test, batch_size=256):
            x = batch["pixel_values"].to(pipeline.device, model.dtype)
            out = model(x)
            totals["mse"] += ((model.to_images(out.decoded) - x) / 2).pow(2).flatten(1).mean(1).sum().item()
            totals["loss"] += model.reconstruction_loss(out.decoded, x).sum().item()
            totals["rate"] += activation_rate(out.code, model.config.code_activation) * x.shape[0]
            if config["variant"] == "denoising":
                noisy = corrupt(x, config["noise"], config["noise_strength"], generator)
                cleaned = model.to_images(model(noisy).decoded)
                totals["noisy"] += ((cleaned - x) / 2).pow(2).flatten(1).mean(1).sum().item()
            n += x.shape[0]
        metrics = {
            "reconstruction_mse": totals["mse"] / n,
            f"reconstruction_loss_{model.config.reconstruction}": totals["loss"] / n,
        }
        protocol = {
            "split": "test",
            "num_images": n,
            "variant": config["variant"],
            "mse_units": "mean squared error per pixel value, pixels in [0, 1]",
        }
        if config["variant"] == "sparse":
            metrics["activation_rate"] = totals["rate"] / n
            protocol["activation_rate"] = (
                "mean sigmoid activation of the code"
                if model.config.code_activation == "sigmoid"
                else "fraction of code units above 0"
            )
        if config["variant"] == "denoising":
            metrics["denoising_mse"] = totals["noisy"] / n
            protocol.update(noise=config["noise"], noise_strength=config["noise_strength"], noise_seed=EVAL_SEED)
        return {"metrics": metrics, "protocol": protocol}

    def build_demo(self, pipeline: AutoencoderPipeline):
        from genkit_autoencoder.demo import build_demo

        return build_demo(pipeline)
