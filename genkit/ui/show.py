"""Pictures a notebook shows by itself: ``genkit.show(images)`` is a grid that renders as PNG in a notebook cell
(small images enlarged with square pixels), and ``genkit.scatter(points)`` draws 1-D or 2-D points. Neither needs
matplotlib; both are PIL images underneath (``.image``)."""

from __future__ import annotations

import io
import math

import PIL.Image
import torch

from genkit.data.grid import make_grid, scatter_image
from genkit.errors import GenkitError
from genkit.images import tensor_to_pil

__all__ = ["Picture", "scatter", "show"]

MIN_SIDE = 256  # small grids are enlarged by a whole factor to at least this many pixels across


class Picture:
    """A picture a notebook renders (``_repr_png_``); ``.image`` is the PIL image, ``.save(path)`` writes it."""

    def __init__(self, image: PIL.Image.Image, title: str | None = None):
        self.image, self.title = image, title

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()

    def save(self, path) -> None:
        self.image.save(path)

    def __repr__(self) -> str:
        return f"<genkit picture {self.image.width}x{self.image.height}{f': {self.title}' if self.title else ''}>"


def show(images, nrow: int | None = None, scale: int | None = None, title: str | None = None) -> Picture:
    """A grid of ``images`` (PIL images, or a tensor (N, C, H, W) / (C, H, W) in [-1, 1]), ``nrow`` per row, enlarged
    ``scale`` times (default: the smallest whole factor that makes it ``MIN_SIDE`` pixels wide). Points (an (N, 1)
    or (N, 2) tensor) are drawn with ``scatter``."""
    if isinstance(images, torch.Tensor) and images.dim() == 2 and images.shape[1] <= 2:
        return scatter(images, title=title)
    if isinstance(images, torch.Tensor):
        images = tensor_to_pil(images)
    if isinstance(images, PIL.Image.Image):
        images = [images]
    images = list(images)
    if not images or not all(isinstance(im, PIL.Image.Image) for im in images):
        raise GenkitError("show takes PIL images, an image tensor in [-1, 1], or points (N, 1) or (N, 2)")
    grid = make_grid(images, nrow=nrow)
    factor = scale if scale is not None else max(1, math.ceil(MIN_SIDE / grid.width))
    if factor > 1:
        grid = grid.resize((grid.width * factor, grid.height * factor), PIL.Image.NEAREST)
    return Picture(grid, title)


def scatter(
    points, reference=None, *, size: int = 320, extent: float | None = None, title: str | None = None
) -> Picture:
    """2-D points as dots (``reference`` points, e.g. the real data, in grey underneath), or 1-D points as a histogram
    (the reference's outline on top), on a square canvas covering +-``extent`` (default: all the points)."""
    return Picture(scatter_image(points, reference, size=size, extent=extent), title)
