"""One Accelerate training loop for every plugin.

The same code runs as ``genkit train ...`` on a laptop CPU, on one GPU, and under ``accelerate launch`` on many
processes: accelerate picks the device, process group and precision; plugins only return losses.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genkit import checkpoint as ckpt
from genkit.errors import ConfigError, GenkitError, TrainingError, WeightsError
from genkit.plugin import OptimizerSpec, StepContext
from genkit.samples import sample_file
from genkit.settings import TRAINER_DEFAULTS, TRAINER_LIMITS
from genkit.validation import check_limits, flag

__all__ = ["TRAINER_DEFAULTS", "TRAINER_LIMITS", "run_training", "EpochSampler", "Trainer", "resolve_config"]


def resolve_config(plugin, preset: str, overrides: dict[str, Any], init_from: str | None = None) -> dict[str, Any]:
    """Trainer defaults < plugin defaults < preset < a fine-tuning base's settings < explicit command-line values
    (None means "not given"). An explicit value that would change the base (``init_from``: a folder, Hub id or cached
    id) is refused. An explicit ``epochs`` wins over a preset's ``max_steps``; giving both is an error.
    """
    from diffusers.optimization import SchedulerType

    if preset not in plugin.presets:
        raise ConfigError(f"unknown preset {preset!r} for plugin {plugin.name!r}; known: {', '.join(plugin.presets)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    if given.get("max_steps") is not None and given.get("epochs") is not None:
        raise ConfigError("give --max-steps or --epochs, not both")
    if plugin.task == "text":
        image_only = [flag(k) for k in IMAGE_ONLY if k in given]
        if image_only:
            raise ConfigError(f"{', '.join(image_only)}: for image models; {plugin.name!r} trains on text")
    config = {**TRAINER_DEFAULTS, **plugin.defaults, **plugin.presets[preset], **given}
    if "epochs" in given:
        config["max_steps"] = None  # converted from the epochs once the data is known
    config["init_from"] = init_from
    if init_from:
        from genkit.io import resolve

        base = plugin.base_settings(resolve(init_from))
        for key, value in base.items():
            if key in given and given[key] != value:
                raise ConfigError(
                    f"{flag(key)} {given[key]!r} would change the base model: {init_from} has {key} = {value!r}; "
                    "leave the flag out to fine-tune it"
                )
        config.update(base)
        # the model card's base_model: the Hub id, or the folder's name (a local path means nothing on the Hub)
        local = Path(init_from).expanduser().is_dir()
        config["base_model"] = Path(init_from).expanduser().resolve().name if local else init_from
    config["preset"] = preset
    config["plugin"] = plugin.name
    if config["dataset"] is None:
        config["dataset"] = plugin.default_dataset
    if config["background"] not in ("white", "black"):
        raise ConfigError(f"--background must be white or black, got {config['background']!r}")
    if config["mixed_precision"] not in (None, "no", "fp16", "bf16"):
        raise ConfigError(f"--mixed-precision must be no, fp16 or bf16, got {config['mixed_precision']!r}")
    check_limits(config, {**TRAINER_LIMITS, **plugin.limits})
    hub_id = config.get("hub_model_id")
    from genkit.io import PUSH_REPO_ID

    if hub_id is not None and not PUSH_REPO_ID.fullmatch(str(hub_id)):
        raise ConfigError(f"--hub-model-id {hub_id!r} is not a Hub repo id (user/name, or a bare name)")
    schedulers = [t.value for t in SchedulerType]
    if config["lr_scheduler"] not in schedulers:
        raise ConfigError(f"unknown --lr-scheduler {config['lr_scheduler']!r}; known: {', '.join(schedulers)}")
    if config["output"] is None:
        config["output"] = str(Path("outputs") / f"{plugin.name}-{Path(str(config['dataset'])).name}")
    return config


# Settings that only mean something for images; a text model refuses them instead of ignoring them. (A text corpus
# is tokenized once into a cached array, so --streaming is not needed for it: docs/data.md.)
IMAGE_ONLY = (
    "image_size",
    "channels",
    "random_flip",
    "center_crop",
    "random_crop",
    "background",
    "skip_bad_images",
    "image_column",
    "image_root",
    "label_column",
    "streaming",
)


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


def _bare(optimizer):
    """The torch optimizer inside accelerate's AcceleratedOptimizer."""
    return getattr(optimizer, "optimizer", optimizer)


