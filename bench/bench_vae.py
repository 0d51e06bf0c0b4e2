"""Training throughput and peak memory: `genkit train vae` vs a plain PyTorch loop over the same model and data.

Both run the same VAEModel, the same digits tensors, batch size, AdamW, gradient clipping and cosine schedule.
Each measurement is a fresh subprocess (so peak RSS is its own), and the two are interleaved `--repeats` times so
that machine load affects both alike. Prints a Markdown table; the ratio is genkit / plain throughput.

    python bench/bench_vae.py [--steps 600] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from machine import cpu_name


def run_genkit(steps: int) -> float:
    from genkit.config.resolve import resolve_config
    from genkit.plugin.registry import get_plugin
    from genkit.training.trainer import Trainer

    plugin = get_plugin("vae")
    with tempfile.TemporaryDirectory() as out:
        config = resolve_config(
            plugin,
            "small",
            {"max_steps": steps, "output": out, "eval": False, "checkpoint_every": 0, "sample_every": 0},
        )
        trainer = Trainer(plugin, config)
        start = time.perf_counter()
        trainer.train()
        # train() also saves the final model, card and samples; time the loop alone as the trainer reports it.
        total = time.perf_counter() - start
        loop = float(trainer.elapsed)
    print(json.dumps({"end_to_end_s": total}), file=sys.stderr)
    return steps * config["batch_size"] / loop


def run_plain(steps: int) -> float:
    import torch
    from diffusers.optimization import get_scheduler
    from genkit_vae.modeling_vae import VAEModel, kl_divergence

    from genkit.data import load_splits, prepare_images
    from genkit.plugin.registry import get_plugin

    plugin = get_plugin("vae")
    cfg = {**plugin.defaults, **plugin.presets["small"]}
    torch.manual_seed(0)
    data = prepare_images(
        load_splits("digits", "image", image_size=cfg["image_size"]),
        {"image_size": cfg["image_size"], "channels": None, "dataset": "digits"},
    )
    model = VAEModel(
        in_channels=1,
        image_size=cfg["image_size"],
        latent_dim=cfg["latent_dim"],
        hidden_channels=tuple(cfg["hidden_channels"]),
        likelihood=cfg["likelihood"],
    )
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
    sched = get_scheduler(cfg["lr_scheduler"], opt, num_warmup_steps=cfg["warmup_steps"], num_training_steps=steps)
    loader = torch.utils.data.DataLoader(data.train, batch_size=cfg["batch_size"], shuffle=True, drop_last=True)
    step = 0
    start = time.perf_counter()
    while step < steps:
        for batch in loader:
            x = batch["pixel_values"]
            out = model(x)
            loss = (
                -model.log_likelihood(out.decoded, x).mean() + cfg["beta"] * kl_divergence(out.mean, out.logvar).mean()
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["max_grad_norm"])
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            loss.item()  # genkit reads every loss to detect NaN; so does this loop, to compare like with like
            step += 1
            if step == steps:
                break
    return steps * cfg["batch_size"] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=("genkit", "plain"))
    args = parser.parse_args()
    if args.worker:
        ips = run_genkit(args.steps) if args.worker == "genkit" else run_plain(args.steps)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"images_per_s": ips, "peak_rss_mib": peak_mib}))
        return
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    results: dict[str, list[dict]] = {"genkit": [], "plain": []}
    for _ in range(args.repeats):
        for worker in ("plain", "genkit"):
            out = subprocess.run(
                [sys.executable, __file__, "--worker", worker, "--steps", str(args.steps)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            results[worker].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {w: statistics.median(r["images_per_s"] for r in rs) for w, rs in results.items()}
    mem = {w: max(r["peak_rss_mib"] for r in rs) for w, rs in results.items()}
    load = os.getloadavg()[0]
    print(f"Machine: {os.cpu_count()} cores, {cpu_name()}; torch threads default; load average now {load:.1f}")
    print(
        f"VAE `small` preset on digits (16 px, batch 64), {args.steps} steps, "
        f"median of {args.repeats} interleaved runs\n"
    )
    print("| loop | images/s (median) | runs | peak RSS (MiB) |")
    print("|---|---|---|---|")
    for w in ("plain", "genkit"):
        runs = ", ".join(f"{r['images_per_s']:.0f}" for r in results[w])
        print(f"| {w} | {med[w]:.0f} | {runs} | {mem[w]:.0f} |")
    print(
        f"\nthroughput ratio genkit / plain = {med['genkit'] / med['plain']:.3f}; "
        f"peak memory ratio = {mem['genkit'] / mem['plain']:.2f}"
    )


if __name__ == "__main__":
    main()
