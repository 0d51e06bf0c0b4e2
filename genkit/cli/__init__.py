"""The ``genkit`` command (``main``) and ``genkit check-plugin`` (``check_plugin``)."""

from genkit.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
