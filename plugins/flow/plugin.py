"""The normalizing-flow plugin: RealNVP or Glow trained by exact maximum likelihood on dequantized pixels;
evaluation in bits per dimension on the test split."""

from __future__ import annotations

import math
from typing import Any

import torch
from genkit_flow.modeling_flow import ARCHITECTURES, FlowModel, bits_per_dim, dequantize, log_prob_of_code
from genkit_flow.pipeline_flow import FlowPipeline

from genkit.errors import ConfigError
from genkit.plugin import DataInfo, Plugin, PreparedData, StepContext

__all__ = ["FlowPlugin"]

EVAL_SEED = 1234  # the dequantization noise of the test images: the same for every model


class FlowPlugin(Plugin):
    name = "flow"
    task = "image"
    pipeline_tag = "unconditional-image-generation"
    base_keys = ("architecture", "num_scales", "steps_per_scale", "hidden_channels", "alpha")
    card_usage = (
        "images = pipe.sample(16, seed=0, temperature=0.8)  # PIL images\n"
        "z = pipe.encode(images)  # exact codes; pipe.decode(z) gives the images back\n"
        "bpd = pipe.bits_per_dim(images)  # per image, bits per dimension"
    )
    default_dataset = "digits"
    pipeline_class = FlowPipeline
    defaults = {
        "image_size": 16,
        "architecture": "realnvp",
        "num_scales": 2,
        "steps_per_scale": 4,  # glow's flow steps per scale
        "hidden_channels": 64,
        "alpha": 0.05,  # the logit transform's margin (RealNVP)
        "dequantization": "uniform",  # recorded in genkit.json: how bits/dim were measured
        "lr": 1e-3,
        "batch_size": 64,
        "max_grad_norm": 100.0,
        "lr_scheduler": "cosine",
        "warmup_steps": 100,
    }
    limits = {
        "num_scales": (int, "[1, 6]"),
        "steps_per_scale": (int, "[1, 64]"),
        "hidden_channels": (int, "[1, 4096]"),
        "alpha": (float, "[0.000001, 0.4]"),
    }
    presets = {
        "tiny": {
            "image_size": 8,
            "hidden_channels": 8,
            "steps_per_scale": 2,
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
            "num_scales": 3,
            "steps_per_scale": 8,
            "hidden_channels": 128,
            "batch_size": 64,
            "max_steps": 20000,
            "checkpoint_every": 2000,
            "sample_every": 2000,
        },
    }
    flag_options = {
        "architecture": {
            "choices": ARCHITECTURES,
            "help": "realnvp (checkerboard and channel couplings) or glow (actnorm, 1x1 convolution, coupling)",
        },
        "num_scales": "scales of the multi-scale architecture (each halves the image size)",
        "steps_per_scale": "glow: flow steps per scale",
        "hidden_channels": "width of each coupling's network",
        "alpha": "margin of the logit transform of the pixels",
        "dequantization": {"choices": ("uniform",), "help": "y = (pixel + u) / 256, u ~ U[0, 1)"},
    }

    def build(self, config: dict[str, Any], info: DataInfo) -> dict[str, torch.nn.Module]:
        squeezes = config["num_scales"] - (config["architecture"] == "realnvp")
        if info.image_size % 2**squeezes:
            raise ConfigError(
                f"--image-size {info.image_size} must be a multiple of {2**squeezes}: {config['architecture']} with "
                f"--num-scales {config['num_scales']} halves it {squeezes} times"
            )
        return {
            "model": FlowModel(
                in_channels=info.num_channels,
                image_size=info.image_size,
                architecture=config["architecture"],
                num_scales=int(config["num_scales"]),
                steps_per_scale=int(config["steps_per_scale"]),
                hidden_channels=int(config["hidden_channels"]),
                alpha=float(config["alpha"]),
            )
        }

    def training_step(self, modules, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        """The loss is the bits per dimension of the batch (maximum likelihood on uniformly dequantized pixels)."""
        x = batch["pixel_values"]
        # through forward (not log_prob): under several processes the model is wrapped, which hides other methods
        log_prob = log_prob_of_code(*modules["model"](dequantize(x)))
        loss = bits_per_dim(log_prob, x[0].numel()).mean()
        return {"loss": loss, "bits_per_dim": loss.detach()}

    def to_pipeline(self, modules, data: PreparedData, config: dict[str, Any]) -> FlowPipeline:
        return FlowPipeline(flow=modules["model"])

    def modules_from_pipeline(self, pipeline: FlowPipeline) -> dict[str, torch.nn.Module]:
        return {"model": pipeline.flow}

    def sample(self, pipeline: FlowPipeline, n: int, seed: int = 0, temperature: float | None = None, **kwargs):
        return pipeline.sample(n, seed=seed, temperature=1.0 if temperature is None else temperature)

    def add_sample_arguments(self, parser) -> None:
        parser.add_argument("--temperature", type=float, default=None, help="std of the codes drawn (default 1)")

    @torch.no_grad()
    def evaluate(self, pipeline: FlowPipeline, data: PreparedData, config: dict[str, Any]) -> dict[str, Any]:
        """Bits per dimension and the negative log-likelihood in nats on the test split, one seeded dequantization."""
        generator = torch.Generator().manual_seed(EVAL_SEED)
        total, n = 0.0, 0
        for batch in torch.utils.data.DataLoader(data.test, batch_size=256):
            total += pipeline.log_prob(batch["pixel_values"], generator).double().sum().item()
            n += batch["pixel_values"].shape[0]
        dims = pipeline.dims
        nll = -(total / n - dims * math.log(256))  # -log P of the 8-bit images, upper bound, nats
        return {
            "metrics": {"bits_per_dim": nll / (dims * math.log(2)), "nll_nats": nll},
            "protocol": {
                "split": "test",
                "num_images": n,
                "dims_per_image": dims,
                "dequantization": "uniform: y = (pixel + u) / 256, u ~ U[0, 1), one draw per pixel",
                "dequantization_seed": EVAL_SEED,
                "note": "-log P(pixels) <= -(log p(y) - D log 256): an upper bound, comparable with the VAE's "
                "nll_bits_per_dim",
            },
        }

    def build_demo(self, pipeline: FlowPipeline):
        from genkit_flow.demo import build_demo

        return build_demo(pipeline)
