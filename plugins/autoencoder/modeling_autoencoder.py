"""A convolutional autoencoder with a deterministic code, as a diffusers model component, and the corruptions of a
denoising autoencoder.

One model serves the course's variants: plain, denoising (Vincent et al. 2008: corrupt the input, reconstruct the
clean image), sparse (an L1 penalty on ReLU codes, or the KL-to-target-rate penalty on sigmoid codes of Ng's sparse
autoencoder notes) and contractive (Rifai et al. 2011: the squared Frobenius norm of the encoder's Jacobian). The
variant changes the code's activation and the loss; the loss lives in the plugin, the penalties here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "NOISES",
    "AutoencoderModel",
    "AutoencoderOutput",
    "contractive_penalty",
    "corrupt",
    "kl_sparsity_penalty",
]

ACTIVATIONS = ("linear", "relu", "sigmoid")  # the code's: plain/denoising/contractive, sparse L1, sparse KL
NOISES = ("gaussian", "masking", "salt-pepper")


@dataclass
class AutoencoderOutput(BaseOutput):
    """``decoded``: pixel logits (``reconstruction="bce"``) or pixel values in [-1, 1] (``"mse"``); ``code``: h(x)."""

    decoded: torch.Tensor
    code: torch.Tensor | None = None  # a default lets accelerate rebuild the output from a dict in mixed precision


class AutoencoderModel(ModelMixin, ConfigMixin):
    """Strided-conv encoder -> code h(x) of ``code_dim`` values -> transposed-conv decoder.

    No batch normalization: each image's code depends on that image alone, so the contractive penalty's Jacobian is
    per image, and a code is the same in training and evaluation. ``code_mean`` and ``code_std`` (buffers, saved with
    the weights) hold a diagonal Gaussian fitted to the training codes after training: decoding draws from it is how
    an autoencoder "samples", and why a VAE does better (its prior is part of training).
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 16,  # square; a multiple of 2 ** len(hidden_channels)
        code_dim: int = 16,  # any size: 2 gives a code plane to plot
        hidden_channels: tuple = (32, 64),  # one stride-2 conv per entry
        code_activation: str = "linear",  # "linear" | "relu" (sparse, L1) | "sigmoid" (sparse, KL to a target rate)
        reconstruction: str = "bce",  # "bce" (pixels in [0, 1] as Bernoulli targets) | "mse"
    ):
        super().__init__()
        if code_activation not in ACTIVATIONS:
            raise ValueError(f"code_activation must be one of {', '.join(ACTIVATIONS)}, got {code_activation!r}")
        if reconstruction not in ("bce", "mse"):
            raise ValueError(f"reconstruction must be 'bce' or 'mse', got {reconstruction!r}")
        factor = 2 ** len(hidden_channels)
        if image_size % factor or image_size < factor:
            raise ValueError(
                f"image_size {image_size} must be a multiple of {factor} (2 ** {len(hidden_channels)} downsamplings)"
            )
        self.feature_size = image_size // factor
        flat = hidden_channels[-1] * self.feature_size**2
        layers, c = [], in_channels
        for h in hidden_channels:
            layers += [nn.Conv2d(c, h, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c = h
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, code_dim))
        if code_activation == "relu":
            # Every ReLU unit starts active: from a zero bias, units that start below 0 never get a gradient, and on
            # digits at 16 px the whole code died within 100 steps even without the L1 penalty (docs/autoencoder.md).
            nn.init.constant_(self.encoder[-1].bias, 0.5)
        self.from_code = nn.Linear(code_dim, flat)
        layers = []
        widths = [*hidden_channels[::-1], hidden_channels[0]]
        for h_in, h_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.ReLU(), nn.ConvTranspose2d(h_in, h_out, 4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*layers, nn.ReLU(), nn.Conv2d(hidden_channels[0], in_channels, 3, padding=1))
        self.register_buffer("code_mean", torch.zeros(code_dim))
        self.register_buffer("code_std", torch.ones(code_dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code h(x) of images in [-1, 1]: (N, code_dim)."""
        h = self.encoder(x)
        if self.config.code_activation == "relu":
            return F.relu(h)
        return torch.sigmoid(h) if self.config.code_activation == "sigmoid" else h

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        h = self.from_code(code).view(code.shape[0], self.config.hidden_channels[-1], self.feature_size, -1)
        return self.decoder(h)

    def to_images(self, decoded: torch.Tensor) -> torch.Tensor:
        """Decoder output -> image in [-1, 1]."""
        return torch.sigmoid(decoded) * 2 - 1 if self.config.reconstruction == "bce" else decoded.clamp(-1, 1)

    def reconstruction_loss(self, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per image, the mean over pixels of BCE (targets (x + 1) / 2) or of the squared error in [0, 1] units."""
        if self.config.reconstruction == "bce":
            loss = F.binary_cross_entropy_with_logits(decoded, (x + 1) / 2, reduction="none")
        else:
            loss = ((decoded - x) / 2) ** 2
        return loss.flatten(1).mean(1)

    def forward(self, x: torch.Tensor) -> AutoencoderOutput:
        code = self.encode(x)
        return AutoencoderOutput(decoded=self.decode(code), code=code)


def corrupt(x: torch.Tensor, noise: str, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A denoising autoencoder's input: images in [-1, 1] with ``noise`` of ``strength``.

    ``gaussian``: x + strength * N(0, 1), clipped to [-1, 1]. ``masking``: a fraction ``strength`` of the pixels set
    to 0 (black; every channel of a pixel together), as the course's masking noise. ``salt-pepper``: a fraction
    ``strength`` of the pixels set to black or white, half each.
    """
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {', '.join(NOISES)}, got {noise!r}")
    if not 0 <= strength <= (10 if noise == "gaussian" else 1):
        bound = "10 (a standard deviation)" if noise == "gaussian" else "1 (a fraction of the pixels)"
        raise ValueError(f"{noise} noise strength must be in [0, {bound}], got {strength}")

    def uniform(shape):
        return torch.rand(shape, generator=generator).to(x.device, x.dtype)

    if noise == "gaussian":
        drawn = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
        return (x + strength * drawn).clamp(-1, 1)
    pixels = (x.shape[0], 1, *x.shape[2:])
    hit = uniform(pixels) < strength
    if noise == "masking":
        return torch.where(hit, torch.full_like(x, -1.0), x)
    salt = (uniform(pixels) < 0.5).to(x.dtype) * 2 - 1  # +1 white, -1 black
    return torch.where(hit, salt.expand_as(x), x)


def kl_sparsity_penalty(code: torch.Tensor, target: float) -> torch.Tensor:
    """sum_j KL(rho || rho_hat_j), rho_hat_j the mean activation of sigmoid unit j over the batch (Ng, "Sparse
    autoencoder", CS294A notes, 2011, section 3)."""
    rho_hat = code.mean(0).clamp(1e-6, 1 - 1e-6)
    rho = torch.as_tensor(target, dtype=code.dtype, device=code.device)
    return (rho * (rho / rho_hat).log() + (1 - rho) * ((1 - rho) / (1 - rho_hat)).log()).sum()


def contractive_penalty(code: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean over images of ||dh(x)/dx||_F^2, the encoder Jacobian's squared Frobenius norm, for ``code`` computed from
    ``x`` (a tensor that requires grad). Exact: one backward pass per code unit; each image's code depends on that
    image alone (no batch statistics), so summing the unit over the batch gives every image's gradient at once. The
    cost grows with code_dim."""
    total = x.new_zeros(())
    for j in range(code.shape[1]):
        (grad,) = torch.autograd.grad(code[:, j].sum(), x, create_graph=True)
        total = total + grad.pow(2).sum()
    return total / x.shape[0]
