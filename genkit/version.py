"""genkit's version, at the bottom of the import graph so that anything can record it (genkit.json, Space cards)."""

__version__ = "0.1.0"
# The distribution (pip) name; the import name is genkit. PyPI's "genkit" is an unrelated SDK that also imports as
# genkit: installing both puts two packages in one folder.
DISTRIBUTION = "genkit-hf"
