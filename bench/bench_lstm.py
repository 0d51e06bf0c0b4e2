"""LSTM benchmarks: quality at a fixed CPU time budget, and generate() speed against a plain PyTorch loop.

    python bench/bench_lstm.py quality [--minutes 1 5 10] [--data FILE] [-- TRAIN FLAGS...]
    python bench/bench_lstm.py speed [MODEL_DIR] [--tokens 100 1000] [--repeats 3] [--recompute]

``quality`` trains with genkit's own Trainer (the ``small`` preset plus any ``genkit train lstm`` flags given after
``--``) on a text file, character level, held-out split = the last 10% of the lines. It first times a few training
steps to choose ``--max-steps`` so that the run lasts the largest budget, saves a checkpoint every "first budget"
worth of steps, and afterwards evaluates the checkpoints closest to each budget with the plugin's own evaluation
(the same code as ``genkit eval``). Times are wall-clock seconds of the training loop, measured inside the loop
(data preparation, model building and the evaluation are outside; checkpoint saving is inside).

``speed`` times ``model.generate()`` (sampling, temperature 1, no top-k) for 100 and 1,000 new tokens after a
one-token prompt, and the same sampling written as a plain PyTorch loop calling the same model's forward (so the
ratio is generate()'s own overhead); ``--recompute`` also times ``generate(use_cache=False)``, which re-runs the
whole prefix for every token. It also measures transformers' own per-token cost, the floor of that ratio: both
are timed again with the model's forward replaced by one that returns a stored output at once, and the difference
per token is what generate() spends outside the model (logits copy, processors, stopping criteria, growing
``input_ids``, stop checks); the best reachable ratio is then (loop + that) / loop. Without MODEL_DIR it uses a
randomly initialized model of the ``small`` preset (speed does not depend on the weights).

Both print JSON and Markdown rows for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from machine import machine

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare" / "input.txt"


# ---- quality at a time budget ----------------------------------------------------------------------------------
def quality(args) -> dict:
    import genkit
    from genkit.cli.main import build_parser
    from genkit.config.resolve import resolve_config
    from genkit.training.trainer import Trainer

    base = genkit.get_plugin("lstm")

    class TimedLSTMPlugin(type(base)):
        """The LSTM plugin, unchanged, plus a clock: when each optimizer step began and ended."""

        def __init__(self):
            self.step_end: dict[int, float] = {}
            self.start: float | None = None

        def training_step(self, modules, batch, ctx):
            now = time.perf_counter()
            if self.start is None:
                self.start = now
            self.step_end[ctx.step] = now  # ctx.step updates are done (and checkpointed) at this point
            return super().training_step(modules, batch, ctx)

    plugin = TimedLSTMPlugin()
    out_dir = Path(args.output or tempfile.mkdtemp(prefix="bench-lstm-"))
    flags = build_parser(plugin, "train").parse_args(["train", "lstm", *args.train_flags])
    overrides = {
        k: v for k, v in vars(flags).items() if k not in ("command", "plugin", "preset", "resume", "init_from")
    }
    overrides.pop("overwrite")
    config = resolve_config(plugin, flags.preset, overrides)
    config.update(
        dataset=str(args.data),
        output=str(out_dir),
        tokenizer="char",
        log_with="none",
        eval=False,
        sample_every=0,
        num_sample_images=2,
        checkpoints_total_limit=0,
    )

    # 1. Calibrate: seconds per optimizer step of this configuration on this machine, now.
    seconds_per_step = calibrate(TimedLSTMPlugin, dict(config))
    budgets = sorted(args.minutes)
    steps_first = max(1, round(budgets[0] * 60 / seconds_per_step))
    config["checkpoint_every"] = steps_first
    config["max_steps"] = round(budgets[-1] / budgets[0]) * steps_first
    print(f"calibration: {seconds_per_step:.3f} s/step -> {config['max_steps']} steps, checkpoint every {steps_first}")

    # 2. Train with genkit's Trainer.
    load_before = os.getloadavg()
    trainer = Trainer(plugin, config)
    trainer.train()
    load_after = os.getloadavg()

    # 3. Evaluate the checkpoints nearest each budget with the plugin's evaluation.
    pipeline = trainer.pipeline()
    # Seconds of the training loop after s updates: when update s+1 began; the last one ends with the loop.
    elapsed = {s: plugin.step_end[s] - plugin.start for s in plugin.step_end if s % steps_first == 0 and s > 0}
    elapsed[trainer.step] = json.loads((out_dir / "genkit.json").read_text())["train_seconds"]
    results = []
    for minutes in budgets:
        step = min(elapsed, key=lambda s: abs(elapsed[s] - minutes * 60))
        load_weights(pipeline.model, out_dir / f"checkpoint-{step}" / "model-model.safetensors")
        evaluation = plugin.evaluate(pipeline, trainer.data, config)
        results.append(
            {
                "budget_minutes": minutes,
                "step": step,
                "train_seconds": round(elapsed[step], 1),
                "tokens_seen": step * int(config["batch_size"]) * int(config["seq_len"]),
                **evaluation["metrics"],
            }
        )
        print(json.dumps(results[-1]))
    return {
        "machine": machine(),
        "load_average_before_training": load_before,
        "load_average_after_training": load_after,
        "data": str(args.data),
        "data_info": trainer.data.info.extra,
        "evaluation_protocol": evaluation["protocol"],
        "config": {k: config[k] for k in sorted(config) if k in base.defaults or k in ("max_steps", "preset")},
        "seconds_per_step_calibrated": seconds_per_step,
        "results": results,
        "output": str(out_dir),
    }


def calibrate(plugin_class, config: dict, steps: int = 30) -> float:
    """Median seconds per optimizer update of genkit's Trainer on this configuration, now (a short throwaway run)."""
    from genkit.training.trainer import Trainer

    plugin = plugin_class()
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(plugin, {**config, "output": tmp, "max_steps": steps, "checkpoint_every": 0}).train()
    starts = [plugin.step_end[s] for s in sorted(plugin.step_end)]
    return statistics.median(b - a for a, b in zip(starts[5:], starts[6:], strict=False))


