"""GPU check (``make gpu-check``): does genkit train, resume, sample and evaluate correctly on a GPU, in fp16 and bf16?

    python bench/gpu_check.py [--json FILE] [--jobs 4]     # on a machine with a CUDA GPU: a few minutes
    python bench/gpu_check.py --smoke                      # tiny presets on the CPU (fp32 and bf16): CI runs this

What it runs, each as a user would (the ``genkit`` command in a subprocess):

1. ``genkit train FAMILY --preset small --max-steps 300 --mixed-precision P`` for every family and P in fp32 (``no``),
   fp16 and bf16, evaluation included; the run must end with exit 0, record P in its ``genkit.json``, and give finite
   metrics close to the fp32 run's (the ratio is printed; a ratio outside ``TOLERANCE`` fails the check).
2. fp16 only: the checkpoint holds the GradScaler's state, and ``--resume latest`` continues the run (the scaler and
   the DCGAN's two optimizers restored).
3. ``accelerate launch --config_file`` a file that sets fp16: the run records fp16 (accelerate's setting honoured).
4. Half-precision inference: the fp32 models loaded with ``torch_dtype=torch.float16`` (and bfloat16) on the GPU give
   finite outputs close to fp32's: DDPM DDIM-50 samples from the same noise, VAE negative ELBO on test digits, DCGAN
   samples from the same latents, LSTM next-token log-probabilities.

Training runs go four at a time on the one GPU (``--jobs``): this checks correctness, and
``bench/bench_gpu.py`` times genkit alone. Prints a Markdown table last; exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import machine

FAMILIES = ("vae", "dcgan", "ddpm", "lstm")
# The metric each family's evaluation reports that the check compares, and how far a half-precision run may be from
# the fp32 run's value (a ratio): training noise alone moves GAN and diffusion scores by tens of percent at 300 steps.
METRIC = {
    "vae": "negative_elbo_nats",
    "dcgan": "frechet_distance",
    "ddpm": "frechet_distance",
    "lstm": "loss_nats_per_token",
}
TOLERANCE = {"vae": 1.1, "dcgan": 2.0, "ddpm": 2.0, "lstm": 1.1}
TRAINED = re.compile(r"trained (\d+) steps in ([\d.]+)s")


def genkit_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "genkit", *args]


THREADS = {"OMP_NUM_THREADS": "1"}  # set in main: the cores shared among the runs that go at once


def run(cmd: list[str], timeout: float) -> tuple[int, str, float]:
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **THREADS})
        code, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, output = 124, f"timed out after {timeout} s: {exc}"
    return code, output, time.perf_counter() - started


def train(family: str, precision: str, out: Path, args) -> dict:
    """One ``genkit train`` run and what it says about itself."""
    folder = out / f"{family}-{precision}"
    cmd = genkit_command(
        "train", family, "--preset", args.preset, "--max-steps", str(args.steps), "--mixed-precision", precision,
        "--output", str(folder), "--log-with", "none", "--checkpoint-every", str(max(1, args.steps // 2)),
        "--sample-every", "0", *(["--dataset", args.corpus] if family == "lstm" and args.corpus else []),
    )  # fmt: skip
    code, output, wall = run(cmd, args.timeout)
    row = {"family": family, "precision": precision, "exit": code, "wall_s": round(wall, 1)}
    found = TRAINED.search(output)
    if found:
        steps, seconds = int(found.group(1)), float(found.group(2))
        row["train_s"] = seconds
        row["steps_per_s"] = round(steps / max(seconds, 1e-9), 1)
    meta_file = folder / "genkit.json"
    if code == 0 and meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        row["recorded_precision"] = meta["config"]["mixed_precision"]
        metrics = json.loads((folder / "eval_results.json").read_text())["metrics"]
        row["metric"] = metrics.get(METRIC[family])
    else:
        row["error"] = output[-2000:]
    row["folder"] = str(folder)
    return row


def resume(row: dict, args) -> dict:
    """``--resume latest`` continues the run; in fp16 the checkpoint holds the GradScaler's state."""
    folder = Path(row["folder"])
    checkpoints = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    scaler = bool(checkpoints) and (checkpoints[-1] / "grad_scaler.json").is_file()
    cmd = genkit_command(
        "train", row["family"], "--preset", args.preset, "--output", str(folder), "--resume", "latest",
        "--max-steps", str(args.steps + 10), "--mixed-precision", row["precision"], "--log-with", "none", "--no-eval",
        *(["--dataset", args.corpus] if row["family"] == "lstm" and args.corpus else []),
    )  # fmt: skip
    code, output, _ = run(cmd, args.timeout)
    ok = bool(checkpoints) and code == 0 and f"resumed from {checkpoints[-1]}" in output
    detail = f"grad_scaler.json {'saved' if scaler else 'missing'}; resume exit {code}"
    return {
        "check": f"{row['family']} {row['precision']} resume",
        "ok": ok and (scaler or row["precision"] != "fp16"),
        "detail": detail + ("" if ok else f": {output[-1500:]}"),
    }


