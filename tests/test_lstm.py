"""The LSTM plugin: tokenizers, stateful generation, TBPTT training, save/load, export, evaluation, bad input."""

import codecs
import json
import math
import subprocess
import sys
import textwrap
import this

import pytest
import torch
import torch.nn.functional as F
from conftest import run_card_usage
from genkit_lstm import LSTMConfig, LSTMForCausalLM, build_tokenizer
from genkit_lstm.plugin import TokenStreams, encode
from safetensors.torch import load_file

import genkit
from genkit.cli.main import main
from genkit.data import load_splits
from genkit.errors import GenkitError

ZEN = codecs.decode(this.s, "rot13")  # the Zen of Python, ~850 characters of English that ship with Python


def tiny_model(cell="lstm", vocab_size=23, seed=0, **kwargs) -> LSTMForCausalLM:
    torch.manual_seed(seed)
    config = LSTMConfig(
        vocab_size=vocab_size, cell=cell, embedding_size=8, hidden_size=12, num_hidden_layers=2, dropout=0.0, **kwargs
    )
    return LSTMForCausalLM(config).eval()


def train(tmp_path, name, *args):
    out = tmp_path / name
    assert main(["train", "lstm", "--preset", "tiny", "--output", str(out), "--log-with", "none", *args]) == 0
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "zen.txt"
    path.write_text((ZEN + "\n") * 12)  # ~10k characters: 9k for training, 1k held out
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    return train(tmp_path_factory.mktemp("runs"), "char", "--dataset", str(corpus))


# ---- tokenizers ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", ["char", "word"])
def test_tokenizer_round_trip_and_unknown_tokens(tmp_path, level):
    from transformers import AutoTokenizer

    rows = ZEN.splitlines()
    tokenizer = build_tokenizer(rows, level, vocab_size=10000)
    text = "\n".join(rows)
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text  # spaces, punctuation and newlines come back exactly

    # "ß" is not in the Zen; neither is the word " zebras" (with its leading space, as word tokens carry it).
    novel, expected = ("Zen ß!", "Zen <unk>!") if level == "char" else ("Beautiful zebras!", "Beautiful<unk>!")
    novel_ids = tokenizer(novel)["input_ids"]
    decoded = tokenizer.decode(novel_ids)
    assert novel_ids.count(tokenizer.unk_token_id) == 1 and decoded == expected
    assert tokenizer.decode(novel_ids, skip_special_tokens=True) == expected.replace("<unk>", "")

    tokenizer.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(text)["input_ids"] == ids and reloaded.decode(novel_ids) == decoded
    assert reloaded.padding_side == "left"


def test_word_vocabulary_cap_is_deterministic_and_keeps_frequent_words():
    rows = ZEN.splitlines()
    capped = build_tokenizer(rows, "word", vocab_size=20)
    assert len(capped) == 20 and capped.get_vocab() == build_tokenizer(rows, "word", vocab_size=20).get_vocab()
    vocab = capped.get_vocab()
    assert {"<pad>", "<unk>", "\n", " is", " better", " than"} <= set(vocab)
    ids = capped(ZEN)["input_ids"]
    assert 0.2 < ids.count(capped.unk_token_id) / len(ids) < 0.9  # rare words fall back to <unk>


