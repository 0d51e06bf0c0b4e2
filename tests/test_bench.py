"""The benchmark scripts' CPU smoke paths (the GPU benchmark itself runs where a GPU is)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.slow  # 24 short training runs, 100 s; the GPU check's own smoke below stays in CI
def test_gpu_benchmark_smoke_runs_every_family_and_speedup(tmp_path):
    report_file = tmp_path / "gpu.json"
    cmd = [sys.executable, str(BENCH / "bench_gpu.py"), "--smoke", "--json", str(report_file)]
    result = subprocess.run(cmd, cwd=BENCH, capture_output=True, text=True, timeout=600, env={**os.environ})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert [f["family"] for f in report["families"]] == ["vae", "dcgan", "ddpm", "lstm"]
    for family in report["families"]:
        runs = {r["run"]: r for r in family["training"]}
        expected = {"genkit", "plain", "tf32", "fused_adamw", "workers_4", "all_of_them"}
        if family["family"] != "lstm":
            expected.add("channels_last")
        assert set(runs) == expected
        assert all(r["throughput"] > 0 and r["steps"] == 3 for r in runs.values())
        assert runs["tf32"]["vs_genkit"] > 0
    samplers = {r["sampler"] for f in report["families"] for r in f["sampling"]}
    assert samplers == {"ddim-5", "ddpm-10", "generate-20"}
    assert "| ddpm | plain |" in result.stdout  # the Markdown table for docs/benchmarks.md


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_benchmark_without_a_gpu_says_so(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_gpu.py")], cwd=BENCH, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "no CUDA device" in result.stderr and "Traceback" not in result.stderr


def test_gpu_check_smoke_trains_resumes_and_compares_precisions(tmp_path):
    """`make gpu-check`'s CPU path: two families (an image and a text one) through the genkit command in fp32 and
    bf16, a resume, accelerate's config file, and half-precision inference; every check passes."""
    report_file = tmp_path / "check.json"
    cmd = [sys.executable, str(BENCH / "gpu_check.py"), "--smoke", "--families", "vae", "lstm", "--jobs", "2"]
    result = subprocess.run(
        [*cmd, "--json", str(report_file)], cwd=BENCH, capture_output=True, text=True, timeout=600, env={**os.environ}
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert {(r["family"], r["precision"]) for r in report["training"]} == {
        (f, p) for f in ("vae", "lstm") for p in ("no", "bf16")
    }
    assert all(r["recorded_precision"] == r["precision"] for r in report["training"])
    names = {c["check"] for c in report["checks"]}
    assert {"vae bf16 resume", "accelerate launch --config_file (bf16)", "lstm inference in bfloat16"} <= names
    assert all(c["ok"] for c in report["checks"]) and "| vae | bf16 |" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_check_without_a_gpu_says_so():
    result = subprocess.run(
        [sys.executable, str(BENCH / "gpu_check.py")], cwd=BENCH, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "no CUDA device" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow  # two recipes, two checkpoints each, every one scored: about a minute
def test_ddpm_recipes_bench_scores_both_recipes_at_every_checkpoint():
    cmd = [sys.executable, str(BENCH / "ddpm_recipes.py"), "--minutes", "0.02", "0.04", "--eval-samples", "32"]
    result = subprocess.run(cmd, cwd=BENCH, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(next(line for line in result.stdout.splitlines() if line.startswith('{"machine"')))
    rows = {(r["recipe"], r["minutes"]): r for r in report["rows"]}
    assert set(rows) == {(recipe, m) for recipe in ("reference", "genkit") for m in (0.02, 0.04)}
    for recipe in ("reference", "genkit"):  # the clock runs on: the later checkpoint has trained longer
        assert rows[(recipe, 0.04)]["steps"] > rows[(recipe, 0.02)]["steps"] > 0
        assert rows[(recipe, 0.04)]["train_s"] >= 0.04 * 60
    assert "| 0.02 | genkit |" in result.stdout and "| 0.04 | reference |" in result.stdout


@pytest.mark.slow  # four tiny trainings, 2,000 samples and a domain network
def test_compare_families_smoke_scores_every_family_and_prints_the_table(tmp_path):
    cmd = [sys.executable, str(BENCH / "compare_families.py"), "--preset", "tiny", "--out", str(tmp_path)]
    result = subprocess.run(cmd, cwd=BENCH, capture_output=True, text=True, timeout=900, env={**os.environ})
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["family"] for r in rows] == ["vae", "flow", "dcgan", "ddpm"]
    likelihoods = [r["bits_per_dim"] for r in rows]
    assert likelihoods[0] > 0 and likelihoods[1] > 0 and likelihoods[2:] == [None, None]  # only VAE and flow have one
    assert all(r["fd"] >= 0 and 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 for r in rows)
    assert all((tmp_path / r["family"] / "model_index.json").exists() for r in rows)
    assert "| family | `genkit train` (tiny) |" in result.stdout and "| ddpm | " in result.stdout
