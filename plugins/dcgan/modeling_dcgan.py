"""DCGAN generator and discriminator (Radford et al. 2015, https://arxiv.org/abs/1511.06434) as diffusers components.

Both networks work for any square image size that is a power of two from 8 to 128: the generator grows a 4x4 map by
one stride-2 transposed convolution per doubling, the discriminator mirrors it with stride-2 convolutions. With
``num_classes > 0`` the pair is class-conditional (Mirza & Osindero 2014): the generator concatenates a label
embedding to the latent vector, the discriminator reads the label as one-hot planes concatenated to the image.
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

__all__ = ["IMAGE_SIZES", "DCGANDiscriminator", "DCGANGenerator", "check_image_size", "gradient_penalty"]

IMAGE_SIZES = (8, 16, 32, 64, 128)
INIT_STD = 0.02  # Radford et al. 2015, Sec. 4: "all weights were initialized from N(0, 0.02)"


def check_image_size(image_size: int) -> int:
    """Number of stride-2 layers (log2(size) - 2) for a supported size; ValueError otherwise."""
    if image_size not in IMAGE_SIZES:
        raise ValueError(
            f"image size {image_size} is not supported: DCGAN needs a power of two from 8 to 128 "
            f"({', '.join(map(str, IMAGE_SIZES))})"
        )
    return int(math.log2(image_size)) - 2


def _init_weights(module: nn.Module) -> None:
    """Convolutions ~ N(0, 0.02); BatchNorm scale ~ N(1, 0.02) and shift 0, as in the DCGAN reference code."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, INIT_STD)
            nn.init.zeros_(m.bias)


class DCGANGenerator(ModelMixin, ConfigMixin):
    """z (B, latent_dim) -> 4x4 map -> stride-2 transposed convs with BatchNorm + ReLU -> tanh image in [-1, 1]."""

    @register_to_config
    def __init__(
        self,
        latent_dim: int = 100,  # Radford et al. use a 100-d uniform z; we draw it from N(0, I)
        image_size: int = 64,  # a power of two from 8 to 128; 64 is the paper's size
        out_channels: int = 3,  # 1 for grayscale, 3 for RGB
        base_channels: int = 64,  # channels before the output layer; doubled at every coarser resolution
        num_classes: int = 0,  # > 0: class-conditional generator
    ):
        super().__init__()
        n = check_image_size(image_size)
        # A label embedding the size of z, concatenated to it (Mirza & Osindero 2014).
        self.label_embedding = nn.Embedding(num_classes, latent_dim) if num_classes else None
        in_dim = latent_dim * (2 if num_classes else 1)
        channels = [base_channels * 2 ** (n - 1 - i) for i in range(n)]  # e.g. 512, 256, 128, 64 for 64 px
        # 1. project z to a 4x4 map (a "fractionally-strided" conv of kernel 4 on a 1x1 input)
        layers = [nn.ConvTranspose2d(in_dim, channels[0], 4, 1, 0, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU()]
        # 2. double the resolution n - 1 times, halving the channels
        for c_in, c_out in zip(channels, channels[1:], strict=False):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        # 3. last doubling to the image, no BatchNorm on the output layer (Radford et al., Sec. 3), tanh to [-1, 1]
        layers += [nn.ConvTranspose2d(channels[-1], out_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        _init_weights(self)

    def forward(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, C, S, S) in [-1, 1] for latents (B, latent_dim); conditional models need ``labels`` (B,)."""
        z = latents.reshape(latents.shape[0], -1)
        if self.label_embedding is not None:
            if labels is None:
                raise ValueError(f"this generator is conditional: pass labels in 0..{self.config.num_classes - 1}")
            z = torch.cat([z, self.label_embedding(labels.reshape(-1))], dim=1)
        elif labels is not None:
            raise ValueError("this generator is unconditional; it takes no labels")
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(ModelMixin, ConfigMixin):
    """Image -> stride-2 convs with LeakyReLU(0.2) -> 4x4 map -> one realness logit (or critic value) per image."""

    @register_to_config
    def __init__(
        self,
        image_size: int = 64,  # must match the generator's
        in_channels: int = 3,
        base_channels: int = 64,  # channels of the first conv; doubled at every coarser resolution
        num_classes: int = 0,  # > 0: conditional, the label enters as one-hot input planes
        normalization: str = "batch",  # "batch" (DCGAN) | "layer": WGAN-GP's critic must not use BatchNorm
        loss: str = "bce",  # what it was trained with: "bce" -> output is a logit, "wgan-gp" -> a critic value
    ):
        super().__init__()
        n = check_image_size(image_size)
        if normalization not in ("batch", "layer"):
            raise ValueError(f"normalization must be 'batch' or 'layer', got {normalization!r}")
        if loss not in ("bce", "wgan-gp"):
            raise ValueError(f"loss must be 'bce' or 'wgan-gp', got {loss!r}")
        channels = [base_channels * 2**i for i in range(n)]  # e.g. 64, 128, 256, 512 for 64 px
        # 1. first conv without normalization (Radford et al., Sec. 3)
        # A conditional discriminator sees the class as K one-hot planes next to the image (Mirza & Osindero 2014).
        layers = [nn.Conv2d(in_channels + num_classes, channels[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
        # 2. halve the resolution down to 4x4, doubling the channels
        for c_in, c_out in zip(channels, channels[1:], strict=False):
            # GroupNorm with one group normalizes each image over (C, H, W): layer norm, which Gulrajani et al.
            # 2017 (Sec. 4) recommend for the critic, since the penalty is defined per image, not per batch.
            norm = nn.BatchNorm2d(c_out) if normalization == "batch" else nn.GroupNorm(1, c_out)
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), norm, nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        # 3. a 4x4 conv reads the whole 4x4 map out to one number
        self.readout = nn.Conv2d(channels[-1], 1, 4, 1, 0, bias=False)
        _init_weights(self)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """One score per image (B,): a logit of P(real) for "bce", an unbounded critic value for "wgan-gp"."""
        k = self.config.num_classes
        if k:
            if labels is None:
                raise ValueError(f"this discriminator is conditional: pass labels in 0..{k - 1}")
            planes = torch.nn.functional.one_hot(labels.reshape(-1), k).to(images.dtype)[:, :, None, None]
            images = torch.cat([images, planes.expand(-1, -1, *images.shape[2:])], dim=1)
        elif labels is not None:
            raise ValueError("this discriminator is unconditional; it takes no labels")
        return self.readout(self.features(images)).reshape(-1)


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP penalty E[(||grad_x critic(x_hat)||_2 - 1)^2] at x_hat = eps * real + (1 - eps) * fake, eps ~ U[0, 1]
    per image (Gulrajani et al. 2017, Algorithm 1). The graph is kept so the penalty trains the critic.

    It runs in float32 with autocast off: under fp16 mixed precision the double backward's small gradients would
    underflow (PyTorch's AMP examples scale them by hand instead, but the loss scaler belongs to the trainer)."""
    with torch.autocast(real.device.type, enabled=False):
        real, fake = real.detach().float(), fake.detach().float()
        if eps is None:
            eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).float().sum(), x_hat, create_graph=True)
        return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
