"""Bad input gets one clear line and loses nothing: a table of wrong inputs across the CLI, the Python API, model
folders, checkpoints and datasets.

Every CLI case asserts a non-zero exit, one line on stderr that names the problem, no traceback, and that no file in
the working folder or in any model folder changed (hashed before and after). Python cases assert the documented
exception and its message.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import struct
from pathlib import Path

import pytest
import torch

import genkit
from genkit.cli.main import main
from genkit.errors import GenkitError

FAST = ("--log-with", "none", "--no-eval")
PROGRESS = re.compile(r"examples/s\]|it/s|\d+%\|")
ZEN = "Beautiful is better than ugly.\nExplicit is better than implicit.\nSimple is better than complex.\n"


def tree_hash(*roots: Path) -> dict[str, str]:
    """Path -> sha256 of every file under ``roots`` (folders themselves too, so a new empty folder shows)."""
    out = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


# ---- shared fixtures: tiny real models and a working folder with the user's own files ------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_vae):
    root = tmp_path_factory.mktemp("bad-input-models")
    corpus = root / "zen.txt"
    corpus.write_text(ZEN * 40)
    for argv in (
        ["ddpm", "--output", str(root / "ddpm"), *FAST],
        ["lstm", "--dataset", str(corpus), "--output", str(root / "lstm"), *FAST],
        ["dcgan", "--output", str(root / "dcgan"), *FAST],
    ):
        assert main(["train", argv[0], "--preset", "tiny", *argv[1:]]) == 0
    return {"vae": tiny_vae, "ddpm": root / "ddpm", "lstm": root / "lstm", "dcgan": root / "dcgan", "corpus": corpus}


@pytest.fixture
def work(tmp_path, monkeypatch):
    """The user's current folder, with files of their own that nothing may touch."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("my notes\n")
    (tmp_path / "photo.png").write_bytes(b"not written by genkit")
    (tmp_path / "a-file.txt").write_text("a file, not a folder\n")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "plain").mkdir()
    bad = tmp_path / "badimages" / "cats"
    bad.mkdir(parents=True)
    from PIL import Image

    for i in range(4):
        Image.new("L", (8, 8), 30 * i).save(bad / f"ok{i}.png")
        Image.new("L", (8, 8), 30 * i).save(tmp_path / "plain" / f"ok{i}.png")
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    return tmp_path


def expand(argv: list[str], models: dict[str, Path], work: Path) -> list[str]:
    return [a.format(**{k: str(v) for k, v in models.items()}, work=str(work)) for a in argv]


def run_bad(argv: list[str], expected: str, capsys, roots: list[Path]) -> str:
    before = tree_hash(*roots)
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code != 0, f"{argv} exited 0\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in out + err, err
    # Progress bars (data generation, training) may come first; besides them, exactly one line.
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and not PROGRESS.search(line)]
    assert len(lines) == 1, f"{argv}: expected one line on stderr, got:\n{err}"
    assert expected.lower() in lines[0].lower(), f"{argv}: {lines[0]!r} does not mention {expected!r}"
    assert tree_hash(*roots) == before, f"{argv} changed files"
    return lines[0]


