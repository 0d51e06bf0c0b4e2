"""DCGANPipeline: sampling (by class), latent interpolation and arithmetic, and realness scores for a trained GAN."""

from __future__ import annotations

import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput

from genkit.images import check_count, class_labels, model_input, model_output, seeded
from genkit.plugin.pipeline import GenkitPipeline  # export: from diffusers import DiffusionPipeline as GenkitPipeline

from .modeling_dcgan import DCGANDiscriminator, DCGANGenerator

__all__ = ["DCGANPipeline"]

MAX_BATCH_SIZE = 10_000  # images generated in one call; more is a loop over calls


class DCGANPipeline(GenkitPipeline):
    """A generator and the discriminator it was trained against; saving both lets training continue the same game.

    Images go in and out as PIL images or tensors in [-1, 1]; latents are (N, latent_dim) draws from N(0, I).
    """

    def __init__(self, generator: DCGANGenerator, discriminator: DCGANDiscriminator):
        super().__init__()
        self.register_modules(generator=generator, discriminator=discriminator)

    # ---- conversions -----------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.generator.config.num_classes

    def _labels(self, labels, n: int) -> torch.Tensor | None:
        labels = class_labels(labels, n, self.num_classes, "GAN")
        return None if labels is None else labels.to(self.device)

    def _latents(self, latents: torch.Tensor) -> torch.Tensor:
        d = self.generator.config.latent_dim
        z = torch.as_tensor(latents)
        if z.shape[-1] != d:
            raise ValueError(f"latents must have {d} values in their last dimension, got shape {tuple(z.shape)}")
        z = z.reshape(-1, d)
        check_count("latents", z.shape[0], MAX_BATCH_SIZE)
        if not torch.isfinite(z).all():
            raise ValueError("latents must be finite: the tensor holds NaN or infinite values")
        return z.to(self.device, self.generator.dtype)

    def _to_tensor(self, images) -> torch.Tensor:
        """PIL images (converted as training data is) or a tensor in [-1, 1] -> the discriminator's input, on its
        device."""
        size, channels = self.generator.config.image_size, self.generator.config.out_channels
        return model_input(images, size, channels, MAX_BATCH_SIZE).to(self.device, self.discriminator.dtype)

    # ---- generation ------------------------------------------------------------------------------------------
    def make_latents(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` latent vectors from N(0, I), drawn on the CPU so a seed gives the same vectors on every device."""
        check_count("n", n, MAX_BATCH_SIZE)
        return torch.randn(n, self.generator.config.latent_dim, generator=seeded(seed))

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        labels=None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Generate ``batch_size`` images from fresh N(0, I) latents (or the given ``latents``)."""
        check_count("batch_size", batch_size, MAX_BATCH_SIZE)
        if latents is None:
            latents = torch.randn(batch_size, self.generator.config.latent_dim, generator=generator)
        z = self._latents(latents)
        images = model_output(self.generator(z, self._labels(labels, z.shape[0])), output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    def sample(self, n: int, seed: int = 0, labels=None, output_type: str = "pil"):
        """``n`` samples; the same seed gives the same images. ``labels``: one class for all, or one per sample."""
        return self(latents=self.make_latents(n, seed), labels=labels, output_type=output_type).images

    def interpolate(self, z_a: torch.Tensor, z_b: torch.Tensor, steps: int = 8, labels=None, output_type: str = "pil"):
        """Images at ``steps`` evenly spaced points on the line from z_a to z_b (Radford et al., Sec. 6.1)."""
        check_count("steps", steps, MAX_BATCH_SIZE, low=2)
        za, zb = self._latents(z_a)[:1], self._latents(z_b)[:1]
        t = torch.linspace(0, 1, steps, device=self.device, dtype=za.dtype).unsqueeze(1)
        return self(latents=za + t * (zb - za), labels=labels, output_type=output_type).images

    def latent_arithmetic(
        self, z_a: torch.Tensor, z_b: torch.Tensor, z_c: torch.Tensor, labels=None, output_type: str = "pil"
    ):
        """The image of mean(z_a) - mean(z_b) + mean(z_c). Each argument is one latent or several (k, latent_dim),
        averaged first: Radford et al. (Sec. 6.3.2) average three exemplars per concept for stable results."""
        za, zb, zc = (self._latents(z).mean(0, keepdim=True) for z in (z_a, z_b, z_c))
        return self(latents=za - zb + zc, labels=labels, output_type=output_type).images

    # ---- the discriminator's view ------------------------------------------------------------------------------
    @torch.no_grad()
    def discriminate(self, images, labels=None) -> torch.Tensor:
        """Realness score per image, higher = more real: P(real) in [0, 1] for a BCE-trained discriminator, the
        critic value (unbounded; only differences are meaningful) for WGAN-GP."""
        x = self._to_tensor(images)
        score = self.discriminator(x, self._labels(labels, x.shape[0])).float()
        return torch.sigmoid(score) if self.discriminator.config.loss == "bce" else score