# ---- the model -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_incremental_steps_equal_full_recomputation(cell):
    model = tiny_model(cell)
    ids = torch.randint(2, 23, (3, 15), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids).logits
        out = model(ids[:, :5])
        steps, state = [out.logits], out.state
        for t in range(5, 15):
            out = model(ids[:, t : t + 1], state=state)
            steps.append(out.logits)
            state = out.state
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_generate_carries_the_state_one_token_per_step(cell):
    model = tiny_model(cell)
    prompt = torch.randint(2, 23, (2, 6), generator=torch.Generator().manual_seed(2))
    lengths = []
    model.rnn.register_forward_hook(lambda module, args, output: lengths.append(args[0].shape[1]))
    kwargs = {"max_new_tokens": 12, "do_sample": False, "return_dict_in_generate": True, "output_logits": True}
    stateful = model.generate(prompt, **kwargs)
    assert lengths == [6] + [1] * 11  # the prompt once, then one token per step: O(1) per new token
    lengths.clear()
    recomputed = model.generate(prompt, use_cache=False, **kwargs)
    assert lengths == list(range(6, 18))  # the reference re-runs the whole prefix every step
    assert torch.equal(stateful.sequences, recomputed.sequences)
    for a, b in zip(stateful.logits, recomputed.logits, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "options",
    [
        {"num_beams": 4, "do_sample": False},
        {"num_beams": 3, "do_sample": False, "num_return_sequences": 3, "length_penalty": 0.5},
        {"do_sample": True, "temperature": 0.7, "top_k": 5},
        {"do_sample": True, "top_p": 0.8, "repetition_penalty": 1.3},
        {"do_sample": False},
        {"do_sample": True, "temperature": 1.3, "num_return_sequences": 2},
    ],
    ids=["beam", "beam-n3", "top-k", "top-p-repetition", "greedy", "temperature-n2"],
)
def test_decoding_strategies_match_full_recomputation(options):
    # Beam search must reorder the state rows along with the beams; sampling must see the same distributions.
    model = tiny_model()
    prompt = torch.randint(2, 23, (2, 4), generator=torch.Generator().manual_seed(3))
    results = []
    for use_cache in (True, False):
        torch.manual_seed(0)
        results.append(model.generate(prompt, max_new_tokens=10, use_cache=use_cache, **options))
    assert torch.equal(results[0], results[1])


def test_generate_left_padded_prompts_and_streamer():
    """The one-token fast path of generate(): a left-padded batch decodes each row as if alone, and a streamer
    receives the prompt, then every new token, in order."""
    from transformers.generation.streamers import BaseStreamer

    class Collect(BaseStreamer):
        def __init__(self):
            self.chunks, self.ended = [], False

        def put(self, value):
            self.chunks.append(value.reshape(-1).clone())

        def end(self):
            self.ended = True

    model = tiny_model()
    batch = torch.tensor([[5, 6, 7, 8, 9], [0, 0, 0, 10, 11]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 0, 1, 1]])
    kwargs = {"max_new_tokens": 9, "do_sample": False, "pad_token_id": 0}
    batched = model.generate(batch, attention_mask=mask, **kwargs)
    for row, prompt in enumerate((batch[:1], batch[1:, 3:])):
        alone = model.generate(prompt, **kwargs)
        assert torch.equal(batched[row, 5:], alone[0, prompt.shape[1] :])
    streamer = Collect()
    tokens = model.generate(batch[1:, 3:], streamer=streamer, **kwargs)
    assert streamer.ended and torch.equal(streamer.chunks[0], batch[1, 3:])
    assert torch.equal(torch.cat(streamer.chunks[1:]), tokens[0, 2:]) and len(streamer.chunks) == 10


def test_left_padded_batch_equals_rows_alone():
    model = tiny_model()
    a, b = torch.tensor([[5, 6, 7, 8, 9]]), torch.tensor([[10, 11]])
    batch = torch.tensor([[5, 6, 7, 8, 9], [0, 0, 0, 10, 11]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 0, 1, 1]])
    with torch.no_grad():
        out = model(batch, attention_mask=mask)
        alone = [model(a), model(b)]
    torch.testing.assert_close(out.logits[0], alone[0].logits[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(out.logits[1, 3:], alone[1].logits[0], rtol=0, atol=1e-5)
    for got, h_a, h_b in zip(out.state, alone[0].state, alone[1].state, strict=True):
        torch.testing.assert_close(got, torch.cat([h_a, h_b], 1), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="left padding"):
        model(batch, attention_mask=torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 1, 1]]))


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="cell"):
        LSTMConfig(cell="rnn")
    with pytest.raises(ValueError, match="embedding_size == hidden_size"):
        LSTMConfig(embedding_size=8, hidden_size=16, tie_word_embeddings=True)
    config = LSTMConfig(vocab_size=11, embedding_size=6, hidden_size=6, num_hidden_layers=1, tie_word_embeddings=True)
    model = LSTMForCausalLM(config)
    assert model.lm_head.weight is model.embeddings.weight


