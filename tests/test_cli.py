"""The genkit command: every user mistake is one clear line and exit status 2; --help works everywhere."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from genkit.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.strip().splitlines() if not line.startswith(("train:", "Loading"))]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["train", "nosuch"], ["unknown plugin 'nosuch'", "vae"]),
        (["train", "vae", "--preset", "huge"], ["unknown preset 'huge'", "tiny, small, base"]),
        (["train", "vae", "--preset", "tiny", "--dataset", "no-such-data"], ["no-such-data"]),
        (["train", "vae", "--preset", "tiny", "--dataset", "stdlib"], ["stdlib"]),
        (
            ["train", "vae", "--preset", "tiny", "--batch-size", "0"],
            ["--batch-size must be an integer in [1, 65536], got 0"],
        ),
        (["train", "vae", "--preset", "tiny", "--batch-size", "5000"], ["fewer than one batch"]),
        (["train", "vae", "--mixed-precision", "fp8"], ["invalid choice: 'fp8'"]),
        (["train", "vae", "--max-steps", "5", "--epochs", "2"], ["not allowed with argument"]),
        (["train", "vae", "--preset", "tiny", "--resume", "latest"], ["--resume latest: no checkpoint"]),
        (["sample", "/no/such/model"], ["no model folder at '/no/such/model'"]),
        (["info", "nobody/not-cached"], ["not in the local cache"]),
        (["push", "/no/such/model", "me/x", "--dry-run"], ["has no genkit.json"]),
        (["nosuchcommand"], ["invalid choice"]),
    ],
)
def test_user_mistakes_are_one_clear_line(capsys, tmp_path, monkeypatch, argv, fragments):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    one_line_error(code, err, *fragments)


def test_sample_rejects_bad_count_and_pickle(capsys, tiny_vae, tmp_path):
    code, _, err = run(capsys, "sample", str(tiny_vae), "--n", "0")
    one_line_error(code, err, "--n must be an integer in [1, 10000], got 0")
    model = tmp_path / "pickled"
    shutil.copytree(tiny_vae, model)
    weights = model / "vae" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), weights.with_suffix(".bin"))
    weights.unlink()
    code, _, err = run(capsys, "sample", str(model))
    one_line_error(code, err, "refusing to load pickle file")


def test_sample_eval_info_push(capsys, tiny_vae, tmp_path):
    out = tmp_path / "grid.png"
    code, stdout, _ = run(capsys, "sample", str(tiny_vae), "--n", "9", "--out", str(out), "--seed", "2")
    assert code == 0 and out.exists()
    from PIL import Image

    assert Image.open(out).size[0] > 3 * 8  # a 3x3 grid of 8-px images with borders
    code, stdout, _ = run(capsys, "eval", str(tiny_vae), "--no-card")
    assert code == 0
    assert json.loads(stdout)["metrics"]["negative_elbo_nats"] > 0
    code, stdout, _ = run(capsys, "info", str(tiny_vae))
    info = json.loads(stdout)
    assert code == 0 and info["plugin"] == "vae" and "vae/diffusion_pytorch_model.safetensors" in info["files"]
    code, stdout, _ = run(capsys, "push", str(tiny_vae), "someone/tiny", "--dry-run")
    assert code == 0 and "would create model repo someone/tiny" in stdout and "vae/config.json" in stdout
    assert "checkpoint-" not in stdout


def test_list_shows_plugins(capsys):
    code, stdout, _ = run(capsys, "list")
    assert code == 0 and stdout.startswith("") and "vae" in stdout and "digits" in stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["train", "--help"],
        ["train", "vae", "--help"],
        ["sample", "--help"],
        ["eval", "--help"],
        ["info", "--help"],
        ["push", "--help"],
        ["demo", "--help"],
        ["space", "build", "--help"],
        ["space", "push", "--help"],
        ["export", "--help"],
    ],
)
def test_help_everywhere(capsys, argv):
    code, stdout, _ = run(capsys, *argv)
    assert code == 0 and "usage: genkit" in stdout
    if argv[:2] == ["train", "vae"]:
        assert "--beta" in stdout and "--conditional" in stdout and "--mixed-precision" in stdout


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "genkit", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "usage: genkit" in result.stdout
