"""genkit: train, share and show classic generative models on the Hugging Face stack."""

import os

from genkit.errors import (
    ConfigError,
    DataError,
    GenkitError,
    PickleRefusedError,
    PluginError,
    TrainingError,
    WeightsError,
)
from genkit.plugin import DataInfo, OptimizerSpec, Plugin, PreparedData, StepContext
from genkit.plugin.registry import broken_plugins, get_plugin, import_plugin_modules, list_plugins
from genkit.version import __version__

__all__ = [
    "ConfigError",
    "DataError",
    "DataInfo",
    "GenkitError",
    "OptimizerSpec",
    "PickleRefusedError",
    "Plugin",
    "PluginError",
    "PreparedData",
    "StepContext",
    "TrainingError",
    "WeightsError",
    "__version__",
    "broken_plugins",
    "get_plugin",
    "list_plugins",
    "load",
    "plugin_of",
    "save",
    "train",
]


def train(
    plugin: str,
    dataset=None,
    *,
    preset: str = "small",
    output: str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    overwrite: bool = False,
    **settings,
):
    """Train a plugin's model in this process and return the trained pipeline (loaded back from its folder, which
    is ``pipeline.output_dir``), as ``genkit train`` would.

    ``dataset`` is a built-in name, a local path or a Hub id (as ``--dataset``), or in memory: a
    ``datasets.Dataset``/``DatasetDict``, or a list of PIL images or strings. ``settings`` are any trainer or plugin
    setting by its config name (``max_steps=200``, ``lr=1e-3``, ``latent_dim=8``, ...).
    """
    from genkit.config import TRAINER_DEFAULTS
    from genkit.config.resolve import resolve_config
    from genkit.plugin.opening import load as load_model
    from genkit.training.run import run_training

    for name, value in (("plugin", plugin), ("preset", preset)):
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a str, got {value!r}")
    for name, value in (("output", output), ("init_from", init_from), ("resume", resume)):
        if value is not None and (isinstance(value, bytes) or not isinstance(value, (str, os.PathLike))):
            raise ConfigError(f"{name} must be a folder path (a str or os.PathLike), got {value!r}")
    if not isinstance(overwrite, bool):
        raise ConfigError(f"overwrite must be True or False, got {overwrite!r}")
    family = get_plugin(plugin)
    unknown = sorted(set(settings) - set(TRAINER_DEFAULTS) - set(family.defaults) - {"dataset", "output"})
    if unknown:
        known = ", ".join(sorted(set(TRAINER_DEFAULTS) | set(family.defaults)))
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)} for plugin {plugin!r}; known: {known}")
    in_memory = dataset is not None and not isinstance(dataset, (str, os.PathLike))
    overrides = {**settings, "output": None if output is None else os.fspath(output)}
    if in_memory:
        from genkit.data import IN_MEMORY

        overrides["dataset"] = IN_MEMORY
    elif dataset is not None:
        overrides["dataset"] = os.fspath(dataset)
    init_from = None if init_from is None else os.fspath(init_from)
    resume = None if resume is None else os.fspath(resume)
    config = resolve_config(family, preset, overrides, init_from=init_from)
    folder = run_training(family, config, resume=resume, overwrite=overwrite, dataset=dataset if in_memory else None)
    pipeline = load_model(folder)
    pipeline.output_dir = folder
    return pipeline


def save(pipeline, path, *, overwrite: bool = False):
    """Save a genkit pipeline (one that ``genkit.load`` or ``genkit.train`` returned, perhaps changed since) so
    that ``genkit.load`` reads it back: the plugin's own format plus ``genkit.json`` (with the data and training
    settings of the folder it was loaded from), written beside ``path`` and swapped in. Into a training run's folder
    only the model files are replaced: its checkpoints, logs, samples, card and results stay. A folder that holds
    something else is refused unless ``overwrite``."""
    from pathlib import Path

    from genkit.io import (
        METADATA_FILE,
        STAGING_DIR,
        folder_lock,
        move_model_into,
        read_json,
        staged_folder,
        write_metadata,
    )
    from genkit.training.checkpoint import is_run_folder
    from genkit.validation import check_output_folder

    plugin = plugin_of(pipeline)
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise GenkitError(f"path must be a folder path (a str or os.PathLike), got {path!r}")
    run = is_run_folder(path)
    path = check_output_folder(path, own=run, overwrite=overwrite, what="path")
    source = Path(str(getattr(getattr(pipeline, "model", pipeline), "name_or_path", None) or "."))
    meta = read_json(source / METADATA_FILE) if (source / METADATA_FILE).is_file() else {}
    fields = {k: v for k, v in meta.items() if k in ("data", "config")}
    if run and any(Path(path).iterdir()):
        with folder_lock(path, what="path"):
            staging = Path(path) / STAGING_DIR
            with staged_folder(staging) as tmp:  # a whole new model first, then moved over the old model files
                plugin.save_pipeline(pipeline, tmp)
                write_metadata(tmp, plugin.name, saved_by="genkit.save", **fields)
            move_model_into(staging, Path(path))
        return path
    with staged_folder(path) as tmp:
        plugin.save_pipeline(pipeline, tmp)
        write_metadata(tmp, plugin.name, saved_by="genkit.save", **fields)
    return path


def plugin_of(pipeline):
    """The installed plugin whose package defines ``pipeline``'s class (for a transformers pipeline: its model's)."""
    obj = getattr(pipeline, "model", pipeline) if not hasattr(pipeline, "components") else pipeline
    top = type(obj).__module__.split(".")[0]
    for name in list_plugins():
        plugin = get_plugin(name)
        if type(plugin).__module__.split(".")[0] == top:
            return plugin
    raise GenkitError(f"no installed genkit plugin defines {type(obj).__name__} (module {type(obj).__module__})")


def load(path_or_repo_id: str, *, revision: str | None = None, torch_dtype=None):
    """Load any genkit model (local folder, Hub repo id, or offline cache) as its plugin's pipeline; ``revision``
    picks a Hub branch, tag or commit, ``torch_dtype`` casts the weights (as diffusers' ``from_pretrained``)."""
    from genkit.plugin.opening import load

    return load(path_or_repo_id, revision=revision, torch_dtype=torch_dtype)


# Importing the installed plugins lets each extend the libraries it builds on: the LSTM plugin registers its model
# with transformers' AutoConfig/AutoModelForCausalLM, so `import genkit` is all `pipeline("text-generation",
# model=folder)` needs. A plugin that fails to import is reported by the registry when used, never raised here.
import_plugin_modules()