# ---- TBPTT data ------------------------------------------------------------------------------------------------
def test_token_streams_continue_row_by_row():
    ids = torch.arange(103)
    data = TokenStreams(ids, num_streams=4, seq_len=5)
    assert data.streams.shape == (4, 25) and len(data) == 4 * 4  # (25 - 1) // 5 chunks per stream
    loader = torch.utils.data.DataLoader(data, batch_size=4, shuffle=False)
    batches = list(loader)
    for prev, nxt in zip(batches, batches[1:], strict=False):
        assert torch.equal(nxt["input_ids"][:, 0], prev["labels"][:, -1])  # row i continues row i
        assert torch.equal(nxt["input_ids"][:, 0], prev["input_ids"][:, -1] + 1)
    assert [int(b["chunk"][0]) for b in batches] == [0, 1, 2, 3]
    assert torch.equal(batches[0]["input_ids"][:, 0], torch.tensor([0, 25, 50, 75]))


def test_encode_joins_rows_with_newlines(monkeypatch):
    import importlib

    lstm_plugin = importlib.import_module("genkit_lstm.plugin")  # the module (the package's `plugin` is the object)

    rows = ["ab", "", "ba"]
    tokenizer = build_tokenizer(rows, "char", 100)
    ids = encode(tokenizer, rows)
    assert ids.tolist() == tokenizer("ab\n\nba")["input_ids"] and ids.dtype == torch.int32  # 4 bytes a token
    # Encoded in batches of rows, the joins between batches included: the same ids.
    rows = ["", "to be", "or not", "", "to be"] * 3
    tokenizer = build_tokenizer(rows, "word", 100)
    whole = encode(tokenizer, rows)
    monkeypatch.setattr(lstm_plugin, "ENCODE_ROWS", 2)
    assert torch.equal(encode(tokenizer, rows), whole)
    assert whole.tolist() == tokenizer("\n".join(rows))["input_ids"]
    batch = TokenStreams(whole, 2, 3)[0]
    assert batch["input_ids"].dtype == torch.long  # what the embedding takes


def test_tokens_are_cached_on_disk_and_memory_mapped(tmp_path, monkeypatch):
    """The first preparation writes the tokenizer and int32 ids under the datasets cache; a second maps them without
    reading the text (no tokenizer is built), with the same ids and figures; other tokenizer settings get their own
    entry, and data without a fingerprint is encoded alike into memory."""
    import importlib

    import numpy as np

    lstm_plugin = importlib.import_module("genkit_lstm.plugin")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text((ZEN + "\n") * 30)
    plugin = genkit.get_plugin("lstm")
    from genkit.config.resolve import resolve_config

    config = resolve_config(plugin, "tiny", {"dataset": str(corpus)})
    splits = load_splits(str(corpus), "text")
    first = plugin.prepare_data(splits, dict(config))
    built = []
    real = lstm_plugin.build_tokenizer
    monkeypatch.setattr(lstm_plugin, "build_tokenizer", lambda *a: built.append(1) or real(*a))
    again = plugin.prepare_data(load_splits(str(corpus), "text"), dict(config))
    assert not built  # read from the cache
    folder = lstm_plugin._token_cache_folder(
        splits, {"tokenizer": config["tokenizer"], "vocab_size": int(config["vocab_size"])}
    )
    assert (folder / "train.bin").stat().st_size == 4 * first.info.extra["train_tokens"]  # int32 on disk
    assert isinstance(lstm_plugin._read_token_cache(folder)[1]["train"], np.memmap)
    assert torch.equal(first.train.streams, again.train.streams) and torch.equal(
        first.test.streams, again.test.streams
    )
    assert first.info == again.info and first.info.extra["train_characters"] == len("\n".join(splits["train"]["text"]))
    assert first.artefacts["tokenizer"].get_vocab() == again.artefacts["tokenizer"].get_vocab()
    word = plugin.prepare_data(splits, {**config, "tokenizer": "word"})
    assert built and word.info.extra["tokenizer"] == "word"  # another key: built again
    monkeypatch.setattr(lstm_plugin, "_token_cache_folder", lambda *a: None)
    unkeyed = plugin.prepare_data(splits, dict(config))
    assert torch.equal(unkeyed.train.streams, first.train.streams)


