"""DDPM benchmarks: sampler speed and quality on one trained model, and the trainer's overhead over a plain loop.

    python bench/bench_ddpm.py sampling MODEL_DIR [--n 256] [--grids OUT_DIR]
    python bench/bench_ddpm.py throughput [--preset small] [--steps 60] [--repeats 2]

``sampling`` draws ``--n`` images from MODEL_DIR with DDPM-1000, DDIM-50, DDIM-20 and DPM-Solver++-20 (same seed,
same EMA weights; ``--candidates`` adds the few-step candidates of CANDIDATES, ``--samplers`` picks by label), timing
the denoising alone, and scores each set with ``genkit.metrics.evaluate_images`` against
the model's test split (the same offline Fréchet distance as ``genkit eval``).

``throughput`` trains the same ``UNet2DModel`` with the same scheduler, batch size, optimizer, LR schedule, gradient
clipping and EMA twice: with ``genkit``'s Trainer and with a plain PyTorch loop, and reports images/s of each
(optimizer loop only: data preparation, checkpoints and the final save are outside the timed span in both).
Results are printed as JSON and as Markdown rows for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from machine import machine

# label -> (diffusers scheduler short name, scheduler config overrides, model calls; None = every training timestep)
SAMPLERS: dict[str, tuple[str, dict, int | None]] = {
    "ddpm-1000": ("ddpm", {}, None),
    "ddim-50": ("ddim", {}, 50),
    "ddim-20": ("ddim", {}, 20),
    "dpm++2m-20": ("dpmsolvermultistep", {}, 20),
}
# Few-step candidates measured against DDPM-1000 (`sampling --candidates`): spacing, order, noise, solver family.
CANDIDATES: dict[str, tuple[str, dict, int | None]] = {
    "ddim-50-trailing": ("ddim", {"timestep_spacing": "trailing"}, 50),
    "ddpm-50-trailing": ("ddpm", {"timestep_spacing": "trailing"}, 50),
    "dpm++2m-50": ("dpmsolvermultistep", {}, 50),
    "dpm++2m-50-trailing": ("dpmsolvermultistep", {"timestep_spacing": "trailing"}, 50),
    "dpm++2m-karras-20": ("dpmsolvermultistep", {"use_karras_sigmas": True}, 20),
    "dpm++3m-50": ("dpmsolvermultistep", {"solver_order": 3}, 50),
    "dpm++2m-sde-20": ("dpmsolvermultistep", {"algorithm_type": "sde-dpmsolver++"}, 20),
    "dpm++2m-sde-50": ("dpmsolvermultistep", {"algorithm_type": "sde-dpmsolver++"}, 50),
    "unipc-20": ("unipcmultistep", {}, 20),
    "unipc-50": ("unipcmultistep", {}, 50),
    "euler-ancestral-50": ("eulerancestraldiscrete", {}, 50),
}


def make_sampler(pipe, label: str):
    """The scheduler object and model calls of a SAMPLERS/CANDIDATES entry, sharing the model's noise schedule."""
    from genkit_ddpm.pipeline_ddpm import make_scheduler

    name, overrides, steps = {**SAMPLERS, **CANDIDATES}[label]
    base = make_scheduler(pipe.scheduler, name)
    return type(base).from_config(base.config, **overrides), steps or pipe.scheduler.config.num_train_timesteps


def _data(config: dict):
    import genkit
    from genkit.data import load_splits

    splits = load_splits(
        str(config["dataset"]),
        "image",
        image_size=config["image_size"],
        num_samples=config.get("num_samples"),
        seed=config["seed"],
        test_fraction=config["test_fraction"],
    )
    return genkit.get_plugin("ddpm").prepare_data(splits, config)


