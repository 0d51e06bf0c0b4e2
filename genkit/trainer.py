"""Moved to ``genkit.training`` (the trainer) and ``genkit.config`` (settings, a run's config); this path stays so
that plugins written against earlier docs run unchanged."""

from genkit.config import TRAINER_DEFAULTS, TRAINER_LIMITS
from genkit.config.resolve import resolve_config
from genkit.training.loader import EpochSampler
from genkit.training.run import run_training
from genkit.training.trainer import Trainer

__all__ = ["TRAINER_DEFAULTS", "TRAINER_LIMITS", "EpochSampler", "Trainer", "resolve_config", "run_training"]
