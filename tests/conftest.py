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
