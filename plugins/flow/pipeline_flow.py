"""FlowPipeline: sampling with a temperature, exact encoding and decoding, interpolation in z, log-likelihoods and
bits per dimension of a trained normalizing flow."""

from __future__ import annotations

import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput

from genkit.images import check_count, model_input, model_output, seeded
from genkit.plugin.pipeline import GenkitPipeline  # export: from diffusers import DiffusionPipeline as GenkitPipeline

from .modeling_flow import FlowModel, bits_per_dim, dequantize

__all__ = ["MAX_BATCH_SIZE", "FlowPipeline"]

MAX_BATCH_SIZE = 10_000  # images in one call; more is a loop over calls
MAX_TEMPERATURE = 10.0


class FlowPipeline(GenkitPipeline):
    """A diffusers pipeline around one ``FlowModel``. Images go in and out as PIL images or tensors in [-1, 1];
    codes are (N, D) tensors, D = channels x height x width."""

    def __init__(self, flow: FlowModel):
        super().__init__()
        self.register_modules(flow=flow)

    @property
    def dims(self) -> int:
        config = self.flow.config
        return config.in_channels * config.image_size**2

    def _to_tensor(self, images) -> torch.Tensor:
        config = self.flow.config
        x = model_input(images, config.image_size, config.in_channels, MAX_BATCH_SIZE)
        return x.to(self.device, self.flow.dtype)

    def _images(self, y: torch.Tensor) -> torch.Tensor:
        return y * 2 - 1  # y in [0, 1] -> [-1, 1]

    # ---- generation ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Decode ``batch_size`` codes z ~ N(0, temperature^2 I). Temperatures below 1 (0.7 in Glow's figures)
        trade diversity for cleaner images."""
        check_count("batch_size", batch_size, MAX_BATCH_SIZE)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ValueError(f"temperature must be a number in [0, {MAX_TEMPERATURE}], got {temperature!r}")
        if not 0 <= temperature <= MAX_TEMPERATURE:
            raise ValueError(f"temperature must be in [0, {MAX_TEMPERATURE}], got {temperature}")
        z = torch.randn(batch_size, self.dims, generator=generator).to(self.device, self.flow.dtype) * temperature
        images = model_output(self._images(self.flow.inverse(z)), output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    def sample(self, n: int, seed: int = 0, temperature: float = 1.0, output_type: str = "pil"):
        """``n`` samples; the same seed gives the same images."""
        check_count("n", n, MAX_BATCH_SIZE)
        return self(n, generator=seeded(seed), temperature=temperature, output_type=output_type).images

    # ---- codes -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images) -> torch.Tensor:
        """The codes z of images (each pixel at the centre of its bin: no noise), (N, D)."""
        return self.flow(dequantize(self._to_tensor(images), noise=False))[0]

    @torch.no_grad()
    def decode(self, codes, output_type: str = "pil"):
        """Images from codes: the exact inverse of ``encode`` (up to float rounding and the 8-bit output)."""
        z = torch.as_tensor(codes).to(self.device, self.flow.dtype).reshape(-1, self.dims)
        check_count("codes", z.shape[0], MAX_BATCH_SIZE)
        return model_output(self._images(self.flow.inverse(z)), output_type)

    def interpolate(self, a, b, steps: int = 8, output_type: str = "pil"):
        """Decode ``steps`` points on the straight line between the codes of two images (or two codes)."""
        check_count("steps", steps, MAX_BATCH_SIZE, low=2)
        za, zb = self._code(a), self._code(b)
        t = torch.linspace(0, 1, steps, device=self.device, dtype=za.dtype).unsqueeze(1)
        return self.decode(za + t * (zb - za), output_type)

    def _code(self, x) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.dim() <= 2 and x.shape[-1] == self.dims:
            return x.reshape(1, -1).to(self.device, self.flow.dtype)
        return self.encode(x)[:1]

    # ---- likelihoods -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def log_prob(self, images, generator: torch.Generator | None = None) -> torch.Tensor:
        """log p(y) per image in nats, y the images uniformly dequantized (one draw of u per pixel)."""
        return self.flow.log_prob(dequantize(self._to_tensor(images), generator))

    def bits_per_dim(self, images, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per image, -(log p(y) - D log 256) / (D log 2): the bits/dim comparable with the VAE's NLL bits/dim."""
        return bits_per_dim(self.log_prob(images, generator), self.dims)
