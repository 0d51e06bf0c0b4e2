"""Configuration of genkit's recurrent language model (LSTM or GRU).

This file imports only transformers, so ``genkit export`` can copy it next to the weights and stock transformers can
load the model with ``trust_remote_code=True`` where genkit is not installed.
"""

from transformers import PreTrainedConfig

__all__ = ["LSTMConfig"]


class LSTMConfig(PreTrainedConfig):
    """Embedding -> stacked LSTM (or GRU) -> linear head over the vocabulary.

    The defaults are the ``small`` preset's character model: two layers of 512 units (char-rnn, Karpathy 2015, uses
    2-3 x 512 on tinyshakespeare).
    """

    model_type = "genkit_lstm"

    vocab_size: int = 128  # replaced by the tokenizer's size when genkit builds a model
    cell: str = "lstm"  # "lstm" | "gru": a GRU has 3 gates instead of 4, ~25% fewer weights and FLOPs per unit
    embedding_size: int = 512
    hidden_size: int = 512
    num_hidden_layers: int = 2
    # Dropout on the non-recurrent connections (Zaremba et al. 2014): the embeddings, between layers, before the head.
    dropout: float = 0.1
    # Share the input embedding with the output head (Press & Wolf 2017; Inan et al. 2017): fewer weights, usually a
    # lower word-level perplexity; needs embedding_size == hidden_size.
    tie_word_embeddings: bool = False
    pad_token_id: int | None = 0
    use_cache: bool = True  # return the recurrent state, so generate() feeds one token per step

    def __post_init__(self, **kwargs):
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', not {self.cell!r}")
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.tie_word_embeddings and self.embedding_size != self.hidden_size:
            raise ValueError(
                f"tie_word_embeddings needs embedding_size == hidden_size (got {self.embedding_size} and "
                f"{self.hidden_size}): the head reuses the embedding matrix"
            )
        super().__post_init__(**kwargs)
