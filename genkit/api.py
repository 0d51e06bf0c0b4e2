"""The Python API, what a notebook calls: ``genkit.train``, ``genkit.load``, ``genkit.save``, ``genkit.register``,
``genkit.read_history``. Each runs what the ``genkit`` command runs, and answers a mistake with a ``GenkitError``
that names the Python spelling (``overwrite=True``)."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

from genkit.config import TRAINER_DEFAULTS
from genkit.config.resolve import resolve_config
from genkit.data import IN_MEMORY
from genkit.errors import ConfigError, GenkitError
from genkit.io import (
    METADATA_FILE,
    STAGING_DIR,
    folder_lock,
    move_model_into,
    read_json,
    staged_folder,
    write_metadata,
)
from genkit.plugin.opening import load as open_and_load
from genkit.plugin.registry import get_plugin, in_process_origin, list_plugins, register
from genkit.training.checkpoint import is_run_folder
from genkit.training.history import read_history
from genkit.training.progress import quiet_libraries
from genkit.training.run import run_training
from genkit.validation import check_output_folder, python_spelling

__all__ = ["load", "plugin_of", "read_history", "register", "save", "train"]


def _path(name: str, value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{name} must be a folder path (a str or os.PathLike), got {value!r}")
    return os.fspath(value)


def train(
    plugin,
    dataset=None,
    *,
    preset: str = "small",
    output: str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **settings,
):
    """Train a plugin's model in this process and return the trained pipeline (loaded back from its folder, which
    is ``pipeline.output_dir``; its logged scalars are ``pipeline.history``), as ``genkit train`` would.

    ``plugin`` is an installed plugin's name, or a ``genkit.Plugin`` subclass or instance defined here (a notebook
    cell): it is registered (``genkit.register``) and checked like an installed one. ``dataset`` is a built-in name,
    a local path or a Hub id (as ``--dataset``), or in memory: a ``datasets.Dataset``/``DatasetDict``, a list of PIL
    images or strings, or an (N, D) array of points. ``settings`` are any trainer or plugin setting by its config name
    (``max_steps=200``, ``lr=1e-3``, ``latent_dim=8``, ...); ``progress=False`` trains without progress output.
    """
    if not isinstance(plugin, str) and not inspect.isclass(plugin) and not hasattr(plugin, "training_step"):
        raise ConfigError(
            "plugin must be a str (an installed plugin's name) or a genkit.Plugin subclass or instance, "
            f"got {type(plugin).__name__}"
        )
    family = get_plugin(plugin) if isinstance(plugin, str) else register(plugin)
    if not isinstance(preset, str):
        raise ConfigError(f"preset must be a str, got {preset!r}")
    if not isinstance(overwrite, bool) or not isinstance(progress, bool):
        raise ConfigError(f"overwrite and progress must be True or False, got {overwrite!r} and {progress!r}")
    unknown = sorted(set(settings) - set(TRAINER_DEFAULTS) - set(family.defaults) - {"dataset", "output"})
    if unknown:
        known = ", ".join(sorted(set(TRAINER_DEFAULTS) | set(family.defaults)))
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)} for plugin {family.name!r}; known: {known}")
    in_memory = dataset is not None and not isinstance(dataset, (str, os.PathLike))
    overrides = {**settings, "output": _path("output", output)}
    overrides["dataset"] = IN_MEMORY if in_memory else _path("dataset", dataset)
    with python_spelling(), quiet_libraries():
        config = resolve_config(family, preset, overrides, init_from=_path("init_from", init_from))
        folder = run_training(
            family,
            config,
            resume=_path("resume", resume),
            overwrite=overwrite,
            dataset=dataset if in_memory else None,
            progress=progress,
        )
        pipeline = open_and_load(folder)
    pipeline.output_dir = folder
    pipeline.history = read_history(folder)
    return pipeline


def save(pipeline, path, *, overwrite: bool = False):
    """Save a genkit pipeline (one that ``genkit.load`` or ``genkit.train`` returned, perhaps changed since) so
    that ``genkit.load`` reads it back: the plugin's own format plus ``genkit.json`` (with the data and training
    settings of the folder it was loaded from), written beside ``path`` and swapped in. Into a training run's folder
    only the model files are replaced: its checkpoints, logs, samples, card and results stay. A folder that holds
    something else is refused unless ``overwrite``."""
    plugin = plugin_of(pipeline)
    path = Path(_path("path", path) or ".")
    run = is_run_folder(path)
    with python_spelling():
        check_output_folder(path, own=run, overwrite=overwrite, what="path")
    source = Path(str(getattr(getattr(pipeline, "model", pipeline), "name_or_path", None) or "."))
    meta = read_json(source / METADATA_FILE) if (source / METADATA_FILE).is_file() else {}
    fields = {k: v for k, v in meta.items() if k in ("data", "config", "in_process")}
    if in_process_origin(plugin.name):
        fields["in_process"] = in_process_origin(plugin.name)
    if run and any(path.iterdir()):
        with folder_lock(path, what="path"):
            staging = path / STAGING_DIR
            with staged_folder(staging) as tmp:  # a whole new model first, then moved over the old model files
                plugin.save_pipeline(pipeline, tmp)
                write_metadata(tmp, plugin.name, saved_by="genkit.save", **fields)
            move_model_into(staging, path)
        return path
    with staged_folder(path) as tmp:
        plugin.save_pipeline(pipeline, tmp)
        write_metadata(tmp, plugin.name, saved_by="genkit.save", **fields)
    return path


def plugin_of(pipeline):
    """The plugin that made ``pipeline``: the one it names (an in-process plugin's pipeline does), else the installed
    plugin whose package defines its class (for a transformers pipeline: its model's)."""
    named = getattr(pipeline, "plugin_name", None)
    if isinstance(named, str):
        return get_plugin(named)
    obj = getattr(pipeline, "model", pipeline) if not hasattr(pipeline, "components") else pipeline
    top = type(obj).__module__.split(".")[0]
    for name in list_plugins():
        plugin = get_plugin(name)
        if type(plugin).__module__.split(".")[0] == top:
            return plugin
    raise GenkitError(f"no installed genkit plugin defines {type(obj).__name__} (module {type(obj).__module__})")


def load(path_or_repo_id, *, revision: str | None = None, torch_dtype=None):
    """Load any genkit model (local folder, Hub repo id, or offline cache) as its plugin's pipeline; ``revision``
    picks a Hub branch, tag or commit, ``torch_dtype`` casts the weights (as diffusers' ``from_pretrained``). The
    scalars its training logged are ``pipeline.history`` when the folder holds them."""
    pipeline = open_and_load(path_or_repo_id, revision=revision, torch_dtype=torch_dtype)
    folder = Path(str(getattr(getattr(pipeline, "model", pipeline), "name_or_path", "") or ""))
    if (folder / "logs" / "history.jsonl").is_file():
        pipeline.history = read_history(folder)
    return pipeline
