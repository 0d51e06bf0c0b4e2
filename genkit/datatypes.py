"""Moved to ``genkit.types``; this path stays so that plugins written against earlier docs run unchanged."""

from genkit.types import *  # noqa: F403
from genkit.types import __all__  # noqa: F401
