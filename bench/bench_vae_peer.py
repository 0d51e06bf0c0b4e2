"""genkit's VAE against a peer recipe at equal architecture and budget, side by side in one run.

    python bench/bench_vae_peer.py [--epochs 10] [--seeds 0 1 2] [--json FILE]

The peer is the recipe of pytorch/examples' ``vae/main.py`` (re-written here, not copied): Adam at lr 1e-3, batch 128,
the summed Bernoulli cross-entropy of every pixel plus the summed KL term as the loss, shuffled epochs, no clipping,
no schedule, 10 epochs. Both sides train the *same* model — genkit's ``VAEModel`` with the defaults of ``genkit train
vae`` (latent 16, convolutional encoder and decoder of 32 and 64 channels), built by the plugin for 28 x 28 images —
on the same data (the built-in ``mnist``: 5,000 real MNIST digits, 10% held out), for the same number of updates of
the same batch size. genkit trains with its own recipe (AdamW, warm-up and cosine decay, clipping, the per-image mean
loss) through ``genkit.train``. Both are scored by the same code, the plugin's evaluation on the held-out split: the
test negative ELBO and the importance-sampled NLL (k = 100), in nats per image. Lower is better.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from machine import machine

SETTINGS = {"image_size": 28, "batch_size": 128}


def _data(seed: int):
    import genkit
    from genkit.config.resolve import resolve_config
    from genkit.data import splits_for

    plugin = genkit.get_plugin("vae")
    config = resolve_config(plugin, "small", {"dataset": "mnist", "seed": seed, **SETTINGS})
    return plugin, config, plugin.prepare_data(splits_for(config, "image"), config)


def genkit_side(epochs: int, seed: int) -> dict:
    import genkit

    plugin, config, data = _data(seed)
    updates = epochs * (len(data.train) // SETTINGS["batch_size"])
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        pipeline = genkit.train(
            "vae", "mnist", output=out, seed=seed, max_steps=updates, log_with="none", sample_every=0, **SETTINGS
        )
        seconds = time.perf_counter() - t0
        metrics = json.loads((Path(out) / "eval_results.json").read_text())["metrics"]
    assert pipeline.vae.config.image_size == 28
    return {"side": "genkit", "seed": seed, "updates": updates, "seconds": round(seconds, 1), **metrics}


def peer_side(epochs: int, seed: int) -> dict:
    """pytorch/examples' VAE recipe on genkit's model."""
    from genkit_vae.modeling_vae import kl_divergence
    from genkit_vae.pipeline_vae import VAEPipeline

    plugin, config, data = _data(seed)
    torch.manual_seed(seed)
    model = plugin.build(config, data.info)["model"].train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(data.train, batch_size=SETTINGS["batch_size"], shuffle=True, drop_last=True)
    updates, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            x = batch["pixel_values"]
            out = model(x)
            # summed over pixels and images, as the recipe's loss_function does
            loss = -model.log_likelihood(out.decoded, x).sum() + kl_divergence(out.mean, out.logvar).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            updates += 1
    seconds = time.perf_counter() - t0
    model.eval().requires_grad_(False)
    metrics = plugin.evaluate(VAEPipeline(vae=model), data, config)["metrics"]
    return {"side": "peer", "seed": seed, "updates": updates, "seconds": round(seconds, 1), **metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        for side in (peer_side, genkit_side):
            rows.append(side(args.epochs, seed))
            print(json.dumps(rows[-1]), flush=True)
    report = {"machine": machine(), "epochs": args.epochs, "rows": rows}
    print(json.dumps(report, indent=2))
    print("| recipe | updates (batch 128) | test negative ELBO (nats) | importance-sampled NLL (nats) | per seed |")
    print("|---|---|---|---|---|")
    for side, label in (("peer", "pytorch/examples recipe"), ("genkit", "genkit train vae")):
        mine = [r for r in rows if r["side"] == side]
        elbo = statistics.mean(r["negative_elbo_nats"] for r in mine)
        nll = statistics.mean(r["importance_sampled_nll_nats"] for r in mine)
        seeds = ", ".join(f"{r['negative_elbo_nats']:.2f}" for r in mine)
        print(f"| {label} | {mine[0]['updates']} | {elbo:.2f} | {nll:.2f} | {seeds} |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
