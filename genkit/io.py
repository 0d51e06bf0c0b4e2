"""Model I/O: resolve a folder or Hub repo id, refuse pickle, check weights and configs, load, push.

Every genkit model folder holds config JSON, ``.safetensors`` weights, a model card (README.md) and
``genkit.json``, which names the plugin that made it so ``genkit.load`` can return the right pipeline.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import json
import os
import re
import shutil
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genkit.errors import ConfigError, GenkitError, PickleRefusedError, WeightsError

__all__ = [
    "METADATA_FILE",
    "PICKLE_SUFFIXES",
    "allowed_libraries",
    "check_folder",
    "check_weights_fit",
    "component_classes",
    "OpenedModel",
    "load",
    "load_opened",
    "open_model",
    "push_to_hub",
    "read_metadata",
    "resolve",
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


# ---- checking what is on disk --------------------------------------------------------------------------------------
def _check_safetensors(file: Path) -> None:
    """Check the header and that the file holds every byte the header promises (catches truncation)."""
    size = file.stat().st_size
    try:
        with open(file, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                raise ValueError(f"header length {n} exceeds file size {size}")
            header = json.loads(f.read(n))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{file}: corrupt safetensors file ({exc})") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        raise WeightsError(
            f"{file}: truncated or corrupt safetensors file ({size} bytes, header expects {8 + n + end})"
        )


def _safetensors_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, read from the header alone (the file was checked by ``_check_safetensors``)."""
    with open(file, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def check_weights_fit(module, weights_file: str | Path, config_file: str | Path) -> None:
    """Compare a module built from ``config_file`` (on the meta device: no memory) with the tensors of
    ``weights_file``; a missing, unexpected or differently shaped tensor is named with both shapes."""
    weights_file, config_file = Path(weights_file), Path(config_file)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = _safetensors_shapes(weights_file)
    tied = {k for k in expected if k not in found and any(expected[k] == s for s in found.values())}
    missing = sorted(set(expected) - set(found) - tied)
    if missing:
        raise WeightsError(f"{weights_file} lacks tensor {missing[0]!r} that {config_file} asks for")
    unexpected = sorted(set(found) - set(expected))
    if unexpected:
        raise WeightsError(f"{weights_file} holds tensor {unexpected[0]!r} that {config_file} does not describe")
    for name, shape in expected.items():
        if name in found and found[name] != shape:
            raise WeightsError(
                f"{weights_file}: tensor {name!r} has shape {list(found[name])}, but {config_file} makes it "
                f"{list(shape)}; the config and the weights disagree"
            )


def check_folder(folder: str | Path) -> None:
    """Refuse pickle weights, and check every safetensors file and JSON config in ``folder``."""
    folder = Path(folder)
    for file in sorted(folder.rglob("*")):
        if not file.is_file() or ".cache" in file.parts:
            continue
        if file.suffix in PICKLE_SUFFIXES:
            if not any(file.parent.glob("*.safetensors")):
                raise PickleRefusedError(
                    f"refusing to load pickle file {file}: pickle can run arbitrary code when loaded, and genkit "
                    f"loads .safetensors only (convert it with safetensors.torch.save_file)"
                )
        elif file.suffix == ".safetensors":
            _check_safetensors(file)
        elif file.suffix == ".json":
            try:
                json.loads(file.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{file}: invalid JSON ({exc})") from None


def validate_config(cls: type, config_file: str | Path) -> None:
    """Check a component's config.json against its class: every constructor field present and of the right type."""
    config_file = Path(config_file)
    config = json.loads(config_file.read_text())
    params = inspect.signature(cls.__init__).parameters
    for name, p in params.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name not in config:
            raise ConfigError(f"{config_file}: missing field {name!r} (required by {cls.__name__})")
        value, default = config[name], p.default
        if default is inspect.Parameter.empty or default is None or value is None:
            continue
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
    index = json.loads(index_file.read_text())
    if not isinstance(index, dict):
        raise ConfigError(f"{index_file}: expected a JSON object of components")
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
        classes[component] = cls
    return classes


def validate_pipeline_folder(folder: str | Path, pipeline_cls: type | None = None) -> None:
    """Validate each component config of a diffusers pipeline folder against the class named in model_index.json,
    and its weights against the module that config describes."""
    folder = Path(folder)
    if not (folder / "model_index.json").exists():
        return
    for component, cls in component_classes(folder, pipeline_cls).items():
        config_file = folder / component / "config.json"
        if not config_file.exists():
            config_file = folder / component / "scheduler_config.json"
        if not config_file.exists():
            raise ConfigError(f"{folder / component}: missing config.json for component {component!r}")
        if hasattr(cls, "config_name") and config_file.name == "config.json":
            validate_config(cls, config_file)
            weights = sorted((folder / component).glob("*.safetensors"))
            if weights and hasattr(cls, "from_config"):
                import torch

                with torch.device("meta"):
                    module = cls.from_config(cls.load_config(str(folder / component)))
                check_weights_fit(module, weights[0], config_file)


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
    try:
        meta = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}: invalid JSON ({exc})") from None
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
    meta = read_metadata(folder)
    check_folder(folder)
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


def load(path_or_repo_id: str | os.PathLike, revision: str | None = None):
    """Load a genkit model from a folder, a Hub repo id, or the offline cache, as its plugin's pipeline."""
    return load_opened(open_model(path_or_repo_id, revision=revision))


# ---- writing a model folder safely --------------------------------------------------------------------------------
STAGING_DIR = ".tmp-model"  # where a run's final model is written before it is moved into the output folder
_REPLACED_DIR = ".old-model"


@contextlib.contextmanager
def staged_folder(dest: str | Path, replace: bool = True):
    """Yield an empty sibling of ``dest`` to write a whole new folder into; on success it replaces ``dest``.

    The swap is two renames on one filesystem, so a crash leaves the old folder or the new one, never a mix; a
    crash while writing leaves only a hidden ``.<name>.tmp-*`` sibling, removed on the next try. With ``replace``
    False (a cache entry keyed by its content), a ``dest`` that another process wrote meanwhile is kept and the new
    folder discarded.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
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
def upload_plan(folder: str | Path) -> list[tuple[str, int]]:
    """Files that an upload of ``folder`` sends: (path relative to the folder, size in bytes)."""
    folder = Path(folder)
    return [
        (f.relative_to(folder).as_posix(), f.stat().st_size)
        for f in sorted(folder.rglob("*"))
        if f.is_file() and not _excluded(f.relative_to(folder))
    ]


def _excluded(rel: Path) -> bool:
    """Training checkpoints, caches and hidden files stay local; the model, card, samples and logs are uploaded."""
    return any(part.startswith((".", "checkpoint-")) or part == "__pycache__" for part in rel.parts)


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
    """Create ``repo_id`` if needed and upload ``folder``. With ``dry_run`` nothing is sent; the plan is returned."""
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
    ignore = ["checkpoint-*", "checkpoint-*/*", ".*", ".*/*", "**/__pycache__/*"]
    card = folder / "README.md"
    rewrite_card = repo_type == "model" and card.is_file()
    api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type=repo_type,
        commit_message=commit_message,
        ignore_patterns=ignore + (["README.md"] if rewrite_card else []),
    )
    if rewrite_card:  # the uploaded card's snippets load the repo, not the local folder it was written in
        from genkit.card import set_card_repo

        api.upload_file(
            path_or_fileobj=set_card_repo(card.read_text(), repo_id).encode(),
            path_in_repo="README.md",
            repo_id=repo_id,
            repo_type=repo_type,
            commit_message=commit_message,
        )
    plan["url"] = str(url)
    return plan
