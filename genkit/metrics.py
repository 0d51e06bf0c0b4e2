"""Moved to ``genkit.eval.metrics``; this path stays so that plugins written against earlier docs run unchanged."""

from genkit.eval.metrics import *  # noqa: F403
from genkit.eval.metrics import __all__  # noqa: F401
