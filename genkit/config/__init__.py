"""A run's settings: the trainer's settings declared once (defaults, presets' values, limits, help), and the resolved
config of one run (trainer < plugin < preset < fine-tuning base < explicit values)."""

from genkit.config.settings import TRAINER_DEFAULTS, TRAINER_LIMITS

__all__ = ["TRAINER_DEFAULTS", "TRAINER_LIMITS"]
