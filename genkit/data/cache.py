"""Decoded images kept on disk: both splits decoded once into uint8 arrays under the datasets cache (keyed by the
splits' fingerprints and the framing) and read back one row per access; a local folder seen before is mapped without
``load_dataset`` through its index (every file's path, size and time)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import datasets
import numpy as np
import torch

from genkit.data.builtin import BUILTIN_SOURCES
from genkit.data.frames import Framing, ImageTensorDataset, decode_image, image_info, stored_size
from genkit.errors import DataError
from genkit.io import staged_folder
from genkit.types import PreparedData

__all__ = ["CachedRows", "folder_index", "index_folder", "prepare_cached_folder", "prepared_images"]


def prepared_images(config: dict, arrays: dict, labels: dict | None, channels: int, class_names) -> PreparedData:
    image_size = config["image_size"]
    crop = image_size if stored_size(config) != image_size else None
    parts = {}
    for name in ("train", "test"):
        split_labels = None if labels is None else torch.from_numpy(np.asarray(labels[name], dtype=np.int64))
        pixels = torch.from_numpy(arrays[name]) if isinstance(arrays[name], np.ndarray) else arrays[name]
        parts[name] = ImageTensorDataset(pixels, split_labels, crop=crop)
    return PreparedData(
        train=parts["train"],
        test=parts["test"],
        info=image_info(config, channels, class_names),
        train_raw=parts["train"].uncropped() if crop else None,
    )


# What load_splits reads from a run's config for a local folder: with the folder's files, they fix its splits.
_FOLDER_LOAD_KEYS = ("image_column", "label_column", "num_samples", "seed", "test_fraction", "split", "test_split")


def folder_index(config: dict) -> Path | None:
    """Where the index of a local image folder's cached arrays is kept, keyed by every file's path, size and
    modification time, the settings that split it, and the preprocessing; None when the source is not a folder of
    files (a built-in, a Hub id, a saved Dataset, a stream)."""
    import hashlib
    import json

    source = config.get("dataset")
    if not isinstance(source, (str, os.PathLike)) or config.get("streaming") or str(source) in BUILTIN_SOURCES:
        return None
    root = Path(source)
    if not root.is_dir() or (root / "dataset_dict.json").exists() or (root / "state.json").exists():
        return None
    listing = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            stat = os.stat(os.path.join(folder, name))
            listing.update(
                f"{os.path.relpath(os.path.join(folder, name), root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
            )
    spec = {
        "version": _CACHE_VERSION,
        "root": str(root.resolve()),
        "files": listing.hexdigest(),
        "load": {key: config.get(key) for key in _FOLDER_LOAD_KEYS},
        "preprocessing": preprocessing(config),
    }
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]
    return Path(datasets.config.HF_DATASETS_CACHE) / "genkit-images" / "folders" / key


def index_folder(index: Path | None, config: dict, splits: datasets.DatasetDict, data: PreparedData) -> None:
    """After ``prepare_images`` made ``data`` from ``splits_for(config)``: note in ``index`` (``folder_index``) which
    cached arrays (and labels) a local folder's files and these settings give, for ``prepare_cached_folder``."""
    import json

    if index is None or (index / "index.json").is_file():
        return
    key = image_cache_key(splits, config)
    if key is None or not (Path(datasets.config.HF_DATASETS_CACHE) / "genkit-images" / key / "meta.json").is_file():
        return
    with staged_folder(index, replace=False) as tmp:
        for name in ("train", "test"):
            labels = getattr(data, name).labels
            if labels is not None:
                np.save(tmp / f"{name}-labels.npy", labels.numpy())
        (tmp / "index.json").write_text(json.dumps({"cache": key, "class_names": data.info.class_names}))


def prepare_cached_folder(config: dict, index: Path | None) -> PreparedData | None:
    """A local image folder's ``PreparedData`` straight from the on-disk cache, when an earlier run of the same
    files and settings built it: without ``load_dataset``, whose resolution of a folder's files costs about 1.3 s per
    1,000 files on every run (docs/benchmarks.md, "Data"). ``index``: ``folder_index(config)``. None when there is no
    such cache yet."""
    import json

    if index is None or not (index / "index.json").is_file():
        return None
    meta = json.loads((index / "index.json").read_text())
    folder = Path(datasets.config.HF_DATASETS_CACHE) / "genkit-images" / meta["cache"]
    if not (folder / "meta.json").is_file():
        return None
    if config.get("random_flip", False) is None:
        config["random_flip"] = True  # the user's own images
    arrays, _, channels = read_image_cache(folder)
    labels = None
    if meta["class_names"] is not None:
        labels = {name: np.load(index / f"{name}-labels.npy") for name in ("train", "test")}
    return prepared_images(config, arrays, labels, channels, meta["class_names"])


_CACHE_VERSION = 2  # bump when the decoding below changes what a cached array holds (2: deep images, transparency)


