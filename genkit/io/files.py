"""The files of a model folder, read safely: which files a folder holds (never through a link out of it, never a
special file), the ones that leave the machine, and JSON read without surprises."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from genkit.errors import ConfigError, GenkitError

__all__ = ["MAX_JSON_BYTES", "folder_files", "read_json", "shared_files", "upload_plan"]


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


def shared_files(folder: str | Path) -> list[tuple[str, Path]]:
    """The files of a model folder that leave the machine (uploads, Spaces), as ``folder_files`` gives them: the
    model, card, samples and logs; training checkpoints, caches and hidden files stay local."""

    def local_only(rel: str) -> bool:
        return any(part.startswith((".", "checkpoint-")) or part == "__pycache__" for part in rel.split("/"))

    return [(rel, file) for rel, file in folder_files(folder) if not local_only(rel)]


def upload_plan(folder: str | Path) -> list[tuple[str, int]]:
    """Files that an upload of ``folder`` sends: (path relative to the folder, size in bytes)."""
    return [(rel, file.stat().st_size) for rel, file in shared_files(folder)]


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