class Trainer:
    """Trains one plugin on its prepared data; ``train()`` returns the output folder."""

    def __init__(self, plugin, config: dict[str, Any], resume: str | None = None, dataset=None):
        from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
        from accelerate.state import AcceleratorState, GradientState
        from accelerate.utils import GradientAccumulationPlugin, ProjectConfiguration

        self.plugin, self.config, self.resume = plugin, config, resume
        self.dataset = dataset  # an in-memory dataset (genkit.train); None: the one config["dataset"] names
        self.init_from = config.get("init_from")  # a fine-tuning base, accepted by resolve_config
        self.output = Path(config["output"])
        self.specs: list[OptimizerSpec] = plugin.optimizers(config)
        handlers = []
        if len(self.specs) > 1:
            # Each phase freezes the other phases' modules; DDP must not wait for their gradients.
            handlers.append(DistributedDataParallelKwargs(find_unused_parameters=True))
        log_with = None if config["log_with"] in (None, "none") else config["log_with"]
        # accelerate keeps one process-wide state; a second run in the same Python process (a notebook, a test)
        # may use another precision. The process group (PartialState) is kept.
        AcceleratorState._reset_state()
        GradientState._reset_state()
        if config["allow_tf32"]:
            # process-wide, as in diffusers' training scripts (--allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.accelerator = Accelerator(
            mixed_precision=config["mixed_precision"],  # None: accelerate's own setting
            # None keeps accelerate's dynamo setting (`accelerate config`, ACCELERATE_DYNAMO_BACKEND)
            dynamo_backend="inductor" if config["compile"] else ("no" if config["compile"] is False else None),
            # a plugin object wins over ACCELERATE_GRADIENT_ACCUMULATION_STEPS; without one accelerate reads it
            gradient_accumulation_plugin=(
                GradientAccumulationPlugin(num_steps=int(config["grad_accum"]))
                if config["grad_accum"] is not None
                else None
            ),
            log_with=log_with,
            project_config=ProjectConfiguration(project_dir=str(self.output), logging_dir=str(self.output / "logs")),
            # Sequential plugins (TBPTT) split every batch across processes, so each keeps contiguous streams.
            dataloader_config=DataLoaderConfiguration(split_batches=plugin.sequential_batches),
            kwargs_handlers=handlers,
        )
        from accelerate.utils import DistributedType

        if self.accelerator.distributed_type == DistributedType.DEEPSPEED:
            raise ConfigError(
                "genkit does not train under DeepSpeed: its engine owns the optimizer and saves it with torch.save "
                "(pickle), which genkit checkpoints never hold; use DDP (accelerate's default) or FSDP "
                "(docs/plugins.md, 'Checkpoints')"
            )
        # What accelerate settled on (from the flag, or its config and environment), recorded in the model's config.
        config["mixed_precision"] = self.accelerator.mixed_precision
        config["grad_accum"] = self.accelerator.gradient_accumulation_steps

    # ---- setup -----------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        """Data, modules, loader, optimizers, accelerate, EMA, and the state to start (or resume) from."""
        from accelerate.utils import set_seed

        set_seed(self.config["seed"])
        self._prepare_data()
        self.modules = self._make_modules()
        loader = self._make_loader()
        self.optimizers, self.schedulers = self._make_optimizers()
        self._prepare(loader)
        self.emas = self._make_emas()
        self.carry: dict[str, torch.Tensor] = {}
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.last_checkpoint: Path | None = None
        if self.resume:
            self._load_checkpoint(ckpt.find_checkpoint(self.output, self.resume))
        else:  # a resumed run gets every process's RNG back from the checkpoint instead
            set_seed(self.config["seed"] + self.accelerator.process_index)

    def _prepare_data(self) -> None:
        from genkit.data import folder_index, index_folder, prepare_cached_folder, splits_for
        from genkit.plugin import Plugin

        # A local image folder seen before, with the same files and settings, maps its cached arrays at once.
        own_folder = self.dataset is None and type(self.plugin).prepare_data is Plugin.prepare_data
        index = folder_index(self.config) if own_folder else None  # None: not a local image folder
        with self.accelerator.main_process_first():  # the main process fills the datasets cache, then the others read
            self.data = prepare_cached_folder(self.config, index)
            if self.data is None:
                splits = splits_for(self.config, self.plugin.task, source=self.dataset)
                self.data = self.plugin.prepare_data(splits, self.config)
                if self.accelerator.is_main_process:
                    index_folder(index, self.config, splits, self.data)

    def _make_modules(self) -> dict[str, nn.Module]:
        modules = self._build_modules()
        if self.config["channels_last"]:  # NHWC for 4-D (convolution) weights; nn.Module.to leaves others as they are
            for module in modules.values():
                module.to(memory_format=torch.channels_last)
        missing = {m for s in self.specs for m in s.modules} - set(modules)
        if missing:
            raise ConfigError(f"plugin {self.plugin.name!r} optimizes modules it did not build: {sorted(missing)}")
        return modules

    def _make_loader(self) -> torch.utils.data.DataLoader:
        """The training loader (its order fixed by seed and epoch), and ``max_steps`` when only epochs were given."""
        acc, config = self.accelerator, self.config
        batch_size = int(config["batch_size"])
        sequential = self.plugin.sequential_batches
        train = self.data.train if self.data.train_raw is None else self.data.train_raw
        if isinstance(train, torch.utils.data.IterableDataset):
            return self._make_stream_loader(train, batch_size)
        if sequential and batch_size % acc.num_processes:
            raise ConfigError(f"--batch-size {batch_size} must be divisible by the {acc.num_processes} processes")
        if len(self.data.train) < batch_size * (1 if sequential else acc.num_processes):
            raise ConfigError(
                f"the training split has {len(self.data.train)} examples, fewer than one batch of {batch_size} "
                f"per process; lower --batch-size"
            )
        self.sampler = EpochSampler(len(train), config["seed"], shuffle=not sequential)
        # A private generator: iter(DataLoader) draws a seed from it, and drawing from the global RNG instead
        # would shift the global stream differently in a resumed run than in an uninterrupted one.
        loader = torch.utils.data.DataLoader(
            train,
            batch_size=batch_size,
            sampler=self.sampler,
            drop_last=True,
            # Workers only fetch: the sampler, in this process, fixes the order, so any count gives the same batches.
            num_workers=int(config["num_workers"]),
            persistent_workers=int(config["num_workers"]) > 0,
            pin_memory=acc.device.type == "cuda",
            generator=torch.Generator().manual_seed(config["seed"]),
        )
        batches_per_epoch = self.batches_per_epoch = len(loader) // (1 if sequential else acc.num_processes)
        self.updates_per_epoch = max(1, batches_per_epoch // int(config["grad_accum"]))
        if config["max_steps"] is None:
            epochs = config["epochs"] if config["epochs"] is not None else 1
            config["max_steps"] = int(math.ceil(float(epochs) * self.updates_per_epoch))
        self.max_steps = int(config["max_steps"])
        return loader

    def _make_stream_loader(self, stream, batch_size: int) -> torch.utils.data.DataLoader:
        """``--streaming``: each process batches its own share of the stream, decoded on ``num_workers`` threads
        (``genkit.streaming``); accelerate does not shard this loader again, and batches reach the device in
        ``_stream_batches``. A stream's length is unknown, so the run's length is ``max_steps``."""
        acc, config = self.accelerator, self.config
        if self.plugin.sequential_batches:
            raise ConfigError(f"plugin {self.plugin.name!r} reads its data in order and cannot train on a stream")
        if config["max_steps"] is None:
            raise ConfigError("--streaming needs --max-steps: a stream's length is not known before it is read")
        stream.shard(acc.process_index, acc.num_processes)
        stream.threads = max(1, int(config["num_workers"]))
        self.batches_per_epoch, self.updates_per_epoch = None, None
        self.max_steps = int(config["max_steps"])
        # a private generator, as in _make_loader: iter() must not draw from the global RNG
        generator = torch.Generator().manual_seed(config["seed"])
        return torch.utils.data.DataLoader(stream, batch_size=batch_size, drop_last=True, generator=generator)

    def _make_optimizers(self) -> tuple[list[torch.optim.Optimizer], list]:
        """One AdamW and one LR schedule per phase (``OptimizerSpec``)."""
        from diffusers.optimization import get_scheduler

        fused = {"fused": True} if self.config["fused_optimizer"] else {}
        optimizers, schedulers = [], []
        for spec in self.specs:
            params = [p for m in spec.modules for p in self.modules[m].parameters()]
            opt = torch.optim.AdamW(
                params, lr=spec.lr, betas=tuple(spec.betas), weight_decay=spec.weight_decay, **fused
            )
            optimizers.append(opt)
            schedulers.append(
                get_scheduler(
                    self.config["lr_scheduler"],
                    opt,
                    num_warmup_steps=int(self.config["warmup_steps"]),
                    num_training_steps=max(1, math.ceil(self.max_steps / spec.every)),
                )
            )
        return optimizers, schedulers

    def _prepare(self, loader) -> None:
        """Hand modules, optimizers and loader to accelerate (devices, DDP/FSDP, precision, compile)."""
        acc, names = self.accelerator, list(self.modules)
        streamed = self.batches_per_epoch is None  # each process already reads its own share
        prepared = acc.prepare(*[self.modules[n] for n in names], *self.optimizers, *([] if streamed else [loader]))
        self.wrapped = dict(zip(names, prepared[: len(names)], strict=True))
        self.unwrapped = {name: acc.unwrap_model(module) for name, module in self.wrapped.items()}
        self.optimizers = list(prepared[len(names) : len(names) + len(self.optimizers)])
        self.loader = loader if streamed else prepared[-1]

    def _build_modules(self) -> dict[str, nn.Module]:
        """The untrained modules: the plugin's architecture for this config, or the fine-tuning base's."""
        if self.init_from:
            from genkit.io import resolve

            return self.plugin.modules_from_base(resolve(self.init_from), self.data)
        return self.plugin.build(self.config, self.data.info)

    def _make_emas(self) -> dict[str, Any]:
        from accelerate.utils import DistributedType
        from diffusers.training_utils import EMAModel

        emas = {}
        settings = self.plugin.ema_for(self.config)
        if settings and self.accelerator.distributed_type == DistributedType.FSDP:
            raise ConfigError(
                f"plugin {self.plugin.name!r} keeps an EMA of {sorted(settings)} in this config, and genkit's EMA "
                "needs whole (unsharded) weights; train it without FSDP (DDP spreads the batch the same way)"
            )
        for name, setting in settings.items():
            kwargs = setting if isinstance(setting, dict) else {"decay": float(setting)}
            ema = EMAModel(self.unwrapped[name].parameters(), **kwargs)
            ema.to(self.accelerator.device)
            emas[name] = ema
        return emas

    # ---- checkpoints ---------------------------------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        from accelerate.utils import gather_object

        acc = self.accelerator
        rng_states = gather_object([ckpt.rng_state()])  # every process's RNG, written by the main process
        # Full state dicts, gathered by every process (FSDP's shards) and written by the main one.
        models = {name: ckpt.gather_model_state(module) for name, module in self.wrapped.items()}
        optimizers = [
            ckpt.gather_optimizer_state(self._holder(spec), _bare(opt))
            for spec, opt in zip(self.specs, self.optimizers, strict=True)
        ]
        acc.wait_for_everyone()
        if acc.is_main_process:
            from genkit.io import staged_folder

            # Written into a hidden sibling and renamed into place: a kill or a full disk leaves the checkpoints as
            # they were (the sibling is removed on the spot, or by the next run once this process is gone).
            with (
                _write_failure(f"checkpoint-{self.step}", self.output),
                staged_folder(self.output / f"checkpoint-{self.step}") as tmp,
            ):
                for name, state in models.items():
                    ckpt.save_state_file(tmp / f"model-{name}.safetensors", state)
                for spec, state, sched in zip(self.specs, optimizers, self.schedulers, strict=True):
                    ckpt.save_tensors_and_json(tmp / f"optimizer-{spec.name}", state)
                    ckpt.save_tensors_and_json(tmp / f"scheduler-{spec.name}", sched.state_dict())
                for name, ema in self.emas.items():
                    ckpt.save_tensors_and_json(tmp / f"ema-{name}", ema.state_dict())
                if acc.scaler is not None:
                    ckpt.save_tensors_and_json(tmp / "grad_scaler", acc.scaler.state_dict())
                ckpt.save_tensors_and_json(tmp / "rng", rng_states)
                ckpt.save_tensors_and_json(tmp / "carry", self.carry)
                state = {
                    "step": self.step,
                    "epoch": self.epoch,
                    "batch_in_epoch": self.batch_in_epoch,
                    "num_processes": acc.num_processes,
                    "config": self.config,
                }
                (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2, default=str))
            ckpt.prune_checkpoints(self.output, self.config["checkpoints_total_limit"])
        self.last_checkpoint = self.output / f"checkpoint-{self.step}"
        acc.wait_for_everyone()

    def _load_checkpoint(self, folder: Path) -> None:
        acc = self.accelerator
        state = ckpt.verify_checkpoint(folder)
        made_by = state.get("config", {}).get("plugin")
        if made_by != self.plugin.name:
            raise GenkitError(f"{folder} is a checkpoint of plugin {made_by!r}, not {self.plugin.name!r}")
        if state["num_processes"] != acc.num_processes:
            raise GenkitError(
                f"{folder} was written by {state['num_processes']} processes; resume it with the same number "
                f"(now {acc.num_processes})"
            )
        for name, module in self.wrapped.items():
            file = folder / f"model-{name}.safetensors"
            try:
                ckpt.load_model_state(module, ckpt.load_state_file(file))
            # missing/unexpected keys or other shapes: another config's checkpoint
            except (RuntimeError, KeyError, ValueError) as exc:
                reason = " ".join(str(exc).split())[:300]
                raise WeightsError(f"{file} does not fit the model this config builds: {reason}") from None
        for spec, opt, sched in zip(self.specs, self.optimizers, self.schedulers, strict=True):
            saved = ckpt.load_tensors_and_json(folder / f"optimizer-{spec.name}")
            ckpt.load_optimizer_state(self._holder(spec), _bare(opt), saved)
            sched.load_state_dict(ckpt.load_tensors_and_json(folder / f"scheduler-{spec.name}"))
        for name, ema in self.emas.items():
            ema.load_state_dict(ckpt.load_tensors_and_json(folder / f"ema-{name}"))
            ema.to(acc.device)
        if acc.scaler is not None and (folder / "grad_scaler.json").exists():
            acc.scaler.load_state_dict(ckpt.load_tensors_and_json(folder / "grad_scaler"))
        ckpt.set_rng_state(ckpt.load_tensors_and_json(folder / "rng")[acc.process_index])
        self.carry = {k: v.to(acc.device) for k, v in ckpt.load_tensors_and_json(folder / "carry").items()}
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.last_checkpoint = folder
        acc.print(f"resumed from {folder} at step {self.step}")

    def _holder(self, spec: OptimizerSpec) -> nn.Module:
        """The modules one optimizer updates, as one module whose parameter names key its checkpointed state."""
        return nn.ModuleDict({name: self.wrapped[name] for name in spec.modules})

    # ---- the loop ------------------------------------------------------------------------------------------------
    def _phase_modules(self, spec: OptimizerSpec):
        """Only the phase's own modules get gradients (the generator phase must not touch the discriminator's)."""
        for name, module in self.wrapped.items():
            module.requires_grad_(name in spec.modules)

    def _no_sync(self, sync: bool):
        stack = contextlib.ExitStack()
        if not sync:
            for module in self.wrapped.values():
                stack.enter_context(self.accelerator.no_sync(module))
        return stack

    def _check_finite(self, value: torch.Tensor, phase: str) -> float:
        value = self.accelerator.reduce(value.detach().float().reshape(1), reduction="mean")
        value = float(value.item())
        if not math.isfinite(value):
            last = self.last_checkpoint
            if last:
                hint = f"last good checkpoint: {last} (continue from it with --resume {last}"
            else:
                hint = "last good checkpoint: none saved yet (start again"
            raise TrainingError(
                f"{phase} loss became {value} at step {self.step}; {hint}, "
                "perhaps with a lower --lr or --max-grad-norm)"
            )
        return value

    def train(self) -> Path:
        """Set up, run the updates (resuming where a checkpoint left off), save the final model, push if asked."""
        from tqdm.auto import tqdm

        self._setup()
        acc, config = self.accelerator, self.config
        self._start_trackers()
        self.accum = acc.gradient_accumulation_steps
        self.sums: dict[str, float] = {}
        self.bar = tqdm(total=self.max_steps, initial=self.step, disable=not acc.is_local_main_process, desc="train")
        micro = self.batch_in_epoch % self.accum
        self.t0 = time.perf_counter()
        self.first_step_seconds: float | None = None
        while self.step < self.max_steps:
            for batch in self._epoch_batches():
                self.batch_in_epoch += 1
                micro += 1
                sync = micro == self.accum
                self._train_batch(batch, sync)
                if sync:
                    micro = 0
                    self._after_update()
                    if self.step >= self.max_steps:
                        break
            else:
                self.epoch += 1
                self.batch_in_epoch = 0
        self.bar.close()
        self.elapsed = elapsed = time.perf_counter() - self.t0  # the loop alone: no final save, samples or eval
        acc.print(f"trained {self.step} steps in {elapsed:.1f}s")
        if not self.last_checkpoint or self.last_checkpoint.name != f"checkpoint-{self.step}":
            self._save_checkpoint()
        self._finish(elapsed)
        acc.end_training()
        if config["push_to_hub"] and acc.is_main_process:
            from genkit.io import push_to_hub

            repo_id = config["hub_model_id"] or self.output.resolve().name
            plan = push_to_hub(self.output, repo_id, private=bool(config["hub_private"]))
            acc.print(f"pushed {len(plan['files'])} files to {plan['url']}")
        return self.output

    def _start_trackers(self) -> None:
        acc, config = self.accelerator, self.config
        if acc.is_main_process:
            (self.output / "logs").mkdir(parents=True, exist_ok=True)
        if config["log_with"] not in (None, "none"):
            acc.init_trackers(
                "genkit",
                config={k: v for k, v in config.items() if isinstance(v, (int, float, str, bool))},
                # wandb writes its run (online, or offline with WANDB_MODE=offline) beside TensorBoard's logs
                init_kwargs={"wandb": {"dir": str(self.output / "logs"), "name": self.output.resolve().name}},
            )

    def _epoch_batches(self):
        """The current epoch's batches, without those a resumed epoch has already seen."""
        if self.batches_per_epoch is None:
            return self._stream_batches()
        # accelerate's loaders count their own passes and hand that count to the sampler at every iter();
        # set it to the true epoch, also on the loader that skips the batches a resumed epoch already saw.
        self.loader.set_epoch(self.epoch)
        if not self.batch_in_epoch:
            return self.loader
        from accelerate import skip_first_batches

        loader = skip_first_batches(self.loader, self.batch_in_epoch)
        loader.set_epoch(self.epoch)
        return loader

    def _stream_batches(self):
        """``--streaming``: the epoch's batches from the stream, after the examples a resumed epoch has seen (read
        again, not decoded). The epoch ends for every process when one runs out (shares may differ by a batch)."""
        from accelerate.utils import send_to_device

        acc, stream = self.accelerator, self.loader.dataset
        stream.set_epoch(self.epoch)
        stream.skip = self.batch_in_epoch * int(self.config["batch_size"])
        batches, seen = iter(self.loader), 0
        while True:
            batch = next(batches, None)
            if acc.num_processes > 1:
                have = torch.tensor([float(batch is not None)], device=acc.device)
                if acc.reduce(have, reduction="sum").item() < acc.num_processes:
                    batch = None
            if batch is None:
                break
            seen += 1
            yield send_to_device(batch, acc.device, non_blocking=True)
        if not seen and not self.batch_in_epoch:
            raise GenkitError(
                f"the stream of dataset {self.config['dataset']!r} holds less than one batch of "
                f"{self.config['batch_size']} per process; lower --batch-size"
            )

    def _train_batch(self, batch, sync: bool) -> None:
        """Every phase due at this step: its loss, backward, and (on the last micro-batch) its optimizer step."""
        acc, max_norm = self.accelerator, float(self.config["max_grad_norm"] or 0)
        phases = zip(self.specs, self.optimizers, self.schedulers, strict=True)
        due = [(spec, opt, schedule) for spec, opt, schedule in phases if not self.step % spec.every]
        for i, (spec, opt, schedule) in enumerate(due):
            self._phase_modules(spec)
            ctx = StepContext(spec.name, self.step, self.config, self.carry, unwrapped=self.unwrapped)
            if i == 0:  # once per batch: every phase of this step trains on the same augmented images
                batch = self.plugin.augment(batch, ctx, self._augment_seed())
            with self._no_sync(sync), acc.autocast():
                out = self.plugin.training_step(self.wrapped, batch, ctx)
            acc.backward(out["loss"])  # accelerate divides the loss by its gradient_accumulation_steps
            for key, value in out.items():
                name = f"{spec.name}/{key}" if len(self.specs) > 1 else key
                v = value if isinstance(value, float) else self._check_finite(value, spec.name)
                self.sums[name] = self.sums.get(name, 0.0) + v / self.accum
            if sync:
                if max_norm > 0:
                    params = [p for m in spec.modules for p in self.wrapped[m].parameters()]
                    self.sums[f"{spec.name}/grad_norm"] = float(acc.clip_grad_norm_(params, max_norm))
                opt.step()
                if not getattr(opt, "step_was_skipped", False):  # fp16: an overflow skipped it; so does the schedule
                    schedule.step()
                opt.zero_grad(set_to_none=True)

    def _augment_seed(self) -> int:
        """A seed for this batch's augmentation fixed by (seed, epoch, batch, process): a resumed run draws the same
        flips as an uninterrupted one, whatever the number of DataLoader workers."""
        key = (int(self.config["seed"]), self.epoch, self.batch_in_epoch, self.accelerator.process_index)
        return hash(key) & 0x7FFFFFFF

    def _after_update(self) -> None:
        """EMA, the step count, logs, checkpoints and sample grids after one optimizer update."""
        config = self.config
        for name, ema in self.emas.items():
            ema.step(self.unwrapped[name].parameters())
        self.step += 1
        if self.first_step_seconds is None:  # warm-up (CUDA init, autotuning, compilation) is in this one
            self.first_step_seconds = time.perf_counter() - self.t0
        self.bar.update(1)
        if self.step % int(config["log_every"]) == 0 or self.step == self.max_steps:
            self.sums["lr"] = self.schedulers[0].get_last_lr()[0]
            per_epoch = self.batches_per_epoch  # None for a stream: its length is not known
            self.sums["epoch"] = self.epoch + (self.batch_in_epoch / max(1, per_epoch) if per_epoch else 0)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in self.sums.items() if k.endswith("loss")})
            self.accelerator.log(self.sums, step=self.step)
        self.sums = {}
        if config["checkpoint_every"] and self.step % int(config["checkpoint_every"]) == 0:
            self._save_checkpoint()
        if config["sample_every"] and self.step % int(config["sample_every"]) == 0:
            self._write_samples(sample_file(self.plugin, self.output / "samples", f"step-{self.step:06d}"))

    # ---- outputs -------------------------------------------------------------------------------------------------
    def final_modules(self) -> dict[str, nn.Module]:
        """Full copies of the trained modules (float32, CPU, eval mode), EMA weights swapped in where the plugin keeps
        an EMA. Under FSDP every process must call it (the shards are gathered) and only the main one gets modules."""
        from accelerate.utils import DistributedType

        if self.accelerator.distributed_type == DistributedType.FSDP:
            states = {name: ckpt.gather_model_state(module) for name, module in self.wrapped.items()}
            if not self.accelerator.is_main_process:
                return {}
            copies = self._build_modules()
            for name, module in copies.items():
                module.load_state_dict(states[name])
        else:
            copies = {name: copy.deepcopy(module) for name, module in self.unwrapped.items()}
        modules = {}
        for name, module in copies.items():
            module = module.float().cpu().eval()
            module.requires_grad_(False)
            if name in self.emas:
                self.emas[name].copy_to(module.parameters())
            modules[name] = module
        return modules

    def pipeline(self):
        return self.plugin.to_pipeline(self.final_modules(), self.data, self.config)

    def _on_device(self, pipeline):
        """The pipeline on the training device: samples and evaluation run where training ran (a GPU)."""
        if self.accelerator.device.type == "cpu":
            return pipeline
        from genkit.pipeline import to_device

        return to_device(pipeline, self.accelerator.device)

    def _write_samples(self, path: Path) -> None:
        modules = self.final_modules()
        if not self.accelerator.is_main_process:
            return
        from genkit.samples import write_samples

        pipeline = self._on_device(self.plugin.to_pipeline(modules, self.data, self.config))
        samples = write_samples(self.plugin, pipeline, path, n=int(self.config["num_sample_images"]), seed=0)
        self._log_samples(samples)

    def _log_samples(self, samples) -> None:
        from genkit.samples import log_samples

        log_samples(self.accelerator.trackers, samples, self.step)

    def _finish(self, elapsed: float) -> None:
        acc = self.accelerator
        acc.wait_for_everyone()
        modules = self.final_modules()
        if not acc.is_main_process:
            return
        from genkit.io import STAGING_DIR, move_model_into

        # Written beside the old model, then moved over it: a crash now leaves the old model or the new one; a
        # failure while writing (a full disk, a non-finite metric) leaves no staging behind.
        staging = self.output / STAGING_DIR
        shutil.rmtree(staging, ignore_errors=True)
        try:
            with _write_failure("the final model", self.output):
                self._write_model(modules, staging, elapsed)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        move_model_into(staging, self.output)

    def _write_model(self, modules: dict[str, nn.Module], staging: Path, elapsed: float) -> None:
        """The final model, its metadata, samples, evaluation and card, into ``staging``."""
        from genkit.card import write_model_card
        from genkit.io import write_metadata
        from genkit.metrics import check_finite
        from genkit.samples import write_samples

        acc, config = self.accelerator, self.config
        pipeline = self.plugin.to_pipeline(modules, self.data, config)
        self.plugin.save_pipeline(pipeline, staging)
        pipeline = self._on_device(pipeline)
        write_metadata(staging, self.plugin.name, data=self.data.info.__dict__, config=config, train_seconds=elapsed)
        samples = write_samples(
            self.plugin, pipeline, sample_file(self.plugin, staging), n=int(config["num_sample_images"]), seed=0
        )
        self._log_samples(samples)  # the final grid (or texts) reaches every tracker
        evaluation = self.plugin.evaluate(pipeline, self.data, config) if config["eval"] else None
        if evaluation:
            check_finite(evaluation)
            (staging / "eval_results.json").write_text(json.dumps(evaluation, indent=2, default=str))
            acc.print(json.dumps(evaluation["metrics"]))
            numeric = {k: v for k, v in evaluation["metrics"].items() if isinstance(v, (int, float))}
            acc.log({f"eval/{k}": v for k, v in numeric.items()}, step=self.step)
        write_model_card(
            staging,
            plugin=self.plugin,
            dataset=str(config["dataset"]),
            config=config,
            evaluation=evaluation,
            repo_or_path=str(self.output),
        )


