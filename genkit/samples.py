"""Sample files: a PNG grid for image plugins, a text file for text plugins."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_samples"]


def write_samples(plugin, pipeline, path: str | Path, n: int = 64, seed: int = 0, **kwargs):
    """Write ``n`` samples to ``path``; returns the grid image (or None for text)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = plugin.sample(pipeline, n, seed=seed, **kwargs)
    if plugin.task == "text":
        path.write_text("\n\n----\n\n".join(samples) + "\n")
        return None
    from genkit.data import make_grid

    grid = make_grid(samples)
    grid.save(path)
    return grid
