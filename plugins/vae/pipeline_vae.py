"""VAEPipeline: sampling, encoding, interpolation, latent arithmetic and anomaly scores for a trained VAE."""

from __future__ import annotations

import math

import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput

from genkit.images import (
    check_count,
    class_labels,
    fill_by_reconstruction,
    inpainting_input,
    model_input,
    model_output,
    seeded,
)
from genkit.plugin.pipeline import GenkitPipeline  # export: from diffusers import DiffusionPipeline as GenkitPipeline

from .modeling_vae import VAEModel, kl_divergence

__all__ = ["MAX_BATCH_SIZE", "VAEPipeline"]

MAX_BATCH_SIZE = 10_000  # images decoded in one call (~10 MB at 16 px); more is a loop over calls
MAX_DRAWS = (
    100_000  # posterior draws per image (anomaly_score, importance_sampled_nll): far past where estimates settle
)


class VAEPipeline(GenkitPipeline):
    """A diffusers pipeline around one ``VAEModel``. Images go in and out as PIL images or tensors in [-1, 1]."""

    def __init__(self, vae: VAEModel):
        super().__init__()
        self.register_modules(vae=vae)

    # ---- conversions -----------------------------------------------------------------------------------------
    def _to_tensor(self, images) -> torch.Tensor:
        """PIL images (converted as training data is) or a tensor in [-1, 1] -> the model's input, on its device."""
        config = self.vae.config
        return model_input(images, config.image_size, config.in_channels, MAX_BATCH_SIZE).to(
            self.device, self.vae.dtype
        )

    def _labels(self, labels, n: int) -> torch.Tensor | None:
        labels = class_labels(labels, n, self.vae.config.num_classes, "VAE")
        return None if labels is None else labels.to(self.device)

    # ---- generation ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        labels=None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Decode ``batch_size`` draws from the prior N(0, I)."""
        check_count("batch_size", batch_size, MAX_BATCH_SIZE)
        z = torch.randn(batch_size, self.vae.config.latent_dim, generator=generator).to(self.device, self.vae.dtype)
        images = model_output(self.vae.to_images(self.vae.decode(z, self._labels(labels, batch_size))), output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    def sample(self, n: int, seed: int = 0, labels=None, output_type: str = "pil"):
        """``n`` prior samples; the same seed gives the same images."""
        check_count("n", n, MAX_BATCH_SIZE)
        return self(n, generator=seeded(seed), labels=labels, output_type=output_type).images

    @torch.no_grad()
    def encode(self, images, labels=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x)."""
        x = self._to_tensor(images)
        return self.vae.encode(x, self._labels(labels, x.shape[0]))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, labels=None, output_type: str = "pil"):
        z = torch.as_tensor(latents).to(self.device, self.vae.dtype).reshape(-1, self.vae.config.latent_dim)
        check_count("latents", z.shape[0], MAX_BATCH_SIZE)
        return model_output(self.vae.to_images(self.vae.decode(z, self._labels(labels, z.shape[0]))), output_type)

    def reconstruct(self, images, labels=None, output_type: str = "pil"):
        """Encode to the posterior mean and decode it back."""
        mean, _ = self.encode(images, labels)
        return self.decode(mean, labels, output_type)

    @torch.no_grad()
    def inpaint(self, image, mask, iterations: int = 50, labels=None, output_type: str = "pil"):
        """Fill in the region of ``image`` that ``mask`` marks (white = repaint, black = keep) by iterative
        reconstruction: the region starts mid-gray, then each round encodes the whole image to its posterior mean,
        decodes it, and puts the decoded pixels back into the region only, so the known pixels pull the code towards
        an image that agrees with them. The kept pixels are returned as given.

        ``image``: PIL images or a tensor in [-1, 1]; ``mask``: a PIL image of the image's size (mode 1/L/gray RGB:
        white = fill in; LA/RGBA: the alpha channel) or a tensor at the model's size, 1 = fill in.
        """
        config = self.vae.config
        x0, m = inpainting_input(image, mask, config.image_size, config.in_channels, MAX_BATCH_SIZE)
        x0, m = x0.to(self.device, self.vae.dtype), m.to(self.device, self.vae.dtype)
        lab = self._labels(labels, x0.shape[0])

        def reconstruct(x):
            return self.vae.to_images(self.vae.decode(self.vae.encode(x, lab)[0], lab))

        return model_output(fill_by_reconstruction(x0, m, reconstruct, iterations), output_type)

    def _latent(self, x, labels) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.dim() <= 2 and x.shape[-1] == self.vae.config.latent_dim:
            return x.reshape(1, -1).to(self.device, self.vae.dtype)
        return self.encode(x, labels)[0][:1]

    def interpolate(self, a, b, steps: int = 8, labels=None, output_type: str = "pil"):
        """Decode ``steps`` points on the straight line between two latents (or the posterior means of two images)."""
        check_count("steps", steps, MAX_BATCH_SIZE, low=2)
        za, zb = self._latent(a, labels), self._latent(b, labels)
        t = torch.linspace(0, 1, steps, device=self.device, dtype=za.dtype).unsqueeze(1)
        return self.decode(za + t * (zb - za), labels, output_type)

    def latent_arithmetic(self, a, b, c, labels=None, output_type: str = "pil"):
        """Decode z(a) - z(b) + z(c): e.g. a thick 7 - a thin 7 + a thin 1 ~ a thick 1."""
        za, zb, zc = (self._latent(x, labels) for x in (a, b, c))
        return self.decode(za - zb + zc, labels, output_type)

    def traverse(self, dim: int, values=None, z=None, labels=None, output_type: str = "pil"):
        """Decode ``z`` (default: the prior's mean, zeros) with latent ``dim`` set to each of ``values`` (default
        -3..3 in 7 steps): what one latent dimension controls, as in beta-VAE papers (Higgins et al. 2017, Fig. 1)."""
        d = self.vae.config.latent_dim
        check_count("dim", dim, d - 1, low=0)
        values = torch.linspace(-3, 3, 7) if values is None else torch.as_tensor(values, dtype=torch.float32)
        check_count("values", values.numel(), MAX_BATCH_SIZE)
        base = torch.zeros(d) if z is None else torch.as_tensor(z, dtype=torch.float32).reshape(-1)[:d]
        latents = base.repeat(values.numel(), 1)
        latents[:, dim] = values.reshape(-1)
        return self.decode(latents, labels, output_type)

    def latent_grid(self, n: int = 8, extent: float = 2.5, dims: tuple[int, int] = (0, 1), labels=None):
        """An ``n`` x ``n`` grid of decodings over the plane of latent ``dims`` from -``extent`` to ``extent`` (the
        other latents 0): for a 2-D latent space, the whole learned manifold (Kingma & Welling 2014, Fig. 4). Row by
        row, top to bottom; returns PIL images."""
        check_count("n", n, 100, low=2)
        if self.vae.config.latent_dim < 2 or len(set(dims)) != 2:
            raise ValueError(f"latent_grid needs two distinct latent dims of {self.vae.config.latent_dim}")
        axis = torch.linspace(-extent, extent, n)
        latents = torch.zeros(n * n, self.vae.config.latent_dim)
        latents[:, dims[0]] = axis.repeat(n)
        latents[:, dims[1]] = axis.flip(0).repeat_interleave(n)
        return self.decode(latents, labels)

    # ---- likelihoods -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def negative_elbo(self, images, labels=None) -> torch.Tensor:
        """-ELBO = E_q[-log p(x|z)] + KL(q(z|x) || p(z)) per image, in nats (one posterior sample)."""
        x = self._to_tensor(images)
        out = self.vae(x, self._labels(labels, x.shape[0]))
        return -self.vae.log_likelihood(out.decoded, x) + kl_divergence(out.mean, out.logvar)

    def anomaly_score(self, images, labels=None, num_samples: int = 16) -> torch.Tensor:
        """Negative ELBO per image averaged over ``num_samples`` posterior draws: higher = less like the data."""
        check_count("num_samples", num_samples, MAX_DRAWS)
        return torch.stack([self.negative_elbo(images, labels) for _ in range(num_samples)]).mean(0)

    @torch.no_grad()
    def importance_sampled_nll(self, images, labels=None, k: int = 100) -> torch.Tensor:
        """-log p(x) estimated with k importance samples from q(z|x) (Burda et al. 2016, eq. 8), in nats."""
        check_count("k", k, MAX_DRAWS)
        x = self._to_tensor(images)
        lab = self._labels(labels, x.shape[0])
        mean, logvar = self.vae.encode(x, lab)
        std = (0.5 * logvar).exp()
        log_w = []
        for _ in range(k):
            z = mean + std * torch.randn_like(std)
            log_px_z = self.vae.log_likelihood(self.vae.decode(z, lab), x)
            log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(1)
            log_qz = -0.5 * (((z - mean) / std).pow(2) + logvar + math.log(2 * math.pi)).sum(1)
            log_w.append(log_px_z + log_pz - log_qz)
        return -(torch.logsumexp(torch.stack(log_w), 0) - math.log(k))
