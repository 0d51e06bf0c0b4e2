"""A multi-scale normalizing flow for images as a diffusers model component: RealNVP's affine couplings with
checkerboard and channel masks, squeeze and factor-out (Dinh et al. 2017, https://arxiv.org/abs/1605.08803), or
Glow's steps of actnorm, invertible 1x1 convolution and affine coupling (Kingma & Dhariwal 2018,
https://arxiv.org/abs/1807.03039).

The model maps dequantized pixels y in [0, 1)^D to Gaussian codes z and back, exactly: ``log p(y) = log N(z; 0, I) +
log |det dz/dy|``, summed layer by layer. Images enter as y = (pixel + u) / 256 with u ~ U[0, 1) (uniform
dequantization), then y -> logit(alpha + (1 - 2 alpha) y), as in RealNVP; bits per dimension of the 8-bit data are
``-(log p(y) - D log 256) / (D log 2)``, an upper bound on the discrete data's negative log-likelihood.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

__all__ = ["ARCHITECTURES", "FlowModel", "bits_per_dim", "dequantize", "log_prob_of_code"]

ARCHITECTURES = ("realnvp", "glow")
LEVELS = 256  # 8-bit pixels


def dequantize(x: torch.Tensor, generator: torch.Generator | None = None, noise: bool = True) -> torch.Tensor:
    """Images in [-1, 1] (8-bit pixels p = (x + 1) * 127.5) -> y = (p + u) / 256 in [0, 1): u ~ U[0, 1) (training and
    evaluation), or u = 0.5 (``noise=False``, the centre of each pixel's bin: a deterministic code)."""
    pixels = ((x.float() + 1) * 127.5).round().clamp(0, LEVELS - 1)
    u = torch.rand(x.shape, generator=generator).to(x.device) if noise else torch.full_like(pixels, 0.5)
    return ((pixels + u) / LEVELS).to(x.dtype)


def bits_per_dim(log_prob: torch.Tensor, dims: int) -> torch.Tensor:
    """Bits per dimension of 8-bit data from log p(y) of its dequantized version y:
    -(log p(y) - D log 256) / (D log 2)."""
    return -(log_prob - dims * math.log(LEVELS)) / (dims * math.log(2))


def log_prob_of_code(z: torch.Tensor, logdet: torch.Tensor) -> torch.Tensor:
    """log p(y) from the flow's output: log N(z; 0, I) + log|det dz/dy| (the change of variables), per image."""
    return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(1) + logdet


# ---- layers: each maps (x, logdet) -> (y, logdet + log|det dy/dx|) and back ----------------------------------------
class CouplingNet(nn.Module):
    """s and t of an affine coupling from the conditioning half: three 3x3 convolutions, the last zero-initialized so
    every coupling starts as the identity; s = scale * tanh(raw) keeps the first steps stable (RealNVP, Sec. 4.1)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, 2 * out_channels, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(1, out_channels, 1, 1))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = self.net(h).chunk(2, dim=1)
        return self.scale * torch.tanh(raw_s), t


class CheckerboardCoupling(nn.Module):
    """y = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x)), b a checkerboard of 1s and 0s (``parity`` swaps them)."""

    def __init__(self, channels: int, hidden: int, parity: int):
        super().__init__()
        self.parity = parity
        self.net = CouplingNet(channels + 1, channels, hidden)  # the mask itself is an input channel

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        grid = torch.arange(h, device=x.device).view(-1, 1) + torch.arange(w, device=x.device).view(1, -1)
        return ((grid + self.parity) % 2).to(x.dtype).view(1, 1, h, w)

    def _st(self, x, b):
        s, t = self.net(torch.cat([x * b, b.expand(x.shape[0], 1, -1, -1)], dim=1))
        return s * (1 - b), t * (1 - b)

    def forward(self, x, logdet):
        b = self._mask(x)
        s, t = self._st(x, b)
        return x * s.exp() + t, logdet + s.flatten(1).sum(1)

    def inverse(self, y):
        b = self._mask(y)
        s, t = self._st(y, b)  # b * y == b * x: the conditioning half passes unchanged
        return (y - t) * (-s).exp()


class ChannelCoupling(nn.Module):
    """One part of the channels scales and shifts the rest: the first ``C // 2`` (``parity`` 0) or the last
    ``C // 2`` (``parity`` 1)."""

    def __init__(self, channels: int, hidden: int, parity: int):
        super().__init__()
        self.parity = parity
        self.half, self.rest = channels // 2, channels - channels // 2
        self.net = CouplingNet(self.half, self.rest, hidden)

    def _split(self, x):
        if self.parity == 0:
            return x[:, : self.half], x[:, self.half :]
        return x[:, self.rest :], x[:, : self.rest]

    def _join(self, cond, other):
        return torch.cat([cond, other] if self.parity == 0 else [other, cond], 1)

    def forward(self, x, logdet):
        cond, other = self._split(x)
        s, t = self.net(cond)
        return self._join(cond, other * s.exp() + t), logdet + s.flatten(1).sum(1)

    def inverse(self, y):
        cond, other = self._split(y)
        s, t = self.net(cond)
        return self._join(cond, (other - t) * (-s).exp())


