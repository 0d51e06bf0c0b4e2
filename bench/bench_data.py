"""Image data preparation at scale: decoding into memory against the on-disk, memory-mapped cache.

    python bench/bench_data.py [--sizes 1000 10000] [--image-size 64]

Writes folders of N generated 64 x 64 JPEG photos-like images (smooth colour fields with noise), then, each in a
fresh subprocess (so peak RSS is its own) and with a fresh datasets cache per folder: ``prepare_images`` decoding
into memory (the path for data without a fingerprint), the cached path building its cache (cold), and the cached
path reading it (warm). Reports the seconds to prepared data and the peak RSS of the process, which includes
importing torch and datasets (~400-500 MiB); compare the columns, not the absolute values.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine


def make_folder(folder: Path, n: int) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    for i in range(n):
        a, b, c = rng.random(3)
        base = np.stack([np.sin(6 * a * xx + b), np.cos(6 * b * yy + c), np.sin(6 * c * (xx + yy))], -1)
        image = ((base + 1) * 110 + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{i:06d}.jpg", quality=90)
    return folder


def worker(folder: str, image_size: int, mode: str) -> dict:
    import genkit
    import genkit.data as data
    from genkit.trainer import resolve_config

    plugin = genkit.get_plugin("vae")
    config = resolve_config(plugin, "small", {"dataset": folder, "image_size": image_size})
    start = time.perf_counter()
    splits = data.splits_for(config, "image")
    if mode == "in-memory":
        data._image_cache_key = lambda *a: None
    prepared = data.prepare_images(splits, dict(config))
    first = prepared.train[0]["pixel_values"]  # touch the data once
    seconds = time.perf_counter() - start
    return {
        "mode": mode,
        "images": len(prepared.train) + len(prepared.test),
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "shape": list(first.shape),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--worker", nargs=2, metavar=("FOLDER", "MODE"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.image_size, args.worker[1])))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            folder = make_folder(Path(tmp) / f"photos-{n}", n)
            env = {**os.environ, "HF_HOME": str(Path(tmp) / f"hf-{n}"), "HF_HUB_OFFLINE": "1"}
            for mode in ("in-memory", "cache-cold", "cache-warm"):
                cmd = [sys.executable, __file__, "--worker", str(folder), mode, "--image-size", str(args.image_size)]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
                rows.append({"folder_images": n, **json.loads(out.stdout.strip().splitlines()[-1])})
                print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    print("| images | path | seconds to prepared data | peak RSS (MiB) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['folder_images']:,} | {r['mode']} | {r['seconds']:.1f} | {r['peak_rss_mib']:,.0f} |")


if __name__ == "__main__":
    main()
