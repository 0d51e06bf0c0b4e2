"""The redesign of genkit's core (issue 22) changed no behaviour: the code before it, taken from git, and the code now
train each family's tiny preset with a fixed seed to bit-identical weights and the same evaluation, on this machine
in this run (so no stored figure depends on the CPU it was taken on)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The last commit before the redesign: genkit's flat core, with the hardening of issue 21.
REFERENCE = "c2d693d"
PLUGINS = ("vae", "dcgan", "ddpm", "lstm")

RUN = """
import contextlib, hashlib, io, json, sys
from pathlib import Path
from genkit.cli import main

out, corpus = Path(sys.argv[1]), sys.argv[2]
report = {}
for family in ("vae", "dcgan", "ddpm", "lstm"):
    folder = out / family
    extra = ["--dataset", corpus] if family == "lstm" else []
    argv = ["train", family, "--preset", "tiny", "--output", str(folder), "--log-with", "none", "--seed", "3", *extra]
    assert main(argv) == 0, family
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["eval", str(folder), "--no-card", "--seed", "1"]) == 0, family
    report[family] = {
        "weights": {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in sorted(folder.rglob("*.safetensors")) if "checkpoint-" not in str(p)},
        "train_eval": json.loads((folder / "eval_results.json").read_text())["metrics"],
        "eval": json.loads(printed.getvalue())["metrics"],
    }
print("REPORT " + json.dumps(report))
"""


def _reference_tree(tmp_path: Path) -> Path:
    """The reference commit's genkit and plugin packages, importable through PYTHONPATH."""
    tree = tmp_path / "reference"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", REFERENCE], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {REFERENCE} is not in this checkout (a shallow clone?): {archive.stderr.decode()[:200]}")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    path = tmp_path / "reference-path"
    path.mkdir()
    (path / "genkit").symlink_to(tree / "genkit")
    for name in PLUGINS:
        (path / f"genkit_{name}").symlink_to(tree / "plugins" / name)
    return path


def _run(tmp_path: Path, name: str, pythonpath: Path | None, corpus: Path) -> dict:
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / f"hf-{name}"),  # its own caches: nothing computed by one run is read by the other
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(pythonpath) if pythonpath else "",
    }
    out = tmp_path / name
    result = subprocess.run(
        [sys.executable, "-c", RUN, str(out), str(corpus)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("REPORT "))
    return json.loads(line[len("REPORT ") :])


@pytest.mark.slow  # the redesign (issue 22) landed on a bit-identical check; kept as a regression run: 63 s
def test_every_family_trains_and_evaluates_as_before_the_redesign(tmp_path):
    reference = _reference_tree(tmp_path)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(300)))
    before = _run(tmp_path, "before", reference, corpus)
    now = _run(tmp_path, "now", None, corpus)
    probe = subprocess.run(
        [sys.executable, "-c", "import genkit; print(genkit.__file__)"],
        env={**os.environ, "PYTHONPATH": str(reference)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert str(reference) in probe.stdout  # the reference run did import the old code
    for family in PLUGINS:
        assert before[family]["weights"], family
        assert now[family]["weights"] == before[family]["weights"], f"{family}: other weights"
        assert now[family]["train_eval"] == before[family]["train_eval"], f"{family}: another final evaluation"
        assert now[family]["eval"] == before[family]["eval"], f"{family}: another `genkit eval`"
