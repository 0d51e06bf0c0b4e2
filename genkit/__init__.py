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
from genkit.registry import broken_plugins, get_plugin, import_plugin_modules, list_plugins

__version__ = "0.1.0"

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
    "train",
]


def train(
    plugin: str,
    dataset=None,
    *,
    preset: str = "small",
    output: str | None = None,
    init_from: str | None = None,
    resume: str | None = None,
    overwrite: bool = False,
    **settings,
):
    """Train a plugin's model in this process and return the trained pipeline (loaded back from its folder, which
    is ``pipeline.output_dir``), as ``genkit train`` would.

    ``dataset`` is a built-in name, a local path or a Hub id (as ``--dataset``), or in memory: a
    ``datasets.Dataset``/``DatasetDict``, or a list of PIL images or strings. ``settings`` are any trainer or plugin
    setting by its config name (``max_steps=200``, ``lr=1e-3``, ``latent_dim=8``, ...).
    """
    from genkit.errors import ConfigError
    from genkit.io import load as load_model
    from genkit.registry import get_plugin
    from genkit.trainer import TRAINER_DEFAULTS, resolve_config, run_training

    family = get_plugin(plugin)
    unknown = sorted(set(settings) - set(TRAINER_DEFAULTS) - set(family.defaults) - {"dataset", "output"})
    if unknown:
        known = ", ".join(sorted(set(TRAINER_DEFAULTS) | set(family.defaults)))
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)} for plugin {plugin!r}; known: {known}")
    in_memory = dataset is not None and not isinstance(dataset, (str, os.PathLike))
    overrides = {**settings, "output": None if output is None else str(output)}
    if in_memory:
        from genkit.data import IN_MEMORY

        overrides["dataset"] = IN_MEMORY
    elif dataset is not None:
        overrides["dataset"] = str(dataset)
    config = resolve_config(family, preset, overrides, init_from=init_from)
    folder = run_training(family, config, resume=resume, overwrite=overwrite, dataset=dataset if in_memory else None)
    pipeline = load_model(folder)
    pipeline.output_dir = folder
    return pipeline


def load(path_or_repo_id: str, **kwargs):
    """Load any genkit model (local folder, Hub repo id, or offline cache) as its plugin's pipeline."""
    from genkit.io import load

    return load(path_or_repo_id, **kwargs)


# Importing the installed plugins lets each extend the libraries it builds on: the LSTM plugin registers its model
# with transformers' AutoConfig/AutoModelForCausalLM, so `import genkit` is all `pipeline("text-generation",
# model=folder)` needs. A plugin that fails to import is reported by the registry when used, never raised here.
import_plugin_modules()
