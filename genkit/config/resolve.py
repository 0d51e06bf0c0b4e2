"""One run's config: the trainer's defaults < the plugin's defaults < the preset < a fine-tuning base's settings <
the values given (flags, or ``genkit.train`` keywords), each checked once, here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genkit.config.settings import IMAGE_ONLY, SETTINGS, TRAINER_DEFAULTS, TRAINER_LIMITS
from genkit.errors import ConfigError
from genkit.io import PUSH_REPO_ID, resolve
from genkit.validation import check_limits, flag

__all__ = ["resolve_config"]


def resolve_config(plugin, preset: str, overrides: dict[str, Any], init_from: str | None = None) -> dict[str, Any]:
    """Trainer defaults < plugin defaults < preset < a fine-tuning base's settings < explicit command-line values
    (None means "not given"). An explicit value that would change the base (``init_from``: a folder, Hub id or cached
    id) is refused. An explicit ``epochs`` wins over a preset's ``max_steps``; giving both is an error.
    """
    if preset not in plugin.presets:
        raise ConfigError(f"unknown preset {preset!r} for plugin {plugin.name!r}; known: {', '.join(plugin.presets)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    if given.get("max_steps") is not None and given.get("epochs") is not None:
        raise ConfigError("give --max-steps or --epochs, not both")
    if plugin.task == "text":
        image_only = [flag(k) for k in IMAGE_ONLY if k in given]
        if image_only:
            raise ConfigError(f"{', '.join(image_only)}: for image models; {plugin.name!r} trains on text")
    config = {**TRAINER_DEFAULTS, **plugin.defaults, **plugin.presets[preset], **given}
    if "epochs" in given:
        config["max_steps"] = None  # converted from the epochs once the data is known
    config["init_from"] = init_from
    if init_from:
        config.update(_base_settings(plugin, init_from, given))
    config["preset"] = preset
    config["plugin"] = plugin.name
    if config["dataset"] is None:
        config["dataset"] = plugin.default_dataset
    _check(config, plugin)
    if config["output"] is None:
        config["output"] = str(Path("outputs") / f"{plugin.name}-{Path(str(config['dataset'])).name}")
    return config


def _base_settings(plugin, init_from: str, given: dict[str, Any]) -> dict[str, Any]:
    """What a fine-tuning base fixes (its architecture, schedule, image size) and its card's ``base_model``; a flag
    that would change one of them is refused by name."""
    base = plugin.base_settings(resolve(init_from))
    for key, value in base.items():
        if key in given and given[key] != value:
            raise ConfigError(
                f"{flag(key)} {given[key]!r} would change the base model: {init_from} has {key} = {value!r}; "
                "leave the flag out to fine-tune it"
            )
    # the model card's base_model: the Hub id, or the folder's name (a local path means nothing on the Hub)
    local = Path(init_from).expanduser().is_dir()
    return {**base, "base_model": Path(init_from).expanduser().resolve().name if local else init_from}


def _check(config: dict[str, Any], plugin) -> None:
    """Every setting with choices among them, every number within its limits (the plugin's too), the Hub id's form
    and the LR schedule's name."""
    from diffusers.optimization import SchedulerType

    for setting in SETTINGS:
        value = config[setting.name]
        if setting.choices and value is not None and value not in setting.choices:
            choices = ", ".join(map(str, setting.choices))
            raise ConfigError(f"{setting.option} must be one of {choices}, got {value!r}")
    check_limits(config, {**TRAINER_LIMITS, **plugin.limits})
    hub_id = config.get("hub_model_id")
    if hub_id is not None and not PUSH_REPO_ID.fullmatch(str(hub_id)):
        raise ConfigError(f"--hub-model-id {hub_id!r} is not a Hub repo id (user/name, or a bare name)")
    schedulers = [t.value for t in SchedulerType]
    if config["lr_scheduler"] not in schedulers:
        raise ConfigError(f"unknown --lr-scheduler {config['lr_scheduler']!r}; known: {', '.join(schedulers)}")
