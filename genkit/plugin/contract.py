"""The plugin contract: what a model family hands to genkit, and nothing more.

A plugin never owns a training loop. The core trainer builds the modules through ``build``, makes one optimizer per
``OptimizerSpec`` and, for every batch, calls ``training_step`` once per optimizer in the order they are declared,
stepping that optimizer on the loss it gets back (discriminator phase, then generator phase, for a GAN).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genkit.config.settings import TRAINER_DEFAULTS
from genkit.data import prepare_images, prepare_vectors, random_crop, random_flip
from genkit.errors import ConfigError, GenkitError
from genkit.io import check_folder, checked, read_metadata, validate_pipeline_folder
from genkit.types import DataInfo, PreparedData  # noqa: F401 - part of this module's API (plugins import them here)

__all__ = [
    "DataInfo",
    "OptimizerSpec",
    "Plugin",
    "PreparedData",
    "REQUIRED_HOOKS",
    "StepContext",
    "check_base_classes",
]

# What the registry checks on every plugin object it loads, built-in or third-party.
REQUIRED_ATTRIBUTES = ("name", "task", "pipeline_tag", "default_dataset", "presets", "defaults")
REQUIRED_HOOKS = (
    "add_arguments",
    "prepare_data",
    "build",
    "optimizers",
    "training_step",
    "to_pipeline",
    "save_pipeline",
    "load_pipeline",
    "sample",
    "evaluate",
    "build_demo",
)
REQUIRED_PRESETS = ("tiny", "small", "base")
# What a plugin trains on: images (``pixel_values``), text (token ids), or vectors such as 2-D points (``points``).
TASKS = ("image", "text", "vector")


@dataclass
class OptimizerSpec:
    """One optimizer: which modules it updates, its Adam(W) settings, and how often it steps."""

    name: str  # the phase name passed to training_step
    modules: list[str]  # keys of the dict returned by build()
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    every: int = 1  # step on every `every`-th batch: WGAN-GP's generator uses n_critic = 5


@dataclass
class StepContext:
    """What training_step may read besides the batch."""

    phase: str  # name of the optimizer being stepped
    step: int  # number of optimizer updates done so far (0-based for the first batch)
    config: dict[str, Any]
    # State that must outlive one batch (e.g. an LSTM's hidden state across consecutive batches). Tensors in it
    # are saved in every checkpoint and restored on --resume; anything else in it is lost.
    carry: dict[str, torch.Tensor]
    # The same modules as training_step's ``modules``, outside any DistributedDataParallel / compile wrapper: read
    # their config and call their other methods here; run forward passes through ``modules`` (DDP synchronises
    # gradients only through its own ``__call__``). Empty only where a caller passes bare modules itself.
    unwrapped: dict[str, nn.Module] = field(default_factory=dict)

    def bare(self, modules: dict[str, nn.Module], name: str) -> nn.Module:
        """Module ``name`` outside its wrapper (``unwrapped[name]``; ``modules[name]`` where none was given)."""
        return self.unwrapped.get(name, modules[name])


class Plugin(ABC):
    """Base class for a model family. Subclasses set the class attributes and implement the abstract hooks."""

    name: str
    task: str  # "image" | "text"
    pipeline_tag: str  # Hub pipeline tag for the model card (class-conditional models get none: see card.py)
    # The model card's library_name: the library whose from_pretrained loads the folder (`genkit` stays a tag).
    library_name: str = "diffusers"
    default_dataset: str
    presets: dict[str, dict[str, Any]]  # "tiny" | "small" | "base" -> overrides of `defaults`
    defaults: dict[str, Any]  # every config key the plugin reads, with its reference value
    # Numeric config keys of the plugin and what they may be: key -> (int | float, interval such as "[1, 4096]").
    # Checked with the trainer's own limits when a run's config is resolved, so a bad value is refused at once.
    limits: dict[str, tuple[type, str]] = {}
    # Module name -> EMA decay. The trainer keeps an EMA copy of each and builds the final pipeline from it.
    ema: dict[str, float] = {}
    pipeline_class: type | None = None  # a DiffusionPipeline subclass for the default save/load hooks
    # Config keys a fine-tuning base fixes (architecture, noise schedule): see ``base_settings``.
    base_keys: tuple[str, ...] = ()
    # Lines shown in the model card's "Use" section after `pipe = genkit.load(...)`; they must run as written.
    card_usage: str = ""
    # A folder inside the plugin's package with the Space card template (`README.md`: front matter + body, with
    # $title, $model, $dataset, $plugin and $sdk_version filled in) and, optionally, its own `app.py`. Without
    # one, `genkit space build` writes genkit's generic card and app (genkit/space_template/).
    space_template: str = "space"

    # True for truncated-BPTT plugins: the trainer does not shuffle, and splits every batch across processes so that
    # each keeps its own contiguous streams.
    sequential_batches: bool = False

    # Settings of the flags ``add_arguments`` derives from ``defaults``: key -> help text, or a dict of
    # ``add_argument`` keywords (``help``, ``choices``, ``nargs``, ``metavar``).
    flag_options: dict[str, str | dict[str, Any]] = {}

    # ---- configuration -------------------------------------------------------------------------------------
    def add_arguments(self, parser) -> None:
        """Add the family's flags to ``genkit train``. By default one ``--key-name`` for every key of ``defaults``
        that is not a trainer setting: typed by ``limits`` or by the default value (a bool is a switch, ``--no-x``
        too when it defaults to True; a list takes several values), described by ``flag_options``, with
        ``default=None`` so that the preset fills what the user did not give. Override it (calling this one) for
        flags of another shape; a flag added before the call is kept as it is."""
        add_default_flags(parser, self)

    def add_sample_arguments(self, parser) -> None:  # noqa: B027 - optional hook, empty by default
        """Add flags to ``genkit sample``; their values reach ``sample(pipeline, n, seed, **values)``."""

    def add_eval_arguments(self, parser) -> None:  # noqa: B027 - optional hook, empty by default
        """Add flags to ``genkit eval``; name their ``dest`` after config keys (default ``None``: the model's own
        training config decides), so the same key works at train time and at eval time."""

    # ---- data ------------------------------------------------------------------------------------------------
    def prepare_data(self, splits, config: dict[str, Any]) -> PreparedData:
        """Turn normalized ``datasets`` splits (train/test) into torch datasets: images (``prepare_images``) or points
        (``prepare_vectors``) by default; a text plugin prepares its own (tokenizer, streams)."""
        if self.task == "vector":
            return prepare_vectors(splits, config)
        if self.task == "text":
            raise NotImplementedError(f"plugin {self.name!r} trains on text and must define prepare_data")
        return prepare_images(splits, config)

    def augment(self, batch: Any, ctx: StepContext, seed: int) -> Any:
        """Augment one training batch on the fly (evaluation never sees it); ``seed`` is fixed by the batch's
        position, so a resumed run augments as an uninterrupted one. By default, on ``batch["pixel_values"]``: with
        ``config["random_crop"]`` a random ``image_size`` window of each image (stored larger: ``train_raw``), then
        with ``config["random_flip"]`` each image mirrored left-right with probability 1/2. An override that
        changes images calls this one first."""
        if not isinstance(batch, dict) or "pixel_values" not in batch:
            return batch
        pixels = batch["pixel_values"]
        if ctx.config.get("random_crop"):
            pixels = random_crop(pixels, int(ctx.config["image_size"]), seed ^ 0x2545F491)  # not the flips' draws
        if ctx.config.get("random_flip"):
            pixels = random_flip(pixels, seed)
        return batch if pixels is batch["pixel_values"] else {**batch, "pixel_values": pixels}

    # ---- model -----------------------------------------------------------------------------------------------
    @abstractmethod
    def build(self, config: dict[str, Any], info: DataInfo) -> dict[str, nn.Module]:
        """Build the trainable modules from the resolved config and what the data says."""

    def optimizers(self, config: dict[str, Any]) -> list[OptimizerSpec]:
        """One AdamW over the module ``build`` calls ``"model"`` by default."""
        return [OptimizerSpec(name="model", modules=["model"], lr=config["lr"])]

    def ema_for(self, config: dict[str, Any]) -> dict[str, float | dict[str, Any]]:
        """The EMA settings of one run: the class attribute ``ema`` by default; override when they depend on the
        config (e.g. an optional ``--ema-decay``). Values are a decay or ``diffusers.training_utils.EMAModel`` kwargs.
        """
        return self.ema

    @abstractmethod
    def training_step(self, modules: dict[str, nn.Module], batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        """Return ``{"loss": ..., **other scalars to log}`` for the optimizer named ``ctx.phase``.

        Call modules only through ``__call__`` (their ``forward``): under multi-process training they are
        wrapped in DistributedDataParallel, which hides every other method.
        """

    # ---- pipeline ----------------------------------------------------------------------------------------------
    @abstractmethod
    def to_pipeline(self, modules: dict[str, nn.Module], data: PreparedData, config: dict[str, Any]):
        """Wrap trained (unwrapped, EMA-applied) modules into the object that is saved and loaded."""

    def modules_from_pipeline(self, pipeline) -> dict[str, nn.Module]:
        """The trainable modules inside a loaded pipeline, for fine-tuning (``genkit train --init-from``)."""
        return {k: v for k, v in pipeline.components.items() if isinstance(v, nn.Module)}

    # ---- fine-tuning (`genkit train --init-from BASE`) -------------------------------------------------------------
    def base_settings(self, folder: Path) -> dict[str, Any]:
        """The config values a fine-tuning base fixes: its ``base_keys``, image size and channels. They replace the
        preset's, and a flag that would change one is refused. By default the base is a genkit folder of this plugin;
        a plugin that fine-tunes other formats (the DDPM plugin: stock diffusers folders) overrides this."""
        meta = read_metadata(folder)
        if meta["plugin"] != self.name:
            raise GenkitError(
                f"--init-from {str(folder)!r} is a {meta['plugin']} model; `genkit train {self.name}` fine-tunes "
                f"{self.name} models"
            )
        config, data = meta.get("config", {}), meta.get("data", {})
        settings = {k: config[k] for k in self.base_keys if k in config}
        if self.task == "image":
            settings.update(image_size=data.get("image_size"), channels=data.get("num_channels"))
        return {k: v for k, v in settings.items() if v is not None}

    def modules_from_base(self, folder: Path, data: PreparedData) -> dict[str, nn.Module]:
        """The trainable modules of a fine-tuning base, loaded once (``base_settings`` has accepted the folder) and
        fitted to the prepared data; a base that cannot train on it (another number of classes) is refused here."""
        check_folder(folder)
        validate_pipeline_folder(folder, self.pipeline_class)
        with checked(folder):
            return self.modules_from_pipeline(self.load_pipeline(folder))

    def save_pipeline(self, pipeline, path: str | Path) -> None:
        pipeline.save_pretrained(str(path), safe_serialization=True)

    def load_pipeline(self, path: str | Path):
        if self.pipeline_class is None:
            raise NotImplementedError(f"plugin {self.name!r} sets no pipeline_class and does not override load")
        return self.pipeline_class.from_pretrained(str(path), use_safetensors=True)

    def export(self, pipeline, out_dir: Path) -> None:
        """Write a folder that stock libraries load without genkit (``genkit export``), when the saved folder is not
        one already (the LSTM adds its modeling code and ``auto_map``). Not offered by default."""
        raise GenkitError(f"plugin {self.name!r} has no export")

    @abstractmethod
    def sample(self, pipeline, n: int, seed: int = 0, **kwargs) -> list:
        """``n`` samples: PIL images for image plugins, strings for text plugins."""

    @abstractmethod
    def evaluate(self, pipeline, data: PreparedData, config: dict[str, Any]) -> dict[str, Any]:
        """``{"metrics": {name: value}, "protocol": {how they were measured}}``."""

    @abstractmethod
    def build_demo(self, pipeline):
        """A ``gr.Blocks`` demo for this pipeline, every event with an explicit ``api_name``."""


def check_base_classes(base_classes: int, info: DataInfo) -> None:
    """Refuse fine-tuning a class-conditional base (``base_classes`` > 0) on data with another number of classes."""
    if base_classes and info.num_classes != base_classes:
        raise ConfigError(
            f"the base model is conditional on {base_classes} classes, and dataset {info.dataset!r} has "
            f"{info.num_classes or 'no'} classes; a conditional base fine-tunes on data with the same classes"
        )


def add_default_flags(parser, plugin: Plugin) -> None:
    """One ``--key-name`` flag per plain value of ``plugin.defaults`` (see ``Plugin.add_arguments``), its help ending
    with the default and each preset's value; a flag the plugin added itself first is kept as it is."""
    for key, default in plugin.defaults.items():
        if key in TRAINER_DEFAULTS:
            continue
        options = plugin.flag_options.get(key, {})
        options = {"help": options} if isinstance(options, str) else dict(options)
        presets = ", ".join(f"{name}: {p[key]}" for name, p in plugin.presets.items() if key in p)
        described = f"default: {default}" + (f"; {presets}" if presets else "")
        options["help"] = f"{options['help']} ({described})" if options.get("help") else f"({described})"
        kind = plugin.limits.get(key, (None,))[0]
        if isinstance(default, bool):
            options.update(action=argparse.BooleanOptionalAction if default else "store_true")
        elif isinstance(default, (list, tuple)):
            options.update(type=kind or (type(default[0]) if default else int), nargs=options.get("nargs", "+"))
        elif default is None or isinstance(default, (int, float, str)):
            element = kind or (type(default) if default is not None else str)
            options.setdefault("type", None if "choices" in options else element)
        else:
            continue  # not a plain value: the plugin adds its own flag, if any
        with contextlib.suppress(argparse.ArgumentError):  # the plugin's own flag of that name stays
            parser.add_argument("--" + key.replace("_", "-"), default=None, **options)


def missing_hooks(obj: Any) -> list[str]:
    """Names of contract attributes and hooks that ``obj`` lacks (empty when it satisfies the contract). The
    optional hooks and attributes come with defaults from ``Plugin``, so a plugin must be an instance of it."""
    cls = obj if inspect.isclass(obj) else type(obj)
    missing = [] if issubclass(cls, Plugin) else [f"genkit.Plugin as base class ({cls.__name__} is not one)"]
    missing += [a for a in REQUIRED_ATTRIBUTES if not hasattr(obj, a)]
    for hook in REQUIRED_HOOKS:
        fn = getattr(obj, hook, None)
        if fn is None or not callable(fn) or getattr(fn, "__isabstractmethod__", False):
            missing.append(f"{hook}()")
    presets = getattr(obj, "presets", None)
    if isinstance(presets, dict):
        missing += [f"presets[{p!r}]" for p in REQUIRED_PRESETS if p not in presets]
    if getattr(obj, "task", "image") not in TASKS:
        missing.append(f"task (one of {', '.join(map(repr, TASKS))})")
    return missing


def is_plugin_class(obj: Any) -> bool:
    return inspect.isclass(obj) and issubclass(obj, Plugin)
