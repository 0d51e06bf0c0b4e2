"""genkit's recurrent language model plugin: a char- or word-level LSTM/GRU as a native transformers causal LM.

Importing this package registers the model with transformers' ``AutoConfig`` and ``AutoModelForCausalLM``, so a
trained folder loads with ``AutoModelForCausalLM.from_pretrained(folder)`` and ``pipeline("text-generation", ...)``.
"""

from genkit_lstm.configuration_lstm import LSTMConfig
from genkit_lstm.modeling_lstm import LSTMForCausalLM
from genkit_lstm.plugin import LSTMPlugin
from genkit_lstm.tokenization_lstm import build_tokenizer
from transformers import AutoConfig, AutoModelForCausalLM

AutoConfig.register(LSTMConfig.model_type, LSTMConfig, exist_ok=True)
AutoModelForCausalLM.register(LSTMConfig, LSTMForCausalLM, exist_ok=True)

plugin = LSTMPlugin()

__all__ = ["LSTMConfig", "LSTMForCausalLM", "LSTMPlugin", "build_tokenizer", "plugin"]
