"""Plugin discovery through the ``genkit.plugins`` entry-point group, the same way for built-in and third-party."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from genkit.errors import GenkitError, PluginError
from genkit.plugin.contract import is_plugin_class, missing_hooks

__all__ = [
    "ENTRY_POINT_GROUP",
    "broken_plugins",
    "get_plugin",
    "import_plugin_modules",
    "in_process_origin",
    "is_plugin",
    "list_plugins",
    "refresh",
    "register",
]

ENTRY_POINT_GROUP = "genkit.plugins"


@dataclass
class _Entry:
    name: str
    source: str  # "<distribution> (<module:attr>)", for messages
    entry_point: EntryPoint
    plugin: object | None = None
    error: str | None = None


_entries: dict[str, _Entry] | None = None


def _source(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    dist_name = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
    return f"{dist_name} ({ep.value})"


def _discover() -> dict[str, _Entry]:
    global _entries
    if _entries is None:
        found: dict[str, _Entry] = {}
        seen: set[tuple[str, str]] = set()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            entry = _Entry(ep.name, _source(ep), ep)
            if (ep.name, ep.value) in seen:
                # The same object declared again: a distribution seen twice on sys.path, or one left behind by a
                # rename (genkit-hf was installed as "genkit" before) that points to the same code.
                continue
            seen.add((ep.name, ep.value))
            if ep.name in found:
                warnings.warn(
                    f"genkit plugin {ep.name!r} is declared twice: by {found[ep.name].source} and by {entry.source}; "
                    f"using the first",
                    stacklevel=2,
                )
                continue
            found[ep.name] = entry
        _entries = found
    return _entries


def refresh() -> None:
    """Forget what was discovered, so newly installed plugins are found."""
    global _entries
    _entries = None


def import_plugin_modules() -> None:
    """Import every installed plugin's module, so that plugins which extend other libraries when imported (the LSTM
    registers its model with transformers' Auto classes) have done so once ``import genkit`` returns.

    A module already in ``sys.modules`` is skipped: it is imported, or being imported right now (a plugin package
    imported before genkit imports genkit in turn). Failures are not raised here: the registry reports them, with
    their cause, when the plugin is listed or asked for.
    """
    for entry in _discover().values():
        module = entry.entry_point.module
        if module not in sys.modules:
            try:
                importlib.import_module(module)
            except Exception:  # reported by _load() on first use, with its cause
                pass


def _load(entry: _Entry) -> object | None:
    if entry.plugin is not None or entry.error is not None:
        return entry.plugin
    try:
        obj = entry.entry_point.load()
    except Exception as exc:  # a broken plugin must not break the others
        entry.error = f"failed to import: {type(exc).__name__}: {exc}"
        warnings.warn(f"genkit plugin {entry.name!r} from {entry.source} {entry.error}", stacklevel=3)
        return None
    if is_plugin_class(obj):
        obj = obj()
    missing = missing_hooks(obj)
    if missing:
        entry.error = f"does not satisfy the plugin contract: missing {', '.join(missing)}"
        warnings.warn(f"genkit plugin {entry.name!r} from {entry.source} {entry.error}", stacklevel=3)
        return None
    if obj.name != entry.name:
        entry.error = f"declares name {obj.name!r} but its entry point is named {entry.name!r}"
        warnings.warn(f"genkit plugin {entry.name!r} from {entry.source} {entry.error}", stacklevel=3)
        return None
    entry.plugin = obj
    return obj


# ---- plugins defined in this process (a notebook cell, a script) -------------------------------------------------
_in_process: dict[str, object] = {}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def register(plugin):
    """Register a plugin defined in this process (a ``genkit.Plugin`` subclass or instance, e.g. from a notebook
    cell) under its ``name``, after the same contract check as an installed plugin's; returns the plugin object.
    Registering a name again (a re-run cell) replaces the earlier one; an installed plugin's name is refused."""
    if not inspect.isclass(plugin) and not hasattr(plugin, "training_step"):
        raise PluginError(f"genkit.register takes a genkit.Plugin subclass or instance, got {type(plugin).__name__}")
    name = getattr(plugin, "name", None)
    what = plugin.__name__ if inspect.isclass(plugin) else type(plugin).__name__
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(f"plugin {what} needs a name of lowercase letters, digits, '-' and '_', got {name!r}")
    missing = missing_hooks(plugin)
    if missing:
        raise PluginError(
            f"plugin {name!r} ({what}) does not satisfy the plugin contract: missing {', '.join(missing)}"
        )
    if name in _discover():
        raise PluginError(
            f"plugin name {name!r} belongs to the installed plugin {_discover()[name].source}; give yours another name"
        )
    obj = plugin() if is_plugin_class(plugin) else plugin
    _in_process[name] = obj
    return obj


def in_process_origin(name: str) -> str | None:
    """``module.Class`` of an in-process plugin, None for an installed one: recorded with what it saves."""
    plugin = _in_process.get(name)
    return None if plugin is None else f"{type(plugin).__module__}.{type(plugin).__qualname__}"


def list_plugins() -> list[str]:
    """Names of the plugins that load and satisfy the contract (installed and in-process), sorted."""
    installed = {name for name, entry in _discover().items() if _load(entry) is not None}
    return sorted(installed | set(_in_process))


def broken_plugins() -> dict[str, str]:
    """Plugins that are declared but could not be used: name -> "<source>: <reason>"."""
    out = {}
    for name, entry in _discover().items():
        if _load(entry) is None:
            out[name] = f"{entry.source}: {entry.error}"
    return out


def is_plugin(name: str) -> bool:
    return name in list_plugins()


def get_plugin(name: str):
    """The plugin object registered under ``name``; a clear error for unknown or broken names."""
    if name in _in_process:
        return _in_process[name]
    entries = _discover()
    if name not in entries:
        known = ", ".join(list_plugins()) or "none installed"
        raise GenkitError(f"unknown plugin {name!r}; known plugins: {known}")
    entry = entries[name]
    plugin = _load(entry)
    if plugin is None:
        raise PluginError(f"plugin {name!r} from {entry.source} {entry.error}")
    return plugin
