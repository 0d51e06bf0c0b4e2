"""genkit's recurrent language model as a native transformers causal LM: embedding -> LSTM/GRU layers -> head.

``generate()`` carries the recurrent state: the prompt runs once, then every new token costs one step of the
network (O(1) per token), like RWKV and Mamba in transformers. This file imports only torch and transformers (and its
sibling ``configuration_lstm``), so ``genkit export`` can ship it next to the weights for ``trust_remote_code=True``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_lstm import LSTMConfig

__all__ = ["LSTMCausalLMOutput", "LSTMForCausalLM", "LSTMPreTrainedModel", "RecurrentState"]


@contextlib.contextmanager
def _without_onednn() -> Iterator[None]:
    """PyTorch's own LSTM kernel instead of oneDNN's for the enclosed calls (see ``LSTMForCausalLM.forward``)."""
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


class RecurrentState(tuple):
    """``(h, c)`` of an LSTM or ``(h,)`` of a GRU, each ``(num_layers, batch, hidden_size)``.

    A plain tuple of tensors; ``is_croppable`` answers generate(), which asks whether a cache can be rolled back by
    a token (a recurrent state cannot).
    """

    is_croppable = False

    def index_select(self, index: torch.LongTensor) -> RecurrentState:
        """The state of the batch rows ``index`` (beam search keeps the states of the beams it continues)."""
        return RecurrentState(s.index_select(1, index.to(s.device)) for s in self)


@dataclass
class LSTMCausalLMOutput(ModelOutput):
    """
    loss: next-token cross-entropy (nats/token), when ``labels`` are given.
    logits: ``(batch, sequence, vocab_size)`` scores of the next token.
    state: the recurrent state after the last input token; pass it back with the following tokens to continue.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    state: RecurrentState | None = None


class LSTMPreTrainedModel(PreTrainedModel):
    config_class = LSTMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _is_stateful = True  # generate() must not try assisted decoding, which needs to roll a cache back

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Embedding, nn.Linear)):
            # uniform(-0.1, 0.1) for the embedding and the head, as PyTorch's word_language_model example
            init.uniform_(module.weight, -0.1, 0.1)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LSTM, nn.GRU)):
            bound = 1 / math.sqrt(module.hidden_size)  # PyTorch's own RNN initialization
            for name, param in module.named_parameters():
                init.uniform_(param, -bound, bound)
                if isinstance(module, nn.LSTM) and name.startswith("bias_ih"):
                    # Forget-gate bias 1 (Gers et al. 2000; Jozefowicz et al. 2015): remember by default early on.
                    bias = torch.zeros_like(param)
                    bias[module.hidden_size : 2 * module.hidden_size] = 1.0
                    init.copy_(param, bias)
                elif name.startswith("bias_hh"):
                    init.zeros_(param)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # the recurrent state is not a key/value cache: generate() must not build a DynamicCache