def image_cache_key(splits: datasets.DatasetDict, config: dict) -> str | None:
    """What the cached arrays depend on: the splits' contents (datasets fingerprints) and the preprocessing."""
    import hashlib
    import json

    fingerprints = [getattr(splits[name], "_fingerprint", None) for name in ("train", "test")]
    if not all(fingerprints):
        return None
    spec = {"version": _CACHE_VERSION, "fingerprints": fingerprints, **preprocessing(config)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def preprocessing(config: dict) -> dict:
    return {
        "image_size": config["image_size"],
        "channels": config.get("channels"),
        "stored_size": stored_size(config),
        "center_crop": bool(config.get("center_crop", True)),
        "background": str(config.get("background") or "white"),
        "skip_bad_images": bool(config.get("skip_bad_images")),
    }


def read_image_cache(folder: Path) -> tuple[dict[str, CachedRows], dict[str, list[int]], int]:
    import json

    meta = json.loads((folder / "meta.json").read_text())
    arrays = {name: CachedRows(folder / f"{name}.npy", meta["count"][name]) for name in ("train", "test")}
    return arrays, meta["kept"], meta["channels"]


class CachedRows:
    """The rows of a cached (N, C, S, S) uint8 ``.npy`` file, each read from the file when asked for (``os.pread``),
    as a uint8 tensor. The page cache keeps the rows batches read; nothing is mapped into the process: a memory map
    would count in its RSS every cached page the kernel maps around each row read (measured: reading 12,800 random
    rows of 45,000 mapped the whole 527 MiB file, MADV_RANDOM or not)."""

    def __init__(self, file: Path, count: int):
        with open(file, "rb") as f:
            fmt = np.lib.format
            version = fmt.read_magic(f)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if fortran or dtype != np.uint8:
            raise ValueError(f"{file} is not a C-ordered uint8 array")
        self.file, self.shape = Path(file), (count, *shape[1:])
        self.row_bytes = math.prod(shape[1:])
        self._fd, self._pid = None, None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} of {len(self)}")
        if self._pid != os.getpid():  # a DataLoader worker opens its own descriptor
            self._fd, self._pid = os.open(self.file, os.O_RDONLY | getattr(os, "O_BINARY", 0)), os.getpid()
        start = self.offset + (index % len(self)) * self.row_bytes
        if hasattr(os, "pread"):
            data = os.pread(self._fd, self.row_bytes, start)
        else:  # Windows: no pread
            os.lseek(self._fd, start, os.SEEK_SET)
            data = os.read(self._fd, self.row_bytes)
        return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(self.shape[1:])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": None}

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """All rows at once (memory-mapped): for comparisons, not for training."""
        rows = np.load(self.file, mmap_mode="r")[: len(self)]
        return rows if dtype is None else rows.astype(dtype)

    def __del__(self):
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)


def decode_splits(raws: dict, source: str, skip: bool, framing: Framing, channels: int, folder: Path | None):
    """Decode both splits into uint8 arrays (N, C, S, S) framed as ``framing`` says: files written
    into ``folder`` (through a temporary sibling renamed into place, so a crashed build is never read), or in memory
    when ``folder`` is None."""
    import json

    size = framing.size
    if folder is None:
        arrays, kept = {}, {}
        for name, raw in raws.items():
            out = np.empty((len(raw), channels, size, size), dtype=np.uint8)
            kept[name] = decode_into(raw, source, skip, framing, channels, out)
            arrays[name] = out[: len(kept[name])]
        return arrays, kept
    with staged_folder(folder, replace=False) as tmp:  # another run may build the same cache meanwhile: either serves
        kept, count = {}, {}
        for name, raw in raws.items():
            out = np.lib.format.open_memmap(tmp / f"{name}.npy", "w+", np.uint8, (len(raw), channels, size, size))
            kept[name] = decode_into(raw, source, skip, framing, channels, out)
            count[name] = len(kept[name])
            out.flush()
            del out
        (tmp / "meta.json").write_text(json.dumps({"channels": channels, "kept": kept, "count": count}))
    arrays, kept, _ = read_image_cache(folder)
    return arrays, kept


def decode_into(raw, source: str, skip_bad: bool, framing: Framing, channels: int, out) -> list[int]:
    """Decode, convert, crop and resize each image into the next row of ``out``; returns the rows kept. An
    unreadable image is named (file and row), or skipped with a warning under ``--skip-bad-images``."""
    import warnings

    kept, bad = [], []
    for i, item in enumerate(raw):
        pixels = decode_image(item, f"row {i}", source, skip_bad, framing, channels)
        if pixels is None:
            bad.append(str(item.get("path") or f"row {i}"))
            continue
        out[len(kept)] = pixels
        kept.append(i)
    if bad:
        warnings.warn(
            f"skipped {len(bad)} unreadable image(s) of dataset {source!r}: {', '.join(bad[:5])}"
            + (" ..." if len(bad) > 5 else ""),
            stacklevel=2,
        )
    if not kept:
        raise DataError(f"dataset {source!r} has no readable images")
    return kept
