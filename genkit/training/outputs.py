"""What a run leaves behind: full copies of the trained modules (EMA weights swapped in), sample grids during
training, and at the end the saved model, its metadata, samples, evaluation and card (staged beside the old model
and moved over it), then an upload when asked."""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from genkit.errors import TrainingError
from genkit.eval.metrics import check_finite
from genkit.hub.card import write_model_card
from genkit.hub.push import push_to_hub
from genkit.io import STAGING_DIR, move_model_into, write_metadata
from genkit.plugin.pipeline import to_device
from genkit.plugin.registry import in_process_origin
from genkit.training import checkpoint as ckpt
from genkit.training.progress import quiet_libraries
from genkit.training.samples import log_samples, sample_file, write_samples

__all__ = ["final_modules", "push", "write_failure", "write_model", "write_samples_now"]


def final_modules(accelerator, wrapped: dict, unwrapped: dict, emas: dict, rebuild: Callable[[], dict]) -> dict:
    """Full copies of the trained modules (float32, CPU, eval mode), EMA weights swapped in where the plugin keeps
    an EMA. Under FSDP every process must call it (the shards are gathered, and the main process loads them into
    ``rebuild()``'s fresh modules) and only the main one gets modules."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        states = {name: ckpt.gather_model_state(module) for name, module in wrapped.items()}
        if not accelerator.is_main_process:
            return {}
        copies = rebuild()
        for name, module in copies.items():
            module.load_state_dict(states[name])
    else:
        copies = {name: copy.deepcopy(module) for name, module in unwrapped.items()}
    modules = {}
    for name, module in copies.items():
        module = module.float().cpu().eval()
        module.requires_grad_(False)
        if name in emas:
            emas[name].copy_to(module.parameters())
        modules[name] = module
    return modules


def on_device(pipeline, accelerator):
    """The pipeline on the training device: samples and evaluation run where training ran (a GPU)."""
    return pipeline if accelerator.device.type == "cpu" else to_device(pipeline, accelerator.device)


def write_samples_now(run, path: Path) -> None:
    """A sample grid (or texts) of the model as it is now, written and handed to the trackers."""
    modules = run.final_modules()
    if not run.accelerator.is_main_process:
        return
    pipeline = on_device(run.plugin.to_pipeline(modules, run.data, run.config), run.accelerator)
    samples = write_samples(run.plugin, pipeline, path, n=int(run.config["num_sample_images"]), seed=0)
    log_samples(run.accelerator.trackers, samples, run.step)


@contextlib.contextmanager
def write_failure(what: str, output: Path):
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


def write_model(run, modules: dict[str, nn.Module], elapsed: float) -> None:
    """The final model written beside the old one, then moved over it: a crash leaves the old model or the new one;
    a failure while writing (a full disk, a non-finite metric) leaves no staging behind."""
    staging = run.output / STAGING_DIR
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with write_failure("the final model", run.output):
            _stage(run, modules, staging, elapsed)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    move_model_into(staging, run.output)


def _stage(run, modules: dict[str, nn.Module], staging: Path, elapsed: float) -> None:
    """The final model, its metadata, samples, evaluation and card, into ``staging``."""
    plugin, config, data = run.plugin, run.config, run.data
    pipeline = plugin.to_pipeline(modules, data, config)
    with quiet_libraries():  # no 'Writing model shards' bar from transformers for a one-file model
        plugin.save_pipeline(pipeline, staging)
    pipeline = on_device(pipeline, run.accelerator)
    origin = in_process_origin(plugin.name)
    write_metadata(
        staging, plugin.name, data=data.info.__dict__, config=config, train_seconds=elapsed,
        **({"in_process": origin} if origin else {}),
    )  # fmt: skip
    samples = write_samples(plugin, pipeline, sample_file(plugin, staging), n=int(config["num_sample_images"]), seed=0)
    log_samples(run.accelerator.trackers, samples, run.step)  # the final grid (or texts) reaches every tracker
    evaluation = plugin.evaluate(pipeline, data, config) if config["eval"] else None
    if evaluation:
        _record(run, evaluation, staging)
    write_model_card(
        staging, plugin=plugin, dataset=str(config["dataset"]), config=config, evaluation=evaluation,
        repo_or_path=str(run.output), in_process=origin,
    )  # fmt: skip


def _record(run, evaluation: dict[str, Any], staging: Path) -> None:
    """A finite evaluation into eval_results.json, the console and the trackers."""
    check_finite(evaluation)
    (staging / "eval_results.json").write_text(json.dumps(evaluation, indent=2, default=str))
    run.accelerator.print(json.dumps(evaluation["metrics"]))
    numeric = {k: v for k, v in evaluation["metrics"].items() if isinstance(v, (int, float))}
    run.accelerator.log({f"eval/{k}": v for k, v in numeric.items()}, step=run.step)


def push(config: dict[str, Any], output: Path, accelerator) -> None:
    """``--push-to-hub``: the finished folder, with its card, in one commit."""
    repo_id = config["hub_model_id"] or output.resolve().name
    plan = push_to_hub(output, repo_id, private=bool(config["hub_private"]))
    accelerator.print(f"pushed {len(plan['files'])} files to {plan['url']}")
