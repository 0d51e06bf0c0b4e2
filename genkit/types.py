"""The data types a plugin's ``prepare_data`` returns (re-exported by ``genkit`` and ``genkit.plugin``).

A module of their own so that ``genkit.data`` (which builds them) and ``genkit.plugin`` (whose hooks take them) do
not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["DataInfo", "PreparedData"]


@dataclass
class DataInfo:
    """What the data says about the model to build; saved into the model's metadata."""

    task: str  # "image" or "text"
    dataset: str  # the source as the user named it
    num_channels: int | None = None
    image_size: int | None = None
    num_classes: int | None = None  # None for unlabelled data
    class_names: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # family-specific facts (vocabulary size, ...)


@dataclass
class PreparedData:
    """Torch datasets ready for a DataLoader, plus what they say about the model to build."""

    train: torch.utils.data.Dataset
    test: torch.utils.data.Dataset
    info: DataInfo
    # What the training loader reads when ``Plugin.augment`` turns it into ``train``'s images (--random-crop: the
    # images at their stored size, cut down at random); None: ``train`` itself.
    train_raw: torch.utils.data.Dataset | None = None
    # Optional hand-off of plugin-made artefacts to ``to_pipeline`` (e.g. a tokenizer built from the corpus).
    artefacts: dict[str, Any] = field(default_factory=dict)
