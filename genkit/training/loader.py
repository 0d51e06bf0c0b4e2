"""A run's data: prepared once (the main process first, the others read its cache), and the training split as
batches in an order fixed by seed and epoch, so that a resumed run sees exactly the batches it would have seen."""

from __future__ import annotations

import math
from typing import Any

import torch

from genkit.data import folder_index, index_folder, prepare_cached_folder, splits_for
from genkit.errors import ConfigError, GenkitError
from genkit.plugin import Plugin
from genkit.types import PreparedData

__all__ = ["EpochSampler", "TrainingBatches", "prepare_data"]


def prepare_data(accelerator, plugin, config: dict[str, Any], dataset=None) -> PreparedData:
    """The plugin's prepared data; a local image folder seen before, with the same files and settings, maps its
    cached arrays at once. The main process fills the datasets cache first, then the others read it."""
    own_folder = dataset is None and type(plugin).prepare_data is Plugin.prepare_data
    index = folder_index(config) if own_folder else None  # None: not a local image folder
    with accelerator.main_process_first():
        data = prepare_cached_folder(config, index)
        if data is None:
            splits = splits_for(config, plugin.task, source=dataset)
            data = plugin.prepare_data(splits, config)
            if accelerator.is_main_process:
                index_folder(index, config, splits, data)
    return data


class EpochSampler(torch.utils.data.Sampler):
    """A permutation fixed by (seed, epoch), so a resumed run sees exactly the batches it would have seen."""

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class TrainingBatches:
    """The training loader, how many batches make an epoch (None for a stream: its length is unknown), and each
    epoch's batches after those a resumed epoch has already seen. Settles ``config["max_steps"]`` when only epochs
    were given."""

    def __init__(self, accelerator, plugin, config: dict[str, Any], data: PreparedData):
        self.accelerator, self.config = accelerator, config
        train = data.train if data.train_raw is None else data.train_raw
        self.streamed = isinstance(train, torch.utils.data.IterableDataset)
        if self.streamed:
            self.loader = self._stream_loader(train, plugin)
        else:
            self.loader = self._loader(train, plugin, len(data.train))

    def _loader(self, train, plugin, n: int) -> torch.utils.data.DataLoader:
        acc, config = self.accelerator, self.config
        batch_size, sequential = int(config["batch_size"]), plugin.sequential_batches
        if sequential and batch_size % acc.num_processes:
            raise ConfigError(f"--batch-size {batch_size} must be divisible by the {acc.num_processes} processes")
        if n < batch_size * (1 if sequential else acc.num_processes):
            raise ConfigError(
                f"the training split has {n} examples, fewer than one batch of {batch_size} per process; lower "
                "--batch-size"
            )
        self.sampler = EpochSampler(len(train), config["seed"], shuffle=not sequential)
        loader = torch.utils.data.DataLoader(
            train,
            batch_size=batch_size,
            sampler=self.sampler,
            drop_last=True,
            # Workers only fetch: the sampler, in this process, fixes the order, so any count gives the same batches.
            num_workers=int(config["num_workers"]),
            persistent_workers=int(config["num_workers"]) > 0,
            pin_memory=acc.device.type == "cuda",
            # A private generator: iter(DataLoader) draws a seed from it, and drawing from the global RNG instead
            # would shift the global stream differently in a resumed run than in an uninterrupted one.
            generator=torch.Generator().manual_seed(config["seed"]),
        )
        self.batches_per_epoch = len(loader) // (1 if sequential else acc.num_processes)
        self.updates_per_epoch = max(1, self.batches_per_epoch // int(config["grad_accum"]))
        if config["max_steps"] is None:
            epochs = config["epochs"] if config["epochs"] is not None else 1
            config["max_steps"] = int(math.ceil(float(epochs) * self.updates_per_epoch))
        return loader

    def _stream_loader(self, stream, plugin) -> torch.utils.data.DataLoader:
        """``--streaming``: each process batches its own share of the stream, decoded on ``num_workers`` threads
        (``genkit.data.streaming``); accelerate does not shard this loader again. A stream's length is unknown, so
        the run's length is ``max_steps``."""
        acc, config = self.accelerator, self.config
        if plugin.sequential_batches:
            raise ConfigError(f"plugin {plugin.name!r} reads its data in order and cannot train on a stream")
        if config["max_steps"] is None:
            raise ConfigError("--streaming needs --max-steps: a stream's length is not known before it is read")
        stream.shard(acc.process_index, acc.num_processes)
        stream.threads = max(1, int(config["num_workers"]))
        self.batches_per_epoch = self.updates_per_epoch = None
        # a private generator, as in _loader: iter() must not draw from the global RNG
        generator = torch.Generator().manual_seed(config["seed"])
        return torch.utils.data.DataLoader(
            stream, batch_size=int(config["batch_size"]), drop_last=True, generator=generator
        )

    def epoch(self, epoch: int, seen: int):
        """Epoch ``epoch``'s batches after the first ``seen`` (a resumed epoch's)."""
        if self.streamed:
            return self._stream_epoch(epoch, seen)
        # accelerate's loaders count their own passes and hand that count to the sampler at every iter();
        # set it to the true epoch, also on the loader that skips the batches a resumed epoch already saw.
        self.loader.set_epoch(epoch)
        if not seen:
            return self.loader
        from accelerate import skip_first_batches

        loader = skip_first_batches(self.loader, seen)
        loader.set_epoch(epoch)
        return loader

    def _stream_epoch(self, epoch: int, seen: int):
        """The epoch's batches from the stream, after the examples a resumed epoch has seen (read again, not
        decoded). The epoch ends for every process when one runs out (shares may differ by a batch)."""
        from accelerate.utils import send_to_device

        acc, stream = self.accelerator, self.loader.dataset
        stream.set_epoch(epoch)
        stream.skip = seen * int(self.config["batch_size"])
        batches, count = iter(self.loader), 0
        while True:
            batch = next(batches, None)
            if acc.num_processes > 1:
                have = torch.tensor([float(batch is not None)], device=acc.device)
                if acc.reduce(have, reduction="sum").item() < acc.num_processes:
                    batch = None
            if batch is None:
                break
            count += 1
            yield send_to_device(batch, acc.device, non_blocking=True)
        if not count and not seen:
            raise GenkitError(
                f"the stream of dataset {self.config['dataset']!r} holds less than one batch of "
                f"{self.config['batch_size']} per process; lower --batch-size"
            )
