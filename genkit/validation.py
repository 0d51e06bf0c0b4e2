"""Checks of user-given values, done once where a value enters (the config of a run, a CLI flag, a file).

A numeric setting is declared with its type and an interval written the way it reads in an error message, e.g.
``(int, "[1, 1e9]")`` or ``(float, "(0, 10]")``: brackets include the bound, parentheses exclude it.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import re
from pathlib import Path
from typing import Any

from genkit.errors import ConfigError, GenkitError

__all__ = ["check_limits", "check_output_folder", "check_value", "flag", "option", "python_spelling"]

_INTERVAL = re.compile(r"^([\[(])\s*([^,\s]+)\s*,\s*([^\])\s]+)\s*([\])])$")


_PYTHON = contextvars.ContextVar("genkit_python_spelling", default=False)


@contextlib.contextmanager
def python_spelling():
    """Inside, messages name settings as ``genkit.train`` takes them (``lr``, ``overwrite=True``), not as flags."""
    token = _PYTHON.set(True)
    try:
        yield
    finally:
        _PYTHON.reset(token)


def flag(key: str) -> str:
    """A config key as the user gave it: ``--key-name`` on the command line, ``key_name`` from Python."""
    return key if _PYTHON.get() else "--" + key.replace("_", "-")


def option(key: str, value: str | None = None) -> str:
    """A setting with its value as the user would write it: ``--resume latest`` / ``resume="latest"``, and for a
    switch ``--overwrite`` / ``overwrite=True``."""
    if _PYTHON.get():
        return f"{key}={value!r}" if value is not None else f"{key}=True"
    return flag(key) + (f" {value}" if value is not None else "")


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
    path: str | Path, *, own: bool, overwrite: bool, what: str | None = None, source: Path | None = None
) -> Path:
    """Refuse an output path that is a file, unwritable, or a non-empty folder that is not genkit's own output.

    ``own`` says whether the folder's content is this command's own earlier output (then it may be written into);
    ``source`` is the model folder a command reads, which its output may never replace.
    """
    path, what = Path(path), what or flag("output")
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
            f"{option('overwrite')} to write into it anyway"
        )
    return path
