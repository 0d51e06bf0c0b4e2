"""The genkit model folder: where it is (a local folder, a Hub repo id, the offline cache) and its ``genkit.json``.

Every genkit model folder holds config JSON, ``.safetensors`` weights, a model card (README.md) and ``genkit.json``,
which names the plugin that made it so that ``genkit.load`` can return the right pipeline.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from genkit.errors import ConfigError, GenkitError
from genkit.io.atomic import METADATA_FILE, is_interrupted_save
from genkit.io.files import read_json
from genkit.version import __version__

__all__ = ["METADATA_FILE", "PUSH_REPO_ID", "read_metadata", "resolve", "write_metadata"]


_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


# A repo id to push to: user/name, or a bare name that lands in the token's namespace.
PUSH_REPO_ID = re.compile(r"([\w.\-]+/)?[\w.\-]+")


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


def write_metadata(folder: str | Path, plugin: str, **fields: Any) -> None:
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
