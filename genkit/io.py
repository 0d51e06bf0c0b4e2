"""Model I/O: resolve a folder or Hub repo id, refuse pickle, check weights and configs, load, push.

Every genkit model folder holds config JSON, ``.safetensors`` weights, a model card (README.md) and
``genkit.json``, which names the plugin that made it so ``genkit.load`` can return the right pipeline.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import struct
from pathlib import Path
from typing import Any

from genkit.errors import ConfigError, GenkitError, PickleRefusedError, WeightsError

__all__ = [
    "METADATA_FILE",
    "PICKLE_SUFFIXES",
    "check_folder",
    "load",
    "push_to_hub",
    "read_metadata",
    "resolve",
    "validate_config",
    "write_metadata",
]

METADATA_FILE = "genkit.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


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


def validate_pipeline_folder(folder: str | Path) -> None:
    """Validate each component config of a diffusers pipeline folder against the class named in model_index.json."""
    folder = Path(folder)
    index_file = folder / "model_index.json"
    if not index_file.exists():
        return
    for component, spec in json.loads(index_file.read_text()).items():
        if component.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        library, class_name = spec
        config_file = folder / component / "config.json"
        if not config_file.exists():
            config_file = folder / component / "scheduler_config.json"
        if not config_file.exists():
            raise ConfigError(f"{folder / component}: missing config.json for component {component!r}")
        try:
            cls = getattr(importlib.import_module(library), class_name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{index_file}: component {component!r} names {library}.{class_name}: {exc}") from None
        if hasattr(cls, "config_name") and config_file.name == "config.json":
            validate_config(cls, config_file)


# ---- genkit metadata -----------------------------------------------------------------------------------------------
def write_metadata(folder: str | Path, plugin: str, **fields: Any) -> None:
    from genkit import __version__

    meta = {"plugin": plugin, "genkit_version": __version__, **fields}
    (Path(folder) / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")


def read_metadata(folder: str | Path) -> dict[str, Any]:
    file = Path(folder) / METADATA_FILE
    if not file.exists():
        raise GenkitError(f"{folder} is not a genkit model: it has no {METADATA_FILE}")
    try:
        meta = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}: invalid JSON ({exc})") from None
    if not isinstance(meta.get("plugin"), str):
        raise ConfigError(f"{file}: missing field 'plugin' (the name of the plugin that made this model)")
    return meta


def load(path_or_repo_id: str | os.PathLike, revision: str | None = None):
    """Load a genkit model from a folder, a Hub repo id, or the offline cache, as its plugin's pipeline."""
    from genkit.registry import get_plugin

    folder = resolve(path_or_repo_id, revision=revision)
    meta = read_metadata(folder)
    check_folder(folder)
    validate_pipeline_folder(folder)
    return get_plugin(meta["plugin"]).load_pipeline(folder)


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
    if not re.match(r"^[\w.\-]+/[\w.\-]+$", repo_id):
        raise GenkitError(f"invalid repo id {repo_id!r}; expected 'user/name'")
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
    api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type=repo_type,
        commit_message=commit_message,
        ignore_patterns=["checkpoint-*", "checkpoint-*/*", ".*", ".*/*", "**/__pycache__/*"],
    )
    plan["url"] = str(url)
    return plan