# ---- sampling: DDPM-1000 vs DDIM-50 vs DDIM-20 ---------------------------------------------------------------------
def bench_sampling(model: str, n: int, batch: int, grids: str | None, labels: list[str], seed: int = 0) -> dict:
    import genkit
    from genkit.data import make_grid, tensor_to_pil
    from genkit.eval.metrics import evaluate_images

    pipe = genkit.load(model)
    pipe.set_progress_bar_config(disable=True)
    config = json.loads((Path(model) / "genkit.json").read_text())["config"]
    data = _data(config)
    rows = []
    for label in labels:
        generator = torch.Generator().manual_seed(seed)
        images, seconds = [], 0.0
        for start in range(0, n, batch):
            count = min(batch, n - start)
            t0 = time.perf_counter()
            sampler, steps = make_sampler(pipe, label)
            out = pipe(count, generator=generator, num_inference_steps=steps, scheduler=sampler, output_type="pt")
            seconds += time.perf_counter() - t0
            images.append(out.images * 2 - 1)
        samples = torch.cat(images)
        result = evaluate_images(
            samples,
            data.test,
            train=data.train,
            num_classes=data.info.num_classes,
            seed=0,
            cache_key=f"{Path(str(config['dataset'])).name}-{config['image_size']}px",
        )
        row = {
            "sampler": label,
            "model_calls": steps,
            "images": n,
            "seconds": round(seconds, 1),
            "ms_per_image": round(1000 * seconds / n, 1),
            **{k: round(v, 4) for k, v in result["metrics"].items()},
            "reference_real_frechet_distance": round(result["protocol"]["reference_real_frechet_distance"], 4),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        if grids:
            Path(grids).mkdir(parents=True, exist_ok=True)
            make_grid(tensor_to_pil(samples[:64])).save(Path(grids) / f"ddpm-{label}.png")
    if grids:
        side_by_side(grids, [r["sampler"] for r in rows])
    return {"model": model, "samples_per_sampler": n, "batch": batch, "seed": seed, "rows": rows}


def side_by_side(grids: str, samplers: list[str], scale: int = 2) -> Path:
    """One figure of the samplers' grids (``ddpm-<sampler>.png``), captioned, left to right: ``samplers.png``."""
    from PIL import Image, ImageDraw

    tiles = [Image.open(Path(grids) / f"ddpm-{name}.png").convert("RGB") for name in samplers]
    tiles = [t.resize((t.width * scale, t.height * scale), Image.NEAREST) for t in tiles]
    gap, caption = 8 * scale, 14
    figure = Image.new(
        "RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), tiles[0].height + caption), "white"
    )
    draw, x = ImageDraw.Draw(figure), 0
    for name, tile in zip(samplers, tiles, strict=True):
        draw.text((x + 2, 1), name, fill="black")
        figure.paste(tile, (x, caption))
        x += tile.width + gap
    figure.save(Path(grids) / "samplers.png")
    return Path(grids) / "samplers.png"


# ---- training throughput: genkit Trainer vs a plain loop -----------------------------------------------------------
def _genkit_run(preset: str, steps: int) -> float:
    from bench_gpu import run_config

    import genkit
    from genkit.training.trainer import Trainer

    plugin = genkit.get_plugin("ddpm")
    with tempfile.TemporaryDirectory() as out:
        config = run_config(plugin, preset, steps, None, out)  # None: accelerate's precision, as before
        Trainer(plugin, config).train()
        return json.loads((Path(out) / "genkit.json").read_text())["train_seconds"]


def plain_update(loss, unet, optimizer, lr_schedule, ema, max_grad_norm: float) -> None:
    """One update of a plain PyTorch loop: backward, clip, step, schedule, zero, EMA."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(unet.parameters(), max_grad_norm)
    optimizer.step()
    lr_schedule.step()
    optimizer.zero_grad(set_to_none=True)
    ema.step(unet.parameters())


def _plain_run(preset: str, steps: int) -> float:
    """The same training with nothing but torch + diffusers."""
    import torch.nn.functional as F
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    import genkit
    from genkit.config.resolve import resolve_config

    plugin = genkit.get_plugin("ddpm")
    config = resolve_config(plugin, preset, {"max_steps": steps})
    data = _data(config)
    torch.manual_seed(config["seed"])
    unet = plugin.build(config, data.info)["model"].train()
    noise_scheduler = DDPMScheduler(
        num_train_timesteps=config["num_train_timesteps"],
        beta_schedule=config["beta_schedule"],
        prediction_type=config["prediction_type"],
    )
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config["lr"])
    lr_schedule = get_scheduler(
        config["lr_scheduler"], optimizer, num_warmup_steps=config["warmup_steps"], num_training_steps=steps
    )
    ema = EMAModel(unet.parameters(), **plugin.ema["model"])
    loader = torch.utils.data.DataLoader(data.train, batch_size=config["batch_size"], shuffle=True, drop_last=True)
    done, t0 = 0, time.perf_counter()
    while done < steps:
        for batch in loader:
            x0 = batch["pixel_values"]
            noise = torch.randn_like(x0)
            t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (x0.shape[0],))
            loss = F.mse_loss(unet(noise_scheduler.add_noise(x0, noise, t), t).sample, noise)
            plain_update(loss, unet, optimizer, lr_schedule, ema, config["max_grad_norm"])
            done += 1
            if done == steps:
                break
    return time.perf_counter() - t0


def bench_throughput(preset: str, steps: int, repeats: int) -> dict:
    import genkit
    from genkit.config.resolve import resolve_config

    batch = resolve_config(genkit.get_plugin("ddpm"), preset, {})["batch_size"]
    times = {"plain": [], "genkit": []}
    for _ in range(repeats):  # interleaved, so that a change in machine load hits both alike
        times["plain"].append(_plain_run(preset, steps))
        times["genkit"].append(_genkit_run(preset, steps))
        print(
            json.dumps({"plain_s": times["plain"][-1], "genkit_s": times["genkit"][-1], "load": os.getloadavg()}),
            flush=True,
        )
    result = {"preset": preset, "steps": steps, "batch_size": batch, "seconds": times}
    for kind, values in times.items():
        result[f"{kind}_images_per_s"] = round(steps * batch / statistics.median(values), 1)
    result["genkit_over_plain_time"] = round(statistics.median(times["genkit"]) / statistics.median(times["plain"]), 3)
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sampling")
    s.add_argument("model")
    s.add_argument("--n", type=int, default=256, help="images per sampler")
    s.add_argument("--batch", type=int, default=256)
    s.add_argument("--grids", default=None, help="write a 64-image grid per sampler into this folder")
    s.add_argument("--samplers", nargs="+", default=None, help=f"labels (default: all of {list(SAMPLERS)})")
    s.add_argument("--seed", type=int, default=0, help="seed of the initial noise (and of stochastic samplers)")
    s.add_argument("--candidates", action="store_true", help=f"also the few-step candidates {list(CANDIDATES)}")
    t = sub.add_parser("throughput")
    t.add_argument("--preset", default="small")
    t.add_argument("--steps", type=int, default=60)
    t.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    report = {"machine": machine()}
    if args.command == "sampling":
        labels = args.samplers or [*SAMPLERS, *(CANDIDATES if args.candidates else [])]
        report["sampling"] = bench_sampling(args.model, args.n, args.batch, args.grids, labels, args.seed)
        rows = report["sampling"]["rows"]
        reference = next((r for r in rows if r["sampler"] == "ddpm-1000"), None)
        print(
            "| sampler | model calls | s / image | Fréchet distance | vs DDPM-1000 | precision | recall "
            "| class coverage |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            versus = f"{r['frechet_distance'] / reference['frechet_distance'] - 1:+.0%}" if reference else "-"
            print(
                f"| {r['sampler']} | {r['model_calls']} | {r['ms_per_image'] / 1000:.3f} | "
                f"{r['frechet_distance']:.2f} | {versus} | {r['precision']:.2f} | {r['recall']:.2f} | "
                f"{r.get('class_coverage', math.nan):.2f} |"
            )
    else:
        report["throughput"] = bench_throughput(args.preset, args.steps, args.repeats)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
