"""Toy vector data sets for the course's small models (an MLP GAN or flow on 2-D points), and the measures of how
many of their modes a model's samples cover.

``ring``: 8 Gaussians on a circle of radius 2; ``grid``: 25 on a 5 x 5 grid with spacing 2 (both with standard
deviation 0.05, the standard mode-collapse pictures of Metz et al. 2017 and Srivastava et al. 2017); ``moons``:
scikit-learn's two moons (noise 0.05); ``mixture1d``: three 1-D Gaussians at -2, 0 and 3 with weights 0.3, 0.5, 0.2.
Every one is seeded and sized by ``num_samples`` (default 10,000).
"""

from __future__ import annotations

import math

import datasets
import numpy as np
import torch

from genkit.errors import DataError

__all__ = ["TOY_MODES", "TOY_SOURCES", "mode_coverage", "toy_points"]

TOY_SOURCES = ("ring", "grid", "moons", "mixture1d")
DEFAULT_SAMPLES = 10_000
STD = 0.05  # of each Gaussian of ring and grid


def _ring_centres() -> np.ndarray:
    angles = np.arange(8) * 2 * math.pi / 8
    return 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _grid_centres() -> np.ndarray:
    axis = np.arange(-2, 3) * 2.0
    return np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)


# The modes of each toy set and the standard deviation around them (None: no discrete modes).
TOY_MODES = {
    "ring": (_ring_centres(), STD),
    "grid": (_grid_centres(), STD),
    "mixture1d": (np.array([[-2.0], [0.0], [3.0]]), 0.3),
    "moons": None,
}
_MIXTURE_WEIGHTS = np.array([0.3, 0.5, 0.2])


def toy_points(name: str, num_samples: int | None = None, seed: int = 0) -> datasets.Dataset:
    """``num_samples`` points of toy set ``name`` as a dataset with one ``points`` column (lists of floats)."""
    if name not in TOY_MODES:
        raise DataError(f"unknown toy set {name!r}; toy sets: {', '.join(TOY_MODES)}")
    n = num_samples or DEFAULT_SAMPLES
    rng = np.random.default_rng(seed)
    if name == "moons":
        from sklearn.datasets import make_moons

        points, _ = make_moons(n, noise=0.05, random_state=seed)
    elif name == "mixture1d":
        centres, std = TOY_MODES[name]
        which = rng.choice(len(centres), size=n, p=_MIXTURE_WEIGHTS)
        points = centres[which] + std * rng.standard_normal((n, 1))
    else:
        centres, std = TOY_MODES[name]
        points = centres[rng.integers(0, len(centres), n)] + std * rng.standard_normal((n, 2))
    return datasets.Dataset.from_dict({"points": points.astype(np.float32).tolist()})


def mode_coverage(samples: torch.Tensor, name: str) -> dict[str, float]:
    """How a model's samples cover toy set ``name``'s modes (Srivastava et al. 2017, VEEGAN, Sec. 5.1): a sample is
    of high quality within 3 standard deviations of a mode; a mode is covered when at least a fifth of its share of
    the samples lands there (1/5 of 1/8 for the ring). Returns ``modes_covered`` (a count), ``modes`` (how many
    there are) and ``high_quality`` (the fraction of samples near some mode)."""
    modes = TOY_MODES.get(name)
    if modes is None:
        return {}
    centres, std = modes
    points = samples.detach().float().cpu().reshape(len(samples), -1).numpy()
    distance = np.linalg.norm(points[:, None, :] - centres[None, :, :], axis=-1)
    nearest, near = distance.argmin(1), distance.min(1) < 3 * std
    counts = np.bincount(nearest[near], minlength=len(centres))
    covered = int((counts >= 0.2 * len(points) / len(centres)).sum())
    return {"modes_covered": covered, "modes": len(centres), "high_quality": float(near.mean())}
