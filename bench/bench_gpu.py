"""GPU benchmark: every family's ``base`` preset in bf16, genkit's Trainer against a plain loop, the speed-ups one by
one, and sampling speed. One command, sized for about 8 minutes on one H100/H200-class GPU:

    python bench/bench_gpu.py [--families vae dcgan ddpm lstm] [--steps 60] [--compile] [--json FILE]
    python bench/bench_gpu.py --smoke      # tiny presets on the CPU, a few steps: CI runs this

For each family, the same model (``plugin.build`` of the preset), data (``plugin.prepare_data``) and optimizer
(AdamW with the plugin's settings, its LR schedule, gradient clipping, and the EMA where the plugin keeps one) are
trained ``--steps`` updates:

- ``genkit``: ``genkit.trainer.Trainer``, as ``genkit train`` runs it;
- ``plain``: a loop written with accelerate + PyTorch only. For DDPM it is the loop of diffusers'
  ``train_unconditional.py`` (noise, random timesteps, ``add_noise``, MSE to the noise); for the other families it
  calls the plugin's ``training_step`` for the loss (the same loss, nothing of genkit's trainer around it);
- ``genkit`` with each speed-up alone: ``--allow-tf32``, ``--channels-last`` (image families), ``--fused-optimizer``,
  ``--num-workers 4`` (pinned memory is on for every GPU run), then all of them together; ``--compile`` adds
  ``torch.compile`` (it compiles for a minute or more per family, so it is opt-in).

Throughput is steady state: the first update (CUDA start-up, autotuning, compilation) is timed apart and left out,
so images/s (tokens/s for the LSTM) = (steps - 1) x batch / (time after the first update). Peak GPU memory is
``torch.cuda.max_memory_allocated`` of each run. Sampling: DDPM with DDIM-50 and DDPM-1000 on a batch of 64, the LSTM
``generate()`` of 1,000 tokens at batch 1. Prints JSON lines as it goes, then Markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from machine import machine

FAMILIES = ("vae", "dcgan", "ddpm", "lstm")
SPEEDUPS: dict[str, dict] = {
    "tf32": {"allow_tf32": True},
    "channels_last": {"channels_last": True},
    "fused_adamw": {"fused_optimizer": True},
    "workers_4": {"num_workers": 4},
}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_memory_mib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def _units(plugin, config: dict) -> tuple[str, int]:
    """What one batch is worth in the throughput's unit."""
    if plugin.task == "text":
        return "tokens/s", int(config["batch_size"]) * int(config["seq_len"])
    return "images/s", int(config["batch_size"])


def _row(kind: str, plugin, config: dict, steps: int, first: float, total: float) -> dict:
    unit, per_batch = _units(plugin, config)
    steady = max(total - first, 1e-9)
    return {
        "family": plugin.name,
        "run": kind,
        "steps": steps,
        "first_step_s": round(first, 3),
        "steady_s": round(steady, 3),
        "unit": unit,
        "throughput": round((steps - 1) * per_batch / steady, 1),
        "peak_memory_mib": _peak_memory_mib(),
    }


def run_config(plugin, preset: str, steps: int, mixed_precision: str | None, out: str, **extra) -> dict:
    """A benchmark run's config: ``steps`` updates, no checkpoints, sample grids, evaluation or trackers."""
    from genkit.config.resolve import resolve_config

    overrides = {
        "max_steps": steps,
        "checkpoint_every": 0,
        "sample_every": 0,
        "eval": False,
        "log_with": "none",
        "output": out,
        "num_sample_images": 4,
        "mixed_precision": mixed_precision,
        **extra,
    }
    return resolve_config(plugin, preset, overrides)


# ---- genkit's trainer -------------------------------------------------------------------------------------------
def genkit_run(plugin, preset: str, steps: int, mixed_precision: str, kind: str = "genkit", **extra):
    from genkit.training.trainer import Trainer

    with tempfile.TemporaryDirectory() as out:
        config = run_config(plugin, preset, steps, mixed_precision, out, **extra)
        _reset_memory()
        trainer = Trainer(plugin, config)
        trainer.train()
        row = _row(kind, plugin, config, steps, trainer.first_step_seconds, trainer.elapsed)
        pipeline = trainer.pipeline() if kind == "genkit" else None
    return row, pipeline