class LSTMForCausalLM(LSTMPreTrainedModel, GenerationMixin):
    """A recurrent causal language model. ``labels`` follow transformers' convention (shifted inside)."""

    _tied_weights_keys = {"lm_head.weight": "embeddings.weight"}  # used only when config.tie_word_embeddings

    def __init__(self, config: LSTMConfig):
        super().__init__(config)
        rnn = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.embeddings = nn.Embedding(config.vocab_size, config.embedding_size)
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = rnn(
            config.embedding_size,
            config.hidden_size,
            num_layers=config.num_hidden_layers,
            dropout=config.dropout if config.num_hidden_layers > 1 else 0.0,  # between layers only
            batch_first=True,
        )
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def initial_state(self, batch_size: int) -> RecurrentState:
        """The zero state every sequence starts from."""
        parameter = next(self.rnn.parameters())
        shape = (self.config.num_hidden_layers, batch_size, self.config.hidden_size)
        n = 2 if self.config.cell == "lstm" else 1
        return RecurrentState(parameter.new_zeros(shape) for _ in range(n))

    def forward(
        self,
        input_ids: torch.LongTensor,
        state: tuple[torch.Tensor, ...] | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> LSTMCausalLMOutput:
        """Run ``input_ids`` (batch, sequence) from ``state`` (zeros when None).

        ``attention_mask`` may mark left padding of a fresh prompt (how pipelines batch prompts): pad positions are
        skipped, so each row's state is exactly that of its own tokens. ``logits_to_keep > 0`` computes the head on
        the last positions only (generate() uses 1 for the prompt).
        """
        if input_ids is None or input_ids.dim() != 2 or input_ids.shape[1] == 0:
            shape = None if input_ids is None else tuple(input_ids.shape)
            raise ValueError(f"input_ids must be a (batch, sequence) tensor with sequence >= 1, got shape {shape}")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        x = self.dropout(self.embeddings(input_ids))
        mask = None if attention_mask is None else attention_mask[:, -input_ids.shape[1] :]
        if mask is not None and not bool(mask.all()):
            if state is not None:
                raise ValueError("padding (attention_mask 0) is supported only at the left of a prompt without state")
            output, new_state = self._run_left_padded(x, mask)
        else:
            hx = None if state is None else (tuple(state) if self.config.cell == "lstm" else state[0])
            # On CPU, oneDNN's fused LSTM is faster on whole sequences (44 vs 70+ ms for a training step of the
            # small preset) but slower than PyTorch's own kernel on one token (0.79 vs 0.34 ms): generate()'s case.
            one_step = input_ids.shape[1] == 1 and x.device.type == "cpu" and self.config.cell == "lstm"
            # bf16 autocast on a CPU: oneDNN has no bf16 LSTM primitive for every shape ("could not create a
            # primitive descriptor"), so the recurrent layer runs in float32 there; GPUs run it in bf16/fp16.
            cpu_autocast = x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            with (
                _without_onednn() if one_step else contextlib.nullcontext(),
                torch.autocast("cpu", enabled=False) if cpu_autocast else contextlib.nullcontext(),
            ):
                output, new_state = self.rnn(x.float() if cpu_autocast else x, hx)
        hidden = self.dropout(output)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        if not use_cache:
            return LSTMCausalLMOutput(loss=loss, logits=logits)
        new_state = RecurrentState(new_state if self.config.cell == "lstm" else (new_state,))
        return LSTMCausalLMOutput(loss=loss, logits=logits, state=new_state)

    def _run_left_padded(self, x: torch.Tensor, mask: torch.Tensor):
        """Rows padded on the left: shift each row's tokens to the start, run them packed, and shift back."""
        batch, length = mask.shape
        lengths = mask.long().sum(1)
        pad = length - lengths
        positions = torch.arange(length, device=x.device)
        if bool((lengths == 0).any()) or not torch.equal(mask.bool(), positions[None, :] >= pad[:, None]):
            raise ValueError("attention_mask must be left padding (0s then 1s) with at least one token per row")
        to_front = (positions[None, :] + pad[:, None]) % length
        x = x.gather(1, to_front[..., None].expand_as(x))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, state = self.rnn(packed)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=length)
        back = (positions[None, :] - pad[:, None]) % length
        return output.gather(1, back[..., None].expand_as(output)), state

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, state=None, **kwargs):
        if state is not None:
            # Once a state exists it holds the whole prefix: only the newest token runs, O(1) per generated token.
            # That is every step after the prompt, so it skips transformers' generic preparation for attention
            # models (masks, position ids, copies, a device check): 20-30% of a one-token step of the small preset.
            return {"input_ids": input_ids[:, -1:], "state": state, "use_cache": True}
        model_inputs = super().prepare_inputs_for_generation(input_ids, **kwargs)
        model_inputs["state"] = None
        return model_inputs

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, *args, **kwargs):
        # generate() carries only caches it knows by name ("cache" since transformers 5.24; past_key_values and
        # "state" before): hand the recurrent state to the next step ourselves, as transformers' own RWKV does.
        state = outputs.get("state")
        if state is not None and model_kwargs.get("state") is not None:
            # A step after the prompt: the state is all the next step reads (prepare_inputs_for_generation), so
            # growing the attention mask by one column per token, as attention models need, is skipped.
            model_kwargs["state"] = state
            return model_kwargs
        if state is not None:  # beam search reorders every cache-named entry, so none is set to None
            model_kwargs["state"] = state
        return super()._update_model_kwargs_for_generation(outputs, model_kwargs, *args, **kwargs)

    def _reorder_cache(self, state: RecurrentState, beam_idx: torch.LongTensor) -> RecurrentState:
        return RecurrentState(state).index_select(beam_idx)
