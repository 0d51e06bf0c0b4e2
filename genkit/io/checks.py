"""The safety checks of a model folder, run before anything of it is built or loaded: no pickle, whole safetensors
files with finite values, valid JSON, configs within limits, component libraries from an allow-list, weights that fit
the configs."""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import torch

from genkit.errors import ConfigError, PickleRefusedError, WeightsError
from genkit.io.files import folder_files, read_json
from genkit.validation import check_value

__all__ = [
    "CONFIG_LIMITS",
    "PICKLE_SUFFIXES",
    "already_checked",
    "allowed_libraries",
    "check_folder",
    "checked",
    "check_weights_fit",
    "component_classes",
    "validate_config",
    "validate_pipeline_folder",
]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _check_safetensors(file: Path) -> None:
    """Parse the header with safetensors itself (a JSON object of dtype/shape/offsets entries, under its size cap,
    covering every byte of the file), then refuse non-finite values in floating-point tensors, naming the tensor."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                tensor = f.get_tensor(name)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    raise WeightsError(f"{file}: tensor {name!r} holds NaN or infinite values; the weights are broken")
    except SafetensorError as exc:
        raise WeightsError(f"{file}: truncated or corrupt safetensors file ({exc})") from None


_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


def _safetensors_shapes(file: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Tensor name -> (shape, dtype), read from the header alone (the file was checked by ``_check_safetensors``)."""
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        return {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}  # noqa: SIM118


def check_weights_fit(module, weights_file: str | Path, config_file: str | Path) -> None:
    """Compare a module built from ``config_file`` (on the meta device: no memory) with the tensors of
    ``weights_file``; a missing, unexpected, differently shaped or integer-typed tensor is named with both sides."""
    weights_file, config_file = Path(weights_file), Path(config_file)
    expected = {k: (tuple(v.shape), v.is_floating_point()) for k, v in module.state_dict().items()}
    found = _safetensors_shapes(weights_file)
    shapes = {s for s, _ in found.values()}
    tied = {k for k, (shape, _) in expected.items() if k not in found and shape in shapes}
    missing = sorted(set(expected) - set(found) - tied)
    if missing:
        raise WeightsError(f"{weights_file} lacks tensor {missing[0]!r} that {config_file} asks for")
    unexpected = sorted(set(found) - set(expected))
    if unexpected:
        raise WeightsError(f"{weights_file} holds tensor {unexpected[0]!r} that {config_file} does not describe")
    for name, (shape, is_float) in expected.items():
        if name not in found:
            continue
        if found[name][0] != shape:
            raise WeightsError(
                f"{weights_file}: tensor {name!r} has shape {list(found[name][0])}, but {config_file} makes it "
                f"{list(shape)}; the config and the weights disagree"
            )
        if is_float and found[name][1] not in _FLOAT_DTYPES:
            raise WeightsError(
                f"{weights_file}: tensor {name!r} is stored as {found[name][1]}, but it is a floating-point "
                "parameter; genkit does not cast integer weights (quantized or broken weights?)"
            )


def check_folder(folder: str | Path) -> None:
    """Check a model folder, wherever it lives (a local folder, a Hub cache snapshot, a checkpoint): no link out of
    it and no special file (``folder_files``), no pickle weights, every safetensors file whole with finite values,
    every JSON file valid."""
    for rel, file in folder_files(folder):
        path = Path(folder) / rel
        if file.suffix in PICKLE_SUFFIXES or path.suffix in PICKLE_SUFFIXES:
            if not any(path.parent.glob("*.safetensors")):
                raise PickleRefusedError(
                    f"refusing to load pickle file {path}: pickle can run arbitrary code when loaded, and genkit "
                    f"loads .safetensors only (convert it with safetensors.torch.save_file)"
                )
        elif path.suffix == ".safetensors":
            _check_safetensors(file)
        elif path.suffix == ".json":
            read_json(file, kind=None)