# ---- the plain loop ---------------------------------------------------------------------------------------------
def plain_run(plugin, preset: str, steps: int, mixed_precision: str) -> dict:
    """accelerate + PyTorch: the same modules, data, AdamW, LR schedule, clipping and EMA; no genkit trainer."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    from genkit.data import splits_for
    from genkit.plugin import StepContext

    with tempfile.TemporaryDirectory() as out:
        config = run_config(plugin, preset, steps, mixed_precision, out)
    AcceleratorState._reset_state()
    GradientState._reset_state()
    acc = Accelerator(mixed_precision=mixed_precision)
    data = plugin.prepare_data(splits_for(config, plugin.task), config)
    torch.manual_seed(config["seed"])
    modules = plugin.build(config, data.info)
    specs = plugin.optimizers(config)
    optimizers = [
        torch.optim.AdamW(
            [p for m in spec.modules for p in modules[m].parameters()],
            lr=spec.lr,
            betas=tuple(spec.betas),
            weight_decay=spec.weight_decay,
        )
        for spec in specs
    ]
    schedules = [
        get_scheduler(
            config["lr_scheduler"], opt, num_warmup_steps=int(config["warmup_steps"]), num_training_steps=steps
        )
        for opt in optimizers
    ]
    loader = torch.utils.data.DataLoader(
        data.train,
        batch_size=int(config["batch_size"]),
        shuffle=not plugin.sequential_batches,
        drop_last=True,
        pin_memory=acc.device.type == "cuda",
    )
    names = list(modules)
    prepared = acc.prepare(*[modules[n] for n in names], *optimizers, loader)
    wrapped = dict(zip(names, prepared[: len(names)], strict=True))
    bare = {name: acc.unwrap_model(module) for name, module in wrapped.items()}
    optimizers, loader = list(prepared[len(names) : -1]), prepared[-1]
    emas = {}
    for name, setting in plugin.ema_for(config).items():
        kwargs = setting if isinstance(setting, dict) else {"decay": float(setting)}
        emas[name] = EMAModel(acc.unwrap_model(wrapped[name]).parameters(), **kwargs)
        emas[name].to(acc.device)
    ddpm_loss = _ddpm_loss(config) if plugin.name == "ddpm" else None
    max_norm = float(config["max_grad_norm"] or 0)
    carry: dict = {}
    _reset_memory()
    _sync()
    step, first, t0 = 0, 0.0, time.perf_counter()
    while step < steps:
        for batch in loader:
            for spec, opt, schedule in zip(specs, optimizers, schedules, strict=True):
                if step % spec.every:
                    continue
                for name, module in wrapped.items():
                    module.requires_grad_(name in spec.modules)
                with acc.autocast():
                    if ddpm_loss is not None:
                        loss = ddpm_loss(wrapped["model"], batch)
                    else:
                        ctx = StepContext(spec.name, step, config, carry, unwrapped=bare)
                        loss = plugin.training_step(wrapped, batch, ctx)["loss"]
                acc.backward(loss)
                if max_norm > 0:
                    acc.clip_grad_norm_([p for m in spec.modules for p in wrapped[m].parameters()], max_norm)
                opt.step()
                schedule.step()
                opt.zero_grad(set_to_none=True)
            for name, ema in emas.items():
                ema.step(acc.unwrap_model(wrapped[name]).parameters())
            step += 1
            if step == 1:
                _sync()
                first = time.perf_counter() - t0
            if step >= steps:
                break
    _sync()
    return _row("plain", plugin, config, steps, first, time.perf_counter() - t0)


def _ddpm_loss(config: dict):
    """diffusers' train_unconditional.py, written here: epsilon (or v) regression at uniformly drawn timesteps."""
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    noise_scheduler = DDPMScheduler(
        num_train_timesteps=int(config["num_train_timesteps"]),
        beta_schedule=config["beta_schedule"],
        prediction_type=config["prediction_type"],
    )

    def loss(unet, batch):
        x0 = batch["pixel_values"]
        noise = torch.randn_like(x0)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
        target = noise if config["prediction_type"] == "epsilon" else noise_scheduler.get_velocity(x0, noise, t)
        return F.mse_loss(unet(noise_scheduler.add_noise(x0, noise, t), t).sample.float(), target.float())

    return loss