# ---- the CLI: (id, argv, what the message must name) ---------------------------------------------------------------
T = ["train", "vae", "--preset", "tiny", *FAST]
L0 = ["train", "lstm", "--preset", "tiny", *FAST, "--dataset", "{corpus}"]
TRAIN = [
    ("max-steps-0", [*T, "--max-steps", "0"], "--max-steps must be an integer in [1"),
    ("max-steps-negative", [*T, "--max-steps", "-5"], "--max-steps"),
    ("epochs-negative", [*T, "--epochs", "-1"], "--epochs must be a number in (0"),
    ("epochs-zero", [*T, "--epochs", "0"], "--epochs"),
    ("epochs-nan", [*T, "--epochs", "nan"], "--epochs"),
    ("steps-and-epochs", [*T, "--max-steps", "3", "--epochs", "2"], "not allowed with argument"),
    ("checkpoint-every-negative", [*T, "--checkpoint-every", "-1"], "--checkpoint-every"),
    ("sample-every-negative", [*T, "--sample-every", "-1"], "--sample-every"),
    ("log-every-0", [*T, "--log-every", "0"], "--log-every"),
    ("checkpoints-limit-negative", [*T, "--checkpoints-total-limit", "-1"], "--checkpoints-total-limit"),
    ("image-size-huge", [*T, "--image-size", "100000"], "--image-size must be an integer in [8, 1024]"),
    ("image-size-7", [*T, "--image-size", "7"], "--image-size"),
    ("image-size-0", [*T, "--image-size", "0"], "--image-size"),
    ("image-size-not-int", [*T, "--image-size", "big"], "invalid int value"),
    ("lr-negative", [*T, "--lr", "-1"], "--lr must be a number in (0, inf)"),
    ("lr-nan", [*T, "--lr", "nan"], "--lr"),
    ("lr-inf", [*T, "--lr", "inf"], "--lr"),
    ("lr-zero", [*T, "--lr", "0"], "--lr"),
    ("lr-scheduler-unknown", [*T, "--lr-scheduler", "sawtooth"], "unknown --lr-scheduler 'sawtooth'"),
    ("batch-size-0", [*T, "--batch-size", "0"], "--batch-size"),
    ("batch-size-negative", [*T, "--batch-size", "-3"], "--batch-size"),
    ("num-workers-negative", [*T, "--num-workers", "-1"], "--num-workers must be an integer in [0, 256]"),
    ("shuffle-buffer-0", [*T, "--streaming", "--shuffle-buffer", "0"], "--shuffle-buffer must be an integer in [1"),
    ("streaming-epochs", [*T, "--streaming", "--epochs", "1"], "--streaming needs --max-steps"),
    ("streaming-text", [*L0, "--streaming"], "--streaming: for image models; 'lstm' trains on text"),
    ("crop-text", [*L0, "--random-crop", "--no-center-crop"], "--center-crop, --random-crop: for image models"),
    ("eval-steps-derived-flag-zero", ["train", "ddpm", "--preset", "tiny", "--eval-steps", "0"], "--eval-steps"),
    ("batch-size-over-split", [*T, "--batch-size", "5000"], "fewer than one batch"),
    ("grad-accum-0", [*T, "--grad-accum", "0"], "--grad-accum"),
    ("warmup-negative", [*T, "--warmup-steps", "-1"], "--warmup-steps"),
    ("max-grad-norm-negative", [*T, "--max-grad-norm", "-1"], "--max-grad-norm"),
    ("max-grad-norm-nan", [*T, "--max-grad-norm", "nan"], "--max-grad-norm"),
    ("seed-negative", [*T, "--seed", "-1"], "--seed"),
    ("num-sample-images-0", [*T, "--num-sample-images", "0"], "--num-sample-images"),
    ("num-samples-1", [*T, "--dataset", "shapes", "--num-samples", "1"], "--num-samples"),
    ("test-fraction-0", [*T, "--test-fraction", "0"], "--test-fraction"),
    ("test-fraction-over-1", [*T, "--test-fraction", "1.5"], "--test-fraction"),
    ("mixed-precision-fp8", [*T, "--mixed-precision", "fp8"], "invalid choice"),
    ("channels-2", [*T, "--channels", "2"], "invalid choice"),
    ("unknown-flag", [*T, "--learning-rat", "1"], "unrecognized arguments"),
    ("preset-unknown", ["train", "vae", "--preset", "huge"], "unknown preset 'huge'"),
    ("plugin-unknown", ["train", "gpt5"], "unknown plugin 'gpt5'"),
    ("dataset-unknown", [*T, "--dataset", "no-such-data"], "unknown dataset 'no-such-data'"),
    ("dataset-text-for-images", [*T, "--dataset", "stdlib"], "is a text corpus"),
    (
        "dataset-images-for-text",
        ["train", "lstm", "--preset", "tiny", *FAST, "--dataset", "digits"],
        "an image dataset",
    ),
    ("dataset-empty-folder", [*T, "--dataset", "{work}/emptydir"], "emptydir"),
    ("dataset-empty-file", ["train", "lstm", "--preset", "tiny", *FAST, "--dataset", "{work}/empty.txt"], "no rows"),
    ("dataset-missing-file", [*T, "--dataset", "{work}/nope/*.png"], "no file matches"),
    ("dataset-corrupt-image", [*T, "--dataset", "{work}/badimages", "--output", "{work}/o"], "broken.png"),
    ("image-column-missing", [*T, "--image-column", "pixels"], "column 'pixels' (--image-column) not found"),
    ("label-column-missing", [*T, "--label-column", "digit"], "column 'digit' (--label-column) not found"),
    ("text-column-missing", ["train", "lstm", "--preset", "tiny", *FAST, "--text-column", "body"], "'body'"),
    ("output-is-a-file", [*T, "--output", "{work}/a-file.txt"], "is a file"),
    ("output-unwritable", [*T, "--output", "/dev/null/run"], "cannot be written"),
    ("output-users-folder", [*T, "--output", "{work}/notes"], "non-empty folder that genkit did not write"),
    ("output-holds-checkpoints", [*T, "--output", "{vae}"], "already holds checkpoints"),
    ("resume-latest-none", [*T, "--output", "{work}/fresh", "--resume", "latest"], "no checkpoint-<step> folder"),
    ("resume-missing-folder", [*T, "--resume", "{work}/nope"], "not a genkit checkpoint folder"),
    ("resume-other-plugin", [*T, "--output", "{ddpm}", "--resume", "latest"], "checkpoint of plugin 'ddpm'"),
    ("init-from-missing", [*T, "--init-from", "{work}/nope"], "no model folder"),
    ("init-from-not-genkit", [*T, "--init-from", "{work}/notes"], "not a genkit model"),
    ("init-from-other-family", [*T, "--init-from", "{ddpm}"], "is a ddpm model"),
    ("hub-model-id-invalid", [*T, "--push-to-hub", "--hub-model-id", "a/b/c"], "--hub-model-id 'a/b/c' is not"),
    ("report-to-unknown", [*T, "--report-to", "mlflow"], "invalid choice"),
    ("dataset-config-on-builtin", [*T, "--dataset-config", "full"], "--dataset-config apply to Hub datasets"),
    ("split-unknown", [*T, "--dataset", "{work}/badimages", "--split", "dev"], "--split 'dev'"),
    ("lstm-extend-vocab-alone", [*L0, "--extend-vocab"], "--extend-vocab grows a base model's vocabulary"),
    (
        "init-from-changes-base",
        [*T, "--init-from", "{vae}", "--latent-dim", "3"],
        "--latent-dim 3 would change the base",
    ),
    ("init-from-lstm-hidden", [*L0, "--init-from", "{lstm}", "--hidden-size", "99"], "--hidden-size 99 would change"),
    ("vae-latent-dim-0", [*T, "--latent-dim", "0"], "--latent-dim"),
    ("vae-beta-negative", [*T, "--beta", "-1"], "--beta"),
    ("vae-denoise-negative", [*T, "--denoise-std", "-0.5"], "--denoise-std"),
    ("vae-hidden-channels-0", [*T, "--hidden-channels", "0", "8"], "--hidden-channels"),
    ("vae-likelihood-unknown", [*T, "--likelihood", "poisson"], "invalid choice"),
    ("vae-conditional-unlabelled", [*T, "--dataset", "{work}/plain", "--conditional"], "labelled data"),
]
D = ["train", "ddpm", "--preset", "tiny", *FAST]
G = ["train", "dcgan", "--preset", "tiny", *FAST]
L = ["train", "lstm", "--preset", "tiny", *FAST, "--dataset", "{corpus}"]
TRAIN += [
    ("ddpm-timesteps-0", [*D, "--num-train-timesteps", "0"], "--num-train-timesteps"),
    ("ddpm-label-dropout-1.5", [*D, "--label-dropout", "1.5"], "--label-dropout"),
    ("ddpm-norm-groups", [*D, "--norm-num-groups", "3"], "--norm-num-groups 3 must divide"),
    ("ddpm-attention-level", [*D, "--attention-levels", "9"], "--attention-levels"),
    ("ddpm-image-size-odd", [*D, "--image-size", "9"], "not divisible"),
    ("ddpm-block-channels-0", [*D, "--block-out-channels", "0", "8"], "--block-out-channels"),
    ("ddpm-beta-schedule", [*D, "--beta-schedule", "cubic"], "invalid choice"),
    ("dcgan-n-critic-0", [*G, "--n-critic", "0"], "--n-critic"),
    ("dcgan-ema-1.5", [*G, "--ema-decay", "1.5"], "--ema-decay"),
    ("dcgan-gp-negative", [*G, "--gp-weight", "-1"], "--gp-weight"),
    ("dcgan-latent-0", [*G, "--latent-dim", "0"], "--latent-dim"),
    ("dcgan-beta1-1", [*G, "--adam-beta1", "1"], "--adam-beta1"),
    ("dcgan-image-size-12", [*G, "--image-size", "12"], "--image-size 12 is not supported"),
    ("lstm-seq-len-0", [*L, "--seq-len", "0"], "--seq-len"),
    ("lstm-dropout-1", [*L, "--dropout", "1"], "--dropout"),
    ("lstm-layers-0", [*L, "--num-layers", "0"], "--num-layers"),
    ("lstm-vocab-0", [*L, "--vocab-size", "0"], "--vocab-size"),
    ("lstm-hidden-negative", [*L, "--hidden-size", "-1"], "--hidden-size"),
    ("lstm-tie-sizes", [*L, "--tie-embeddings", "--embedding-size", "8", "--hidden-size", "12"], "tie"),
]

