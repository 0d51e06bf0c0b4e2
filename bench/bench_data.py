"""Data at scale: `genkit train` on image folders of 1k-50k JPEGs and on a 100 MB text file, path against path.

    python bench/bench_data.py [--sizes 1000 10000 50000] [--steps 200] [--text-mb 100]

Images: writes folders of N generated 64 x 64 JPEG photo-like images (smooth colour fields with noise), then, each
in a fresh subprocess (so peak RSS is its own) and with a fresh datasets cache per folder, trains the VAE's `small`
preset at 64 px for ``--steps`` updates through four paths: decoding into memory (what genkit did before the cache,
and still does for data without a fingerprint), the on-disk cache being built (cold), the cache read again (warm:
the folder's index maps the arrays without load_dataset), and ``--streaming``. Reports peak RSS, seconds from the
start of the run (after imports) to the first optimizer step, and the steady images/s of the updates after it.

Text: tinyshakespeare repeated to ``--text-mb`` MB, the LSTM's `small` preset for a few updates, before (the rows
as one Python list, the tokenizer built from it and the ids encoded into memory: the previous code, reproduced here
by swapping two functions) and now (rows read in batches, ids written to the on-disk cache: cold, then warm).
Peak RSS includes importing torch and datasets (~500 MiB): compare the columns.
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

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare" / "input.txt"


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


def make_text(path: Path, megabytes: int) -> Path:
    text = SHAKESPEARE.read_text()
    with open(path, "w") as f:
        for _ in range(max(1, round(megabytes * 1e6 / len(text)))):
            f.write(text)
    return path


def worker(source: str, mode: str, steps: int) -> dict:
    started = time.perf_counter()
    import genkit
    from genkit.config.resolve import resolve_config
    from genkit.training.trainer import Trainer

    imported = time.perf_counter()
    text = source.endswith(".txt")
    plugin = genkit.get_plugin("lstm" if text else "vae")
    overrides = {"dataset": source, "max_steps": steps, "eval": False, "log_with": "none", "sample_every": 0}
    overrides |= {"checkpoint_every": 0, "output": tempfile.mkdtemp()}
    if not text:
        overrides["image_size"] = 64
    if mode == "streaming":
        overrides["streaming"] = True
    config = resolve_config(plugin, "small", overrides)
    if mode == "in-memory":  # no cache key: decoded into memory, and no folder index to find
        import genkit.data.prepare as prepare

        prepare.image_cache_key = lambda *a: None
    if mode == "before":  # the previous text path: one list of every row, ids encoded into memory
        import importlib

        lstm = importlib.import_module("genkit_lstm.plugin")
        lstm.text_rows = lambda split: list(split["text"]) if not isinstance(split, list) else split
        lstm._token_cache_folder = lambda *a: None
    trainer = Trainer(plugin, config)
    trainer.train()
    after_first = trainer.elapsed - trainer.first_step_seconds
    return {
        "mode": mode,
        "import_s": round(imported - started, 1),
        "first_step_s": round(trainer.t0 + trainer.first_step_seconds - imported, 1),
        "steady_per_s": round((steps - 1) * int(config["batch_size"]) / after_first, 1) if steps > 1 else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def run(source: Path, mode: str, steps: int, hf_home: Path) -> dict:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    cmd = [sys.executable, __file__, "--worker", str(source), mode, "--steps", str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 50000])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--text-mb", type=int, default=100)
    parser.add_argument("--text-steps", type=int, default=5)
    parser.add_argument("--modes", nargs="+", default=["in-memory", "cache-cold", "cache-warm", "streaming"])
    parser.add_argument("--worker", nargs=2, metavar=("SOURCE", "MODE"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.steps)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            folder = make_folder(Path(tmp) / f"photos-{n}", n)
            for mode in args.modes:
                hf_home = Path(tmp) / f"hf-{n}-{'cache' if mode.startswith('cache') else mode}"
                rows.append({"data": f"{n:,} images", **run(folder, mode, args.steps, hf_home)})
                print(json.dumps(rows[-1]), flush=True)
        if args.text_mb:
            corpus = make_text(Path(tmp) / "corpus.txt", args.text_mb)
            label = f"{corpus.stat().st_size / 1e6:.0f} MB text"
            for mode in ("before", "cache-cold", "cache-warm"):
                hf_home = Path(tmp) / f"hf-text-{'cache' if mode.startswith('cache') else mode}"
                rows.append({"data": label, **run(corpus, mode, args.text_steps, hf_home)})
                print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    print("| data | path | first optimizer step (s) | steady examples/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['data']} | {r['mode']} | {r['first_step_s']} | {r['steady_per_s']} | {r['peak_rss_mib']:,} |")


if __name__ == "__main__":
    main()
