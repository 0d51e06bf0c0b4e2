"""genkit: train, share and show classic generative models on the Hugging Face stack."""

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
]


def load(path_or_repo_id: str, **kwargs):
    """Load any genkit model (local folder, Hub repo id, or offline cache) as its plugin's pipeline."""
    from genkit.io import load

    return load(path_or_repo_id, **kwargs)


# Importing the installed plugins lets each extend the libraries it builds on: the LSTM plugin registers its model
# with transformers' AutoConfig/AutoModelForCausalLM, so `import genkit` is all `pipeline("text-generation",
# model=folder)` needs. A plugin that fails to import is reported by the registry when used, never raised here.
import_plugin_modules()