OTHER = [
    ("sample-missing-model", ["sample", "{work}/nope"], "no model folder"),
    ("sample-not-genkit", ["sample", "{work}/notes"], "not a genkit model"),
    ("sample-n-0", ["sample", "{vae}", "--n", "0"], "--n must be an integer in [1, 10000]"),
    ("sample-n-negative", ["sample", "{vae}", "--n", "-1"], "--n"),
    ("sample-n-huge", ["sample", "{vae}", "--n", "10000000"], "--n"),
    ("sample-out-missing-folder", ["sample", "{vae}", "--out", "{work}/nope/s.png"], "does not exist"),
    ("sample-out-users-file", ["sample", "{vae}", "--out", "{work}/photo.png"], "genkit did not write it"),
    ("sample-out-folder", ["sample", "{vae}", "--out", "{work}/notes"], "is a folder"),
    ("sample-vae-label-unconditional", ["sample", "{vae}", "--label", "3", "--out", "{work}/s.png"], "label"),
    ("sample-ddpm-steps-0", ["sample", "{ddpm}", "--steps", "0", "--out", "{work}/s.png"], "num_inference_steps must"),
    ("sample-ddpm-eta", ["sample", "{ddpm}", "--eta", "2", "--out", "{work}/s.png"], "eta must be in [0, 1]"),
    ("sample-ddpm-guidance", ["sample", "{ddpm}", "--guidance-scale", "-1", "--out", "{work}/s.png"], "guidance"),
    ("sample-ddpm-scheduler", ["sample", "{ddpm}", "--scheduler", "warp", "--out", "{work}/s.png"], "warp"),
    ("sample-lstm-tokens-0", ["sample", "{lstm}", "--max-new-tokens", "0"], "--max-new-tokens"),
    ("sample-lstm-tokens-huge", ["sample", "{lstm}", "--max-new-tokens", "1000000000"], "--max-new-tokens"),
    ("sample-lstm-temperature", ["sample", "{lstm}", "--temperature", "-1"], "--temperature"),
    ("sample-lstm-temperature-nan", ["sample", "{lstm}", "--temperature", "nan"], "--temperature"),
    ("sample-lstm-top-p", ["sample", "{lstm}", "--top-p", "1.5"], "--top-p"),
    ("sample-lstm-top-k", ["sample", "{lstm}", "--top-k", "0"], "--top-k"),
    ("sample-lstm-empty-prompt", ["sample", "{lstm}", "--prompt", ""], "prompt is empty"),
    ("sample-lstm-out-users-file", ["sample", "{lstm}", "--out", "{work}/a-file.txt"], "genkit did not write it"),
    ("sample-dcgan-label", ["sample", "{dcgan}", "--label", "3", "--out", "{work}/s.png"], "label"),
    ("eval-missing-model", ["eval", "{work}/nope"], "no model folder"),
    ("eval-unknown-dataset", ["eval", "{vae}", "--dataset", "no-such-data", "--no-card"], "unknown dataset"),
    ("eval-ddpm-steps-0", ["eval", "{ddpm}", "--steps", "0", "--no-card"], "steps must be"),
    ("eval-ddpm-samples-0", ["eval", "{ddpm}", "--eval-samples", "0", "--no-card"], "--eval-samples"),
    ("info-not-genkit", ["info", "{work}/notes"], "not a genkit model"),
    ("info-a-file", ["info", "{work}/a-file.txt"], "is a file"),
    ("info-bad-repo-id", ["info", "not a repo id!"], "not a Hub repo id"),
    ("info-uncached-repo", ["info", "someone/not-cached"], "not in the local cache"),
    ("export-users-folder", ["export", "{lstm}", "--out", "{work}/notes"], "non-empty folder"),
    ("export-own-folder", ["export", "{lstm}", "--out", "{lstm}"], "another folder"),
    ("export-out-is-file", ["export", "{lstm}", "--out", "{work}/a-file.txt"], "is a file"),
    ("export-stock-ddpm", ["export", "{ddpm}", "--out", "{work}/x"], "stock diffusers"),
    ("export-shipped-vae", ["export", "{vae}", "--out", "{work}/x"], "ships its own pipeline code"),
    ("space-users-folder", ["space", "build", "{vae}", "--out", "{work}/notes"], "non-empty folder"),
    ("space-own-folder", ["space", "build", "{vae}", "--out", "{vae}", "--overwrite"], "another folder"),
    ("space-not-genkit", ["space", "build", "{work}/notes", "--out", "{work}/s"], "not a genkit model"),
    ("space-push-not-space", ["space", "push", "{work}/notes", "me/space", "--dry-run"], "not a built Space"),
    ("push-bad-repo-id", ["push", "{vae}", "not a repo!", "--dry-run"], "invalid repo id"),
    ("push-not-genkit", ["push", "{work}/notes", "me/model", "--dry-run"], "not a genkit model"),
    ("demo-missing-model", ["demo", "{work}/nope"], "no model folder"),
    ("no-command", [], "the following arguments are required"),
    ("unknown-command", ["fly"], "invalid choice"),
]


