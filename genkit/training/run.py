"""A run into an output folder, from its checks to the saved model: the folder may be written, one run at a time
writes it (its lock), and ``--overwrite`` sets an earlier run aside until the new model is saved."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from genkit.errors import ConfigError, GenkitError
from genkit.io import LOCK_FILE, folder_lock
from genkit.training.checkpoint import is_run_folder, list_checkpoints
from genkit.training.trainer import Trainer
from genkit.validation import check_output_folder, flag, option

__all__ = ["PREVIOUS_RUN", "run_training"]


def run_training(
    plugin, config: dict[str, Any], *, resume: str | None = None, overwrite: bool = False, dataset=None, progress=True
):
    """Train into ``config["output"]`` after checking that the folder may be written (``genkit train`` and
    ``genkit.train`` both come here); returns the output folder.

    The main process holds the folder's lock for the whole run, so a second run into the same folder stops at once
    with a line naming the first. ``overwrite`` starts afresh: an earlier run's files are set aside in
    ``.previous-run`` (never mixed with the new run's checkpoints) and deleted once the new model is saved.
    """
    output = Path(config["output"])
    own = is_run_folder(output)
    check_output_folder(output, own=own, overwrite=overwrite)
    _check_not_inside_dataset(output, config["dataset"])
    if resume and overwrite:
        raise ConfigError(f"{flag('resume')} continues a run and {flag('overwrite')} starts afresh; give one of them")
    if list_checkpoints(output) and not resume and not overwrite:
        raise GenkitError(
            f"{output} already holds checkpoints of a run; continue it with {option('resume', 'latest')}, or pass "
            f"{option('overwrite')} (or another {flag('output')}) to start afresh"
        )
    if int(os.environ.get("RANK", "0")) != 0:  # the main process locks and writes; the others only train
        return Trainer(plugin, config, resume=resume, dataset=dataset, progress=progress).train()
    with folder_lock(output):
        set_aside = overwrite and own and _set_aside(output)
        try:
            folder = Trainer(plugin, config, resume=resume, dataset=dataset, progress=progress).train()
        except BaseException:
            if set_aside and not list_checkpoints(output):  # the new run saved nothing: the earlier one comes back
                _restore(output)
            raise
        shutil.rmtree(output / PREVIOUS_RUN, ignore_errors=True)
    return folder


PREVIOUS_RUN = ".previous-run"  # where --overwrite moves an earlier run until the new one has saved its model


def _set_aside(output: Path) -> bool:
    """Move everything of an earlier run in ``output`` (model, checkpoints, logs, samples) into ``.previous-run``;
    False when there was nothing to move."""
    entries = [p for p in output.iterdir() if p.name not in (LOCK_FILE, PREVIOUS_RUN)]
    if not entries:
        return False
    previous = output / PREVIOUS_RUN
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir()
    for entry in entries:
        entry.rename(previous / entry.name)
    print(
        f"{option('overwrite')}: the earlier run in {output} was moved to {previous}; it is deleted once this run "
        "has saved its model",
        file=sys.stderr,
    )
    return True


def _restore(output: Path) -> None:
    """Undo ``_set_aside`` after a new run that failed before its first checkpoint (its logs and samples go)."""
    for entry in output.iterdir():
        if entry.name not in (LOCK_FILE, PREVIOUS_RUN):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    previous = output / PREVIOUS_RUN
    for entry in previous.iterdir():
        entry.rename(output / entry.name)
    previous.rmdir()


def _check_not_inside_dataset(output: Path, dataset) -> None:
    """A model written inside the image folder it trains on would be read back as data by the next run."""
    source = Path(str(dataset)).expanduser()
    if isinstance(dataset, (str, os.PathLike)) and source.is_dir():
        source, out = source.resolve(), output.expanduser().resolve()
        if out == source or source in out.parents:
            raise ConfigError(
                f"--output {str(output)!r} is inside --dataset {str(dataset)!r}: the next run would read the "
                "model's own files as data; choose an output folder outside the dataset"
            )
