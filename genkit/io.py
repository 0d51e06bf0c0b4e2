"""Model I/O: resolve a folder or Hub repo id, refuse pickle, check weights and configs, load, push.

Every genkit model folder holds config JSON, ``.safetensors`` weights, a model card (README.md) and
``genkit.json``, which names the plugin that made it so ``genkit.load`` can return the right pipeline.
"""

from __future__ import annotations

import contextlib
import contextvars
import glob
import importlib
import inspect
import json
import os
import re
import shutil
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genkit.errors import ConfigError, GenkitError, PickleRefusedError, WeightsError

__all__ = [
    "METADATA_FILE",
    "PICKLE_SUFFIXES",
    "allowed_libraries",
    "check_folder",
    "check_weights_fit",
    "folder_files",
    "folder_lock",
    "component_classes",
    "OpenedModel",
    "load",
    "load_opened",
    "open_model",
    "push_to_hub",
    "read_json",
    "read_metadata",
    "resolve",
    "shared_files",
    "staged_folder",
    "upload_plan",
    "validate_config",
    "write_metadata",
]

METADATA_FILE = "genkit.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
# A repo id to push to: user/name, or a bare name that lands in the token's namespace.
PUSH_REPO_ID = re.compile(r"([\w.\-]+/)?[\w.\-]+")