@pytest.mark.parametrize("argv, expected", [c[1:] for c in TRAIN + OTHER], ids=[c[0] for c in TRAIN + OTHER])
def test_cli_bad_input(argv, expected, models, work, capsys):
    roots = [work, *(p for p in models.values() if p.is_dir())]
    run_bad(expand(argv, models, work), expected, capsys, roots)


# ---- model folders and checkpoints: each case damages a copy of a real model ----------------------------------------
def _weights(folder: Path, component: str) -> Path:
    return next((folder / component).glob("*.safetensors"))


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _drop_latent_dim(m: Path) -> None:
    config = json.loads((m / "vae" / "config.json").read_text())
    del config["latent_dim"]
    (m / "vae" / "config.json").write_text(json.dumps(config))


def evil_library(m: Path) -> None:
    _edit_json(m / "model_index.json", vae=["mymodel.evil", "VAEModel"])
    (m.parent / "mymodel").mkdir(exist_ok=True)
    (m.parent / "mymodel" / "__init__.py").write_text("")
    (m.parent / "mymodel" / "evil.py").write_text("open('PWNED', 'w').write('ran')\n")


def truncate_weights(m: Path) -> None:
    w = _weights(m, "vae")
    w.write_bytes(w.read_bytes()[:-100])


def pickle_only(m: Path) -> None:
    w = _weights(m, "vae")
    w.rename(w.with_name("diffusion_pytorch_model.bin"))


def swap_config_size(m: Path) -> None:
    _edit_json(m / "vae" / "config.json", latent_dim=7)


