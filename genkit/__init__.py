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
from genkit.registry import broken_plugins, get_plugin, list_plugins

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
