"""One Accelerate training loop for every plugin.

The same code runs as ``genkit train ...`` on a laptop CPU, on one GPU, and under ``accelerate launch`` on many
processes: accelerate picks the device, process group and precision; plugins only return losses. The loop is here;
the data it reads is ``loader``, what a checkpoint holds is ``state`` (written by ``checkpoint``), and what a run
leaves behind is ``outputs``.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genkit.errors import ConfigError, GenkitError, TrainingError, WeightsError
from genkit.io import resolve, staged_folder
from genkit.plugin import OptimizerSpec, StepContext
from genkit.training import checkpoint as ckpt
from genkit.training import outputs
from genkit.training.history import History
from genkit.training.loader import TrainingBatches, prepare_data
from genkit.training.progress import progress_bar
from genkit.training.samples import sample_file
from genkit.training.state import CheckpointState

__all__ = ["Trainer", "make_accelerator"]


def make_accelerator(plugin, config: dict[str, Any], output: Path, phases: int):
    """The run's ``Accelerator``: accelerate's own settings (``accelerate config``, launch flags, ``ACCELERATE_*``)
    unless a genkit flag gives a value; what it settled on is recorded in the config."""
    from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DistributedType, GradientAccumulationPlugin, ProjectConfiguration

    # accelerate keeps one process-wide state; a second run in the same Python process (a notebook, a test) may use
    # another precision. The process group (PartialState) is kept.
    AcceleratorState._reset_state()
    GradientState._reset_state()
    if config["allow_tf32"]:  # process-wide, as in diffusers' training scripts (--allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    compile_ = config["compile"]
    accumulation = config["grad_accum"]
    accelerator = Accelerator(
        mixed_precision=config["mixed_precision"],  # None: accelerate's own setting
        # None keeps accelerate's dynamo setting (`accelerate config`, ACCELERATE_DYNAMO_BACKEND)
        dynamo_backend="inductor" if compile_ else ("no" if compile_ is False else None),
        # a plugin object wins over ACCELERATE_GRADIENT_ACCUMULATION_STEPS; without one accelerate reads it
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=int(accumulation)) if accumulation else None,
        log_with=None if config["log_with"] in (None, "none") else config["log_with"],
        project_config=ProjectConfiguration(project_dir=str(output), logging_dir=str(output / "logs")),
        # Sequential plugins (TBPTT) split every batch across processes, so each keeps contiguous streams.
        dataloader_config=DataLoaderConfiguration(split_batches=plugin.sequential_batches),
        # Each phase freezes the other phases' modules; DDP must not wait for their gradients.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)] if phases > 1 else [],
    )
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise ConfigError(
            "genkit does not train under DeepSpeed: its engine owns the optimizer and saves it with torch.save "
            "(pickle), which genkit checkpoints never hold; use DDP (accelerate's default) or FSDP "
            "(docs/plugins.md, 'Checkpoints')"
        )
    config["mixed_precision"] = accelerator.mixed_precision
    config["grad_accum"] = accelerator.gradient_accumulation_steps
    return accelerator


def _bare(optimizer):
    """The torch optimizer inside accelerate's AcceleratedOptimizer."""
    return getattr(optimizer, "optimizer", optimizer)