def accelerate_config_file(out: Path, args) -> dict:
    """``accelerate launch --config_file`` with fp16 in the file (no genkit flag): the run must use fp16."""
    precision = "fp16" if torch.cuda.is_available() else "bf16"
    config = out / "accelerate.yaml"
    config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nnum_machines: 1\nnum_processes: 1\n"
        f"mixed_precision: {precision}\nuse_cpu: {str(not torch.cuda.is_available()).lower()}\n"
        + ("gpu_ids: '0'\n" if torch.cuda.is_available() else "")
    )
    folder = out / "accelerate-config"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "-m", "genkit", "train",
        "vae", "--preset", "tiny", "--output", str(folder), "--log-with", "none", "--no-eval",
    ]  # fmt: skip
    code, output, _ = run(cmd, args.timeout)
    recorded = json.loads((folder / "genkit.json").read_text())["config"]["mixed_precision"] if code == 0 else None
    detail = f"exit {code}, run recorded {recorded!r}" + ("" if code == 0 else f": {output[-1500:]}")
    return {"check": f"accelerate launch --config_file ({precision})", "ok": recorded == precision, "detail": detail}


def half_inference(rows: list[dict], dtypes: list[torch.dtype]) -> list[dict]:
    """fp32 models loaded in half precision on the GPU: finite outputs, close to fp32's."""
    import genkit

    device = "cuda" if torch.cuda.is_available() else "cpu"
    folders = {r["family"]: r["folder"] for r in rows if r["precision"] == "no" and r.get("metric") is not None}
    checks = []
    for family, folder in folders.items():
        reference = _outputs(family, genkit.load(folder), device)
        for dtype in dtypes:
            half = _outputs(family, genkit.load(folder, torch_dtype=dtype), device)
            finite = bool(torch.isfinite(half).all())
            error = ((half.float() - reference).abs().mean() / reference.abs().mean().clamp_min(1e-6)).item()
            name = f"{family} inference in {str(dtype).split('.')[1]}"
            detail = f"finite={finite}, mean relative difference to fp32 {error:.4f}"
            checks.append({"check": name, "ok": finite and error < 0.1, "detail": detail})
    return checks


@torch.no_grad()
def _outputs(family: str, pipe, device: str) -> torch.Tensor:
    from genkit.plugin.pipeline import to_device

    to_device(pipe, device)
    if family == "ddpm":
        pipe.set_progress_bar_config(disable=True)
        generator = torch.Generator().manual_seed(0)
        return pipe(8, num_inference_steps=50, scheduler="ddim", generator=generator, output_type="pt").images.float()
    if family == "vae":
        from sklearn.datasets import load_digits

        size = pipe.vae.config.image_size
        digits = torch.from_numpy(load_digits().images[:64]).float().unsqueeze(1) / 8 - 1  # 0..16 -> [-1, 1]
        images = torch.nn.functional.interpolate(digits, size=(size, size), mode="bilinear").clamp(-1, 1)
        torch.manual_seed(0)
        return pipe.negative_elbo(images.repeat(1, pipe.vae.config.in_channels, 1, 1)).float().cpu()
    if family == "dcgan":
        latents = pipe.make_latents(16, seed=0)
        return pipe(latents=latents, output_type="pt").images.float().cpu()
    ids = pipe.tokenizer("def main():\n    return 0\n", return_tensors="pt")["input_ids"].to(pipe.model.device)
    return torch.log_softmax(pipe.model(ids).logits.float(), -1).cpu()


