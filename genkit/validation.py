"""Checks of user-given values, done once where a value enters (the config of a run, a CLI flag, a file).

A numeric setting is declared with its type and an interval written the way it reads in an error message, e.g.
``(int, "[1, 1e9]")`` or ``(float, "(0, 10]")``: brackets include the bound, parentheses exclude it.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from genkit.errors import ConfigError, GenkitError

__all__ = ["check_limits", "check_output_folder", "check_value", "flag"]

_INTERVAL = re.compile(r"^([\[(])\s*([^,\s]+)\s*,\s*([^\])\s]+)\s*([\])])$")


def flag(key: str) -> str:
    """The command-line spelling of a config key."""
    return "--" + key.replace("_", "-")


def check_value(name: str, value: Any, kind: type, interval: str) -> None:
    """Raise ConfigError unless ``value`` is a ``kind`` (int or float) inside ``interval``."""
    m = _INTERVAL.match(interval)
    if m is None:
        raise ValueError(f"bad interval {interval!r} for {name}")
    low, high = float(m.group(2)), float(m.group(3))
    what = "an integer" if kind is int else "a number"
    ok_type = isinstance(value, int) if kind is int else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise ConfigError(f"{name} must be {what} in {interval}, got {value!r}")
    value = float(value)
    inside = (
        not math.isnan(value)
        and (value >= low if m.group(1) == "[" else value > low)
        and (value <= high if m.group(4) == "]" else value < high)
    )
    if not inside:
        raise ConfigError(f"{name} must be {what} in {interval}, got {value:g}")


def check_limits(config: dict[str, Any], limits: dict[str, tuple[type, str]]) -> None:
    """Check every key of ``limits`` that ``config`` sets (None means "not set"); a list is checked entry by entry."""
    for key, (kind, interval) in limits.items():
        value = config.get(key)
        if isinstance(value, (list, tuple)):  # e.g. channels per level: every entry must fit
            for v in value:
                check_value(flag(key), v, kind, interval)
        elif value is not None:
            check_value(flag(key), value, kind, interval)


def check_output_folder(
    path: str | Path, *, own: bool, overwrite: bool, what: str = "--output", source: Path | None = None
) -> Path:
    """Refuse an output path that is a file, unwritable, or a non-empty folder that is not genkit's own output.

    ``own`` says whether the folder's content is this command's own earlier output (then it may be written into);
    ``source`` is the model folder a command reads, which its output may never replace.
    """
    path = Path(path)
    if source is not None and path.exists() and path.resolve() == Path(source).resolve():
        raise GenkitError(f"{what} must be another folder than the model's own")
    if path.exists() and not path.is_dir():
        raise GenkitError(f"{what} {str(path)!r} is a file; give a folder")
    parent = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise GenkitError(f"{what} {str(path)!r} cannot be written ({str(parent)!r} is not a writable folder)")
    if path.is_dir() and any(path.iterdir()) and not own and not overwrite:
        raise GenkitError(
            f"{what} {str(path)!r} is a non-empty folder that genkit did not write; choose another folder, or pass "
            "--overwrite to write into it anyway"
        )
    return path
