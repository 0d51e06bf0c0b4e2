"""Differentiable augmentation for GAN training (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient
GAN Training", https://arxiv.org/abs/2006.10738): the same random transformation family is applied to real and
generated images every time the discriminator sees them, in both phases, so the discriminator cannot memorise a small
training set and the generator still gets gradients through the transformation. The three policies of the paper,
written here for images in [-1, 1] of shape (B, C, H, W); each image draws its own parameters.

Written for genkit rather than imported: the reference implementation is a script in the paper's repository, not a
package, and kornia's augmentation module (the nearest well-kept library) would be a heavy dependency for three short
transformations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["POLICIES", "diff_augment", "parse_policy"]


def _color(x: torch.Tensor) -> torch.Tensor:
    """Brightness +U(-0.5, 0.5), saturation x U(0, 2) (colour images), contrast x U(0.5, 1.5), per image."""
    shape = (x.shape[0], 1, 1, 1)
    x = x + (torch.rand(shape, device=x.device, dtype=x.dtype) - 0.5)
    if x.shape[1] > 1:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (torch.rand(shape, device=x.device, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(shape, device=x.device, dtype=x.dtype) + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size in each direction (whole pixels), filling with zeros."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] + dy  # (B, H, 1): the source row of each target row
    cols = torch.arange(w, device=x.device)[None, None, :] + dx  # (B, 1, W)
    padded = F.pad(x, (1, 1, 1, 1))  # index 0 and -1 of the padded image are zeros
    rows = (rows + 1).clamp(0, h + 1).expand(b, h, w)
    cols = (cols + 1).clamp(0, w + 1).expand(b, h, w)
    batch = torch.arange(b, device=x.device)[:, None, None].expand(b, h, w)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` times the image's size at a random place (it may stick out of the image)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device) - cw // 2
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES = {"color": _color, "translation": _translation, "cutout": _cutout}


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """``"color,translation,cutout"`` -> its names, checked; None, "" or "none" -> no augmentation."""
    if (policy or "").strip().lower() == "none":
        return ()
    names = tuple(p.strip() for p in (policy or "").split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {', '.join(unknown)}; known: {', '.join(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """``x`` through each transformation of ``policy`` in order; differentiable with respect to ``x``."""
    for name in policy:
        x = POLICIES[name](x)
    return x