# ---- training, saving, loading -----------------------------------------------------------------------------------
def test_trained_folder_has_native_files_and_loads_bit_exact(trained, tmp_path):
    files = {p.name for p in trained.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "genkit.json",
        "README.md",
        "samples.txt",
        "eval_results.json",
    } <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl"))]
    assert json.loads((trained / "config.json").read_text())["model_type"] == "genkit_lstm"

    pipe = genkit.load(trained)
    assert type(pipe).__name__ == "TextGenerationPipeline" and isinstance(pipe.model, LSTMForCausalLM)
    saved = load_file(trained / "model.safetensors")
    assert saved.keys() == pipe.model.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in pipe.model.state_dict().items())

    plugin = genkit.get_plugin("lstm")
    plugin.save_pipeline(pipe, tmp_path / "again")
    again = plugin.load_pipeline(tmp_path / "again")
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in pipe.model.state_dict().items())
    ids = pipe.tokenizer("Beautiful is", return_tensors="pt")["input_ids"]
    assert torch.equal(pipe.model(ids).logits, again.model(ids).logits)
    assert again.tokenizer.get_vocab() == pipe.tokenizer.get_vocab()


def test_plain_transformers_after_import_genkit(trained):
    # A fresh interpreter: `import genkit` alone must register the model with transformers' Auto classes.
    script = f"""
        import json
        import genkit
        from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
        folder = {str(trained)!r}
        assert type(AutoModelForCausalLM.from_pretrained(folder)).__name__ == "LSTMForCausalLM"
        assert AutoTokenizer.from_pretrained(folder).decode([]) == ""
        generator = pipeline("text-generation", model=folder)
        out = generator(["Beautiful is", "Flat"], max_new_tokens=7, do_sample=False, batch_size=2)
        print(json.dumps([out[0][0]["generated_text"], out[1][0]["generated_text"]]))
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    first, second = json.loads(result.stdout.strip().splitlines()[-1])
    pipe = genkit.load(trained)
    expected = [pipe(p, max_new_tokens=7, do_sample=False)[0]["generated_text"] for p in ("Beautiful is", "Flat")]
    assert first.startswith("Beautiful is") and [first, second] == expected  # batched (left-padded) == one by one


NO_GENKIT = """
import importlib.util

