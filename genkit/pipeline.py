"""Moved to ``genkit.plugin.pipeline``; this path stays so that plugins written against earlier docs run unchanged."""

from genkit.plugin.pipeline import *  # noqa: F403
from genkit.plugin.pipeline import __all__  # noqa: F401
