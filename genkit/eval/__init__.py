"""Evaluation that every image family shares: Fréchet distance, precision/recall and class metrics in the feature
space of a small domain network (``genkit.eval.metrics``)."""