# Limits of the config fields that size what a model allocates, by field name, for genkit's components and the
# diffusers/transformers classes genkit loads (``UNet2DModel``, the schedulers, the LSTM's config): generous for any
# model these families train or fine-tune (google/ddpm-celebahq-256 fits), and far below an allocation that would
# exhaust a machine. Every other number must be finite, and every integer fit in 32 bits.
CONFIG_LIMITS: dict[str, tuple[type, str]] = {
    "image_size": (int, "[1, 1024]"),
    "sample_size": (int, "[1, 1024]"),
    "in_channels": (int, "[1, 64]"),
    "out_channels": (int, "[1, 64]"),
    "latent_dim": (int, "[1, 65536]"),
    "hidden_channels": (int, "[1, 65536]"),
    "base_channels": (int, "[1, 65536]"),
    "block_out_channels": (int, "[1, 65536]"),
    "layers_per_block": (int, "[1, 64]"),
    "norm_num_groups": (int, "[1, 65536]"),
    "attention_head_dim": (int, "[1, 65536]"),
    "num_classes": (int, "[0, 1000000]"),
    "num_class_embeds": (int, "[0, 1000000]"),
    "num_train_timesteps": (int, "[1, 100000]"),
    "beta_start": (float, "(0, 1)"),
    "beta_end": (float, "(0, 1)"),
    "vocab_size": (int, "[1, 10000000]"),
    "embedding_size": (int, "[1, 65536]"),
    "hidden_size": (int, "[1, 65536]"),
    "num_layers": (int, "[1, 64]"),
}


_INT32 = (int, "[-2147483648, 2147483647]")


def check_field(config_file: Path, name: str, value: Any) -> None:
    """A config value within ``CONFIG_LIMITS`` (a list entry by entry), else finite and 32-bit."""
    values = value if isinstance(value, list) else [value]
    kind, interval = CONFIG_LIMITS.get(name, (None, None))
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        try:
            if kind is not None:
                check_value(name, v, kind, interval)
            else:
                check_value(name, v, *(_INT32 if isinstance(v, int) else (float, "[-1e30, 1e30]")))
        except ConfigError as exc:
            raise ConfigError(f"{config_file}: field {exc}") from None


def validate_config(cls: type, config_file: str | Path, required: set[str] | None = None) -> dict[str, Any]:
    """Check a component's config file against its class before anything is built from it: the ``required``
    constructor fields present (by default all of a genkit class's; diffusers and transformers fill in a field an
    older version did not write), none null where the class has a value by default, each of the right type, and
    every number within its limits (``CONFIG_LIMITS``); returns the config."""
    config_file = Path(config_file)
    config = read_json(config_file)
    for name, value in config.items():
        check_field(config_file, name, value)
    params = inspect.signature(cls.__init__).parameters
    if required is None:
        own = cls.__module__.split(".")[0] not in ("diffusers", "transformers")
        required = set(params) if own else set()
    for name, p in params.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name not in config:
            if p.default is not inspect.Parameter.empty and name not in required:
                continue
            raise ConfigError(f"{config_file}: missing field {name!r} (required by {cls.__name__})")
        value, default = config[name], p.default
        if default is inspect.Parameter.empty or default is None:
            continue
        if value is None:
            raise ConfigError(f"{config_file}: field {name!r} is null; {cls.__name__} needs a value like {default!r}")
        expected = (
            (int, float)
            if isinstance(default, float)
            else (list, tuple)
            if isinstance(default, tuple)
            else type(default)
        )
        if isinstance(default, int) and not isinstance(default, bool):
            expected = int
        if not isinstance(value, expected) or (isinstance(value, bool) and not isinstance(default, bool)):
            raise ConfigError(
                f"{config_file}: field {name!r} must be {type(default).__name__} like the default {default!r}, "
                f"got {value!r}"
            )
    return config


def allowed_libraries() -> set[str]:
    """Top-level packages a ``model_index.json`` may name: diffusers, transformers and installed genkit plugins.

    Read from the installed distributions' entry points, so nothing is imported to answer.
    """
    from importlib.metadata import entry_points

    return {"diffusers", "transformers"} | {ep.module.split(".")[0] for ep in entry_points(group="genkit.plugins")}


