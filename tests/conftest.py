"""Tests run offline: the Hub is unreachable here, so HF libraries must read only a temporary cache."""

import os
import tempfile

# Set before any Hugging Face library is imported by a test module.
_HF_HOME = tempfile.mkdtemp(prefix="genkit-test-hf-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402


def train_cli(*args: str) -> int:
    """Run `genkit train ...` in this process (the real CLI entry point)."""
    from genkit.cli import main

    return main(["train", *args])


@pytest.fixture(scope="session")
def tiny_vae(tmp_path_factory):
    """A VAE trained for 20 steps on digits with the tiny preset: a real saved model folder."""
    out = tmp_path_factory.mktemp("tiny-vae") / "model"
    assert train_cli("vae", "--preset", "tiny", "--output", str(out)) == 0
    return out
