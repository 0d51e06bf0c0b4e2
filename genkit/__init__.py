"""genkit: train, share and show classic generative models on the Hugging Face stack."""

import importlib.metadata as _metadata
import warnings as _warnings

from genkit.api import load, plugin_of, read_history, save, train
from genkit.errors import (
    ConfigError,
    DataError,
    GenkitError,
    PickleRefusedError,
    PluginError,
    TrainingError,
    WeightsError,
)
from genkit.lab import SimplePipeline, SimplePlugin
from genkit.plugin import DataInfo, OptimizerSpec, Plugin, PreparedData, StepContext
from genkit.plugin.registry import broken_plugins, get_plugin, import_plugin_modules, list_plugins, register
from genkit.training.history import plot_history
from genkit.ui.show import scatter, show
from genkit.version import DISTRIBUTION, __version__

__all__ = [
    "DISTRIBUTION",
    "ConfigError",
    "DataError",
    "DataInfo",
    "GenkitError",
    "OptimizerSpec",
    "PickleRefusedError",
    "Plugin",
    "PluginError",
    "PreparedData",
    "SimplePipeline",
    "SimplePlugin",
    "StepContext",
    "TrainingError",
    "WeightsError",
    "__version__",
    "broken_plugins",
    "get_plugin",
    "list_plugins",
    "load",
    "plot_history",
    "plugin_of",
    "read_history",
    "register",
    "save",
    "scatter",
    "show",
    "train",
]


# Importing the installed plugins lets each extend the libraries it builds on: the LSTM plugin registers its model
# with transformers' AutoConfig/AutoModelForCausalLM, so `import genkit` is all `pipeline("text-generation",
# model=folder)` needs. A plugin that fails to import is reported by the registry when used, never raised here.
import_plugin_modules()


def _warn_if_the_other_genkit_is_installed() -> None:
    """PyPI's ``genkit`` (an unrelated SDK) imports as ``genkit`` too: with both installed, one's files shadow or
    overwrite the other's. Say so once, at import, with the fix."""
    try:
        other = _metadata.distribution("genkit")
    except _metadata.PackageNotFoundError:
        return
    if "classic generative models" in (other.metadata["Summary"] or ""):
        return  # this project, installed before it was named genkit-hf
    _warnings.warn(
        f"the unrelated package 'genkit' {other.version} is installed beside {DISTRIBUTION} and imports under the "
        "same name; if genkit misbehaves: "
        f"pip uninstall -y genkit && pip install --force-reinstall --no-deps {DISTRIBUTION}",
        stacklevel=2,
    )


_warn_if_the_other_genkit_is_installed()
