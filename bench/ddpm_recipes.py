"""DDPM recipes at equal wall time: genkit's `small` recipe against the recipe of diffusers' reference script
`examples/unconditional_image_generation/train_unconditional.py`, same UNet, same data, same evaluation.

    python bench/ddpm_recipes.py                         # 1, 2 and 5 minutes of training per recipe
    python bench/ddpm_recipes.py --minutes 0.2 0.5 --recipes genkit    # a quick look

Both recipes train the `small` preset's `UNet2DModel` on digits at 16 px with batch 64 in one plain PyTorch loop
(the same loop, data order and seed; the clock runs only while training), one recipe after the other, on an idle
machine. The reference recipe, written here from the script's defaults (not copied): epsilon objective, plain MSE,
linear betas 1e-4..0.02 over 1000 steps, AdamW lr 1e-4, betas (0.95, 0.999), weight decay 1e-6, 500 warm-up steps then
cosine decay, EMA with warm-up (inv_gamma 1, power 3/4, max decay 0.9999), gradient clipping at 1. genkit's recipe is
the `small` preset's settings and its own training step (`DDPMPlugin.training_step`: its objective, schedule and
loss weighting). Each recipe's cosine schedule spans the longest checkpoint (the number of steps that fit in it,
timed on the first steps), and the EMA weights are scored at every checkpoint with `genkit eval`'s protocol: the
plugin's `evaluate` (DPM-Solver++ 2M SDE, 50 steps, 500 samples against the test split).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from bench_ddpm import _data, plain_update
from machine import machine

# diffusers' train_unconditional.py defaults (its argparse), the parts that make the recipe
REFERENCE = {
    "lr": 1e-4,
    "adam_betas": (0.95, 0.999),
    "adam_weight_decay": 1e-6,
    "warmup_steps": 500,
    "lr_scheduler": "cosine",
    "ema": {"decay": 0.9999, "use_ema_warmup": True, "inv_gamma": 1.0, "power": 0.75},
    "schedule": {"num_train_timesteps": 1000, "beta_schedule": "linear", "prediction_type": "epsilon"},
}


def _setup(recipe: str, config: dict, data, horizon: int):
    """The UNet, optimizer, LR schedule, EMA and loss function of one recipe."""
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    import genkit
    from genkit.plugin import StepContext

    plugin = genkit.get_plugin("ddpm")
    torch.manual_seed(config["seed"])
    unet = plugin.build(config, data.info)["model"].train()
    if recipe == "reference":
        noise_scheduler = DDPMScheduler(**REFERENCE["schedule"])
        optimizer = torch.optim.AdamW(
            unet.parameters(),
            lr=REFERENCE["lr"],
            betas=REFERENCE["adam_betas"],
            weight_decay=REFERENCE["adam_weight_decay"],
        )
        warmup, ema = REFERENCE["warmup_steps"], EMAModel(unet.parameters(), **REFERENCE["ema"])

        def loss_fn(batch):
            x0 = batch["pixel_values"]
            noise = torch.randn_like(x0)
            t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (x0.shape[0],))
            return F.mse_loss(unet(noise_scheduler.add_noise(x0, noise, t), t).sample, noise)

    else:
        (spec,) = plugin.optimizers(config)  # the Trainer's AdamW, as the plugin declares it
        optimizer = torch.optim.AdamW(unet.parameters(), lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)
        warmup, ema = config["warmup_steps"], EMAModel(unet.parameters(), **plugin.ema["model"])
        ctx = StepContext(phase="model", step=0, config=config, carry={})

        def loss_fn(batch):
            return plugin.training_step({"model": unet}, batch, ctx)["loss"]

    schedule = get_scheduler(config["lr_scheduler"], optimizer, num_warmup_steps=warmup, num_training_steps=horizon)
    return unet, optimizer, schedule, ema, loss_fn


def _score(unet, ema, config, data) -> dict:
    import copy

    import genkit

    plugin = genkit.get_plugin("ddpm")
    averaged = copy.deepcopy(unet)
    ema.copy_to(averaged.parameters())
    pipe = plugin.to_pipeline({"model": averaged.eval()}, data, config)
    with torch.no_grad():
        metrics = plugin.evaluate(pipe, data, config)["metrics"]
    return {k: round(float(metrics[k]), 3) for k in ("frechet_distance", "precision", "recall", "class_coverage")}


def run(recipe: str, minutes: list[float], config: dict, data, step_seconds: float) -> list[dict]:
    """Train ``recipe`` for max(minutes) of wall clock, scoring its EMA weights at each checkpoint."""
    horizon = max(1, int(max(minutes) * 60 / step_seconds))
    unet, optimizer, schedule, ema, loss_fn = _setup(recipe, config, data, horizon)
    generator = torch.Generator().manual_seed(config["seed"])
    loader = torch.utils.data.DataLoader(
        data.train, batch_size=config["batch_size"], shuffle=True, drop_last=True, generator=generator
    )
    rows, pending, trained, steps = [], sorted(minutes), 0.0, 0
    while pending:
        for batch in loader:
            start = time.perf_counter()
            plain_update(loss_fn(batch), unet, optimizer, schedule, ema, config["max_grad_norm"])
            trained += time.perf_counter() - start
            steps += 1
            if trained >= pending[0] * 60:
                row = {"recipe": recipe, "minutes": pending.pop(0), "steps": steps, "train_s": round(trained, 1)}
                row.update(_score(unet, ema, config, data))
                print(json.dumps(row), flush=True)
                rows.append(row)
                if not pending:
                    break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 2, 5])
    parser.add_argument("--recipes", nargs="+", default=["reference", "genkit"], choices=["reference", "genkit"])
    parser.add_argument("--eval-samples", type=int, default=None, help="default: the preset's (500)")
    args = parser.parse_args()

    import genkit
    from genkit.config.resolve import resolve_config

    plugin = genkit.get_plugin("ddpm")
    overrides = {"max_steps": 1} | ({"eval_samples": args.eval_samples} if args.eval_samples else {})
    config = resolve_config(plugin, "small", overrides)
    data = _data(config)
    # seconds per step of this UNet and batch (both recipes run the same model, so one timing serves both)
    unet, optimizer, _, _, loss_fn = _setup("genkit", config, data, 10)
    batch = next(iter(torch.utils.data.DataLoader(data.train, batch_size=config["batch_size"])))
    for i in range(8):
        if i == 3:
            start = time.perf_counter()
        loss_fn(batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    step_seconds = (time.perf_counter() - start) / 5
    rows = [row for recipe in args.recipes for row in run(recipe, args.minutes, config, data, step_seconds)]
    print(json.dumps({"machine": machine(), "step_seconds": round(step_seconds, 4), "rows": rows}))
    print(
        "\n| minutes of training | recipe | steps | Fréchet distance ↓ | precision ↑ | recall ↑ | class coverage ↑ |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r["minutes"], r["recipe"])):
        print(
            f"| {row['minutes']:g} | {row['recipe']} | {row['steps']:,} | {row['frechet_distance']:.2f} | "
            f"{row['precision']:.2f} | {row['recall']:.2f} | {row['class_coverage']:.2f} |"
        )
    assert all(math.isfinite(r["frechet_distance"]) for r in rows)


if __name__ == "__main__":
    main()
