"""genkit's version, at the bottom of the import graph so that anything can record it (genkit.json, Space cards)."""

__version__ = "0.1.0"