# ---- sampling -----------------------------------------------------------------------------------------------------
def sampling(plugin, pipeline, smoke: bool) -> list[dict]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    if plugin.name == "ddpm":
        pipeline.to(device)
        pipeline.set_progress_bar_config(disable=True)
        batch = 4 if smoke else 64
        for scheduler, steps in (("ddim", 5 if smoke else 50), ("ddpm", 10 if smoke else 1000)):
            pipeline(1, num_inference_steps=2, scheduler=scheduler, output_type="pt")  # warm-up
            _sync()
            t0 = time.perf_counter()
            pipeline(batch, num_inference_steps=steps, scheduler=scheduler, output_type="pt")
            _sync()
            seconds = time.perf_counter() - t0
            rows.append(
                {"family": "ddpm", "sampler": f"{scheduler}-{steps}", "batch": batch, "s_per_image": seconds / batch}
            )
    elif plugin.name == "lstm":
        model = pipeline.model.to(device).eval()
        model.generation_config.pad_token_id = 0
        n = 20 if smoke else 1000
        prompt = torch.tensor([[1]], device=device)
        with torch.no_grad():
            model.generate(prompt, max_new_tokens=5, do_sample=True)  # warm-up
            _sync()
            t0 = time.perf_counter()
            out = model.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=True, top_k=0)
            _sync()
        assert out.shape[1] == n + 1
        rows.append(
            {"family": "lstm", "sampler": f"generate-{n}", "batch": 1, "tokens_per_s": n / (time.perf_counter() - t0)}
        )
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


# ---- one family, then all ----------------------------------------------------------------------------------------
def bench_family(name: str, steps: int, smoke: bool, compile_too: bool, speedups_run: str = "each") -> dict:
    import genkit

    plugin = genkit.get_plugin(name)
    preset = "tiny" if smoke else "base"
    precision = "bf16" if torch.cuda.is_available() and not smoke else "no"
    rows = []
    baseline, pipeline = genkit_run(plugin, preset, steps, precision)
    rows += [baseline, plain_run(plugin, preset, steps, precision)]
    print(json.dumps(rows[0]), json.dumps(rows[1]), sep="\n", flush=True)
    speedups = {k: v for k, v in SPEEDUPS.items() if plugin.task == "image" or k != "channels_last"}
    together = {key: value for extra in speedups.values() for key, value in extra.items()}
    variants = {**(speedups if speedups_run == "each" else {}), "all_of_them": together}
    if compile_too:
        variants["compile"] = {"compile": True}
        variants["all_of_them+compile"] = {**together, "compile": True}
    for kind, extra in variants.items():
        row, _ = genkit_run(plugin, preset, steps, precision, kind=kind, **extra)
        row["vs_genkit"] = round(row["throughput"] / baseline["throughput"], 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    rows[1]["vs_genkit"] = round(rows[1]["throughput"] / baseline["throughput"], 3)
    return {
        "family": name,
        "preset": preset,
        "mixed_precision": precision,
        "training": rows,
        "sampling": sampling(plugin, pipeline, smoke),
    }


def markdown(report: dict) -> str:
    lines = [
        "| family | run | throughput | unit | vs genkit | first update s | peak GPU MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for family in report["families"]:
        for r in family["training"]:
            memory = "-" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:,.0f}"
            lines.append(
                f"| {r['family']} | {r['run']} | {r['throughput']:,.0f} | {r['unit']} | {r.get('vs_genkit', 1):.2f} | "
                f"{r['first_step_s']:.2f} | {memory} |"
            )
    lines += ["", "| family | sampler | batch | speed |", "|---|---|---|---|"]
    for family in report["families"]:
        for r in family["sampling"]:
            speed = (
                f"{r['s_per_image'] * 1000:.1f} ms/image" if "s_per_image" in r else f"{r['tokens_per_s']:,.0f} tok/s"
            )
            lines.append(f"| {r['family']} | {r['sampler']} | {r['batch']} | {speed} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--steps", type=int, default=None, help="updates per run (default 60; --smoke: 3)")
    parser.add_argument("--smoke", action="store_true", help="tiny presets, a few steps, fp32: runs on a CPU")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument(
        "--speedups",
        choices=("each", "together"),
        default="each",
        help="time each speed-up alone and all together (default), or only all together (a shorter run)",
    )
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    steps = args.steps or (3 if args.smoke else 60)
    if steps < 2:
        parser.error("--steps must be at least 2 (the first update is timed apart)")
    if not torch.cuda.is_available() and not args.smoke:
        parser.error("no CUDA device: run the GPU benchmark on a GPU, or pass --smoke for the CPU check")
    started = time.perf_counter()
    report = {"machine": machine(), "steps": steps, "smoke": args.smoke, "families": []}
    for name in args.families:
        report["families"].append(bench_family(name, steps, args.smoke, args.compile, args.speedups))
        if args.json:  # what is done so far survives a run cut short
            Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2, default=str))
    print(markdown(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


if __name__ == "__main__":
    main()
