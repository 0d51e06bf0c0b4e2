"""Training follows the ecosystem's conventions: accelerate's settings, the diffusers/transformers scripts' flags,
push and trackers at the end of training, and a Python API for notebooks."""

from __future__ import annotations

import glob
import json
import os
import re
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import RecordingHfApi, train_cli
from safetensors.torch import load_file

import genkit
from genkit.cli.main import main

TINY = ("--preset", "tiny", "--no-eval", "--report-to", "none")
ROOT = Path(__file__).resolve().parents[1]


def meta_config(folder: Path) -> dict:
    return json.loads((folder / "genkit.json").read_text())["config"]


def launch(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`accelerate launch ... -m genkit train ...` in a subprocess, one process on the CPU."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *args]
    run_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=600)


# ---- accelerate is the source of truth ------------------------------------------------------------------------------
@pytest.mark.slow  # the GPU check's CPU smoke (tests/test_bench.py) launches with a bf16 config file in CI
def test_an_accelerate_config_file_with_bf16_gives_a_bf16_run(tmp_path):
    config = tmp_path / "accelerate.yaml"
    config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nmixed_precision: bf16\nnum_processes: 1\n"
        "num_machines: 1\nuse_cpu: true\ndynamo_config: {}\n"
    )
    out = tmp_path / "bf16"
    result = launch("--config_file", str(config), "-m", "genkit", "train", "vae", *TINY, "--output", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert meta_config(out)["mixed_precision"] == "bf16"
    # a genkit flag, when given, overrides the config file
    out = tmp_path / "fp32"
    result = launch(
        "--config_file", str(config), "-m", "genkit", "train", "vae", *TINY, "--output", str(out),
        "--mixed-precision", "no",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert meta_config(out)["mixed_precision"] == "no"


@pytest.mark.slow  # another accelerate launch; the GPU check's CPU smoke checks the recorded precision of each run
def test_launch_flag_mixed_precision_is_honoured(tmp_path):
    out = tmp_path / "bf16"
    result = launch("--cpu", "--mixed_precision", "bf16", "-m", "genkit", "train", "vae", *TINY, "--output", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert meta_config(out)["mixed_precision"] == "bf16"


def test_accumulation_from_accelerate_equals_the_genkit_flag(tmp_path, monkeypatch):
    """ACCELERATE_GRADIENT_ACCUMULATION_STEPS=4 trains exactly like --grad-accum 4: same weights, same optimizer
    state (accelerate divides the loss once; genkit no longer divides it again)."""
    common = ["vae", *TINY, "--max-steps", "5", "--checkpoint-every", "5"]
    assert train_cli(*common, "--output", str(tmp_path / "flag"), "--grad-accum", "4") == 0
    monkeypatch.setenv("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "4")
    assert train_cli(*common, "--output", str(tmp_path / "env")) == 0
    assert meta_config(tmp_path / "env")["grad_accum"] == 4
    for name in ("checkpoint-5/model-model.safetensors", "checkpoint-5/optimizer-model.safetensors"):
        a, b = load_file(tmp_path / "flag" / name), load_file(tmp_path / "env" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    # the flag, when given, wins over the environment
    assert train_cli(*common, "--output", str(tmp_path / "both"), "--grad-accum", "2") == 0
    assert meta_config(tmp_path / "both")["grad_accum"] == 2


def test_two_process_run_resumes(tmp_path):
    """A two-process CPU run (gloo) of 8 steps; its last checkpoint removed, it resumes from step 4 with two
    processes and ends on the same weights, bit for bit."""
    import shutil

    from conftest import free_port

    out = tmp_path / "ddp"
    two = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    two += ["--dynamo_backend", "no"]
    args = ["-m", "genkit", "train", "vae", *TINY, "--output", str(out), "--checkpoint-every", "4", "--max-steps", "8"]
    env = {"ACCELERATE_USE_CPU": "1"}
    first = launch(*two, "--main_process_port", str(free_port()), *args, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    weights = out / "vae" / "diffusion_pytorch_model.safetensors"
    uninterrupted = load_file(weights)
    shutil.rmtree(out / "checkpoint-8")  # as if the run had been killed after its checkpoint at step 4
    second = launch(*two, "--main_process_port", str(free_port()), *args, "--resume", "latest", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resumed from {out / 'checkpoint-4'} at step 4" in second.stdout
    state = json.loads((out / "checkpoint-8" / "trainer_state.json").read_text())
    assert state["step"] == 8 and state["num_processes"] == 2
    resumed = load_file(weights)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)


# ---- flags people already type --------------------------------------------------------------------------------------
def test_script_spellings_are_aliases(tmp_path):
    out = tmp_path / "aliases"
    argv = ["vae", "--preset", "tiny", "--no-eval", "--report_to", "none", "--output_dir", str(out)]
    argv += [
        "--train_batch_size",
        "16",
        "--learning_rate",
        "0.002",
        "--max_train_steps",
        "3",
        "--max_grad_norm",
        "0.5",
    ]
    argv += ["--lr_warmup_steps", "1", "--checkpointing_steps", "3", "--mixed_precision", "no", "--seed", "7"]
    assert train_cli(*argv) == 0
    config = meta_config(out)
    assert (config["batch_size"], config["lr"], config["max_steps"], config["max_grad_norm"]) == (16, 0.002, 3, 0.5)
    assert (config["warmup_steps"], config["checkpoint_every"], config["seed"]) == (1, 3, 7)
    assert (out / "checkpoint-3").is_dir()


def test_epochs_given_by_the_user_win_over_the_presets_step_count(tmp_path):
    out = tmp_path / "epochs"
    assert train_cli("vae", *TINY, "--output", str(out), "--epochs", "1", "--batch-size", "100") == 0
    # digits: 1,617 training images -> 16 batches of 100 (drop_last); the tiny preset alone would train 20 steps
    assert json.loads((out / "checkpoint-16" / "trainer_state.json").read_text())["step"] == 16
    assert meta_config(out)["max_steps"] == 16


def test_train_help_shows_every_default_and_what_each_preset_sets(capsys):
    assert main(["train", "vae", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--latent-dim LATENT_DIM (default: 16; tiny: 4" in text
    assert "--lr LR, --learning_rate LR learning rate (default: 0.001" in text
    assert "--mixed-precision" in text and "default: from accelerate" in text
    assert re.search(r"presets: tiny = .*max_steps=20", text)


# ---- end of training like the diffusers scripts ---------------------------------------------------------------------
def test_push_to_hub_at_the_end_of_training(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    secret = "hf_" + "S3cr3tT0kenThatMustNeverBePrinted"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    RecordingHfApi.calls = []
    out = tmp_path / "pushed"
    argv = ["vae", *TINY, "--output", str(out), "--push_to_hub", "--hub_model_id", "me/tiny-vae", "--hub-private"]
    assert train_cli(*argv) == 0
    calls = [c for c in RecordingHfApi.calls if c[0] != "init"]
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]  # one commit
    assert calls[0][1] == "me/tiny-vae" and calls[0][2]["private"] is True
    sent = calls[1][2]["sent"]
    assert "genkit.json" in sent and not any(p.startswith("checkpoint-") for p in sent)
    assert 'genkit.load("me/tiny-vae")' in sent["README.md"].decode()
    printed = capsys.readouterr()
    assert "pushed" in printed.out and secret not in printed.out + printed.err
    assert not any(secret in p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())


def read_wandb_history(run_dir: Path) -> dict[str, list[str]]:
    """Every logged key -> its values, read from an offline run's .wandb file (LevelDB log records of wandb's
    protobuf Record; wandb >= 0.19 no longer ships a Python reader)."""
    from wandb.proto import wandb_internal_pb2

    data = Path(glob.glob(str(run_dir / "run-*.wandb"))[0]).read_bytes()
    assert data[:4] == b":W&B"
    block, pos, records, pending = 32768, 7, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            records.append(pending)
            pending = b""
    history: dict[str, list[str]] = {}
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            for item in record.history.item:
                history.setdefault(item.key or "/".join(item.nested_key), []).append(item.value_json)
    return history


@pytest.mark.parametrize("family", ["vae", "lstm"])
def test_wandb_offline_gets_scalars_samples_and_final_metrics(tmp_path, monkeypatch, family):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    corpus = tmp_path / "zen.txt"
    corpus.write_text("Beautiful is better than ugly.\nExplicit is better than implicit.\n" * 60)
    data = ["--dataset", str(corpus)] if family == "lstm" else []
    out = tmp_path / family
    assert train_cli(family, "--preset", "tiny", "--report-to", "wandb", "--output", str(out), *data) == 0
    runs = glob.glob(str(out / "logs" / "wandb" / "offline-run-*"))
    assert len(runs) == 1
    metric = "eval/negative_elbo_nats" if family == "vae" else "eval/loss_nats_per_token"
    # wandb's core process may still be writing the run file when wandb.finish() returns (seen on a loaded
    # machine): wait for the last record to land, up to a minute
    deadline = time.monotonic() + 60
    while metric not in (history := read_wandb_history(Path(runs[0]))) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "loss" in history and "lr" in history  # scalars
    assert metric in history  # the final evaluation
    if family == "vae":
        assert history["samples/_type"] == ['"images/separated"']
        assert list(Path(runs[0], "files", "media", "images").glob("samples_*.png"))
    else:
        assert any(k.startswith("samples") for k in history)
        assert list(Path(runs[0], "files", "media", "table").glob("samples_*.table.json"))


def test_tensorboard_gets_the_final_grid_and_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    assert train_cli("vae", "--preset", "tiny", "--output", str(out)) == 0  # sample_every 0: only the final grid
    events = EventAccumulator(str(next((out / "logs").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    assert "samples" in events.Tags()["images"]
    assert "eval/negative_elbo_nats" in events.Tags()["scalars"]


# ---- a Python API for notebooks -----------------------------------------------------------------------------------
def test_python_api_trains_in_memory_data_twice_in_one_process(tmp_path):
    import datasets
    from PIL import Image

    images = [Image.new("L", (8, 8), 255 * (i % 2)) for i in range(64)]
    first = genkit.train("vae", dataset=images, preset="tiny", output=tmp_path / "a", eval=False, log_with="none")
    assert first.output_dir == tmp_path / "a" and len(first.sample(3)) == 3
    texts = datasets.Dataset.from_dict({"text": ["to be or not to be, that is the question."] * 100})
    second = genkit.train("lstm", dataset=texts, preset="tiny", output=tmp_path / "b", max_steps=3, eval=False)
    assert second("to be", max_new_tokens=4)[0]["generated_text"].startswith("to be")
    assert meta_config(tmp_path / "b")["dataset"] == "in-memory"
    with pytest.raises(genkit.ConfigError, match="unknown setting"):
        genkit.train("vae", dataset=images, preset="tiny", output=tmp_path / "c", latnet_dim=3)


def test_python_api_docs_run_as_written(tmp_path):
    doc = (ROOT / "docs" / "python-api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert len(blocks) >= 3
    script = "\n".join(textwrap.dedent(b) for b in blocks)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


# ---- datasets: configs and splits -----------------------------------------------------------------------------------
def test_hub_dataset_config_and_splits_from_the_offline_cache(tmp_path, capsys):
    """A Hub dataset with two configurations and named splits, laid out in the offline cache as a download would."""
    repo = Path(os.environ["HF_HOME"]) / "hub" / "datasets--someone--poems"
    snapshot = repo / "snapshots" / ("ab" * 20)
    for config in ("short", "long"):
        for split in ("fit", "holdout"):
            (snapshot / config).mkdir(parents=True, exist_ok=True)
            line = f"{config} {split} line of verse with enough characters to train on.\n"
            (snapshot / config / f"{split}.txt").write_text(line * 80)
    (snapshot / "README.md").write_text(
        "---\nconfigs:\n"
        + "".join(
            f"- config_name: {c}\n  data_files:\n  - split: fit\n    path: {c}/fit.txt\n"
            f"  - split: holdout\n    path: {c}/holdout.txt\n"
            for c in ("short", "long")
        )
        + "---\n"
    )
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("ab" * 20)
    out = tmp_path / "poems"
    argv = ["lstm", *TINY, "--dataset", "someone/poems", "--dataset-config", "long", "--split", "fit"]
    assert train_cli(*argv, "--test-split", "holdout", "--output", str(out)) == 0
    line = "long fit line of verse with enough characters to train on."
    meta = json.loads((out / "genkit.json").read_text())
    assert meta["data"]["extra"]["train_characters"] == 80 * len(line) + 79  # the long config's fit split
    config = meta_config(out)
    assert (config["dataset_config"], config["split"], config["test_split"]) == ("long", "fit", "holdout")
    capsys.readouterr()
    assert train_cli(*argv, "--test-split", "nope", "--output", str(tmp_path / "x")) == 2
    assert "--test-split 'nope': dataset 'someone/poems' has the splits fit, holdout" in capsys.readouterr().err
