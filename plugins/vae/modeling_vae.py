"""A convolutional variational autoencoder (Kingma & Welling 2014) as a diffusers model component."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

__all__ = ["VAEModel", "VAEModelOutput"]


@dataclass
class VAEModelOutput(BaseOutput):
    """``decoded`` holds logits (Bernoulli) or means (Gaussian) of p(x|z); mean/logvar parameterize q(z|x)."""

    decoded: torch.Tensor
    # Defaults let accelerate rebuild the output from a dict when it casts mixed-precision outputs to fp32.
    mean: torch.Tensor | None = None
    logvar: torch.Tensor | None = None
    latents: torch.Tensor | None = None


class VAEModel(ModelMixin, ConfigMixin):
    """Strided-conv encoder -> diagonal Gaussian q(z|x) -> transposed-conv decoder p(x|z).

    With ``num_classes > 0`` it is a conditional VAE (Sohn et al. 2015): a label embedding joins the encoder's
    features and the latent vector.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 1,  # 1 for grayscale digits, 3 for RGB
        image_size: int = 16,  # square inputs; must be divisible by 2 ** len(hidden_channels)
        latent_dim: int = 16,  # small latents suffice for 8-32 px images and keep interpolations smooth
        hidden_channels: tuple = (32, 64),  # one stride-2 conv per entry
        num_classes: int = 0,  # > 0 makes it a conditional VAE
        likelihood: str = "bernoulli",  # "bernoulli" (BCE on pixels in [0, 1]) or "gaussian" (learned sigma)
    ):
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
        factor = 2 ** len(hidden_channels)
        if image_size % factor or image_size < factor:
            raise ValueError(
                f"image_size {image_size} must be a multiple of {factor} (2 ** {len(hidden_channels)} downsamplings)"
            )
        self.feature_size = image_size // factor
        flat = hidden_channels[-1] * self.feature_size**2
        cond = latent_dim if num_classes else 0

        layers, c = [], in_channels
        for h in hidden_channels:
            layers += [nn.Conv2d(c, h, 4, stride=2, padding=1), nn.BatchNorm2d(h), nn.LeakyReLU(0.2)]
            c = h
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        self.label_embedding = nn.Embedding(num_classes, latent_dim) if num_classes else None
        self.to_moments = nn.Linear(flat + cond, 2 * latent_dim)

        self.from_latent = nn.Linear(latent_dim + cond, flat)
        layers = []
        widths = list(hidden_channels[::-1]) + [hidden_channels[0]]
        for h_in, h_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.ConvTranspose2d(h_in, h_out, 4, stride=2, padding=1), nn.BatchNorm2d(h_out), nn.ReLU()]
        self.decoder = nn.Sequential(*layers, nn.Conv2d(hidden_channels[0], in_channels, 3, padding=1))
        # Per-channel decoder scale for the Gaussian likelihood, learned as in sigma-VAE (Rybkin et al. 2021).
        self.log_scale = nn.Parameter(torch.zeros(in_channels)) if likelihood == "gaussian" else None

    def _condition(self, labels: torch.Tensor | None, batch: int) -> list[torch.Tensor]:
        if self.label_embedding is None:
            return []
        if labels is None:
            raise ValueError("this is a conditional VAE: pass `labels`")
        return [self.label_embedding(labels.reshape(batch))]

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x) for images in [-1, 1]."""
        h = torch.cat([self.encoder(x), *self._condition(labels, x.shape[0])], dim=1)
        mean, logvar = self.to_moments(h).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder output: pixel logits (Bernoulli) or pixel means in [-1, 1] (Gaussian)."""
        h = self.from_latent(torch.cat([z, *self._condition(labels, z.shape[0])], dim=1))
        h = h.view(z.shape[0], self.config.hidden_channels[-1], self.feature_size, self.feature_size)
        return self.decoder(h)

    def to_images(self, decoded: torch.Tensor) -> torch.Tensor:
        """Decoder output -> expected image in [-1, 1]."""
        if self.config.likelihood == "bernoulli":
            return torch.sigmoid(decoded) * 2 - 1
        return decoded.clamp(-1, 1)

    def log_likelihood(self, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per image, in nats. Bernoulli treats pixels (x+1)/2 in [0, 1] as targets."""
        if self.config.likelihood == "bernoulli":
            target = (x + 1) / 2
            ll = -F.binary_cross_entropy_with_logits(decoded, target, reduction="none")
        else:
            log_scale = self.log_scale.view(1, -1, 1, 1)
            ll = -0.5 * ((x - decoded) / log_scale.exp()) ** 2 - log_scale - 0.5 * math.log(2 * math.pi)
        return ll.flatten(1).sum(1)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, sample_posterior: bool = True
    ) -> VAEModelOutput:
        mean, logvar = self.encode(x, labels)
        # Reparameterization trick: z = mu + sigma * eps keeps the sample differentiable in mu and sigma.
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample_posterior else mean
        return VAEModelOutput(decoded=self.decode(z, labels), mean=mean, logvar=logvar, latents=z)


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per example, closed form (Kingma & Welling 2014, appendix B)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