# ---- locating a model ----------------------------------------------------------------------------------------------
def resolve(path_or_repo_id: str | os.PathLike, revision: str | None = None) -> Path:
    """A local folder for ``path_or_repo_id``: the folder itself, or a Hub snapshot (the cache when offline)."""
    path = Path(path_or_repo_id).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise GenkitError(f"{str(path)!r} is a file; give the model's folder")
    name = str(path_or_repo_id)
    if not _REPO_ID.match(name) or name.startswith((".", "/")):
        raise GenkitError(f"no model folder at {name!r}, and it is not a Hub repo id (user/name)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(name, revision=revision))
    except LocalEntryNotFoundError as exc:
        raise GenkitError(
            f"no model folder at {name!r}, and Hub repo {name!r} is not in the local cache "
            f"(offline or unreachable: {type(exc).__name__})"
        ) from None
    except (RepositoryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise GenkitError(f"no model folder at {name!r}, and Hub repo {name!r} could not be loaded: {exc}") from None


# ---- the files of a model folder -----------------------------------------------------------------------------------
def _link_roots(folder: Path) -> list[Path]:
    """Where a link inside ``folder`` may point: into the folder itself, and for a Hub cache snapshot
    (``<cache>/models--user--name/snapshots/<sha>``) into that repo's ``blobs/``, which its file links name."""
    real = folder.resolve()
    roots = [real]
    if real.parent.name == "snapshots" and re.match(r"^(models|datasets|spaces)--", real.parent.parent.name):
        roots.append(real.parent.parent / "blobs")
    return roots


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "named pipe"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device")):
        if test(mode):
            return name
    return "device" if stat.S_ISBLK(mode) else "special file"


def folder_files(folder: str | Path) -> list[tuple[str, Path]]:
    """Every file of a model folder as (path relative to it, path to read), sorted.

    A symbolic link is followed only to a file inside the folder (or, in a Hub cache snapshot, to its repo's blobs):
    a link elsewhere (``LICENSE.txt -> ~/.cache/huggingface/token``), a link to a folder, and special files (pipes,
    sockets, devices) are refused with an error naming them, so that nothing outside the folder is ever read, copied
    into a Space or uploaded.
    """
    folder = Path(folder)
    roots = _link_roots(folder)
    files, refused = [], []
    for dirpath, dirnames, filenames in os.walk(folder):  # never descends into a linked folder
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                target = Path(os.path.realpath(path))
                inside = any(target == r or r in target.parents for r in roots)
                if name in dirnames or not inside or not target.is_file():
                    refused.append(f"{rel} (a link to {os.readlink(path)})")
                else:
                    files.append((rel, target))
            elif stat.S_ISREG(mode):
                files.append((rel, path))
            elif not stat.S_ISDIR(mode):
                refused.append(f"{rel} (a {_kind(mode)})")
    if refused:
        more = f" and {len(refused) - 1} more" if len(refused) > 1 else ""
        raise GenkitError(
            f"{folder}: refusing {refused[0]}{more}: genkit reads, copies and uploads only the files inside a model "
            "folder; replace the link with the file itself"
        )
    return sorted(files)


# ---- checking what is on disk --------------------------------------------------------------------------------------
MAX_JSON_BYTES = 64 * 2**20  # configs, metadata and trainer states are kilobytes; a larger one is not a config


def read_json(file: str | Path, *, kind: type | None = dict, error: type[GenkitError] = ConfigError) -> Any:
    """Parse a JSON file genkit reads from a folder; any fault (unreadable, too large, invalid, nested past
    Python's recursion limit, not a ``kind``) is ``error`` naming the file, never a traceback."""
    file = Path(file)
    try:
        if file.stat().st_size > MAX_JSON_BYTES:
            raise ValueError(f"{file.stat().st_size} bytes, more than a config holds")
        value = json.loads(file.read_text())
    except RecursionError:
        raise error(f"{file}: invalid JSON (nested too deeply)") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise error(f"{file}: invalid JSON ({exc})") from None
    if kind is not None and not isinstance(value, kind):
        raise error(
            f"{file}: expected a JSON {'object' if kind is dict else kind.__name__}, got {type(value).__name__}"
        )
    return value


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


def _check_field(config_file: Path, name: str, value: Any) -> None:
    """A config value within ``CONFIG_LIMITS`` (a list entry by entry), else finite and 32-bit."""
    from genkit.validation import check_value

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
        _check_field(config_file, name, value)
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


# ---- genkit metadata -----------------------------------------------------------------------------------------------
def write_metadata(folder: str | Path, plugin: str, **fields: Any) -> None:
    from genkit import __version__

    meta = {"plugin": plugin, "genkit_version": __version__, **fields}
    (Path(folder) / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")


def read_metadata(folder: str | Path) -> dict[str, Any]:
    file = Path(folder) / METADATA_FILE
    if not file.exists():
        if is_interrupted_save(folder):
            raise GenkitError(
                f"{folder}: the final save of its training run was interrupted; run the same `genkit train` "
                "command with --resume latest to write the model again"
            )
        raise GenkitError(f"{folder} is not a genkit model: it has no {METADATA_FILE}")
    meta = read_json(file)
    if not isinstance(meta.get("plugin"), str):
        raise ConfigError(f"{file}: missing field 'plugin' (the name of the plugin that made this model)")
    return meta


@dataclass
class OpenedModel:
    """A model folder that has been resolved and checked once: where it is, its genkit.json, its plugin."""

    folder: Path
    meta: dict[str, Any]
    plugin: Any  # genkit.Plugin


_CHECKED: contextvars.ContextVar[Path | None] = contextvars.ContextVar("genkit_checked_folder", default=None)


def open_model(path_or_repo_id: str | os.PathLike, revision: str | None = None) -> OpenedModel:
    """The one way genkit opens a model (``genkit.load``, the CLI, demos, Spaces): resolve the folder, Hub id or
    cached id, read its metadata, and check its files and configs against its plugin's classes — once."""
    from genkit.registry import get_plugin

    folder = resolve(path_or_repo_id, revision=revision)
    check_folder(folder)  # before any file of it is read
    meta = read_metadata(folder)
    plugin = get_plugin(meta["plugin"])
    validate_pipeline_folder(folder, plugin.pipeline_class)
    return OpenedModel(folder=folder, meta=meta, plugin=plugin)


def load_opened(model: OpenedModel):
    """The pipeline of an opened model; its plugin's loader does not check the folder a second time."""
    token = _CHECKED.set(model.folder)
    try:
        return model.plugin.load_pipeline(model.folder)
    finally:
        _CHECKED.reset(token)


def already_checked(folder: Path) -> bool:
    """True inside ``load_opened`` for the folder it loads: ``GenkitPipeline.from_pretrained`` skips its checks."""
    return _CHECKED.get() == folder


def load(path_or_repo_id: str | os.PathLike, revision: str | None = None, torch_dtype: torch.dtype | None = None):
    """Load a genkit model from a folder, a Hub repo id, or the offline cache, as its plugin's pipeline; with
    ``torch_dtype`` (``torch.float16``, ``torch.bfloat16``, ...) its weights are cast to that type, as in diffusers."""
    if isinstance(path_or_repo_id, bytes) or not isinstance(path_or_repo_id, (str, os.PathLike)):
        raise GenkitError(f"genkit.load takes a folder or a Hub repo id (a str or path), got {path_or_repo_id!r}")
    if revision is not None and not isinstance(revision, str):
        raise GenkitError(f"revision must be a str (a branch, tag or commit), got {revision!r}")
    if torch_dtype is not None and not (isinstance(torch_dtype, torch.dtype) and torch_dtype.is_floating_point):
        raise GenkitError(
            f"torch_dtype must be a floating-point torch.dtype such as torch.float16, got {torch_dtype!r}"
        )
    pipeline = load_opened(open_model(path_or_repo_id, revision=revision))
    if torch_dtype is not None:
        (pipeline.model if hasattr(pipeline, "model") else pipeline).to(torch_dtype)
    return pipeline


# ---- writing a model folder safely --------------------------------------------------------------------------------
STAGING_DIR = ".tmp-model"  # where a run's final model is written before it is moved into the output folder
_REPLACED_DIR = ".old-model"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_abandoned(parent: Path, prefix: str) -> None:
    """Remove ``<prefix><pid>`` entries of ``parent`` whose process is gone: what a killed process left behind."""
    for entry in parent.glob(f"{glob.escape(prefix)}*"):
        pid = entry.name[len(prefix) :]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_folder(dest: str | Path, replace: bool = True):
    """Yield an empty sibling of ``dest`` to write a whole new folder into; on success it replaces ``dest``.

    The swap is two renames on one filesystem, so a crash leaves the old folder or the new one, never a mix; a
    crash while writing leaves only a hidden ``.<name>.tmp-<pid>`` sibling, which the next staging of the same
    folder removes once that process is gone. With ``replace`` False (a cache entry keyed by its content), a
    ``dest`` that another process wrote meanwhile is kept and the new folder discarded.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for kind in ("tmp", "old"):
        _remove_abandoned(dest.parent, f".{dest.name}.{kind}-")
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not replace:
        try:
            tmp.rename(dest)
        except OSError:  # written meanwhile by another process: the same content, keep that one
            shutil.rmtree(tmp, ignore_errors=True)
        return
    old = dest.parent / f".{dest.name}.old-{os.getpid()}"
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


# ---- one writer per folder -------------------------------------------------------------------------------------
LOCK_FILE = ".genkit.lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str = "--output"):
    """Hold ``folder/.genkit.lock`` while writing into ``folder``: a second genkit process that wants to write there
    gets an error naming the first (pid, host, start, command). The lock is an ``fcntl.flock``, which the kernel drops
    when its process ends however it ends, so a lock file left by a killed run is stale by construction and taken
    over. The file says who holds it, and is empty when no one does; a folder that the holder left empty (a refused
    run) is removed again."""
    folder = Path(folder)
    created = [p for p in [folder, *folder.parents] if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_FILE
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _hold(fd, folder, what)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            if [p.name for p in folder.iterdir()] == [LOCK_FILE]:
                lock.unlink()
                for path in created:
                    with contextlib.suppress(OSError):
                        path.rmdir()
    finally:
        os.close(fd)  # releases the flock


def _hold(fd: int, folder: Path, what: str) -> None:
    """Take the flock on ``fd`` and write who holds it, or raise naming the holder."""
    import socket

    try:
        import fcntl
    except ImportError:  # no flock (Windows): nothing to hold
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            who = json.loads(os.pread(fd, 4096, 0).decode(errors="replace"))
            who = f"pid {who['pid']} on {who['host']}, started {who['started']}: {who['command']}"
        except (ValueError, KeyError, TypeError):
            who = "another process"
        raise GenkitError(
            f"{what} {str(folder)!r} is being written by another genkit run ({who}); wait for it to finish, or "
            "choose another folder"
        ) from None
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv)[:500],
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)


def move_model_into(staging: Path, output: Path) -> None:
    """Move a model written in ``staging`` (inside ``output``) over the model files of ``output``.

    Checkpoints, logs and interim samples of the run stay. genkit.json goes first out and last in: while it is
    missing the folder does not load, and ``genkit.load`` says that the final save was interrupted.
    """
    replaced = output / _REPLACED_DIR
    shutil.rmtree(replaced, ignore_errors=True)
    replaced.mkdir()
    entries = sorted(staging.iterdir(), key=lambda p: p.name == METADATA_FILE)  # genkit.json last
    for new in reversed(entries):  # genkit.json first out
        if (output / new.name).exists():
            (output / new.name).rename(replaced / new.name)
    for new in entries:  # genkit.json last in
        new.rename(output / new.name)
    staging.rmdir()
    shutil.rmtree(replaced)


def is_interrupted_save(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / STAGING_DIR).exists() or (folder / _REPLACED_DIR).exists()


# ---- publishing ----------------------------------------------------------------------------------------------------
def shared_files(folder: str | Path) -> list[tuple[str, Path]]:
    """The files of a model folder that leave the machine (uploads, Spaces), as ``folder_files`` gives them: the
    model, card, samples and logs; training checkpoints, caches and hidden files stay local."""

    def local_only(rel: str) -> bool:
        return any(part.startswith((".", "checkpoint-")) or part == "__pycache__" for part in rel.split("/"))

    return [(rel, file) for rel, file in folder_files(folder) if not local_only(rel)]


def upload_plan(folder: str | Path) -> list[tuple[str, int]]:
    """Files that an upload of ``folder`` sends: (path relative to the folder, size in bytes)."""
    return [(rel, file.stat().st_size) for rel, file in shared_files(folder)]


@contextlib.contextmanager
def upload_folder_of(folder: Path, card: str | None = None):
    """A temporary folder holding exactly the planned files of ``folder`` (hard links where the file system allows,
    else copies) and, when given, ``card`` as its README.md: what one ``upload_folder`` call sends."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="genkit-upload-") as tmp:
        for rel, file in shared_files(folder):
            if card is not None and rel == "README.md":
                continue
            target = Path(tmp) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(file, target)
            except OSError:  # another file system: copy
                shutil.copyfile(file, target)
        if card is not None:
            (Path(tmp) / "README.md").write_text(card)
        yield Path(tmp)


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool = False,
    dry_run: bool = False,
    commit_message: str = "Upload with genkit",
    api=None,
    **create_kwargs: Any,
) -> dict[str, Any]:
    """Create ``repo_id`` if needed and upload ``folder`` in one commit (a model's card rewritten to load the repo).
    With ``dry_run`` nothing is sent; the plan is returned."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GenkitError(f"nothing to push: {str(folder)!r} is not a folder")
    if not PUSH_REPO_ID.fullmatch(repo_id):
        raise GenkitError(f"invalid repo id {repo_id!r}; expected 'user/name' (or a bare name in your namespace)")
    files = upload_plan(folder)
    plan = {
        "repo_id": repo_id,
        "repo_type": repo_type,
        "private": private,
        **create_kwargs,
        "files": [{"path": p, "bytes": s} for p, s in files],
    }
    pickles = [p for p, _ in files if p.endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise PickleRefusedError(f"refusing to push pickle files: {', '.join(pickles)}")
    if dry_run:
        return plan
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **create_kwargs)
    repo_id = getattr(url, "repo_id", None) or repo_id  # a bare name lands in the token's namespace
    plan["repo_id"] = repo_id
    card = None
    if repo_type == "model" and (folder / "README.md").is_file():
        from genkit.card import set_card_repo  # the uploaded card's snippets load the repo, not the local folder

        card = set_card_repo((folder / "README.md").read_text(), repo_id)
    with upload_folder_of(folder, card) as staged:
        api.upload_folder(folder_path=str(staged), repo_id=repo_id, repo_type=repo_type, commit_message=commit_message)
    plan["url"] = str(url)
    return plan
