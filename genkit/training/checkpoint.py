"""Training checkpoints without pickle: tensors go to safetensors, everything else to JSON.

accelerate's ``save_state`` writes optimizer, scheduler and RNG states with ``torch.save`` (pickle). genkit
checkpoints hold the same state — models, optimizers, LR schedulers, EMA, every process's RNG, the data position and
the plugin's carried tensors — as ``.safetensors`` + ``.json`` files, so loading one can never run code.

Layout of ``checkpoint-{step}/``::

    trainer_state.json            step, epoch, batch position, config
    model-{name}.safetensors      raw (non-EMA) weights of each module, full (unsharded) state dict
    ema-{name}.safetensors/.json  EMA shadow weights and counters
    optimizer-{phase}.safetensors/.json
    scheduler-{phase}.json
    rng.safetensors/.json         torch/numpy/python RNG states of every process
    carry.safetensors             tensors a plugin carries across batches

Model and optimizer states are full state dicts gathered with ``torch.distributed.checkpoint.state_dict``
(``full_state_dict=True``), keyed by parameter name: the same files come from one process, from DDP and from FSDP
(whose shards are gathered onto the main process), and load back into any of them.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from genkit.errors import GenkitError
from genkit.io import METADATA_FILE, check_folder, is_interrupted_save, read_json

__all__ = [
    "find_checkpoint",
    "gather_model_state",
    "gather_optimizer_state",
    "load_model_state",
    "load_optimizer_state",
    "load_state_file",
    "save_state_file",
    "is_run_folder",
    "list_checkpoints",
    "load_tensors_and_json",
    "prune_checkpoints",
    "rng_state",
    "save_tensors_and_json",
    "set_rng_state",
    "verify_checkpoint",
]

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def save_tensors_and_json(path_stem: Path, obj: Any) -> None:
    """Save a nested structure: tensors into ``<stem>.safetensors``, the rest (with tensor references) as JSON."""
    tensors: dict[str, torch.Tensor] = {}

    def encode(x, key):
        if isinstance(x, torch.Tensor):
            tensors[key] = x.detach().cpu().contiguous()
            return {"__tensor__": key}
        if isinstance(x, np.ndarray):
            tensors[key] = torch.from_numpy(np.ascontiguousarray(x))
            return {"__ndarray__": key}
        if isinstance(x, dict):
            return {
                "__dict__": [[encode(k, f"{key}.k{i}"), encode(v, f"{key}.{i}")] for i, (k, v) in enumerate(x.items())]
            }
        if isinstance(x, (list, tuple)):
            return {
                "__tuple__" if isinstance(x, tuple) else "__list__": [encode(v, f"{key}.{i}") for i, v in enumerate(x)]
            }
        if isinstance(x, float) and not np.isfinite(x):
            return {"__float__": repr(x)}
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, (np.integer, np.floating)):
            return x.item()
        raise TypeError(f"cannot checkpoint a value of type {type(x).__name__} at {key}")

    encoded = encode(obj, "t")
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    if tensors:
        save_file(tensors, str(path_stem) + ".safetensors")
    Path(str(path_stem) + ".json").write_text(json.dumps(encoded))


def load_tensors_and_json(path_stem: Path) -> Any:
    tensor_file = Path(str(path_stem) + ".safetensors")
    tensors = load_file(str(tensor_file)) if tensor_file.exists() else {}
    encoded = json.loads(Path(str(path_stem) + ".json").read_text())

    def decode(x):
        if isinstance(x, dict):
            if "__tensor__" in x:
                return tensors[x["__tensor__"]]
            if "__ndarray__" in x:
                return tensors[x["__ndarray__"]].numpy()
            if "__dict__" in x:
                return {_hashable(decode(k)): decode(v) for k, v in x["__dict__"]}
            if "__list__" in x:
                return [decode(v) for v in x["__list__"]]
            if "__tuple__" in x:
                return tuple(decode(v) for v in x["__tuple__"])
            if "__float__" in x:
                return float(x["__float__"])
        return x

    return decode(encoded)


def _hashable(k):
    return tuple(k) if isinstance(k, list) else k


# ---- full state dicts: one process, DDP and FSDP alike -----------------------------------------------------------
def _full_options(**extra):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **extra)


def gather_model_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The full state dict of a module (bare, DDP- or FSDP-wrapped) on CPU, keyed as in the bare module.

    Collective: every process must call it (FSDP gathers the shards). With a process group only rank 0 receives
    the tensors; the others get ``{}``.
    """
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(module, options=_full_options(cpu_offload=True))


