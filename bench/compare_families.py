"""The course's comparison table: test NLL in bits/dim (VAE, importance-sampled; flow, exact) and sample quality (one
Fréchet-distance protocol for VAE, flow, DCGAN and DDPM) on the same data and image size, with wall-clock times.

    python bench/compare_families.py                         # digits at 16 px, each family's small preset
    python bench/compare_families.py --families vae flow --out /tmp/compare
    python bench/compare_families.py --dataset mnist --image-size 28 --families vae flow ddpm
    python bench/compare_families.py --dataset mnist --image-size 32 --families dcgan   # powers of two only

Every model is trained by the real CLI (`genkit train F --preset small`, the VAE with `--likelihood gaussian`, whose
discretized bits/dim are a likelihood of the 8-bit pixels like the flow's; a Bernoulli VAE's are not), one at a time:
run it on an idle machine. Sample quality: 500 samples per model (seed 0; DDPM with its default sampler,
DPM-Solver++ 2M SDE, 50 steps; flow at temperature 1) scored by `genkit.eval.metrics.evaluate_images` against the
test split, the protocol of `genkit eval` for the DCGAN and DDPM (docs/metrics.md). Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from machine import cpu_name

FAMILIES = {
    "vae": ["--likelihood", "gaussian"],
    "flow": [],
    "dcgan": [],
    "ddpm": [],
}
SAMPLES = 500


def train(family: str, dataset: str, out: Path, image_size: int | None = None, preset: str = "small") -> float:
    folder = out / family
    cmd = ["genkit", "train", family, "--preset", preset, "--dataset", dataset, "--output", str(folder)]
    cmd += ["--overwrite", "--log-with", "none", *FAMILIES[family]]
    cmd += ["--image-size", str(image_size)] if image_size else []
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def samples(family: str, pipe) -> torch.Tensor:
    chunks = []
    for i, n in enumerate((250, 250)):
        if family == "ddpm":
            out = (
                pipe(
                    n,
                    generator=torch.Generator().manual_seed(i),
                    num_inference_steps=50,
                    scheduler="dpm++2m-sde",
                    output_type="pt",
                ).images
                * 2
                - 1
            )
        else:
            out = pipe.sample(n, seed=i, output_type="pt")
        chunks.append(out.float().cpu())
    return torch.cat(chunks)


def score(family: str, folder: Path, dataset: str) -> dict:
    import genkit
    from genkit.data import load_splits, prepare_images
    from genkit.eval.metrics import evaluate_images

    meta = json.loads((folder / "genkit.json").read_text())
    size = meta["config"]["image_size"]
    splits = load_splits(dataset, "image", image_size=size)
    data = prepare_images(splits, {"image_size": size, "channels": None, "dataset": dataset})
    pipe = genkit.load(folder)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    start = time.perf_counter()
    images = samples(family, pipe)
    sampling = time.perf_counter() - start
    result = evaluate_images(images, data.test, train=data.train, num_classes=10, cache_key=f"{dataset}-{size}px")
    metrics = (
        json.loads((folder / "eval_results.json").read_text())["metrics"]
        if (folder / "eval_results.json").exists()
        else {}
    )
    bpd = {"vae": metrics.get("nll_bits_per_dim"), "flow": metrics.get("bits_per_dim")}.get(family)
    return {
        "family": family,
        "bits_per_dim": bpd,
        "fd": result["metrics"]["frechet_distance"],
        "precision": result["metrics"]["precision"],
        "recall": result["metrics"]["recall"],
        "class_coverage": result["metrics"].get("class_coverage"),
        "sampling_s": sampling,
        "reference_fd": result["protocol"]["reference_real_frechet_distance"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--out", type=Path, default=Path("/tmp/genkit-compare"))
    parser.add_argument("--image-size", type=int, default=None, help="default: each preset's (16 px)")
    parser.add_argument("--preset", default="small", help="small (the table); tiny only checks the script runs")
    args = parser.parse_args()
    rows = []
    for family in args.families:
        seconds = train(family, args.dataset, args.out, args.image_size, args.preset)
        row = {**score(family, args.out / family, args.dataset), "train_s": seconds}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\nMachine: {cpu_name()}, torch {torch.__version__}\n")
    print(
        f"| family | `genkit train` ({args.preset}) | test NLL, bits/dim | Fréchet distance | precision | recall | "
        "class coverage | 500 samples |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        bpd = f"{r['bits_per_dim']:.3f}" if r["bits_per_dim"] is not None else "—"
        print(
            f"| {r['family']} | {r['train_s']:.0f} s | {bpd} | {r['fd']:.2f} | {r['precision']:.2f} | "
            f"{r['recall']:.2f} | {r['class_coverage']:.2f} | {r['sampling_s']:.1f} s |"
        )
    print(f"\nReal train images against the test split, same protocol: FD {rows[0]['reference_fd']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