def load_weights(model, file: Path) -> None:
    from safetensors.torch import load_model

    load_model(model, str(file))


# ---- generation speed --------------------------------------------------------------------------------------------
def speed(args) -> dict:
    import genkit

    plugin = genkit.get_plugin("lstm")
    if args.model:
        model = genkit.load(args.model).model
        source = args.model
    else:
        from genkit.plugin import DataInfo

        config = {**plugin.defaults, **plugin.presets["small"]}
        model = plugin.build(config, DataInfo(task="text", dataset="none", extra={"vocab_size": 65}))["model"]
        source = "random weights, small preset, 65-token vocabulary"
    model.eval()
    model.generation_config.pad_token_id = 0
    prompt = torch.tensor([[2]])
    rows = []
    for n in args.tokens:
        row = {"new_tokens": n}
        row["generate_tokens_per_s"] = n / _best(args.repeats, lambda n=n: _generate(model, prompt, n, True))
        row["plain_loop_tokens_per_s"] = n / _best(args.repeats, lambda n=n: _plain_loop(model, prompt, n))
        row["overhead_generate_vs_loop"] = row["plain_loop_tokens_per_s"] / row["generate_tokens_per_s"]
        row["machinery_us_per_token"] = _machinery_per_token(model, prompt, n, args.repeats) * 1e6
        loop_s = 1 / row["plain_loop_tokens_per_s"]
        row["floor_generate_vs_loop"] = (loop_s + row["machinery_us_per_token"] * 1e-6) / loop_s
        first, last = _step_times(model, prompt, n)
        row["ms_per_token_first_100"], row["ms_per_token_last_100"] = first * 1e3, last * 1e3
        if args.recompute:
            row["recompute_tokens_per_s"] = n / _best(1, lambda n=n: _generate(model, prompt, n, False))
        if args.onednn:
            with _onednn_for_one_step():
                row["onednn_tokens_per_s"] = n / _best(args.repeats, lambda n=n: _generate(model, prompt, n, True))
        rows.append(row)
        print(json.dumps(row))
    return {"machine": machine(), "model": source, "config": model.config.to_diff_dict(), "results": rows}


@contextlib.contextmanager
def _onednn_for_one_step():
    """Let one-token forwards use oneDNN's LSTM kernel too (the model switches it off for them on CPU)."""
    from genkit_lstm import modeling_lstm

    saved = modeling_lstm._without_onednn
    modeling_lstm._without_onednn = contextlib.nullcontext
    try:
        yield
    finally:
        modeling_lstm._without_onednn = saved


