"""Writing folders so that nothing is ever half-written or written by two processes at once: staged folders swapped
in by renames, the final model moved over the old one, and one writer per folder (a lock)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import sys
import time
from pathlib import Path

from genkit.errors import GenkitError

__all__ = ["LOCK_FILE", "STAGING_DIR", "folder_lock", "is_interrupted_save", "move_model_into", "staged_folder"]

METADATA_FILE = "genkit.json"  # moved out first and in last (genkit.io.folder documents the format)


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