def markdown(report: dict) -> str:
    lines = [
        "| family | precision | exit | recorded | metric | vs fp32 | steps/s | train s | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    fp32 = {r["family"]: r.get("metric") for r in report["training"] if r["precision"] == "no"}
    for r in report["training"]:
        ratio = r.get("metric") / fp32[r["family"]] if r.get("metric") and fp32.get(r["family"]) else None
        lines.append(
            f"| {r['family']} | {r['precision']} | {r['exit']} | {r.get('recorded_precision', '-')} | "
            f"{METRIC[r['family']]} {r['metric']:.4g} | {'-' if ratio is None else f'{ratio:.3f}'} | "
            f"{r.get('steps_per_s', '-')} | {r.get('train_s', '-')} | {r['wall_s']} |"
            if r.get("metric") is not None
            else f"| {r['family']} | {r['precision']} | {r['exit']} | - | failed | - | - | - | {r['wall_s']} |"
        )
    lines += ["", "| check | ok | detail |", "|---|---|---|"]
    lines += [f"| {c['check']} | {'yes' if c['ok'] else 'NO'} | {c['detail'][:200]} |" for c in report["checks"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny presets and a few steps on the CPU (fp32, bf16)")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--jobs", type=int, default=4, help="training runs at once (default 4)")
    parser.add_argument("--steps", type=int, default=None, help="updates per run (default 300; --smoke: 4)")
    parser.add_argument("--corpus", default=None, help="text for the LSTM (default: its built-in corpus)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one command may take")
    parser.add_argument("--json", default=None, help="also write the report here")
    parser.add_argument("--out", default=None, help="keep the trained folders here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.smoke:
        parser.error("no CUDA device: run the GPU check on a GPU, or pass --smoke for the CPU check")
    THREADS["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.jobs))
    args.preset = "tiny" if args.smoke else "small"
    args.steps = args.steps or (4 if args.smoke else 300)
    precisions = ["no", "bf16"] if args.smoke else ["no", "fp16", "bf16"]  # accelerate has no fp16 on a CPU
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        jobs = [(f, p) for f in args.families for p in precisions]
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(lambda job: train(*job, out, args), jobs))
            if args.json:  # the training rows survive a run cut short
                Path(args.json).write_text(json.dumps({"machine": machine(), "training": rows}, default=str))
            resumed = [r for r in rows if r["precision"] == precisions[1]]  # fp16 (bf16 in the smoke run)
            checks = list(pool.map(lambda r: resume(r, args), resumed))
            checks.append(accelerate_config_file(out, args))
        fp32 = {r["family"]: r.get("metric") for r in rows if r["precision"] == "no"}
        for r in rows:
            ok = r["exit"] == 0 and r.get("recorded_precision") == r["precision"] and r.get("metric") is not None
            ok = ok and (r["precision"] == "no" or r["metric"] / fp32[r["family"]] <= TOLERANCE[r["family"]])
            detail = r.get("error", "")[-300:] or "exit 0, finite metric"
            checks.append({"check": f"{r['family']} train {r['precision']}", "ok": bool(ok), "detail": detail})
        checks += half_inference(rows, [torch.bfloat16] if args.smoke else [torch.float16, torch.bfloat16])
    report = {"machine": machine(), "smoke": args.smoke, "steps": args.steps, "training": rows, "checks": checks}
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2, default=str))
    print(markdown(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    failed = [c["check"] for c in checks if not c["ok"]]
    summary = f"{len(checks) - len(failed)} of {len(checks)} checks passed in {report['wall_s']} s"
    print(summary + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