def _best(repeats: int, fn) -> float:
    """Median wall time of ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def _generate(model, prompt, n: int, use_cache: bool):
    torch.manual_seed(0)
    out = model.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=True, top_k=0, use_cache=use_cache)
    assert out.shape[1] == prompt.shape[1] + n


@torch.no_grad()
def _step_times(model, prompt, n: int) -> tuple[float, float]:
    """Median seconds between consecutive generate() steps over the first and the last 100 of ``n`` new tokens."""
    from transformers import LogitsProcessor, LogitsProcessorList

    class Clock(LogitsProcessor):
        def __init__(self):
            self.times = []

        def __call__(self, input_ids, scores):
            self.times.append(time.perf_counter())
            return scores

    clock = Clock()
    model.generate(
        prompt,
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=True,
        top_k=0,
        logits_processor=LogitsProcessorList([clock]),
    )
    gaps = [b - a for a, b in zip(clock.times, clock.times[1:], strict=False)]
    return statistics.median(gaps[:100]), statistics.median(gaps[-100:])


def _machinery_per_token(model, prompt, n: int, repeats: int) -> float:
    """Seconds per token that generate() spends outside the model's forward, against the plain loop's sampling."""
    with torch.no_grad():
        output = model(input_ids=prompt)  # a real output (logits and state) for the stand-in forward to return
    real = model.forward
    model.forward = lambda *args, **kwargs: output
    try:
        generate = _best(repeats, lambda: _generate(model, prompt, n, True))
        loop = _best(repeats, lambda: _plain_loop(model, prompt, n))
    finally:
        del model.forward  # the instance attribute goes; the class's forward is back
    assert model.forward.__func__ is real.__func__
    return (generate - loop) / n


@torch.no_grad()
def _plain_loop(model, prompt, n: int):
    """The same sampling with none of generate()'s machinery: forward one token, softmax, multinomial, repeat."""
    torch.manual_seed(0)
    out = model(input_ids=prompt)
    tokens = []
    for _ in range(n):
        token = torch.multinomial(torch.softmax(out.logits[:, -1].float(), dim=-1), 1)
        tokens.append(token)
        out = model(input_ids=token, state=out.state)
    assert len(tokens) == n


# ---- command line ---------------------------------------------------------------------------------------------------
def markdown(kind: str, report: dict) -> str:
    if kind == "quality":
        lines = [
            "| budget | steps | tokens seen | train s | val nats/char | bits/char | perplexity |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in report["results"]:
            lines.append(
                f"| {r['budget_minutes']} min | {r['step']} | {r['tokens_seen']:,} | {r['train_seconds']} | "
                f"{r['loss_nats_per_token']:.3f} | {r['bits_per_character']:.3f} | {r['perplexity']:.2f} |"
            )
    else:
        lines = [
            "| new tokens | generate() tok/s | ms/token, first 100 | ms/token, last 100 | plain loop tok/s "
            "| generate / loop | transformers' own µs/token | floor of generate / loop "
            "| generate(use_cache=False) tok/s | generate(), oneDNN one-token steps, tok/s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in report["results"]:
            recompute = f"{r['recompute_tokens_per_s']:.0f}" if "recompute_tokens_per_s" in r else "-"
            onednn = f"{r['onednn_tokens_per_s']:.0f}" if "onednn_tokens_per_s" in r else "-"
            lines.append(
                f"| {r['new_tokens']:,} | {r['generate_tokens_per_s']:.0f} | {r['ms_per_token_first_100']:.2f} | "
                f"{r['ms_per_token_last_100']:.2f} | {r['plain_loop_tokens_per_s']:.0f} | "
                f"{r['overhead_generate_vs_loop']:.2f} | {r['machinery_us_per_token']:.0f} | "
                f"{r['floor_generate_vs_loop']:.2f} | {recompute} | {onednn} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality", help="validation loss after fixed training times")
    q.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 10])
    q.add_argument("--data", type=Path, default=DEFAULT_DATA)
    q.add_argument("--output", default=None, help="run folder (default: a new temporary folder)")
    q.add_argument("--json", default=None, help="also write the report here")
    q.add_argument("train_flags", nargs=argparse.REMAINDER, help="after --: flags of `genkit train lstm`")
    s = sub.add_parser("speed", help="generate() tokens/s against a plain PyTorch loop")
    s.add_argument("model", nargs="?", default=None)
    s.add_argument("--tokens", type=int, nargs="+", default=[100, 1000])
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--recompute", action="store_true", help="also time generate(use_cache=False)")
    s.add_argument("--onednn", action="store_true", help="also time generate() with oneDNN on for one-token steps")
    s.add_argument("--json", default=None, help="also write the report here")
    for p in (q, s):
        p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.command == "quality":
        args.train_flags = [f for f in args.train_flags if f != "--"]
        report = quality(args)
    else:
        report = speed(args)
    print(json.dumps(report, indent=2, default=str))
    print(markdown(args.command, report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
