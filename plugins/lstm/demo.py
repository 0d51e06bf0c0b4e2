"""The LSTM's Gradio demo: a prompt and the sampling knobs; the text streams in as each token is generated."""

from __future__ import annotations

import threading

import gradio as gr
import torch
from genkit_lstm.plugin import unknown_pieces
from genkit_lstm.tokenization_lstm import NEWLINE
from transformers import StoppingCriteria, TextIteratorStreamer

from genkit.ui.demo import MODEL_QUEUE, demo_blocks, enable_queue, require_values, saved_json, seed_input

__all__ = ["MAX_NEW_TOKENS", "MAX_PROMPT_CHARS", "TokenStreamer", "build_demo"]

MAX_NEW_TOKENS = 1000  # per request; an LSTM costs the same per token however long the text, so this bounds time
MAX_PROMPT_CHARS = 2000  # the prompt is read token by token too
MAX_TEMPERATURE = 2.0  # beyond 2 the samples are noise for any model


class TokenStreamer(TextIteratorStreamer):
    """A ``TextIteratorStreamer`` that hands over each token's text at once.

    The stock streamer holds text back until a space completes a word, so a character-level model would appear
    word by word.
    """

    def put(self, value):
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        self.token_cache.extend(value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
        self.on_finalized_text(text[self.print_len :])
        self.print_len = len(text)


class StopWhenSet(StoppingCriteria):
    """Ends generation once ``event`` is set: the visitor left or cancelled, so nobody reads the rest."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def build_demo(pipeline) -> gr.Blocks:
    """One panel: prompt, max new tokens, temperature, top-k, top-p and seed; the output text streams."""
    model, tokenizer = pipeline.model, pipeline.tokenizer
    vocab = len(tokenizer)
    level = saved_json(model, "genkit.json").get("config", {}).get("tokenizer")  # "char" | "word"
    with demo_blocks("LSTM text demo") as demo:
        gr.Markdown(
            f"# Recurrent language model\nA {model.config.num_hidden_layers}-layer {model.config.cell.upper()} over "
            f"{vocab} {f'{level}-level ' if level else ''}tokens. It reads the prompt, then samples one token at a "
            "time; the text appears as it is generated. Temperature 0 always picks the most likely token."
        )
        prompt = gr.Textbox(
            label="Prompt", lines=3, max_length=MAX_PROMPT_CHARS, placeholder="empty: start at a new line"
        )
        with gr.Row():
            max_new_tokens = gr.Slider(1, MAX_NEW_TOKENS, value=200, step=1, precision=0, label="Max new tokens")
            temperature = gr.Slider(0, MAX_TEMPERATURE, value=0.8, step=0.05, label="Temperature")
            top_k = gr.Slider(0, vocab, value=0, step=1, precision=0, label="Top-k", info="0: off")
            top_p = gr.Slider(0.01, 1, value=1.0, step=0.01, label="Top-p", info="1: off")
            seed = seed_input()
        button = gr.Button("Generate", variant="primary")
        output = gr.Textbox(label="Text", lines=12, elem_id="genkit-text")
        inputs = [prompt, max_new_tokens, temperature, top_k, top_p, seed]
        button.click(_generator(model, tokenizer), inputs, output, api_name="generate", concurrency_id=MODEL_QUEUE)
    return enable_queue(demo)


def _generator(model, tokenizer):
    """The streaming ``generate`` event: the text so far after every token, generation on its own thread."""

    def generate(prompt, max_new_tokens, temperature, top_k, top_p, seed):
        require_values(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        prompt = prompt or ""
        if len(prompt) > MAX_PROMPT_CHARS:
            raise gr.Error(f"the prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARS}")
        text = prompt or NEWLINE  # no prompt: start at a new line, as `genkit sample` does
        unknown = unknown_pieces(tokenizer, text)
        if unknown:
            gr.Warning(f"not in the model's vocabulary, read as <unk>: {', '.join(map(repr, unknown[:10]))}")
        # Temperature 0 is greedy decoding, where top-k and top-p have no say.
        options = {"do_sample": temperature > 0, "max_new_tokens": int(max_new_tokens)}
        if temperature > 0:
            options.update(temperature=float(temperature), top_k=int(top_k), top_p=float(top_p))
        input_ids = tokenizer(text, return_tensors="pt")["input_ids"].to(model.device)
        yield from _stream(model, tokenizer, input_ids, int(seed), options, prompt)

    return generate


def _stream(model, tokenizer, input_ids, seed: int, options: dict, prompt: str):
    """Run ``generate`` on a thread and yield the growing text; stop it when the visitor goes away."""
    streamer = TokenStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    stop, failure = threading.Event(), []

    def run():
        try:
            torch.manual_seed(seed)  # the global RNG: a seed reproduces a text when no other request samples
            model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                streamer=streamer,
                stopping_criteria=[StopWhenSet(stop)],
                **options,
            )
        except Exception as exc:  # reported to the visitor below; the stream must end either way
            failure.append(exc)
            streamer.end()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    out, shown = prompt, False
    try:
        for piece in streamer:
            if piece:  # special tokens such as <unk> decode to nothing
                out += piece
                shown = True
                yield out
    finally:
        stop.set()  # also when Gradio closes this generator because the visitor went away
        worker.join()
    if failure:
        raise gr.Error(f"generation failed: {failure[0]}")
    if not shown:
        yield out
