"""Sample grids: images pasted side by side, for PNG files, trackers and demos."""

from __future__ import annotations

import math

from PIL import Image

__all__ = ["make_grid"]


def make_grid(images: list[Image.Image], nrow: int | None = None) -> Image.Image:
    """Paste images into a grid, ``nrow`` per row (default: a square-ish grid), with a 2-pixel white border."""
    if not images:
        raise ValueError("make_grid needs at least one image")
    border = 2
    nrow = nrow or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / nrow)
    width, height = max(im.width for im in images), max(im.height for im in images)
    mode = "L" if all(im.mode == "L" for im in images) else "RGB"
    grid = Image.new(mode, (nrow * (width + border) + border, rows * (height + border) + border), "white")
    for i, im in enumerate(images):
        row, col = divmod(i, nrow)
        grid.paste(im.convert(mode), (border + col * (width + border), border + row * (height + border)))
    return grid
