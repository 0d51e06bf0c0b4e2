"""Sample grids: images pasted side by side, for PNG files, trackers and demos."""

from __future__ import annotations

import math

import torch
from PIL import Image, ImageDraw

__all__ = ["make_grid", "scatter_image"]


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


def scatter_image(points, reference=None, *, size: int = 320, extent: float | None = None) -> Image.Image:
    """2-D points as dots (``reference`` points, e.g. the real data, in grey underneath), or 1-D points as a histogram
    (the reference's outline on top), on a square canvas covering +-``extent`` (default: all the points)."""
    pts = _points(points)
    ref = None if reference is None else _points(reference)
    if ref is not None and ref.shape[1] != pts.shape[1]:
        raise ValueError(f"points have {pts.shape[1]} values each and the reference {ref.shape[1]}")
    every = pts if ref is None else torch.cat([pts, ref])
    extent = extent or float(every.abs().max().clamp_min(1e-6)) * 1.1
    canvas = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([0, 0, size - 1, size - 1], outline=(180, 180, 180))
    if pts.shape[1] == 1:
        _histogram(draw, pts[:, 0], ref[:, 0] if ref is not None else None, size, extent)
    else:
        for group, colour in ((ref, (190, 190, 190)), (pts, (31, 119, 180))):
            if group is not None:
                for x, y in ((group + extent) / (2 * extent) * (size - 1)).tolist():
                    draw.ellipse([x - 1.5, size - 1 - y - 1.5, x + 1.5, size - 1 - y + 1.5], fill=colour)
    return canvas


def _points(points) -> torch.Tensor:
    pts = torch.as_tensor(points, dtype=torch.float32).detach().cpu()
    pts = pts.reshape(-1, 1) if pts.dim() == 1 else pts
    if pts.dim() != 2 or pts.shape[1] not in (1, 2) or not len(pts):
        raise ValueError(f"scatter draws (N, 1) or (N, 2) points, got shape {tuple(pts.shape)}")
    return pts


def _histogram(draw, values: torch.Tensor, reference: torch.Tensor | None, size: int, extent: float) -> None:
    bins = 64
    height = max(torch.histc(v, bins, -extent, extent).max().item() for v in (values, reference) if v is not None)
    for v, colour, fill in ((values, (31, 119, 180), True), (reference, (120, 120, 120), False)):
        if v is None:
            continue
        counts = torch.histc(v, bins, -extent, extent).tolist()
        width = size / bins
        for i, c in enumerate(counts):
            top = size - 1 - c / max(height, 1) * (size - 10)
            box = [i * width, top, (i + 1) * width - 1, size - 1]
            draw.rectangle(box, fill=colour if fill else None, outline=None if fill else colour)
