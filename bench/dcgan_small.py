"""Quality and time of the DCGAN `small` preset, one variant at a time: train with the real CLI, evaluate with
`genkit eval`, copy the sample grid to docs/images/dcgan-<variant>.png, and print a markdown table.

    python bench/dcgan_small.py                      # bce, wgan-gp and conditional on digits
    python bench/dcgan_small.py --variants bce --dataset shapes --out /tmp/dcgan-bench

Results for this machine are recorded in docs/benchmarks.md. On a CPU shared with other jobs, run it with
OMP_NUM_THREADS=1: two OpenMP threads that must wait for each other on an oversubscribed CPU are many times slower.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_name
from PIL import Image

VARIANTS = {"bce": [], "wgan-gp": ["--loss", "wgan-gp"], "conditional": ["--conditional"]}
ROOT = Path(__file__).resolve().parents[1]


def run(variant: str, dataset: str, out: Path, images: Path) -> dict:
    folder = out / f"dcgan-{dataset}-{variant}"
    train = [
        "genkit",
        "train",
        "dcgan",
        "--preset",
        "small",
        "--dataset",
        dataset,
        "--output",
        str(folder),
        "--overwrite",
        "--no-eval",
        *VARIANTS[variant],
    ]
    start = time.perf_counter()
    subprocess.run(train, check=True)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(["genkit", "eval", str(folder)], check=True, stdout=subprocess.DEVNULL)
    eval_seconds = time.perf_counter() - start
    result = json.loads((folder / "eval_results.json").read_text())
    grid = Image.open(folder / "samples.png")
    images.mkdir(parents=True, exist_ok=True)
    # 4x nearest-neighbour upscaling: 16 px samples are too small to judge at their own size
    grid.resize((grid.width * 4, grid.height * 4), Image.NEAREST).save(images / f"dcgan-{dataset}-{variant}.png")
    return {"variant": variant, "train_seconds": train_seconds, "eval_seconds": eval_seconds, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-dcgan"))
    parser.add_argument("--images", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    rows = [run(v, args.dataset, args.out, args.images) for v in args.variants]
    print(f"\n{cpu_name()}, {len(__import__('os').sched_getaffinity(0))} cores, Python {sys.version.split()[0]}\n")
    keys = ["frechet_distance", "precision", "recall", "class_coverage", "class_entropy", "class_accuracy"]
    print("| variant | train s | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 2) + "|")
    for row in rows:
        values = [f"{row['metrics'][k]:.3f}" if k in row["metrics"] else "-" for k in keys]
        print(f"| {row['variant']} | {row['train_seconds']:.0f} | " + " | ".join(values) + " |")
    reference = rows[0]["protocol"]
    print(
        "\nreal train images under the same protocol: "
        + ", ".join(f"{k} {reference['reference_real_' + k]:.3f}" for k in keys if "reference_real_" + k in reference)
    )
    (args.out / "results.json").write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
