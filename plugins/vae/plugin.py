"""The VAE plugin: presets, the loss (reconstruction + beta * KL), evaluation in nats and bits/dim."""

from __future__ import annotations

import math
from typing import Any

import torch
from genkit_vae.modeling_vae import VAEModel, kl_divergence
from genkit_vae.pipeline_vae import VAEPipeline

from genkit.errors import ConfigError
from genkit.plugin import DataInfo, Plugin, PreparedData, StepContext

__all__ = ["VAEPlugin"]


class VAEPlugin(Plugin):
    name = "vae"
    task = "image"
    pipeline_tag = "unconditional-image-generation"
    base_keys = ("latent_dim", "hidden_channels", "likelihood", "conditional")  # what --init-from takes from the base
    card_usage = (
        "images = pipe.sample(16, seed=0)  # PIL images\n"
        "scores = pipe.anomaly_score(images)  # negative ELBO per image, in nats"
    )
    default_dataset = "digits"
    pipeline_class = VAEPipeline
    defaults = {
        "image_size": 16,  # digits are 8x8; 16 px keeps strokes smooth at a tiny cost
        "latent_dim": 16,
        "hidden_channels": [32, 64],
        "likelihood": "bernoulli",
        "beta": 1.0,  # 1 = the ELBO; > 1 = beta-VAE (Higgins et al. 2017), more disentangled, blurrier
        "conditional": False,  # class-conditional VAE: needs labelled data
        "denoise_std": 0.0,  # > 0: denoising VAE, Gaussian noise of this std on the encoder's input
        "lr": 1e-3,
        "batch_size": 64,
        "max_grad_norm": 5.0,
        "lr_scheduler": "cosine",
        "warmup_steps": 50,
        "eval_importance_samples": 100,  # k for the importance-sampled NLL (Burda et al. 2016 use 5000)
    }
    limits = {
        "latent_dim": (int, "[1, 4096]"),
        "hidden_channels": (int, "[1, 4096]"),
        "beta": (float, "[0, 1e6]"),
        "denoise_std": (float, "[0, 10]"),
        "eval_importance_samples": (int, "[1, 100000]"),
    }
    presets = {
        "tiny": {
            "image_size": 8,
            "latent_dim": 4,
            "hidden_channels": [8, 16],
            "batch_size": 32,
            "max_steps": 20,
            "checkpoint_every": 10,
            "sample_every": 0,
            "num_sample_images": 16,
            "eval_importance_samples": 4,
            "warmup_steps": 0,
        },
        "small": {"max_steps": 3000, "checkpoint_every": 1000, "sample_every": 1000},
        "base": {
            "image_size": 32,
            "latent_dim": 64,
            "hidden_channels": [64, 128, 256],
            "batch_size": 128,
            "max_steps": 20000,
            "checkpoint_every": 2000,
            "sample_every": 2000,
        },
    }

    flag_options = {
        "likelihood": {
            "choices": ("bernoulli", "gaussian"),
            "help": "reconstruction term: Bernoulli (BCE) or Gaussian with learned scale",
        },
        "beta": "weight of the KL term (beta-VAE when > 1)",
        "conditional": "class-conditional VAE",
        "denoise_std": "denoising VAE: input noise std",
        "eval_importance_samples": "k of the importance-sampled NLL of the final evaluation",
    }

    def build(self, config: dict[str, Any], info: DataInfo) -> dict[str, torch.nn.Module]:
        if config["conditional"] and not info.num_classes:
            raise ConfigError(f"--conditional needs labelled data, and {info.dataset!r} has no labels")
        return {
            "model": VAEModel(
                in_channels=info.num_channels,
                image_size=info.image_size,
                latent_dim=int(config["latent_dim"]),
                hidden_channels=tuple(config["hidden_channels"]),
                num_classes=info.num_classes if config["conditional"] else 0,
                likelihood=config["likelihood"],
            )
        }

    def training_step(self, modules, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        x = batch["pixel_values"]
        labels = batch.get("labels") if ctx.config["conditional"] else None
        noisy = x + ctx.config["denoise_std"] * torch.randn_like(x) if ctx.config["denoise_std"] else x
        out = modules["model"](noisy, labels)
        # The decoder reconstructs the clean image even when the encoder saw a corrupted one.
        vae = ctx.bare(modules, "model")
        recon = -vae.log_likelihood(out.decoded, x).mean()
        kl = kl_divergence(out.mean, out.logvar).mean()
        return {"loss": recon + ctx.config["beta"] * kl, "reconstruction": recon.detach(), "kl": kl.detach()}

    def to_pipeline(self, modules, data: PreparedData, config: dict[str, Any]) -> VAEPipeline:
        return VAEPipeline(vae=modules["model"])

    def modules_from_pipeline(self, pipeline: VAEPipeline) -> dict[str, torch.nn.Module]:
        return {"model": pipeline.vae}

    def sample(self, pipeline: VAEPipeline, n: int, seed: int = 0, labels=None, **kwargs):
        if pipeline.vae.config.num_classes and labels is None:
            labels = torch.arange(n) % pipeline.vae.config.num_classes  # rows of the grid cycle through classes
        return pipeline.sample(n, seed=seed, labels=labels)

    def add_sample_arguments(self, parser) -> None:
        parser.add_argument("--label", type=int, dest="labels", default=None, help="class to sample (conditional)")

    @torch.no_grad()
    def evaluate(self, pipeline: VAEPipeline, data: PreparedData, config: dict[str, Any]) -> dict[str, Any]:
        """Test negative ELBO (nats/image), bits/dim, and the k-sample importance-weighted NLL."""
        torch.manual_seed(int(config.get("seed", 0)))
        k = int(config.get("eval_importance_samples", 100))
        conditional = bool(pipeline.vae.config.num_classes)
        loader = torch.utils.data.DataLoader(data.test, batch_size=256)
        elbo, nll, n = 0.0, 0.0, 0
        for batch in loader:
            labels = batch["labels"] if conditional else None
            elbo += pipeline.negative_elbo(batch["pixel_values"], labels).sum().item()
            nll += pipeline.importance_sampled_nll(batch["pixel_values"], labels, k=k).sum().item()
            n += batch["pixel_values"].shape[0]
        dims = math.prod(data.test[0]["pixel_values"].shape)
        elbo, nll = elbo / n, nll / n
        # Bernoulli: nats / (D ln 2). Gaussian: a density on [-1, 1]; add log(128) per dim for 256 bins of width 2/256.
        offset = 0.0 if pipeline.vae.config.likelihood == "bernoulli" else dims * math.log(128)
        return {
            "metrics": {
                "negative_elbo_nats": elbo,
                "bits_per_dim": (elbo + offset) / (dims * math.log(2)),
                "importance_sampled_nll_nats": nll,
                "nll_bits_per_dim": (nll + offset) / (dims * math.log(2)),
            },
            "protocol": {
                "split": "test",
                "num_images": n,
                "dims_per_image": dims,
                "likelihood": pipeline.vae.config.likelihood,
                "elbo_posterior_samples": 1,
                "importance_samples": k,
                "ema": False,
                "note": "pixels scaled to [0, 1] as Bernoulli targets"
                if pipeline.vae.config.likelihood == "bernoulli"
                else "Gaussian density on [-1, 1], discretized to 256 levels for bits/dim",
            },
        }

    def build_demo(self, pipeline: VAEPipeline):
        from genkit_vae.demo import build_demo

        return build_demo(pipeline)