class ActNorm(nn.Module):
    """Glow's per-channel affine map y = (x + b) * exp(log_scale). Glow sets it from the first batch's statistics;
    here it starts as the identity, which stays correct when several processes train (each would see another first
    batch) and when a run resumes."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x, logdet):
        y = (x + self.bias) * self.log_scale.exp()
        return y, logdet + self.log_scale.sum() * x.shape[2] * x.shape[3]

    def inverse(self, y):
        return y * (-self.log_scale).exp() - self.bias


class InvertibleConv1x1(nn.Module):
    """Glow's channel mixing: W starts as a random rotation; log|det| = H * W * log|det W|."""

    def __init__(self, channels: int, seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
        self.weight = nn.Parameter(q)

    def forward(self, x, logdet):
        y = F.conv2d(x, self.weight.view(*self.weight.shape, 1, 1))
        return y, logdet + torch.linalg.slogdet(self.weight.double())[1].to(x.dtype) * x.shape[2] * x.shape[3]

    def inverse(self, y):
        inverse = torch.linalg.inv(self.weight.double()).to(y.dtype)
        return F.conv2d(y, inverse.view(*inverse.shape, 1, 1))


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(C, H, W) -> (4C, H/2, W/2): each 2x2 block of pixels becomes 4 channels (volume preserving)."""
    n, c, h, w = x.shape
    return x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, 2 * h, 2 * w)


# ---- the model -------------------------------------------------------------------------------------------------
class FlowModel(ModelMixin, ConfigMixin):
    """An invertible map from dequantized images y to Gaussian codes z, in ``num_scales`` scales.

    RealNVP, per scale: 3 checkerboard couplings, squeeze, 3 channel couplings, then half of the channels leave as a
    part of z (the last scale: 4 checkerboard couplings). Glow, per scale: squeeze, ``steps_per_scale`` x (actnorm,
    invertible 1x1 convolution, channel coupling), then half of the channels leave (not after the last scale).
    ``encode`` returns z flattened to (N, C * H * W), the factored-out parts in order.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 16,
        architecture: str = "realnvp",
        num_scales: int = 2,
        steps_per_scale: int = 4,  # glow: flow steps per scale (realnvp's scales have 3 + 3, the last 4)
        hidden_channels: int = 64,
        alpha: float = 0.05,  # y -> logit(alpha + (1 - 2 alpha) y): keeps the logit finite at 0 and 1
    ):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")
        squeezes = num_scales if architecture == "glow" else num_scales - 1
        if image_size % 2**squeezes:
            raise ValueError(
                f"image_size {image_size} must be a multiple of {2**squeezes} ({architecture} with {num_scales} "
                "scales halves it that many times)"
            )
        self.scales = nn.ModuleList()
        c = in_channels
        for scale in range(num_scales):
            last = scale == num_scales - 1
            layers = nn.ModuleList()
            if architecture == "realnvp":
                for i in range(4 if last else 3):
                    layers.append(CheckerboardCoupling(c, hidden_channels, i % 2))
                if not last:
                    layers.append(nn.Identity())  # the squeeze's place
                    c *= 4
                    for i in range(3):
                        layers.append(ChannelCoupling(c, hidden_channels, i % 2))
            else:
                layers.append(nn.Identity())
                c *= 4
                for i in range(steps_per_scale):
                    layers.extend([ActNorm(c), InvertibleConv1x1(c, seed=1000 * scale + i)])
                    layers.append(ChannelCoupling(c, hidden_channels, i % 2))
            self.scales.append(layers)
            if not last:
                c -= c // 2  # the first c // 2 channels leave as a part of z

    # ---- y <-> z -------------------------------------------------------------------------------------------------
    def _to_logit(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.config.alpha
        s = a + (1 - 2 * a) * y
        logdet = (math.log(1 - 2 * a) - s.log() - (1 - s).log()).flatten(1).sum(1)
        return s.log() - (1 - s).log(), logdet

    def _from_logit(self, h: torch.Tensor) -> torch.Tensor:
        a = self.config.alpha
        return ((torch.sigmoid(h) - a) / (1 - 2 * a)).clamp(0, 1)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z flattened (N, D), log|det dz/dy| (N,)) for dequantized images y in [0, 1)."""
        h, logdet = self._to_logit(y)
        parts = []
        for scale, layers in enumerate(self.scales):
            for layer in layers:
                if isinstance(layer, nn.Identity):
                    h = squeeze(h)
                else:
                    h, logdet = layer(h, logdet)
            if scale < len(self.scales) - 1:
                k = h.shape[1] // 2
                parts.append(h[:, :k].flatten(1))
                h = h[:, k:]
        parts.append(h.flatten(1))
        return torch.cat(parts, 1), logdet

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """log p(y) per image, in nats: log N(z; 0, I) + log|det dz/dy| (the change of variables)."""
        return log_prob_of_code(*self(y))

    def _shapes(self) -> list[tuple[int, int, int]]:
        """The (C, H, W) of each part of z, in order."""
        c, size, shapes = self.config.in_channels, self.config.image_size, []
        for scale in range(self.config.num_scales):
            if self.config.architecture == "glow" or scale < self.config.num_scales - 1:
                c, size = c * 4, size // 2
            if scale < self.config.num_scales - 1:
                shapes.append((c // 2, size, size))
                c -= c // 2
        shapes.append((c, size, size))
        return shapes

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Dequantized images y in [0, 1] from flattened codes z: the exact inverse of ``forward``."""
        shapes = self._shapes()
        sizes = [math.prod(s) for s in shapes]
        parts = [p.reshape(-1, *s) for p, s in zip(z.split(sizes, dim=1), shapes, strict=True)]
        h = parts[-1]
        for scale in reversed(range(len(self.scales))):
            if scale < len(self.scales) - 1:
                h = torch.cat([parts[scale], h], 1)
            for layer in reversed(self.scales[scale]):
                h = unsqueeze(h) if isinstance(layer, nn.Identity) else layer.inverse(h)
        return self._from_logit(h)
