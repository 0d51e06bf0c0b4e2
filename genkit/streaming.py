"""Moved to ``genkit.data.streaming``; this path stays so that plugins written against earlier docs run unchanged."""

from genkit.data.streaming import *  # noqa: F403
from genkit.data.streaming import __all__  # noqa: F401
