"""``genkit train``'s flags, generated from the trainer's settings (``genkit.config.settings.SETTINGS``) and the
plugin's own (``Plugin.add_arguments``), with each default and preset value in ``--help``."""

from __future__ import annotations

import argparse
from typing import Any

from genkit.config.settings import SETTINGS, Setting

__all__ = ["RUN_ALIASES", "add_train_arguments", "known_spellings"]

GROUPS = {
    "data": "data",
    "training": "training",
    "speed": "speed (GPU; docs/benchmarks.md measures each)",
    "Hub": "Hub",
}
# Options of a run that are not settings of its config: which plugin, preset and base, and whether to resume.
RUN_ALIASES = {"--resume": ("--resume_from_checkpoint",)}


def known_spellings() -> set[str]:
    """Every flag spelled with underscores on purpose (the diffusers/transformers scripts' spellings): the parser
    turns any other ``--a_b`` into ``--a-b``."""
    return {a for s in SETTINGS for a in s.aliases} | {a for aliases in RUN_ALIASES.values() for a in aliases}


def _described(setting: Setting, plugin) -> str:
    """The flag's help with its default (the plugin's, when it changes it) and what each preset sets it to."""
    if plugin is None:
        default = setting.default
    elif setting.name == "dataset":
        default = plugin.default_dataset
    else:
        default = plugin.defaults.get(setting.name, setting.default)
    if default is None:
        default = setting.unset
    text = f"default: {default}"
    if plugin is not None:
        presets = ", ".join(f"{name}: {p[setting.name]}" for name, p in plugin.presets.items() if setting.name in p)
        text += f"; {presets}" if presets else ""
    return f"{setting.help} ({text})"


def _flag_options(setting: Setting) -> dict[str, Any]:
    """``add_argument`` keywords: every flag defaults to None ("not given"), so that the preset fills it."""
    if setting.kind is bool:
        if setting.option.startswith("--no-"):
            return {"action": "store_false", "default": None}
        return {"action": argparse.BooleanOptionalAction if setting.negatable else "store_true", "default": None}
    options: dict[str, Any] = {"default": None, "type": None if setting.kind is str else setting.kind}
    if setting.choices:
        options["choices"] = setting.choices
    return options


def add_train_arguments(parser: argparse.ArgumentParser, plugin=None) -> None:
    """The run's options, one flag per trainer setting, and with ``plugin`` the plugin's flags and presets."""
    parser.add_argument("plugin", help="model family: see `genkit list`")
    groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()}
    run = groups["training"]
    run.add_argument("--preset", default="small", help="tiny (tests) | small (CPU default) | base (GPU)")
    run.add_argument(
        "--resume", *RUN_ALIASES["--resume"], help="'latest' or a checkpoint folder: continue an interrupted run"
    )
    run.add_argument("--init-from", help="start from a saved model (folder or Hub id) instead of random weights")
    run.add_argument("--overwrite", action="store_true", help="start afresh in an output folder that holds a run")
    exclusive: dict[str, Any] = {}
    for setting in SETTINGS:
        group = groups[setting.group]
        if setting.exclusive:
            if setting.exclusive not in exclusive:
                exclusive[setting.exclusive] = group.add_mutually_exclusive_group()
            group = exclusive[setting.exclusive]
        group.add_argument(
            setting.option,
            *setting.aliases,
            dest=setting.name,
            help=_described(setting, plugin),
            **_flag_options(setting),
        )
    if plugin is not None:
        plugin.add_arguments(parser.add_argument_group(f"{plugin.name} options"))
        parser.epilog = "presets: " + "; ".join(
            f"{name} = {', '.join(f'{k}={v}' for k, v in p.items())}" for name, p in plugin.presets.items()
        )