def checkpoint_truncated(m: Path) -> None:
    newest = sorted(m.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1]
    w = newest / "model-model.safetensors"
    w.write_bytes(w.read_bytes()[: len(w.read_bytes()) // 2])


def _header(header, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def replace_weights(content: bytes):
    return lambda m: _weights(m, "vae").write_bytes(content)


def edit_tensors(m: Path, change) -> None:
    """Rewrite the VAE's weights with ``change(name, tensor)`` applied to every tensor (a real safetensors file)."""
    from safetensors.torch import load_file, save_file

    w = _weights(m, "vae")
    save_file({k: change(k, v) for k, v in load_file(w).items()}, w)


def nan_weight(m: Path) -> None:
    edit_tensors(m, lambda k, v: torch.full_like(v, math.nan) if k == "to_moments.bias" else v)


def int8_weight(m: Path) -> None:
    edit_tensors(m, lambda k, v: v.to(torch.int8) if k == "to_moments.weight" else v)


def deeply_nested(path: Path) -> None:
    path.write_text("[" * 100_000 + "]" * 100_000)


def checkpoint_state_deep(m: Path) -> None:
    newest = sorted(m.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1]
    deeply_nested(newest / "trainer_state.json")


ST = "diffusion_pytorch_model.safetensors"
FOLDER_CASES = [
    # (id, damage, command (with {m} = the damaged copy), message)
    ("st-header-list", replace_weights(_header(["a"])), ["sample", "{m}"], f"{ST}: truncated or corrupt"),
    (
        "st-no-offsets",
        replace_weights(_header({"a": {"dtype": "F32", "shape": [3]}}, b"\0" * 12)),
        ["sample", "{m}"],
        "data_offsets",
    ),
    (
        "st-string-offsets",
        replace_weights(_header({"a": {"dtype": "F32", "shape": [3], "data_offsets": ["0", "12"]}}, b"\0" * 12)),
        ["sample", "{m}"],
        "truncated or corrupt",
    ),
    ("st-header-2-40", replace_weights(struct.pack("<Q", 2**40) + b"{}"), ["sample", "{m}"], "header too large"),
    ("weights-nan", nan_weight, ["sample", "{m}"], "tensor 'to_moments.bias' holds NaN"),
    ("weights-int8", int8_weight, ["sample", "{m}"], "'to_moments.weight' is stored as I8"),
    ("config-1e30", lambda m: _edit_json(m / "vae" / "config.json", latent_dim=1e30), ["sample", "{m}"], "int"),
    ("config-null", lambda m: _edit_json(m / "vae" / "config.json", latent_dim=None), ["sample", "{m}"], "is null"),
    (
        "config-negative-size",
        lambda m: _edit_json(m / "vae" / "config.json", image_size=-8),
        ["sample", "{m}"],
        "image_size must be an integer in [1, 1024]",
    ),
    ("config-nested", lambda m: deeply_nested(m / "vae" / "config.json"), ["sample", "{m}"], "nested too deeply"),
    ("meta-list", lambda m: (m / "genkit.json").write_text("[]"), ["sample", "{m}"], "expected a JSON object"),
    (
        "index-names-a-function",
        lambda m: _edit_json(m / "model_index.json", vae=["diffusers.utils", "make_image_grid"]),
        ["sample", "{m}"],
        "not a model or scheduler class",
    ),
    ("resume-deep-state", checkpoint_state_deep, [*T, "--output", "{m}", "--resume", "latest"], "nested too deeply"),
    ("library-not-allowed", evil_library, ["eval", "{m}", "--no-card"], "does not import"),
    ("library-not-allowed-load", evil_library, ["sample", "{m}", "--out", "{work}/s.png"], "does not import"),
    ("library-os", lambda m: _edit_json(m / "model_index.json", vae=["os", "system"]), ["sample", "{m}"], "'os'"),
    ("index-entry-shape", lambda m: _edit_json(m / "model_index.json", vae=["diffusers"]), ["sample", "{m}"], "["),
    ("index-not-json", lambda m: (m / "model_index.json").write_text("{"), ["sample", "{m}"], "invalid JSON"),
    ("weights-truncated", truncate_weights, ["sample", "{m}"], "truncated"),
    ("weights-pickle-only", pickle_only, ["sample", "{m}"], "refusing to load pickle"),
    ("config-missing-field", _drop_latent_dim, ["sample", "{m}"], "missing field 'latent_dim'"),
    ("config-wrong-type", lambda m: _edit_json(m / "vae" / "config.json", latent_dim="16"), ["sample", "{m}"], "int"),
    ("config-disagrees-weights", swap_config_size, ["sample", "{m}"], "shape"),
    ("meta-other-family", lambda m: _edit_json(m / "genkit.json", plugin="ddpm"), ["sample", "{m}"], "model_index"),
    ("meta-unknown-plugin", lambda m: _edit_json(m / "genkit.json", plugin="nope"), ["sample", "{m}"], "'nope'"),
    ("meta-not-json", lambda m: (m / "genkit.json").write_text("{plugin"), ["sample", "{m}"], "invalid JSON"),
    ("meta-no-plugin", lambda m: (m / "genkit.json").write_text("{}"), ["sample", "{m}"], "missing field 'plugin'"),
    (
        "interrupted-save",
        lambda m: ((m / "genkit.json").unlink(), (m / ".tmp-model").mkdir()),
        ["sample", "{m}"],
        "interrupted",
    ),
    ("resume-truncated", checkpoint_truncated, [*T, "--output", "{m}", "--resume", "latest"], "latest-valid"),
    ("resume-other-config", lambda m: None, [*T, "--output", "{m}", "--resume", "latest", "--latent-dim", "3"], "fit"),
]


@pytest.mark.parametrize("damage, argv, expected", [c[1:] for c in FOLDER_CASES], ids=[c[0] for c in FOLDER_CASES])
def test_damaged_model_folder(damage, argv, expected, models, work, capsys):
    m = work / "copy" / "model"
    shutil.copytree(models["vae"], m)
    damage(m)
    os.chdir(m.parent)  # where `import mymodel.evil` would find the planted package
    line = run_bad([a.format(m=str(m), work=str(work)) for a in argv], expected or "", capsys, [work, models["vae"]])
    assert not (m.parent / "PWNED").exists() and not (work / "PWNED").exists(), line


def _edit_tokenizer(m: Path, change) -> None:
    spec = json.loads((m / "tokenizer.json").read_text())
    change(spec)
    (m / "tokenizer.json").write_text(json.dumps(spec))


LSTM_CASES = [
    (
        "tokenizer-without-unk",
        lambda m: _edit_tokenizer(m, lambda t: t["model"]["vocab"].pop("<unk>")),
        "unk_token ('<unk>') is in its vocabulary",
    ),
    (
        # a catastrophic-backtracking pattern: Oniguruma gives up (retry-limit-in-match) on ordinary text
        "tokenizer-evil-split",
        lambda m: _edit_tokenizer(m, lambda t: t["pre_tokenizer"]["pattern"].update(Regex="(a|a?)+$")),
        "pre-tokenizer is not one of genkit's",
    ),
    ("config-null", lambda m: _edit_json(m / "config.json", hidden_size=None), "is null"),
    ("config-nested", lambda m: deeply_nested(m / "config.json"), "nested too deeply"),
    ("tokenizer-not-json", lambda m: (m / "tokenizer.json").write_text("{"), "tokenizer.json"),
    ("tokenizer-missing", lambda m: (m / "tokenizer.json").unlink(), "tokenizer"),
    ("config-vocab-disagrees", lambda m: _edit_json(m / "config.json", vocab_size=5), "'embeddings.weight' has shape"),
    ("config-not-json", lambda m: (m / "config.json").write_text("]"), "config.json"),
    ("config-model-type", lambda m: _edit_json(m / "config.json", model_type="gpt2"), "model_type"),
]


def _edit_component(name: str, file: str, **changes):
    return lambda m: _edit_json(m / name / file, **changes)


SCHED = "scheduler_config.json"
DDPM_CASES = [
    # (id, damage of a DDPM folder, message): the scheduler's and UNet's configs are checked before anything is built
    ("timesteps-1e9", _edit_component("scheduler", "scheduler_config.json", num_train_timesteps=1e9), "int"),
    (
        "timesteps-huge",
        _edit_component("scheduler", "scheduler_config.json", num_train_timesteps=10**9),
        "num_train_timesteps must be an integer in [1, 100000]",
    ),
    (
        "timesteps-negative",
        _edit_component("scheduler", "scheduler_config.json", num_train_timesteps=-5),
        "[1, 100000]",
    ),
    ("beta-end-nan", _edit_component("scheduler", "scheduler_config.json", beta_end=math.nan), "beta_end"),
    ("beta-schedule-unknown", _edit_component("scheduler", "scheduler_config.json", beta_schedule="zigzag"), "zigzag"),
    ("unet-sample-size", _edit_component("unet", "config.json", sample_size=100_000), "sample_size must be"),
    ("unet-channels-null", _edit_component("unet", "config.json", in_channels=None), "is null"),
]


@pytest.mark.parametrize("damage, expected", [c[1:] for c in DDPM_CASES], ids=[c[0] for c in DDPM_CASES])
def test_damaged_ddpm_folder(damage, expected, models, work, capsys):
    m = work / "ddpm-copy"
    shutil.copytree(models["ddpm"], m, ignore=shutil.ignore_patterns("checkpoint-*"))
    damage(m)
    run_bad(["sample", str(m), "--out", str(work / "s.png")], expected, capsys, [work, models["ddpm"]])


@pytest.mark.parametrize("damage, expected", [c[1:] for c in LSTM_CASES], ids=[c[0] for c in LSTM_CASES])
def test_damaged_lstm_folder(damage, expected, models, work, capsys):
    m = work / "lstm-copy"
    shutil.copytree(models["lstm"], m, ignore=shutil.ignore_patterns("checkpoint-*"))
    damage(m)
    run_bad(["sample", str(m)], expected, capsys, [work, models["lstm"]])


# ---- the Python API: documented exceptions with the same one-line messages ----------------------------------------
def _vae(models):
    import genkit

    return genkit.load(models["vae"])


def _lstm(models):
    import genkit

    return genkit.load(models["lstm"])


def _ddpm(models):
    import genkit

    return genkit.load(models["ddpm"])


def _genkit():
    import genkit

    return genkit


def _dcgan(models):
    import genkit

    return genkit.load(models["dcgan"])


def _plugin(name):
    from genkit.plugin.registry import get_plugin

    return get_plugin(name)


def _inpainting(images=1, mask=None, mask_size=(8, 8), mask_colour=None, mask_mode="L", mask_fill=255, **kwargs):
    """Arguments of an inpaint call on 8x8 grayscale images, with the mask (a centre square) as asked."""
    from PIL import Image

    image = [Image.new("L", (8, 8), 40)] * images
    if mask is None:
        mask = Image.new("RGB" if mask_colour else mask_mode, mask_size, 0)
        mask.paste(mask_colour or mask_fill, (2, 2, 6, 6))
    return {"image": image if images > 1 else image[0], "mask": mask, **kwargs}


PY_CASES = [
    ("vae-call-huge", lambda m: _vae(m)(10**7), ValueError, "batch_size"),
    ("vae-call-zero", lambda m: _vae(m)(0), ValueError, "batch_size"),
    ("vae-sample-negative", lambda m: _vae(m).sample(-1), ValueError, "n must"),
    (
        "vae-anomaly-empty-image",
        lambda m: _vae(m).anomaly_score(__import__("PIL.Image").Image.new("L", (0, 0))),
        ValueError,
        "empty",
    ),
    ("vae-anomaly-nan", lambda m: _vae(m).anomaly_score(torch.full((1, 1, 8, 8), math.nan)), ValueError, "finite"),
    (
        "vae-anomaly-samples-0",
        lambda m: _vae(m).anomaly_score(torch.zeros(1, 1, 8, 8), num_samples=0),
        ValueError,
        "num_samples",
    ),
    ("vae-encode-wrong-shape", lambda m: _vae(m).encode(torch.zeros(1, 3, 5, 5)), ValueError, "shape"),
    (
        "vae-interpolate-steps-1",
        lambda m: _vae(m).interpolate(torch.zeros(16), torch.zeros(16), steps=1),
        ValueError,
        "steps",
    ),
    ("vae-output-type", lambda m: _vae(m)(1, output_type="np"), ValueError, "output_type"),
    ("vae-labels-unconditional", lambda m: _vae(m)(2, labels=[1, 2]), ValueError, "unconditional"),
    ("lstm-sample-zero", lambda m: _plugin("lstm").sample(_lstm(m), 0), GenkitError, "n must"),
    (
        "lstm-sample-tokens-huge",
        lambda m: _plugin("lstm").sample(_lstm(m), 1, max_new_tokens=10**9),
        GenkitError,
        "max_new_tokens",
    ),
    ("ddpm-call-steps-0", lambda m: _ddpm(m)(1, num_inference_steps=0), ValueError, "num_inference_steps"),
    ("ddpm-call-huge", lambda m: _ddpm(m)(10**7), ValueError, "batch_size"),
    ("ddpm-sample-zero", lambda m: _plugin("ddpm").sample(_ddpm(m), 0), GenkitError, "n must"),
    ("load-missing", lambda m: __import__("genkit").load("/nonexistent/model"), GenkitError, "no model folder"),
    ("load-none", lambda m: __import__("genkit").load(None), GenkitError, "a str or path"),
    ("load-int", lambda m: __import__("genkit").load(5), GenkitError, "a str or path"),
    ("load-bytes", lambda m: __import__("genkit").load(b"x"), GenkitError, "a str or path"),
    (
        "load-dtype-not-a-dtype",
        lambda m: __import__("genkit").load(m["vae"], torch_dtype="half"),
        GenkitError,
        "torch_dtype must be a floating-point torch.dtype",
    ),
    (
        "load-dtype-int",
        lambda m: __import__("genkit").load(m["vae"], torch_dtype=torch.int8),
        GenkitError,
        "torch_dtype",
    ),
    (
        "train-resume-int",
        lambda m: __import__("genkit").train("vae", resume=1),
        GenkitError,
        "resume must be a folder",
    ),
    ("train-output-list", lambda m: __import__("genkit").train("vae", output=["a"]), GenkitError, "output must be"),
    ("train-plugin-object-name", lambda m: __import__("genkit").train(3), GenkitError, "plugin must be a str"),
    ("save-path-list", lambda m: __import__("genkit").save(_vae(m), ["a"]), GenkitError, "path must be a folder"),
    ("vae-sample-seed-2-70", lambda m: _vae(m).sample(2, seed=2**70), ValueError, "seed must be an integer"),
    ("vae-sample-seed-negative", lambda m: _vae(m).sample(2, seed=-1), ValueError, "seed must be an integer"),
    (
        "vae-interpolate-steps-1e9",
        lambda m: _vae(m).interpolate(torch.zeros(16), torch.zeros(16), steps=10**9),
        ValueError,
        "steps must be an integer in [2, 10000]",
    ),
    (
        "vae-nll-k-huge",
        lambda m: _vae(m).importance_sampled_nll(torch.zeros(1, 1, 8, 8), k=10**9),
        ValueError,
        "k must",
    ),
    (
        "vae-anomaly-samples-huge",
        lambda m: _vae(m).anomaly_score(torch.zeros(1, 1, 8, 8), num_samples=10**9),
        ValueError,
        "num_samples must",
    ),
    ("vae-decode-too-many", lambda m: _vae(m).decode(torch.zeros(10**5, 4)), ValueError, "latents must"),
    ("dcgan-sample-seed-2-70", lambda m: _dcgan(m).sample(2, seed=2**70), ValueError, "seed must be an integer"),
    (
        "dcgan-interpolate-steps-1e9",
        lambda m: _dcgan(m).interpolate(torch.zeros(16), torch.ones(16), steps=10**9),
        ValueError,
        "steps must be an integer",
    ),
    ("dcgan-latents-nan", lambda m: _dcgan(m)(latents=torch.full((1, 16), math.nan)), ValueError, "finite"),
    ("ddpm-sample-seed-2-70", lambda m: _plugin("ddpm").sample(_ddpm(m), 1, seed=2**70), ValueError, "seed must"),
    ("lstm-sample-seed-2-70", lambda m: _plugin("lstm").sample(_lstm(m), 1, seed=2**70), ValueError, "seed must"),
    (
        "resolve-config-lr",
        lambda m: __import__("genkit.trainer").trainer.resolve_config(_plugin("vae"), "tiny", {"lr": -1.0}),
        GenkitError,
        "--lr",
    ),
    ("register-class-without-name", lambda m: genkit.register(object), GenkitError, "needs a name"),
    ("register-not-a-plugin", lambda m: genkit.register(3), GenkitError, "takes a genkit.Plugin subclass or instance"),
    (
        "register-installed-name",
        lambda m: genkit.register(type("Taken", (type(_plugin("vae")),), {"name": "dcgan"})),
        GenkitError,
        "belongs",
    ),
    ("train-overwrite-not-bool", lambda m: genkit.train("vae", overwrite="yes"), GenkitError, "True or False"),
    ("toy-points-unknown", lambda m: genkit.data.toy_points("spiral"), GenkitError, "toy sets"),
    ("show-not-images", lambda m: genkit.show([1, 2]), GenkitError, "show takes"),
    (
        "plot-history-unknown-column",
        lambda m: genkit.plot_history(genkit.read_history(m["vae"]), ["nope"]),
        GenkitError,
        "no column",
    ),
    ("vae-traverse-dim", lambda m: _vae(m).traverse(99), ValueError, "dim must"),
    (
        "ddpm-noise-timestep",
        lambda m: _ddpm(m).noise(torch.zeros(1, 8, 8), timesteps=[10**6]),
        ValueError,
        "timesteps must",
    ),
    *[
        (f"ddpm-inpaint-{name}", lambda m, k=kwargs: _ddpm(m).inpaint(**_inpainting(**k)), ValueError, expected)
        for name, kwargs, expected in [
            ("mask-size", {"mask_size": (5, 5)}, "the mask is 5x5 but the image is 8x8"),
            ("mask-colour", {"mask_colour": (255, 0, 0)}, "black and white"),
            ("mask-mode", {"mask_mode": "CMYK"}, "mode CMYK"),
            ("mask-empty", {"mask_fill": 0}, "selects no pixel"),
            ("mask-not-an-image", {"mask": [[1, 0]]}, "PIL image or a tensor"),
            ("mask-tensor-size", {"mask": torch.ones(1, 1, 4, 4)}, "model's size"),
            ("mask-tensor-range", {"mask": torch.full((8, 8), 2.0)}, "values in [0, 1]"),
            ("mask-count", {"images": 3, "mask": torch.ones(2, 1, 8, 8)}, "one per image"),
            ("steps-0", {"num_inference_steps": 0}, "num_inference_steps"),
            ("jump-0", {"jump_length": 0}, "jump_length"),
            ("eta", {"eta": 2}, "eta must"),
        ]
    ],
    *[
        (f"ddpm-img2img-{v}", lambda m, v=v: _ddpm(m).img2img(torch.zeros(1, 8, 8), v), ValueError, "strength must")
        for v in (-0.1, 1.5, "high", math.nan)
    ],
    (
        "vae-inpaint-mask-size",
        lambda m: _vae(m).inpaint(**_inpainting(mask_size=(9, 9))),
        ValueError,
        "the mask is 9x9 but the image is 8x8",
    ),
    ("vae-inpaint-mask-empty", lambda m: _vae(m).inpaint(**_inpainting(mask_fill=0)), ValueError, "selects no pixel"),
    ("vae-inpaint-iterations", lambda m: _vae(m).inpaint(**_inpainting(), iterations=0), ValueError, "iterations"),
    (
        "resolve-config-steps-type",
        lambda m: __import__("genkit.trainer").trainer.resolve_config(_plugin("vae"), "tiny", {"max_steps": 2.5}),
        GenkitError,
        "integer",
    ),
]


@pytest.mark.parametrize("call, exc, expected", [c[1:] for c in PY_CASES], ids=[c[0] for c in PY_CASES])
def test_python_bad_input(call, exc, expected, models):
    with pytest.raises(exc) as info:
        call(models)
    assert expected.lower() in str(info.value).lower()
    assert "\n" not in str(info.value).strip()


def test_bad_input_table_covers_at_least_100_cases():
    assert len(TRAIN) + len(OTHER) + len(FOLDER_CASES) + len(LSTM_CASES) + len(DDPM_CASES) + len(PY_CASES) >= 150


def test_corrupt_image_skipped_on_request(work, capsys):
    """--skip-bad-images trains on the readable images of a folder and says which file it left out."""
    out = work / "run"
    argv = [*T, "--dataset", str(work / "badimages"), "--output", str(out), "--skip-bad-images", "--batch-size", "2"]
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image.*broken\.png"):
        assert main(argv) == 0
    assert (out / "genkit.json").is_file()


def test_train_into_own_output_keeps_checkpoints_and_replaces_model(tiny_vae, tmp_path):
    """A run's own folder may be trained into again with --overwrite; the model is swapped in whole."""
    out = tmp_path / "run"
    shutil.copytree(tiny_vae, out)
    before = (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert main([*T, "--output", str(out), "--overwrite", "--seed", "3"]) == 0
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() != before
    assert not (out / ".tmp-model").exists() and not (out / ".old-model").exists()
    import genkit

    assert genkit.load(out).vae.config.latent_dim == 4  # the tiny preset's


def test_resume_latest_valid_falls_back_past_a_damaged_checkpoint(tiny_vae, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(tiny_vae, out)
    checkpoint_truncated(out)
    newest = max(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert main([*T, "--output", str(out), "--resume", "latest-valid", "--max-steps", str(newest)]) == 0
    assert "resumed from" in capsys.readouterr().out


def test_staged_folder_keeps_the_old_folder_when_writing_fails(tmp_path):
    from genkit.io import staged_folder

    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_folder(dest) as tmp:
            (tmp / "new.txt").write_text("half")
            raise RuntimeError("crash while writing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (dest / "old.txt").read_text() == "old"
    with staged_folder(dest) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt"]


def test_safetensors_header_bomb_is_refused(tmp_path):
    from genkit.errors import WeightsError
    from genkit.io import check_folder

    (tmp_path / "w.safetensors").write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(WeightsError, match="corrupt"):
        check_folder(tmp_path)


def test_final_save_moves_genkit_json_out_first_and_in_last(tmp_path, monkeypatch):
    """While the old model is moved aside and the new one in, the folder has no genkit.json: it never looks like a
    complete model with half of its files."""
    from genkit.io import move_model_into

    output, staging = tmp_path / "run", tmp_path / "run" / ".tmp-model"
    for folder in (output, staging):
        (folder / "vae").mkdir(parents=True)
        (folder / "genkit.json").write_text("{}")
        (folder / "README.md").write_text(folder.name)
    moves, rename = [], Path.rename
    monkeypatch.setattr(
        Path, "rename", lambda self, target: (moves.append((self, Path(target))), rename(self, target))[1]
    )
    move_model_into(staging, output)
    out_moves = [src.name for src, dst in moves if src.parent == output]
    in_moves = [src.name for src, dst in moves if src.parent == staging]
    assert out_moves[0] == "genkit.json" and in_moves[-1] == "genkit.json"
    assert (output / "README.md").read_text() == ".tmp-model" and not staging.exists()
