"""Moved to ``genkit.ui.demo``; this path stays so that plugins written against earlier docs run unchanged."""

from genkit.ui.demo import *  # noqa: F403
from genkit.ui.demo import __all__  # noqa: F401
