"""The LSTM plugin: tokenizer + truncated-backpropagation-through-time batches, the loss, sampling and evaluation.

Training follows PyTorch's word_language_model recipe: the corpus is one token sequence cut into ``batch_size``
contiguous streams; batch j holds chunk j of every stream, so row i of a batch continues row i of the previous one,
and the hidden state is carried (detached) from batch to batch. See docs/lstm.md.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from genkit_lstm.configuration_lstm import LSTMConfig
from genkit_lstm.modeling_lstm import LSTMForCausalLM
from genkit_lstm.tokenization_lstm import LEVELS, NEWLINE, build_tokenizer

from genkit.errors import ConfigError, DataError, GenkitError
from genkit.plugin import DataInfo, Plugin, PreparedData, StepContext

__all__ = ["LSTMPlugin", "TokenStreams", "add_remote_code", "encode", "tokenizer_level", "unknown_pieces"]

_SOURCE_FILES = ("configuration_lstm.py", "modeling_lstm.py")  # what a remote-code export ships next to the weights
_CARD_FILES = ("README.md", "genkit.json", "eval_results.json", "samples.txt")  # copied from the model folder


class TokenStreams(torch.utils.data.Dataset):
    """A token sequence cut into ``num_streams`` contiguous streams, read ``seq_len`` tokens at a time.

    Item ``k`` is chunk ``k // num_streams`` of stream ``k % num_streams``, so a DataLoader that does not shuffle,
    with ``batch_size == num_streams``, yields batches whose row i continues row i of the previous batch.
    """

    def __init__(self, ids: torch.Tensor, num_streams: int, seq_len: int):
        length = ids.numel() // num_streams
        self.streams = ids[: length * num_streams].view(num_streams, length)
        self.num_streams, self.seq_len = num_streams, seq_len
        self.chunks = max(0, (length - 1) // seq_len)  # each chunk needs seq_len inputs and the token after them

    def __len__(self) -> int:
        return self.chunks * self.num_streams

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        chunk, stream = divmod(index, self.num_streams)
        window = self.streams[stream, chunk * self.seq_len : (chunk + 1) * self.seq_len + 1]
        return {"input_ids": window[:-1], "labels": window[1:], "chunk": torch.tensor(chunk)}


def encode(tokenizer, rows: list[str]) -> torch.Tensor:
    """Token ids of ``"\\n".join(rows)``, encoded row by row (in parallel; no token spans a newline)."""
    newline = tokenizer.convert_tokens_to_ids(NEWLINE)
    ids: list[int] = []
    for i, encoding in enumerate(tokenizer.backend_tokenizer.encode_batch(rows, add_special_tokens=False)):
        if i:
            ids.append(newline)
        ids.extend(encoding.ids)
    return torch.tensor(ids, dtype=torch.long)


def add_remote_code(folder: str | Path) -> None:
    """Put the modeling source and ``auto_map`` into a saved model folder, so that stock transformers loads it with
    ``trust_remote_code=True`` where genkit is not installed."""
    folder = Path(folder)
    for name in _SOURCE_FILES:
        shutil.copy2(Path(__file__).parent / name, folder / name)
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    config["auto_map"] = {
        "AutoConfig": "configuration_lstm.LSTMConfig",
        "AutoModelForCausalLM": "modeling_lstm.LSTMForCausalLM",
    }
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


class LSTMPlugin(Plugin):
    name = "lstm"
    task = "text"
    pipeline_tag = "text-generation"
    card_usage = 'print(pipe("The", max_new_tokens=200, do_sample=True)[0]["generated_text"])'
    default_dataset = "stdlib"
    sequential_batches = True  # TBPTT: no shuffling, every process keeps its own contiguous streams
    defaults = {
        "tokenizer": "char",  # char | word
        "vocab_size": 10000,  # cap, special tokens included; the most frequent tokens are kept, the rest -> <unk>
        "cell": "lstm",  # lstm | gru
        "embedding_size": 512,
        "hidden_size": 512,
        "num_layers": 2,
        "dropout": 0.1,  # on embeddings, between layers and before the head (Zaremba et al. 2014)
        "tie_embeddings": False,  # share embedding and head (Press & Wolf 2017); needs embedding == hidden size
        "seq_len": 128,  # TBPTT length: gradients flow back this many tokens; the state flows on forever
        "batch_size": 64,  # = number of parallel streams
        "lr": 2e-3,  # Adam at 2e-3 is char-rnn's setting for 2-3 x 512 LSTMs
        "lr_scheduler": "cosine",
        "warmup_steps": 50,
        "max_grad_norm": 1.0,  # clipping keeps exploding recurrent gradients in check (Pascanu et al. 2013)
        "eval_streams": 16,  # evaluation reads the held-out text as this many parallel streams
        "num_sample_images": 4,  # text samples written to samples.txt
    }
    presets = {
        # Tests: seconds on a CPU.
        "tiny": {
            "embedding_size": 16,
            "hidden_size": 32,
            "num_layers": 2,
            "seq_len": 16,
            "batch_size": 8,
            "max_steps": 20,
            "warmup_steps": 0,
            "num_samples": 3000,
            "checkpoint_every": 10,
            "sample_every": 0,
            "eval_streams": 4,
            "num_sample_images": 2,
        },
        # CPU default, about 2.5 minutes on 2 cores. Chosen on tinyshakespeare (docs/lstm.md, docs/benchmarks.md): at
        # a fixed CPU budget more updates beat bigger batches, and 2 x 256 runs 2.75x the tokens/s of 2 x 512.
        # No dropout: best for runs of a few minutes; --dropout 0.1 wins at 10 minutes (1.466 vs 1.499 nats/char).
        "small": {
            "dropout": 0.0,
            "embedding_size": 64,
            "hidden_size": 256,
            "num_layers": 2,
            "seq_len": 32,
            "batch_size": 16,
            "lr": 3e-3,
            "max_steps": 3000,
            "checkpoint_every": 500,
            "sample_every": 1000,
        },
        # GPU: a 3 x 1024 LSTM (about 25M weights).
        "base": {
            "embedding_size": 1024,
            "hidden_size": 1024,
            "num_layers": 3,
            "dropout": 0.2,
            "seq_len": 256,
            "batch_size": 128,
            "max_steps": 20000,
            "warmup_steps": 500,
            "checkpoint_every": 2000,
            "sample_every": 2000,
        },
    }

    # ---- configuration -------------------------------------------------------------------------------------------
    def add_arguments(self, parser) -> None:
        parser.add_argument("--tokenizer", choices=tuple(LEVELS), default=None, help="character or word tokens")
        parser.add_argument("--vocab-size", type=int, default=None, help="vocabulary cap; rarer tokens -> <unk>")
        parser.add_argument("--cell", choices=("lstm", "gru"), default=None)
        parser.add_argument("--embedding-size", type=int, default=None)
        parser.add_argument("--hidden-size", type=int, default=None)
        parser.add_argument("--num-layers", type=int, default=None)
        parser.add_argument("--dropout", type=float, default=None)
        parser.add_argument(
            "--tie-embeddings",
            action="store_true",
            default=None,
            help="share the input embedding with the output head",
        )
        parser.add_argument("--seq-len", type=int, default=None, help="truncated BPTT length in tokens")
        parser.add_argument("--eval-streams", type=int, default=None, help="parallel streams for evaluation")

    def add_sample_arguments(self, parser) -> None:
        parser.add_argument("--prompt", default=None, help="text to continue (default: start at a new line)")
        parser.add_argument("--max-new-tokens", type=int, default=200)
        parser.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (always the likeliest)")
        parser.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens")
        parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold")

    def add_eval_arguments(self, parser) -> None:
        parser.add_argument("--eval-streams", type=int, default=None, help="parallel streams for evaluation")

    # ---- data ----------------------------------------------------------------------------------------------------
    def prepare_data(self, splits, config: dict[str, Any]) -> PreparedData:
        """Build the tokenizer from the train split, and cut both splits into TBPTT streams."""
        source = config["dataset"]
        train_rows, test_rows = list(splits["train"]["text"]), list(splits["test"]["text"])
        if not "\n".join(train_rows).strip():
            raise DataError(f"the training text of dataset {source!r} is empty (only blank lines)")
        seq_len, batch_size = int(config["seq_len"]), int(config["batch_size"])
        if seq_len < 1:
            raise ConfigError(f"--seq-len must be >= 1, got {seq_len}")
        if config.get("init_from"):  # fine-tuning: the model's own vocabulary, whatever the new text holds
            from transformers import AutoTokenizer

            from genkit.io import resolve

            tokenizer = AutoTokenizer.from_pretrained(str(resolve(config["init_from"])))
        else:
            try:
                tokenizer = build_tokenizer(train_rows, config["tokenizer"], int(config["vocab_size"]))
            except ValueError as err:
                raise ConfigError(str(err)) from None
        train_ids, test_ids = encode(tokenizer, train_rows), encode(tokenizer, test_rows)
        train = TokenStreams(train_ids, batch_size, seq_len)
        if len(train) == 0:
            raise DataError(
                f"the training text of dataset {source!r} has {train_ids.numel()} tokens: too few for "
                f"{batch_size} streams of {seq_len + 1} tokens; lower --batch-size or --seq-len"
            )
        info = DataInfo(
            task="text",
            dataset=source,
            extra={
                "tokenizer": tokenizer_level(tokenizer),
                "vocab_size": len(tokenizer),
                "train_tokens": train_ids.numel(),
                "test_tokens": test_ids.numel(),
                "train_characters": sum(map(len, train_rows)) + len(train_rows) - 1,
            },
        )
        streams = max(1, min(int(config["eval_streams"]), test_ids.numel() // (seq_len + 1)))
        return PreparedData(
            train=train,
            test=TokenStreams(test_ids, streams, seq_len),
            info=info,
            artefacts={"tokenizer": tokenizer, "test_text": "\n".join(test_rows)},
        )

    # ---- model ---------------------------------------------------------------------------------------------------
    def build(self, config: dict[str, Any], info: DataInfo) -> dict[str, torch.nn.Module]:
        try:
            model_config = LSTMConfig(
                vocab_size=int(info.extra["vocab_size"]),
                cell=config["cell"],
                embedding_size=int(config["embedding_size"]),
                hidden_size=int(config["hidden_size"]),
                num_hidden_layers=int(config["num_layers"]),
                dropout=float(config["dropout"]),
                tie_word_embeddings=bool(config["tie_embeddings"]),
            )
        except ValueError as err:
            raise ConfigError(f"invalid model settings: {err}") from None
        return {"model": LSTMForCausalLM(model_config)}

    def training_step(self, modules, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        inputs, labels = batch["input_ids"], batch["labels"]
        state = [ctx.carry[f"state{i}"] for i in range(2) if f"state{i}" in ctx.carry]
        # A new pass over the streams (chunk 0) starts from zeros; so does a run whose batch size changed.
        if not state or int(batch["chunk"][0]) == 0 or state[0].shape[1] != inputs.shape[0]:
            state = None
        out = modules["model"](input_ids=inputs, state=state, use_cache=True)
        for i, tensor in enumerate(out.state):
            ctx.carry[f"state{i}"] = tensor.detach()  # truncated BPTT: the state flows on, its gradient stops here
        loss = F.cross_entropy(out.logits.flatten(0, 1).float(), labels.flatten())
        return {"loss": loss}

    # ---- pipeline ------------------------------------------------------------------------------------------------
    def to_pipeline(self, modules, data: PreparedData, config: dict[str, Any]):
        return _text_generation_pipeline(modules["model"], data.artefacts["tokenizer"])

    def modules_from_pipeline(self, pipeline) -> dict[str, torch.nn.Module]:
        return {"model": pipeline.model}

    def save_pipeline(self, pipeline, path: str | Path) -> None:
        pipeline.model.save_pretrained(str(path), safe_serialization=True)
        pipeline.tokenizer.save_pretrained(str(path))

    def load_pipeline(self, path: str | Path):
        """A transformers ``TextGenerationPipeline``; never with remote code (the classes are registered by genkit)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(str(path), use_safetensors=True, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
        if not isinstance(model, LSTMForCausalLM):
            raise ConfigError(f"{path}: config.json describes a {type(model).__name__}, not a genkit LSTM model")
        return _text_generation_pipeline(model, tokenizer)

    def export(self, pipeline, out_dir: str | Path) -> None:
        """The model, tokenizer, model card and modeling source with ``auto_map``: a folder that stock transformers
        loads with ``trust_remote_code=True`` where genkit is not installed (genkit itself never enables it)."""
        out_dir, source = Path(out_dir), Path(pipeline.model.name_or_path)
        if out_dir.exists() and source.is_dir() and out_dir.resolve() == source.resolve():
            raise GenkitError("--out must be another folder than the model's own")
        self.save_pipeline(pipeline, out_dir)
        for name in _CARD_FILES:
            if source.is_dir() and (source / name).is_file():
                shutil.copy2(source / name, out_dir / name)
        add_remote_code(out_dir)

    def sample(
        self,
        pipeline,
        n: int,
        seed: int = 0,
        prompt: str | None = None,
        max_new_tokens: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> list[str]:
        """``n`` continuations of ``prompt`` (prompt included), or ``n`` texts that start at a new line."""
        if max_new_tokens < 1:
            raise GenkitError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
        if temperature < 0:
            raise GenkitError(f"--temperature must be >= 0 (0 = greedy), got {temperature}")
        if top_p is not None and not 0 < top_p <= 1:
            raise GenkitError(f"--top-p must be in (0, 1], got {top_p}")
        if prompt == "":
            raise GenkitError("the prompt is empty; leave --prompt out to start at a new line")
        model, tokenizer = pipeline.model, pipeline.tokenizer
        text = NEWLINE if prompt is None else prompt
        unknown = unknown_pieces(tokenizer, text)
        if unknown:
            warnings.warn(
                f"the prompt holds {len(unknown)} token(s) not in the model's vocabulary, read as <unk>: "
                f"{', '.join(map(repr, unknown[:10]))}",
                stacklevel=2,
            )
        input_ids = tokenizer(text, return_tensors="pt")["input_ids"].to(model.device)
        sampling = temperature > 0
        options: dict[str, Any] = {"do_sample": sampling, "top_k": top_k or 0, "top_p": top_p or 1.0}
        if sampling:
            options["temperature"] = temperature
        with torch.random.fork_rng(devices=[]):  # sampling must not move the trainer's random streams
            torch.manual_seed(seed)
            out = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                num_return_sequences=n if sampling else 1,  # greedy decoding gives one text: it is repeated
                **options,
            )
        texts = tokenizer.batch_decode(out[:, input_ids.shape[1] :], skip_special_tokens=True)
        texts = texts if sampling else texts * n
        return texts if prompt is None else [prompt + t for t in texts]

    @torch.no_grad()
    def evaluate(self, pipeline, data: PreparedData, config: dict[str, Any]) -> dict[str, Any]:
        """Held-out loss (nats/token), bits per character and perplexity, the state carried through the text."""
        model, tokenizer = pipeline.model.eval(), pipeline.tokenizer
        text = data.artefacts["test_text"]
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = torch.tensor(encoding["input_ids"], dtype=torch.long)
        chars = torch.tensor([end - start for start, end in encoding["offset_mapping"]], dtype=torch.long)
        seq_len = int(config["seq_len"])
        num_streams = max(1, min(int(config["eval_streams"]), ids.numel() // (seq_len + 1)))
        length = ids.numel() // num_streams
        if length < 2:
            raise DataError(f"the held-out text of {config['dataset']!r} has {ids.numel()} tokens; at least 2 needed")
        streams = ids[: num_streams * length].view(num_streams, length).to(model.device)
        nats, state = 0.0, None
        for start in range(0, length - 1, seq_len):
            inputs = streams[:, start : min(start + seq_len, length - 1)]
            targets = streams[:, start + 1 : start + 1 + inputs.shape[1]]
            out = model(input_ids=inputs, state=state, use_cache=True)
            state = out.state
            nats += F.cross_entropy(out.logits.flatten(0, 1).float(), targets.flatten(), reduction="sum").item()
        scored = num_streams * (length - 1)  # every token but the first of each stream is predicted once
        scored_chars = int(chars[: num_streams * length].view(num_streams, length)[:, 1:].sum())
        per_token = nats / scored
        level = tokenizer_level(tokenizer)
        unk = int((ids == tokenizer.unk_token_id).sum())
        return {
            "metrics": {
                "loss_nats_per_token": per_token,
                "bits_per_character": nats / math.log(2) / max(1, scored_chars),
                "perplexity": math.exp(per_token),
            },
            "protocol": {
                "split": "test",
                "split_rule": f"the last {config.get('test_fraction', 0.1):g} of the rows, in order "
                "(or the dataset's own test split)",
                "tokenizer": level,
                "vocab_size": len(tokenizer),
                "scored_tokens": scored,
                "scored_characters": scored_chars,
                "unknown_token_fraction": unk / max(1, ids.numel()),
                "streams": num_streams,
                "state": f"carried through each stream in chunks of {seq_len} tokens; each stream starts from "
                "zeros and its first token is not scored",
                "dropout": "off (eval mode)",
                "note": "bits_per_character = total nats / ln 2 / characters of the scored tokens"
                + ("" if level == "char" else " (unknown words count with their own length)"),
            },
        }

    def build_demo(self, pipeline):
        from genkit_lstm.demo import build_demo

        return build_demo(pipeline)


def tokenizer_level(tokenizer) -> str:
    """``"char"`` or ``"word"``: which of genkit's pre-tokenizers ``tokenizer`` uses."""
    pre = json.loads(tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer") or {}
    pattern = (pre.get("pattern") or {}).get("Regex")
    return next((level for level, regex in LEVELS.items() if regex == pattern), "unknown")


def unknown_pieces(tokenizer, text: str) -> list[str]:
    """The characters or words of ``text`` that the tokenizer maps to ``<unk>``, in order, without repeats."""
    pieces = tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text)
    vocab = tokenizer.get_vocab()
    return list(dict.fromkeys(piece for piece, _ in pieces if piece not in vocab))


def _text_generation_pipeline(model: LSTMForCausalLM, tokenizer):
    from transformers import pipeline

    model.eval()
    # Sampling defaults saved in generation_config.json: plain sampling from the model's distribution, 200 tokens.
    generation = model.generation_config
    generation.do_sample, generation.top_k, generation.max_new_tokens = True, 0, 200
    generation.pad_token_id = tokenizer.pad_token_id
    return pipeline("text-generation", model=model, tokenizer=tokenizer)