def load_model_state(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a full state dict into a module, bare, DDP- or FSDP-wrapped (each process passes the whole state and
    keeps its own shard). Raises ``RuntimeError`` for missing, unexpected or mis-shaped keys."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(module, state, options=_full_options())


def gather_optimizer_state(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The full state of an optimizer over ``module``'s parameters, keyed by parameter name. Collective, like
    ``gather_model_state``."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    if not optimizer.state:
        # Never stepped (e.g. a phase that runs every n-th update): torch's gatherer would take a zero-gradient
        # step to create state, which changes Adam's step count. There is nothing to gather.
        return optimizer.state_dict()
    return get_optimizer_state_dict(module, optimizer, options=_full_options(cpu_offload=True))


def load_optimizer_state(module: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load what ``gather_optimizer_state`` returned into a fresh optimizer over ``module``'s parameters."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    if not state["state"]:
        optimizer.load_state_dict(state)  # an optimizer that had never stepped
        return
    set_optimizer_state_dict(module, optimizer, state, options=_full_options())


_ALIASES = "genkit_aliases"


def save_state_file(path: str | Path, state: dict[str, torch.Tensor]) -> None:
    """Write a state dict to safetensors. A tensor shared under several names (tied weights) is stored once and
    the other names are recorded in the file's metadata; ``load_state_file`` restores them."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    first: dict[tuple, str] = {}
    for name, tensor in state.items():
        key = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.shape)
        if tensor.numel() and key in first:
            aliases[name] = first[key]
            continue
        first[key] = name
        tensors[name] = tensor.detach().cpu().contiguous()
    save_file(tensors, str(path), metadata={_ALIASES: json.dumps(aliases)})


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        state = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    for name, target in json.loads(metadata.get(_ALIASES, "{}")).items():
        state[name] = state[target]
    return state


def rng_state() -> dict[str, Any]:
    """This process's torch, numpy and python RNG states (CUDA too when present)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np.asarray(np_state[1], dtype=np.uint32), *np_state[2:]))
    random.setstate((state["python_version"], tuple(int(v) for v in state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """``checkpoint-{step}`` folders of a run that finished saving (they hold trainer_state.json), oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").exists():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


# What a training run writes into its output folder besides the model (see Trainer), and the hidden entries it makes:
# staging folders of checkpoints and of the final model, the lock, and the earlier run that --overwrite set aside.
_RUN_ENTRIES = {"logs", "samples"}
_HIDDEN_RUN_ENTRY = re.compile(
    r"^\.(checkpoint-\d+\.(tmp|old)-\d+|tmp-checkpoint-\d+|tmp-model|old-model|genkit\.lock|previous-run)$"
)


def is_run_folder(path: str | Path) -> bool:
    """True for a folder that genkit training wrote: a saved model, checkpoints, or only a run's logs and samples."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / METADATA_FILE).is_file() or list_checkpoints(path) or is_interrupted_save(path):
        return True
    return all(p.name in _RUN_ENTRIES or _HIDDEN_RUN_ENTRY.match(p.name) for p in path.iterdir())


def verify_checkpoint(folder: Path) -> dict[str, Any]:
    """Check every file of a checkpoint before anything is loaded from it; returns its trainer state."""
    state = read_json(folder / "trainer_state.json", error=GenkitError)
    if not all(k in state for k in ("step", "epoch", "batch_in_epoch", "config")):
        raise GenkitError(
            f"{folder / 'trainer_state.json'}: damaged checkpoint (missing step, epoch, batch_in_epoch or config)"
        )
    check_folder(folder)  # every safetensors file whole, every JSON file readable
    return state


def find_checkpoint(output_dir: str | Path, resume: str) -> Path:
    """``resume`` is ``latest`` (newest checkpoint in ``output_dir``), ``latest-valid`` (the newest one whose files
    are all intact) or a checkpoint folder's path. A damaged checkpoint is named, never silently skipped."""
    if resume in ("latest", "latest-valid"):
        found = list_checkpoints(output_dir)
        if not found:
            raise GenkitError(f"--resume {resume}: no checkpoint-<step> folder in {str(output_dir)!r}")
        for folder in reversed(found):
            try:
                verify_checkpoint(folder)
                return folder
            except GenkitError as exc:
                if resume == "latest":
                    raise GenkitError(
                        f"--resume latest: the newest checkpoint is damaged: {exc}; resume from the newest intact one "
                        "with --resume latest-valid"
                    ) from None
        raise GenkitError(f"--resume latest-valid: every checkpoint in {str(output_dir)!r} is damaged")
    path = Path(resume)
    if not (path / "trainer_state.json").exists():
        raise GenkitError(f"--resume {resume!r}: not a genkit checkpoint folder (no trainer_state.json)")
    return path


def prune_checkpoints(output_dir: str | Path, total_limit: int | None) -> None:
    """Keep the newest ``total_limit`` checkpoints."""
    if not total_limit:
        return
    found = list_checkpoints(output_dir)
    for old in found[: max(0, len(found) - total_limit)]:
        shutil.rmtree(old, ignore_errors=True)