@contextlib.contextmanager
def _write_failure(what: str, output: Path):
    """A write that fails (a full disk, a quota, a file-size limit) becomes one line saying what was kept."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, SafetensorError) as exc:
        reason = getattr(exc, "strerror", None) or " ".join(str(exc).split())[:200]
        raise TrainingError(
            f"could not write {what} into {output} ({reason}); nothing half-written was left and the earlier "
            "checkpoints are as they were: free some disk space, then continue with --resume latest"
        ) from None


def run_training(plugin, config: dict[str, Any], *, resume: str | None = None, overwrite: bool = False, dataset=None):
    """Train into ``config["output"]`` after checking that the folder may be written (``genkit train`` and
    ``genkit.train`` both come here); returns the output folder.

    The main process holds the folder's lock for the whole run, so a second run into the same folder stops at once
    with a line naming the first. ``overwrite`` starts afresh: an earlier run's files are set aside in
    ``.previous-run`` (never mixed with the new run's checkpoints) and deleted once the new model is saved.
    """
    from genkit.checkpoint import is_run_folder, list_checkpoints
    from genkit.io import folder_lock
    from genkit.validation import check_output_folder

    output = Path(config["output"])
    own = is_run_folder(output)
    check_output_folder(output, own=own, overwrite=overwrite)
    _check_not_inside_dataset(output, config["dataset"])
    if resume and overwrite:
        raise ConfigError("--resume continues a run and --overwrite starts afresh; give one of them")
    if list_checkpoints(output) and not resume and not overwrite:
        raise GenkitError(
            f"{output} already holds checkpoints of a run; continue it with --resume latest, "
            f"or pass --overwrite (or another --output) to start afresh"
        )
    if int(os.environ.get("RANK", "0")) != 0:  # the main process locks and writes; the others only train
        return Trainer(plugin, config, resume=resume, dataset=dataset).train()
    with folder_lock(output):
        set_aside = overwrite and own and _set_aside(output)
        try:
            folder = Trainer(plugin, config, resume=resume, dataset=dataset).train()
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
    from genkit.io import LOCK_FILE

    entries = [p for p in output.iterdir() if p.name not in (LOCK_FILE, PREVIOUS_RUN)]
    if not entries:
        return False
    previous = output / PREVIOUS_RUN
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir()
    for entry in entries:
        entry.rename(previous / entry.name)
    print(
        f"--overwrite: the earlier run in {output} was moved to {previous}; it is deleted once this run has saved "
        "its model",
        file=sys.stderr,
    )
    return True


def _restore(output: Path) -> None:
    """Undo ``_set_aside`` after a new run that failed before its first checkpoint (its logs and samples go)."""
    from genkit.io import LOCK_FILE

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
