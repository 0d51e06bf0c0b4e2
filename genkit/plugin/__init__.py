"""Plugins: the contract a model family implements (``contract``), the registry that discovers them through entry
points (``registry``), opening a saved model through its plugin (``opening``), and the diffusers pipeline base whose
folders carry their own code (``pipeline``).

The names a plugin imports live here: ``from genkit.plugin import Plugin, StepContext, ...``.
"""

from genkit.plugin.contract import (
    REQUIRED_HOOKS,
    DataInfo,
    OptimizerSpec,
    Plugin,
    PreparedData,
    StepContext,
    check_base_classes,
)

__all__ = [
    "DataInfo",
    "OptimizerSpec",
    "Plugin",
    "PreparedData",
    "REQUIRED_HOOKS",
    "StepContext",
    "check_base_classes",
]
