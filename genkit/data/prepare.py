"""``prepare_images``: the default ``Plugin.prepare_data`` of image plugins, from normalized splits to torch datasets
(decoded into the on-disk cache, into memory, or read as a stream)."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import torch

from genkit.data.builtin import BUILTIN_SOURCES
from genkit.data.cache import decode_splits, image_cache_key, prepared_images, read_image_cache
from genkit.data.frames import framing, resolve_channels
from genkit.data.streaming import prepare_streamed_images
from genkit.errors import DataError
from genkit.types import DataInfo, PreparedData

__all__ = ["PointsDataset", "prepare_images", "prepare_vectors"]


def prepare_images(splits: datasets.DatasetDict, config: dict) -> PreparedData:
    """Decode, crop and resize every image once into a uint8 array; ``config`` gives image_size, channels (or None),
    center_crop, random_crop and dataset. A ``random_flip`` of None is settled here: on for the user's own images, off
    for the built-in ones. Streamed splits (``--streaming``) go to ``genkit.streaming`` instead.

    The arrays are cached on disk under the datasets cache (``genkit-images/<key>``, the key made of both splits'
    datasets fingerprints and the preprocessing), written one image at a time (through a memory map) and read back one
    row per access (``CachedRows``): a later run, or another process of this one, reads the same files instead of
    decoding again, and the process holds only the batch being built. Data without a fingerprint is decoded into
    memory as before.
    """
    if config.get("random_flip", False) is None:
        config["random_flip"] = str(config["dataset"]) not in BUILTIN_SOURCES
    if isinstance(splits["train"], datasets.IterableDataset):
        return prepare_streamed_images(splits, config)
    source = str(config["dataset"])
    skip = bool(config.get("skip_bad_images"))
    label_feature = splits["train"].features.get("label")
    key = image_cache_key(splits, config)
    folder = None if key is None else Path(datasets.config.HF_DATASETS_CACHE) / "genkit-images" / key
    if folder is not None and (folder / "meta.json").is_file():
        arrays, kept, channels = read_image_cache(folder)
    else:  # decode: the images' bytes or paths, not yet decoded
        raws = {n: splits[n].cast_column("image", datasets.Image(decode=False))["image"] for n in ("train", "test")}
        frame = framing(config)
        channels = resolve_channels(config.get("channels"), (item for raw in raws.values() for item in raw), frame)
        arrays, kept = decode_splits(raws, source, skip, frame, channels, folder)
    labels = None
    if label_feature is not None:
        labels = {n: np.asarray(splits[n]["label"], dtype=np.int64)[np.asarray(kept[n], dtype=np.int64)] for n in kept}
    class_names = list(label_feature.names) if label_feature is not None else None
    return prepared_images(config, arrays, labels, channels, class_names)


class PointsDataset(torch.utils.data.Dataset):
    """Points (N, D) as items ``{"points": tensor of D floats}``."""

    def __init__(self, points: torch.Tensor):
        self.points = points

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"points": self.points[index]}


def prepare_vectors(splits: datasets.DatasetDict, config: dict) -> PreparedData:
    """The default ``Plugin.prepare_data`` of vector plugins: each split's ``points`` as one float32 tensor; the
    data's dimension is ``info.extra["dim"]``."""
    tensors = {}
    for name in ("train", "test"):
        rows = splits[name]["points"]
        if not rows or len({len(r) for r in rows}) != 1:
            raise DataError(f"the {name} split of dataset {config['dataset']!r} needs points of one dimension")
        tensors[name] = torch.tensor(rows, dtype=torch.float32)
    dim = tensors["train"].shape[1]
    if tensors["test"].shape[1] != dim:
        raise DataError(f"dataset {config['dataset']!r}: train points have {dim} values, test points another number")
    info = DataInfo(task="vector", dataset=str(config["dataset"]), extra={"dim": dim})
    return PreparedData(train=PointsDataset(tensors["train"]), test=PointsDataset(tensors["test"]), info=info)
