"""Opening a saved model through its plugin: the one way genkit loads a model (``genkit.load``, the CLI, demos,
Spaces), checking the folder once before anything of it is built."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genkit.errors import GenkitError, PluginError
from genkit.io.checks import check_folder, checked, validate_pipeline_folder
from genkit.io.folder import read_metadata, resolve
from genkit.plugin.registry import get_plugin

__all__ = ["OpenedModel", "load", "load_opened", "open_model"]


@dataclass
class OpenedModel:
    """A model folder that has been resolved and checked once: where it is, its genkit.json, its plugin."""

    folder: Path
    meta: dict[str, Any]
    plugin: Any  # genkit.Plugin


def open_model(path_or_repo_id: str | os.PathLike, revision: str | None = None) -> OpenedModel:
    """The one way genkit opens a model (``genkit.load``, the CLI, demos, Spaces): resolve the folder, Hub id or
    cached id, read its metadata, and check its files and configs against its plugin's classes — once."""

    folder = resolve(path_or_repo_id, revision=revision)
    check_folder(folder)  # before any file of it is read
    meta = read_metadata(folder)
    plugin = _plugin_for(folder, meta)
    validate_pipeline_folder(folder, plugin.pipeline_class)
    return OpenedModel(folder=folder, meta=meta, plugin=plugin)


def _plugin_for(folder: Path, meta: dict[str, Any]):
    """The plugin that saved ``folder``; for one defined in a notebook or script and not registered in this process,
    an error that says what to run."""
    try:
        return get_plugin(meta["plugin"])
    except PluginError:
        raise
    except GenkitError:
        origin = meta.get("in_process")
        if not isinstance(origin, str):
            raise
        cls = origin.rsplit(".", 1)[-1]
        raise PluginError(
            f"{folder} was trained with plugin {meta['plugin']!r}, defined in a notebook or script ({origin}) and not "
            f"registered in this process: run the code that defines {cls}, then genkit.register({cls}) (or install a "
            f"package that provides plugin {meta['plugin']!r}), and load it again"
        ) from None


def load_opened(model: OpenedModel):
    """The pipeline of an opened model; its plugin's loader does not check the folder a second time."""
    with checked(model.folder):
        return model.plugin.load_pipeline(model.folder)


def load(path_or_repo_id: str | os.PathLike, revision: str | None = None, torch_dtype: torch.dtype | None = None):
    """Load a genkit model from a folder, a Hub repo id, or the offline cache, as its plugin's pipeline; with
    ``torch_dtype`` (``torch.float16``, ``torch.bfloat16``, ...) its weights are cast to that type, as in diffusers."""
    if isinstance(path_or_repo_id, bytes) or not isinstance(path_or_repo_id, (str, os.PathLike)):
        raise GenkitError(f"genkit.load takes a folder or a Hub repo id (a str or path), got {path_or_repo_id!r}")
    if revision is not None and not isinstance(revision, str):
        raise GenkitError(f"revision must be a str (a branch, tag or commit), got {revision!r}")
    if torch_dtype is not None and not (isinstance(torch_dtype, torch.dtype) and torch_dtype.is_floating_point):
        raise GenkitError(
            f"torch_dtype must be a floating-point torch.dtype such as torch.float16, got {torch_dtype!r}"
        )
    pipeline = load_opened(open_model(path_or_repo_id, revision=revision))
    if torch_dtype is not None:
        (pipeline.model if hasattr(pipeline, "model") else pipeline).to(torch_dtype)
    return pipeline