class Trainer:
    """Trains one plugin on its prepared data; ``train()`` returns the output folder."""

    def __init__(self, plugin, config: dict[str, Any], resume: str | None = None, dataset=None, progress=True):
        self.plugin, self.config, self.resume, self.progress = plugin, config, resume, progress
        self.dataset = dataset  # an in-memory dataset (genkit.train); None: the one config["dataset"] names
        self.init_from = config.get("init_from")  # a fine-tuning base, accepted by resolve_config
        self.output = Path(config["output"])
        self.specs: list[OptimizerSpec] = plugin.optimizers(config)
        self.accelerator = make_accelerator(plugin, config, self.output, len(self.specs))

    # ---- setup -----------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        """Data, modules, batches, optimizers, accelerate, EMA, the checkpointed state, and where to start."""
        from accelerate.utils import set_seed

        set_seed(self.config["seed"])
        self.data = prepare_data(self.accelerator, self.plugin, self.config, self.dataset)
        self.modules = self._make_modules()
        # What the plugin itself froze stays frozen in every phase (a phase only ever turns gradients off).
        self.trainable = {name: [p.requires_grad for p in m.parameters()] for name, m in self.modules.items()}
        self.batches = TrainingBatches(self.accelerator, self.plugin, self.config, self.data)
        self.max_steps = int(self.config["max_steps"])
        self.optimizers, self.schedulers = self._make_optimizers()
        self._prepare()
        self.emas = self._make_emas()
        self.carry: dict[str, torch.Tensor] = {}
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.last_checkpoint: Path | None = None
        self.state = self._register_state()
        if self.resume:
            self._load_checkpoint(ckpt.find_checkpoint(self.output, self.resume))
        else:  # a resumed run gets every process's RNG back from the checkpoint instead
            set_seed(self.config["seed"] + self.accelerator.process_index)

    def _make_modules(self) -> dict[str, nn.Module]:
        modules = self._build_modules()
        if self.config["channels_last"]:  # NHWC for 4-D (convolution) weights; nn.Module.to leaves others as they are
            for module in modules.values():
                module.to(memory_format=torch.channels_last)
        missing = {m for s in self.specs for m in s.modules} - set(modules)
        if missing:
            raise ConfigError(f"plugin {self.plugin.name!r} optimizes modules it did not build: {sorted(missing)}")
        return modules

    def _build_modules(self) -> dict[str, nn.Module]:
        """The untrained modules: the plugin's architecture for this config, or the fine-tuning base's."""
        if self.init_from:
            return self.plugin.modules_from_base(resolve(self.init_from), self.data)
        return self.plugin.build(self.config, self.data.info)

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
            steps = max(1, math.ceil(self.max_steps / spec.every))
            warmup = int(self.config["warmup_steps"])
            schedulers.append(
                get_scheduler(self.config["lr_scheduler"], opt, num_warmup_steps=warmup, num_training_steps=steps)
            )
            optimizers.append(opt)
        return optimizers, schedulers

    def _prepare(self) -> None:
        """Hand modules, optimizers and loader to accelerate (devices, DDP/FSDP, precision, compile); a stream's
        loader is not prepared: each process reads its own share already."""
        acc, names, loader = self.accelerator, list(self.modules), self.batches.loader
        streamed = self.batches.streamed
        prepared = acc.prepare(*[self.modules[n] for n in names], *self.optimizers, *([] if streamed else [loader]))
        self.wrapped = dict(zip(names, prepared[: len(names)], strict=True))
        self.unwrapped = {name: acc.unwrap_model(module) for name, module in self.wrapped.items()}
        self.optimizers = list(prepared[len(names) : len(names) + len(self.optimizers)])
        self.batches.loader = loader if streamed else prepared[-1]

    def _make_emas(self) -> dict[str, Any]:
        from accelerate.utils import DistributedType
        from diffusers.training_utils import EMAModel

        settings = self.plugin.ema_for(self.config)
        if settings and self.accelerator.distributed_type == DistributedType.FSDP:
            raise ConfigError(
                f"plugin {self.plugin.name!r} keeps an EMA of {sorted(settings)} in this config, and genkit's EMA "
                "needs whole (unsharded) weights; train it without FSDP (DDP spreads the batch the same way)"
            )
        emas = {}
        for name, setting in settings.items():
            kwargs = setting if isinstance(setting, dict) else {"decay": float(setting)}
            emas[name] = EMAModel(self.unwrapped[name].parameters(), **kwargs)
            emas[name].to(self.accelerator.device)
        return emas

    # ---- checkpoints ---------------------------------------------------------------------------------------------
    def _register_state(self) -> CheckpointState:
        """Every stateful object of the run, once: what a checkpoint saves and a resume loads."""
        state, acc = CheckpointState(), self.accelerator
        for name, module in self.wrapped.items():
            state.register(
                f"model-{name}", lambda m=module: ckpt.gather_model_state(m), self._model_loader(name), weights=True
            )
        for spec, opt, schedule in zip(self.specs, self.optimizers, self.schedulers, strict=True):
            holder = self._holder(spec)
            state.register(
                f"optimizer-{spec.name}",
                lambda h=holder, o=opt: ckpt.gather_optimizer_state(h, _bare(o)),
                lambda saved, h=holder, o=opt: ckpt.load_optimizer_state(h, _bare(o), saved),
            )
            state.register(f"scheduler-{spec.name}", schedule.state_dict, schedule.load_state_dict)
        for name, ema in self.emas.items():
            state.register(
                f"ema-{name}", ema.state_dict, lambda saved, e=ema: (e.load_state_dict(saved), e.to(acc.device))
            )
        if acc.scaler is not None:
            state.register("grad_scaler", acc.scaler.state_dict, acc.scaler.load_state_dict, optional=True)
        from accelerate.utils import gather_object

        state.register(
            "rng", lambda: gather_object([ckpt.rng_state()]), lambda s: ckpt.set_rng_state(s[acc.process_index])
        )
        state.register("carry", lambda: self.carry, self._put_carry)
        return state

    def _model_loader(self, name: str):
        def put(saved: dict[str, torch.Tensor]) -> None:
            file = f"model-{name}.safetensors"
            try:
                ckpt.load_model_state(self.wrapped[name], saved)
            except (RuntimeError, KeyError, ValueError) as exc:  # other keys or shapes: another config's checkpoint
                reason = " ".join(str(exc).split())[:300]
                raise WeightsError(
                    f"{self._loading / file} does not fit the model this config builds: {reason}"
                ) from None

        return put

    def _put_carry(self, saved: dict[str, torch.Tensor]) -> None:
        self.carry.clear()
        self.carry.update({k: v.to(self.accelerator.device) for k, v in saved.items()})

    def _holder(self, spec: OptimizerSpec) -> nn.Module:
        """The modules one optimizer updates, as one module whose parameter names key its checkpointed state."""
        return nn.ModuleDict({name: self.wrapped[name] for name in spec.modules})

    def _save_checkpoint(self) -> None:
        """Every process gathers (FSDP's shards), the main one writes ``checkpoint-<step>/`` into a hidden sibling
        renamed into place: a kill or a full disk leaves the checkpoints as they were."""
        acc, folder = self.accelerator, self.output / f"checkpoint-{self.step}"
        gathered = self.state.gather()
        acc.wait_for_everyone()
        if acc.is_main_process:
            progress = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                        "num_processes": acc.num_processes, "config": self.config}  # fmt: skip
            with outputs.write_failure(folder.name, self.output), staged_folder(folder) as tmp:
                self.state.write(tmp, gathered, progress)
            ckpt.prune_checkpoints(self.output, self.config["checkpoints_total_limit"])
        self.last_checkpoint = folder
        acc.wait_for_everyone()

    def _load_checkpoint(self, folder: Path) -> None:
        acc = self.accelerator
        progress = ckpt.verify_checkpoint(folder)
        made_by = progress.get("config", {}).get("plugin")
        if made_by != self.plugin.name:
            raise GenkitError(f"{folder} is a checkpoint of plugin {made_by!r}, not {self.plugin.name!r}")
        if progress["num_processes"] != acc.num_processes:
            raise GenkitError(
                f"{folder} was written by {progress['num_processes']} processes; resume it with the same number "
                f"(now {acc.num_processes})"
            )
        self._loading = folder
        self.state.load(folder)
        self.step, self.epoch, self.batch_in_epoch = progress["step"], progress["epoch"], progress["batch_in_epoch"]
        self.last_checkpoint = folder
        acc.print(f"resumed from {folder} at step {self.step}")

    # ---- the loop ------------------------------------------------------------------------------------------------
    def train(self) -> Path:
        """Set up, run the updates (resuming where a checkpoint left off), save the final model, push if asked."""
        self._setup()
        acc = self.accelerator
        self._start_trackers()
        self.accum = acc.gradient_accumulation_steps
        self.sums: dict[str, float | torch.Tensor] = {}  # this logging interval's sum of each scalar, and its count
        self.counts: dict[str, int] = {}
        self.history = History(self.output, self.step if self.resume else None) if acc.is_main_process else None
        shown = self.progress and acc.is_local_main_process
        self.bar = progress_bar(self.max_steps, self.step, "train", enabled=shown)
        self.t0 = time.perf_counter()
        self.first_step_seconds: float | None = None
        self._run_updates()
        self.bar.close()
        self.elapsed = time.perf_counter() - self.t0  # the loop alone: no final save, samples or eval
        acc.print(f"trained {self.step} steps in {self.elapsed:.1f}s")
        if not self.last_checkpoint or self.last_checkpoint.name != f"checkpoint-{self.step}":
            self._save_checkpoint()
        self._finish()
        acc.end_training()
        if self.config["push_to_hub"] and acc.is_main_process:
            outputs.push(self.config, self.output, acc)
        return self.output

    def _run_updates(self) -> None:
        """Epoch after epoch, every batch (split into micro-batches for accumulation) until ``max_steps`` updates."""
        micro = self.batch_in_epoch % self.accum
        while self.step < self.max_steps:
            for batch in self.batches.epoch(self.epoch, self.batch_in_epoch):
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

    @contextlib.contextmanager
    def _phase(self, spec: OptimizerSpec):
        """Only the phase's own modules get gradients (the generator phase must not touch the discriminator's), and
        a parameter the plugin froze stays frozen; every flag is put back afterwards (Lightning's
        ``toggle_optimizer``/``untoggle_optimizer``)."""
        for name, module in self.wrapped.items():
            for p, trainable in zip(module.parameters(), self.trainable[name], strict=True):
                p.requires_grad_(trainable and name in spec.modules)
        try:
            yield
        finally:
            for name, module in self.wrapped.items():
                for p, trainable in zip(module.parameters(), self.trainable[name], strict=True):
                    p.requires_grad_(trainable)

    def _no_sync(self, sync: bool):
        stack = contextlib.ExitStack()
        if not sync:
            for module in self.wrapped.values():
                stack.enter_context(self.accelerator.no_sync(module))
        return stack

    def _check_finite(self, value: torch.Tensor, phase: str) -> float:
        value = float(self.accelerator.reduce(value.detach().float().reshape(1), reduction="mean").item())
        if not math.isfinite(value):
            last = self.last_checkpoint
            if last:
                hint = f"last good checkpoint: {last} (continue from it with --resume {last}"
            else:
                hint = "last good checkpoint: none saved yet (start again"
            raise TrainingError(
                f"{phase} loss became {value} at step {self.step}; {hint}, perhaps with a lower --lr or "
                "--max-grad-norm)"
            )
        return value

    def _train_batch(self, batch, sync: bool) -> None:
        """Every phase due at this step: its loss, backward, and (on the last micro-batch) its optimizer step."""
        phases = zip(self.specs, self.optimizers, self.schedulers, strict=True)
        due = [(spec, opt, schedule) for spec, opt, schedule in phases if not self.step % spec.every]
        for i, (spec, opt, schedule) in enumerate(due):
            with self._phase(spec):
                ctx = StepContext(spec.name, self.step, self.config, self.carry, unwrapped=self.unwrapped)
                if i == 0:  # once per batch: every phase of this step trains on the same augmented images
                    batch = self.plugin.augment(batch, ctx, self._augment_seed())
                self._backward(spec, batch, ctx, sync)
                if sync:
                    self._step(spec, opt, schedule)

    def _backward(self, spec: OptimizerSpec, batch, ctx: StepContext, sync: bool) -> None:
        """The phase's losses, their backward pass, and the logged values (each checked to be finite)."""
        with self._no_sync(sync), self.accelerator.autocast():
            out = self.plugin.training_step(self.wrapped, batch, ctx)
        self.accelerator.backward(out["loss"])  # accelerate divides the loss by its gradient_accumulation_steps
        for key, value in out.items():
            name = f"{spec.name}/{key}" if len(self.specs) > 1 else key
            if key == "loss":  # checked every step: a NaN stops the run at once, naming the step
                value = self._check_finite(value, spec.name)
            self._add(name, value.detach().float() if isinstance(value, torch.Tensor) else value)

    def _add(self, name: str, value: float | torch.Tensor) -> None:
        """Into the logging interval's sums; a tensor stays on its device until the interval is logged (a read-back
        per value and step would stall a GPU)."""
        self.sums[name] = self.sums.get(name, 0.0) + value
        self.counts[name] = self.counts.get(name, 0) + 1

    def _step(self, spec: OptimizerSpec, opt, schedule) -> None:
        """Clip, step the optimizer and (unless fp16's loss scaler skipped the step for an overflow) the schedule."""
        max_norm = float(self.config["max_grad_norm"] or 0)
        if max_norm > 0:
            params = [p for m in spec.modules for p in self.wrapped[m].parameters()]
            name = f"{spec.name}/grad_norm" if len(self.specs) > 1 else "grad_norm"
            self._add(name, self.accelerator.clip_grad_norm_(params, max_norm))
        opt.step()
        if not getattr(opt, "step_was_skipped", False):
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
            self._log()
        if config["checkpoint_every"] and self.step % int(config["checkpoint_every"]) == 0:
            self._save_checkpoint()
        if config["sample_every"] and self.step % int(config["sample_every"]) == 0:
            outputs.write_samples_now(self, sample_file(self.plugin, self.output / "samples", f"step-{self.step:06d}"))

    def _log(self) -> None:
        """Each scalar's mean over the logging interval (every phase's, also one that steps every n-th update), the
        learning rate and the epoch: to the progress bar, the trackers and ``logs/history.jsonl``."""
        acc, values = self.accelerator, {}
        for name, total in self.sums.items():
            if isinstance(total, torch.Tensor):
                total = float(acc.reduce(total.reshape(1), reduction="mean").item())
            values[name] = total / self.counts[name]
        self.sums, self.counts = {}, {}
        values["lr"] = self.schedulers[0].get_last_lr()[0]
        per_epoch = self.batches.batches_per_epoch  # None for a stream: its length is not known
        values["epoch"] = self.epoch + (self.batch_in_epoch / max(1, per_epoch) if per_epoch else 0)
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if k.endswith("loss")})
        acc.log(values, step=self.step)
        if self.history is not None:
            self.history.append(self.step, values)

    # ---- outputs -------------------------------------------------------------------------------------------------
    def final_modules(self) -> dict[str, nn.Module]:
        """Full copies of the trained modules (``outputs.final_modules``); collective under FSDP."""
        return outputs.final_modules(self.accelerator, self.wrapped, self.unwrapped, self.emas, self._build_modules)

    def pipeline(self):
        return self.plugin.to_pipeline(self.final_modules(), self.data, self.config)

    def _finish(self) -> None:
        self.accelerator.wait_for_everyone()
        modules = self.final_modules()
        if self.accelerator.is_main_process:
            outputs.write_model(self, modules, self.elapsed)