assert importlib.util.find_spec("genkit") is None, "genkit must not be importable here"
"""


def test_remote_code_export_loads_without_genkit(trained, tmp_path, genkit_free_python):
    out = tmp_path / "exported"
    assert main(["export", str(trained), "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_lstm.LSTMForCausalLM"
    files = {p.name for p in out.iterdir()}
    assert {"modeling_lstm.py", "configuration_lstm.py", "README.md", "tokenizer.json"} <= files
    script = NO_GENKIT + textwrap.dedent(f"""
        import torch
        from safetensors.torch import save_file
        from transformers import AutoModelForCausalLM, AutoTokenizer
        folder = {str(out)!r}
        try:
            AutoModelForCausalLM.from_pretrained(folder)  # remote code is never enabled by default
        except ValueError as err:
            assert "trust_remote_code" in str(err)
        else:
            raise SystemExit("loaded custom code without trust_remote_code=True")
        model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        ids = tokenizer("Beautiful is", return_tensors="pt")["input_ids"]
        generated = model.generate(ids, max_new_tokens=10, do_sample=False)
        save_file({{"logits": model(ids).logits.contiguous(), "generated": generated}}, {str(tmp_path / "out.st")!r})
        print(type(model).__module__)
    """)
    env_home = tmp_path / "hf"
    result = subprocess.run(
        [str(genkit_free_python), "-c", script],  # a virtual environment without genkit, outside the checkout
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,  # transformers asks "run the custom code? [y/N]" on a terminal: answer nothing
        env={**_env(), "HF_HOME": str(env_home)},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1].startswith("transformers_modules.")  # the folder's own code ran
    remote = load_file(tmp_path / "out.st")
    pipe = genkit.load(trained)
    ids = pipe.tokenizer("Beautiful is", return_tensors="pt")["input_ids"]
    assert torch.equal(remote["logits"], pipe.model(ids).logits)
    assert torch.equal(remote["generated"], pipe.model.generate(ids, max_new_tokens=10, do_sample=False))


def _env():
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}


def test_resume_equals_an_uninterrupted_run(tmp_path, corpus):
    common = [
        "--dataset",
        str(corpus),
        "--max-steps",
        "8",
        "--checkpoint-every",
        "4",
        "--no-eval",
        "--num-sample-images",
        "1",
    ]
    whole = train(tmp_path, "whole", *common)
    resumed = train(tmp_path, "resumed", *common, "--resume", str(whole / "checkpoint-4"))
    state = json.loads((resumed / "checkpoint-8" / "trainer_state.json").read_text())
    assert state["step"] == 8
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # The carried hidden state is part of the checkpoint (and matters: it is not zeros).
    carry = load_file(whole / "checkpoint-4" / "carry.safetensors")
    assert carry and all(t.abs().sum() > 0 for t in carry.values())


def test_word_level_gru_with_tied_embeddings(tmp_path, corpus):
    out = train(
        tmp_path,
        "word",
        "--dataset",
        str(corpus),
        "--tokenizer",
        "word",
        "--vocab-size",
        "40",
        "--cell",
        "gru",
        "--embedding-size",
        "32",
        "--tie-embeddings",
        "--max-steps",
        "4",
        "--sample-every",
        "2",
    )
    assert (out / "samples" / "step-000002.txt").read_text().strip()  # text samples during training
    pipe = genkit.load(out)
    assert pipe.model.config.cell == "gru" and pipe.model.config.tie_word_embeddings and len(pipe.tokenizer) == 40
    assert pipe.model.lm_head.weight is pipe.model.embeddings.weight
    evaluation = json.loads((out / "eval_results.json").read_text())
    assert evaluation["protocol"]["tokenizer"] == "word" and evaluation["protocol"]["unknown_token_fraction"] > 0


def test_fine_tuning_keeps_the_models_vocabulary(tmp_path, trained):
    other = tmp_path / "other.txt"
    other.write_text("Errors should never pass silently, unless explicitly silenced.\n" * 40)
    out = train(tmp_path, "tuned", "--dataset", str(other), "--init-from", str(trained), "--max-steps", "3")
    before, after = genkit.load(trained), genkit.load(out)
    assert after.tokenizer.get_vocab() == before.tokenizer.get_vocab()  # not rebuilt from the new text
    assert not torch.equal(after.model.lm_head.weight, before.model.lm_head.weight)  # and it trained
    assert json.loads((out / "genkit.json").read_text())["config"]["init_from"] == str(trained)


def test_builtin_corpus_runs_out_of_the_box(tmp_path):
    out = train(tmp_path, "stdlib", "--max-steps", "2", "--no-eval")
    meta = json.loads((out / "genkit.json").read_text())
    assert meta["config"]["dataset"] == "stdlib" and meta["data"]["extra"]["vocab_size"] > 50


# ---- evaluation --------------------------------------------------------------------------------------------------
def test_eval_matches_a_direct_computation_and_updates_the_card(trained, corpus, capsys):
    assert main(["eval", str(trained), "--eval-streams", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics, protocol = result["metrics"], result["protocol"]
    assert protocol["streams"] == 1 and protocol["split"] == "test"
    # One stream: the loss over the whole held-out text in one forward pass, computed here independently.
    pipe = genkit.load(trained)
    held_out = "\n".join(load_splits(str(corpus), "text")["test"]["text"])
    ids = pipe.tokenizer(held_out, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        nats = F.cross_entropy(pipe.model(ids[:, :-1]).logits[0], ids[0, 1:]).item()
    assert protocol["scored_tokens"] == ids.shape[1] - 1
    assert metrics["loss_nats_per_token"] == pytest.approx(nats, rel=1e-4)
    assert metrics["bits_per_character"] == pytest.approx(nats / math.log(2), rel=1e-4)  # char level
    assert metrics["perplexity"] == pytest.approx(math.exp(nats), rel=1e-4)
    card = (trained / "README.md").read_text()
    assert f"value: {metrics['loss_nats_per_token']}" in card and "split: test" in card


def test_model_card_usage_runs(trained, capsys):
    run_card_usage(trained)
    printed = capsys.readouterr().out
    assert printed.startswith("The") and len(printed) > 100  # the prompt and up to 200 new characters


# ---- bad input ---------------------------------------------------------------------------------------------------
def test_empty_or_too_short_text_is_a_clear_error(tmp_path, capsys):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n  \n")
    assert main(["train", "lstm", "--preset", "tiny", "--dataset", str(blank), "--output", str(tmp_path / "x")]) == 2
    assert "empty" in capsys.readouterr().err
    short = tmp_path / "short.txt"
    short.write_text("one line\nanother\n")
    assert main(["train", "lstm", "--preset", "tiny", "--dataset", str(short), "--output", str(tmp_path / "y")]) == 2
    assert "lower --batch-size or --seq-len" in capsys.readouterr().err


def test_genkit_sample_prints_text_or_writes_a_file(trained, tmp_path, capsys):
    from transformers.utils import logging as transformers_logging

    transformers_logging.enable_progress_bar()
    capsys.readouterr()
    args = ["sample", str(trained), "--prompt", "Beautiful", "--max-new-tokens", "30", "--seed", "3"]
    assert main(args) == 0
    printed, err = capsys.readouterr()
    assert printed.startswith("Beautiful") and "----" not in printed  # one text by default, on stdout
    assert "Loading weights" not in err and "it/s]" not in err, err  # no bar from transformers' from_pretrained
    assert main([*args, "--n", "2", "--out", str(tmp_path / "two.txt")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 2 samples to {tmp_path / 'two.txt'}"
    first, second = (tmp_path / "two.txt").read_text().split("\n\n----\n\n")
    assert first.startswith("Beautiful") and second.startswith("Beautiful") and first != second


def test_sampling_arguments_and_unknown_prompt_characters(trained):
    plugin, pipe = genkit.get_plugin("lstm"), genkit.load(trained)
    texts = plugin.sample(pipe, 3, seed=1, prompt="Beautiful", max_new_tokens=15, top_k=5, top_p=0.9)
    assert len(texts) == 3 and all(t.startswith("Beautiful") for t in texts)
    assert texts == plugin.sample(pipe, 3, seed=1, prompt="Beautiful", max_new_tokens=15, top_k=5, top_p=0.9)
    greedy = plugin.sample(pipe, 2, prompt="Beautiful", max_new_tokens=15, temperature=0)
    assert greedy[0] == greedy[1]
    with pytest.warns(UserWarning, match="1 token.*not in the model's vocabulary.*'ß'"):
        (text,) = plugin.sample(pipe, 1, prompt="Straße", max_new_tokens=5)
    assert text.startswith("Straße")  # unknown characters are read as <unk>, and the prompt is returned as given
    with pytest.raises(GenkitError, match="max-new-tokens"):
        plugin.sample(pipe, 1, max_new_tokens=0)
    with pytest.raises(GenkitError, match="prompt is empty"):
        plugin.sample(pipe, 1, prompt="")
    with pytest.raises(ValueError, match="sequence >= 1"):
        pipe.model(torch.zeros(1, 0, dtype=torch.long))


NEW_TEXT = "Naïve façades fall; üniform ränge wins.\n" * 60  # characters the Zen of Python does not have


def test_fine_tuning_reports_the_text_the_base_vocabulary_misses(tmp_path, trained):
    other = tmp_path / "other.txt"
    other.write_text(NEW_TEXT)
    with pytest.warns(UserWarning, match=r"tokens \(\d+\.\d%; \d+ distinct\) are not in the base model's vocabulary"):
        out = train(tmp_path, "tuned", "--dataset", str(other), "--init-from", str(trained), "--max-steps", "2")
    assert genkit.load(out).tokenizer.get_vocab() == genkit.load(trained).tokenizer.get_vocab()


def test_extend_vocab_grows_only_new_rows(tmp_path, trained):
    from genkit.config.resolve import resolve_config
    from genkit.data import load_splits
    from genkit.plugin.registry import get_plugin

    other = tmp_path / "other.txt"
    other.write_text(NEW_TEXT)
    plugin = get_plugin("lstm")
    config = resolve_config(plugin, "tiny", {"dataset": str(other), "extend_vocab": True}, init_from=str(trained))
    splits = load_splits(str(other), "text", seed=0)
    with pytest.warns(UserWarning, match=r"--extend-vocab: added \d+ tokens"):
        data = plugin.prepare_data(splits, config)
    base = genkit.load(trained)
    tokenizer, old_vocab = data.artefacts["tokenizer"], base.tokenizer.get_vocab()
    assert all(tokenizer.get_vocab()[t] == i for t, i in old_vocab.items())  # every old id kept
    assert {"ï", "ç", "ü", "ä"} <= set(tokenizer.get_vocab()) and "ï" not in old_vocab
    assert tokenizer.unk_token_id not in tokenizer(NEW_TEXT)["input_ids"]
    model = plugin.modules_from_base(trained, data)["model"]
    n, m = len(old_vocab), len(tokenizer)
    assert model.config.vocab_size == m > n
    old_model = base.model
    assert torch.equal(model.embeddings.weight[:n], old_model.embeddings.weight)  # old rows untouched
    assert torch.equal(model.lm_head.weight[:n], old_model.lm_head.weight)
    assert torch.equal(model.lm_head.bias[:n], old_model.lm_head.bias)
    new, old = model.embeddings.weight[n:].detach(), old_model.embeddings.weight.detach()
    spread = (old - old.mean(0)).norm(dim=1).max()
    assert torch.isfinite(new).all() and ((new - old.mean(0)).norm(dim=1) < 3 * spread).all()  # near the old rows


def test_extend_vocab_end_to_end(tmp_path, trained):
    other = tmp_path / "other.txt"
    other.write_text(NEW_TEXT)
    with pytest.warns(UserWarning, match="--extend-vocab"):
        out = train(tmp_path, "ext", "--dataset", str(other), "--init-from", str(trained), "--extend-vocab")
    pipe = genkit.load(out)
    assert pipe.model.config.vocab_size == len(pipe.tokenizer) > len(genkit.load(trained).tokenizer)
    assert pipe.tokenizer.decode(pipe.tokenizer("façade")["input_ids"]) == "façade"


def test_training_output_has_no_library_progress_bars(tmp_path, corpus, capsys):
    """transformers' save_pretrained draws a 'Writing model shards' bar even for one file; the final save hides it
    (and the library's own setting is put back)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.enable_progress_bar()
    capsys.readouterr()
    train(tmp_path, "quiet", "--dataset", str(corpus), "--no-eval")
    out, err = capsys.readouterr()
    assert "trained 20 steps" in out + err  # the capture sees the command's own lines
    assert "Writing model shards" not in err and "it/s]" not in err, err
    assert transformers_logging.is_progress_bar_enabled()
