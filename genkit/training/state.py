"""What a checkpoint holds, registered once: every stateful object of a run (models, optimizers, LR schedules, EMAs,
the loss scaler, every process's RNG, the plugin's carried tensors) with how to read its state and how to put it
back, as accelerate's ``register_for_checkpointing`` does. One list saves and loads them, in genkit's safetensors +
JSON format (``genkit.training.checkpoint``), so no kind of state is written out by hand twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genkit.training import checkpoint as ckpt

__all__ = ["CheckpointState"]


@dataclass
class _Entry:
    name: str  # the file stem in checkpoint-<step>/
    get: Callable[[], Any]  # every process calls it (a gather is collective); the main process writes the result
    put: Callable[[Any], None]
    weights: bool  # a state dict written with its tied tensors once (model-<name>.safetensors)
    optional: bool  # may be missing from a checkpoint (the loss scaler's, from a run in full precision)


class CheckpointState:
    """The registered objects of one run, saved into and loaded from a checkpoint folder in registration order."""

    def __init__(self):
        self.entries: list[_Entry] = []

    def register(
        self, name: str, get: Callable[[], Any], put: Callable[[Any], None], *, weights=False, optional=False
    ) -> None:
        self.entries.append(_Entry(name, get, put, weights, optional))

    def gather(self) -> list[tuple[_Entry, Any]]:
        """Every entry's state; collective: every process calls it, and the main one writes what it returns."""
        return [(entry, entry.get()) for entry in self.entries]

    @staticmethod
    def write(folder: Path, gathered: list[tuple[_Entry, Any]], progress: dict[str, Any]) -> None:
        """The gathered states into ``folder``, then ``trainer_state.json`` (``progress``): a checkpoint without it
        is incomplete and never resumed from."""
        for entry, value in gathered:
            if entry.weights:
                ckpt.save_state_file(folder / f"{entry.name}.safetensors", value)
            else:
                ckpt.save_tensors_and_json(folder / entry.name, value)
        (folder / "trainer_state.json").write_text(json.dumps(progress, indent=2, default=str))

    def load(self, folder: Path) -> None:
        """Put every entry's saved state back (the folder was checked by ``checkpoint.verify_checkpoint``)."""
        for entry in self.entries:
            if entry.weights:
                entry.put(ckpt.load_state_file(folder / f"{entry.name}.safetensors"))
            elif not entry.optional or (folder / f"{entry.name}.json").exists():
                entry.put(ckpt.load_tensors_and_json(folder / entry.name))
