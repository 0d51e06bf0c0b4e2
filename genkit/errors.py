"""Errors that describe a user mistake. The CLI prints them as one line and exits with status 2."""

__all__ = [
    "ConfigError",
    "DataError",
    "GenkitError",
    "PickleRefusedError",
    "PluginError",
    "TrainingError",
    "WeightsError",
]


class GenkitError(Exception):
    """A mistake the user can fix; the message says how."""


class PluginError(GenkitError):
    """A plugin could not be imported or does not satisfy the contract."""


class DataError(GenkitError):
    """Unknown data source, missing column, empty data."""


class ConfigError(GenkitError):
    """A config file with a missing or invalid field, or a bad combination of options."""


class WeightsError(GenkitError):
    """A weights file that is truncated, corrupt or does not match its config."""


class PickleRefusedError(WeightsError):
    """genkit loads safetensors only; pickle files can run arbitrary code when loaded."""


class TrainingError(GenkitError):
    """Training cannot go on (e.g. the loss became NaN); the message names the step and last good checkpoint."""
