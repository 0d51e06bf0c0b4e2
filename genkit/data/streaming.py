"""``--streaming``: train image models on a dataset read as a stream (``datasets.IterableDataset``).

Nothing is downloaded or decoded ahead: each process reads its share of the stream (``split_dataset_by_node``),
shuffled by datasets' shard order and buffer (seed + epoch), and decodes images as batches are drawn, on
``--num-workers`` threads (PIL releases the GIL while it decodes and resizes). The order depends only on the seed,
the epoch and the process, never on the thread count, so a resumed run skips the examples its epoch has seen
(read, not decoded) and lands on the same next batch as an uninterrupted run. See docs/data.md, "Streaming".
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import datasets
import numpy as np
import torch

from genkit.data.frames import (
    ImageTensorDataset,
    centre_window,
    decode_image,
    framing,
    image_info,
    resolve_channels,
    stored_size,
)
from genkit.data.sources import describe_error
from genkit.errors import DataError
from genkit.types import PreparedData

__all__ = ["StreamingImages", "prepare_streamed_images"]

CHANNEL_PEEK = 64  # images read from the head of the stream to find the data's own channel count
DECODE_CHUNK = 64  # images handed to the decoding threads at once


def prepare_streamed_images(splits: datasets.IterableDatasetDict, config: dict) -> PreparedData:
    """The streamed counterpart of ``genkit.data.prepare_images``: the train split stays a stream
    (``StreamingImages``), the (small) test split is decoded into memory."""
    source = str(config["dataset"])
    raw = {name: split.cast_column("image", datasets.Image(decode=False)) for name, split in splits.items()}
    label_feature = raw["train"].features.get("label") if raw["train"].features else None
    head = [row["image"] for row in _read(itertools.islice(raw["train"], CHANNEL_PEEK), source)]
    if not head:
        raise DataError(f"dataset {source!r} has no rows")
    frame = framing(config)
    channels = resolve_channels(config.get("channels"), head, frame)
    size = stored_size(config)
    crop = int(config["image_size"]) if size != config["image_size"] else None
    train = StreamingImages(
        raw["train"],
        source=source,
        framing=frame,
        channels=channels,
        seed=int(config["seed"]),
        shuffle_buffer=int(config["shuffle_buffer"]),
        crop=crop,
        skip_bad=bool(config.get("skip_bad_images")),
    )
    test_rows = list(train.decoded(_read(iter(raw["test"]), source)))
    if not test_rows:
        raise DataError(f"the test split of dataset {source!r} has no readable images")
    pixels = torch.from_numpy(np.stack([pixels for pixels, _ in test_rows]))
    labels = torch.tensor([label for _, label in test_rows]) if label_feature is not None else None
    return PreparedData(
        train=train,
        test=ImageTensorDataset(pixels, labels, crop=crop),
        info=image_info(config, channels, list(label_feature.names) if label_feature is not None else None),
        train_raw=train.uncropped() if crop else None,
    )


def _read(rows, source: str):
    """The rows of a stream; an error while reading it (a corrupt file, a lost connection) as one DataError line."""
    try:
        yield from rows
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"cannot read dataset {source!r} while streaming it: {describe_error(err)}") from err


class StreamingImages(torch.utils.data.IterableDataset):
    """A training split read as a stream and decoded on the fly; yields the items ``ImageTensorDataset`` yields.

    ``set_epoch`` chooses the shuffle, ``shard`` the process's share, ``skip`` how many of the epoch's examples
    (of this process) to pass over undecoded; ``threads`` decode in parallel without changing the order.
    """

    def __init__(
        self,
        stream: datasets.IterableDataset,
        *,
        source: str,
        framing: tuple,
        channels: int,
        seed: int,
        shuffle_buffer: int,
        crop: int | None = None,
        skip_bad: bool = False,
    ):
        self.stream, self.source, self.framing, self.channels = stream, source, framing, channels
        self.seed, self.shuffle_buffer, self.crop, self.skip_bad = seed, shuffle_buffer, crop, skip_bad
        self.labelled = bool(stream.features) and "label" in stream.features
        self.epoch, self.skip, self.rank, self.world, self.threads = 0, 0, 0, 1, 1

    def uncropped(self) -> StreamingImages:
        """The same stream at the stored size (``--random-crop``: what ``Plugin.augment`` cuts windows from)."""
        view = StreamingImages.__new__(StreamingImages)
        view.__dict__.update(self.__dict__, crop=None)
        return view

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world

    def _rows(self):
        from datasets.distributed import split_dataset_by_node

        stream = self.stream
        if self.shuffle_buffer > 1:
            stream = stream.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer)
        stream.set_epoch(self.epoch)
        if self.world > 1:
            stream = split_dataset_by_node(stream, rank=self.rank, world_size=self.world)
        return itertools.islice(_read(iter(stream), self.source), self.skip, None)  # skipped rows stay undecoded

    def decoded(self, rows):
        """(C, S, S) uint8 pixels and the label (or None) of each readable row, in order."""

        def one(row):
            pixels = decode_image(
                row["image"], "a streamed row", self.source, self.skip_bad, self.framing, self.channels
            )
            return None if pixels is None else (pixels, row.get("label"))

        with ThreadPoolExecutor(self.threads) if self.threads > 1 else _Inline() as pool:
            rows = iter(rows)
            while chunk := list(itertools.islice(rows, DECODE_CHUNK)):
                yield from (item for item in pool.map(one, chunk) if item is not None)

    def __iter__(self):
        for pixels, label in self.decoded(self._rows()):
            pixels = torch.from_numpy(pixels)
            if self.crop is not None:
                pixels = centre_window(pixels, self.crop)
            item = {"pixel_values": pixels.float() / 127.5 - 1}
            if self.labelled:
                item["labels"] = torch.tensor(label, dtype=torch.int64)
            yield item


class _Inline:
    """``ThreadPoolExecutor``'s ``map`` in the calling thread (one thread: no pool to start)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items):
        return map(fn, items)