def _component_specs(folder: Path) -> list[tuple[str, str, str, bool]]:
    """(component, library, class, shipped) for every component ``model_index.json`` names, each allow-listed.

    Checked before anything is imported: a library name is a module path, and importing one that is not
    installed could run a ``.py`` file from the model folder (or the current folder) instead. ``shipped`` marks
    a ``[file, class]`` entry whose file is in the component's folder (a diffusers custom component): genkit never
    imports that file; the class is matched by name with an installed one (``component_classes``).
    """
    index_file = folder / "model_index.json"
    index = read_json(index_file)
    allowed = allowed_libraries()
    specs = []
    for component, spec in index.items():
        if component.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        if len(spec) != 2 or not all(isinstance(x, str) and x for x in spec):
            raise ConfigError(f"{index_file}: component {component!r} must be [library, class], got {spec!r}")
        library, class_name = spec
        shipped = re.fullmatch(r"\w+", library) is not None and (folder / component / f"{library}.py").is_file()
        if not shipped and (library.split(".")[0] not in allowed or not re.fullmatch(r"[A-Za-z_][\w.]*", library)):
            raise ConfigError(
                f"{index_file}: component {component!r} names library {library!r}, which genkit does not import "
                f"(allowed: {', '.join(sorted(allowed))}); code from a model folder is never run"
            )
        specs.append((component, library, class_name, shipped))
    return specs


def component_classes(folder: str | Path, pipeline_cls: type | None = None) -> dict[str, type]:
    """Component name -> the installed class that loads it. Shipped code is matched by class name with the classes
    that ``pipeline_cls``'s own module imports (a genkit plugin's), and never imported from the folder."""
    folder = Path(folder)
    index_file = folder / "model_index.json"
    classes = {}
    for component, library, class_name, shipped in _component_specs(folder):
        if shipped:
            namespace = sys.modules[pipeline_cls.__module__] if pipeline_cls is not None else None
            cls = getattr(namespace, class_name, None)
            if not inspect.isclass(cls) or cls.__module__.split(".")[0] not in allowed_libraries():
                raise ConfigError(
                    f"{index_file}: component {component!r} ships its own code ({component}/{library}.py, class "
                    f"{class_name}), and no installed genkit plugin defines {class_name} for "
                    f"{getattr(pipeline_cls, '__name__', 'this pipeline')}; genkit never runs a model folder's code"
                )
        else:
            try:
                cls = getattr(importlib.import_module(library), class_name)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(
                    f"{index_file}: component {component!r} names {library}.{class_name}: {exc}"
                ) from None
            if not (inspect.isclass(cls) and hasattr(cls, "from_pretrained") and hasattr(cls, "from_config")):
                raise ConfigError(
                    f"{index_file}: component {component!r} names {library}.{class_name}, which is not a model or "
                    "scheduler class (it has no from_pretrained/from_config)"
                )
        classes[component] = cls
    return classes


def validate_pipeline_folder(folder: str | Path, pipeline_cls: type | None = None) -> None:
    """Validate each component config of a diffusers pipeline folder (models and schedulers) against the class named
    in model_index.json, build it on the meta device (no memory) so that the class's own checks run, and compare its
    weights with the module that config describes."""
    folder = Path(folder)
    if not (folder / "model_index.json").exists():
        return
    for component, cls in component_classes(folder, pipeline_cls).items():
        config_file = folder / component / "config.json"
        if not config_file.exists():
            config_file = folder / component / "scheduler_config.json"
        if not config_file.exists():
            raise ConfigError(f"{folder / component}: missing config.json for component {component!r}")
        config = validate_config(cls, config_file)
        try:
            with torch.device("meta"):
                built = cls.from_config(config)
        except (ValueError, TypeError, KeyError, NotImplementedError, RuntimeError) as exc:
            reason = " ".join(str(exc).split())[:300]
            raise ConfigError(f"{config_file}: {cls.__name__} cannot be built from it ({reason})") from None
        weights = sorted((folder / component).glob("*.safetensors"))
        if weights and isinstance(built, torch.nn.Module):
            check_weights_fit(built, weights[0], config_file)


# ---- checked once ---------------------------------------------------------------------------------------------
_CHECKED: contextvars.ContextVar[Path | None] = contextvars.ContextVar("genkit_checked_folder", default=None)


@contextlib.contextmanager
def checked(folder: Path):
    """While a folder that was just checked loads, ``already_checked`` says so: a pipeline's ``from_pretrained``
    then skips checks that ran a moment ago (reading every tensor twice)."""
    token = _CHECKED.set(folder)
    try:
        yield
    finally:
        _CHECKED.reset(token)


def already_checked(folder: Path) -> bool:
    return _CHECKED.get() == folder
