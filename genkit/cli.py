"""The ``genkit`` command: list, train, sample, eval, info, push, export, demo, space."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from genkit.errors import GenkitError

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like every other user mistake
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("plugin", help="model family: see `genkit list`")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help="digits | shapes | stdlib | a local folder/file | a Hub dataset id")
    g.add_argument("--image-size", type=int, help="resize images to this size (square)")
    g.add_argument("--channels", type=int, choices=(1, 3), help="convert images to 1 or 3 channels")
    g.add_argument("--num-samples", type=int, help="size of a generated dataset (shapes)")
    g.add_argument("--test-fraction", type=float, help="held-out fraction when the data has no test split")
    for option, text in (
        ("--random-flip", "mirror training images left-right at random (evaluation never sees it)"),
        (
            "--center-crop",
            "crop images to their centre square before resizing (--no-center-crop: squash them to a square)",
        ),
        (
            "--random-crop",
            "train on random windows of images stored at 9/8 the size (evaluation sees the centre window)",
        ),
    ):
        g.add_argument(option, action=argparse.BooleanOptionalAction, default=None, help=text)
    g.add_argument(
        "--background",
        choices=("white", "black"),
        help="what transparent pixels of RGBA/LA/palette images become (composited on this colour)",
    )
    g.add_argument(
        "--streaming",
        action="store_true",
        default=None,
        help="read the dataset as a stream (datasets' IterableDataset) instead of downloading it whole",
    )
    g.add_argument("--shuffle-buffer", type=int, help="--streaming: examples held in the shuffle buffer")
    g.add_argument("--image-column", help="override the detected image column")
    g.add_argument(
        "--image-root", help="a folder that image paths in a table may point into, besides the dataset's own folder"
    )
    g.add_argument("--label-column", help="override the detected label column")
    g.add_argument("--text-column", help="override the detected text column")
    g.add_argument("--dataset-config", help="a Hub dataset's configuration (subset) name")
    g.add_argument("--split", help="the split to train on (a Hub dataset's; default: train)")
    g.add_argument("--test-split", help="the split to evaluate on (default: test or validation, else held out)")
    g.add_argument("--dataset-revision", "--revision", dest="dataset_revision", help="a Hub dataset's revision")
    g.add_argument(
        "--skip-bad-images",
        action="store_true",
        default=None,
        help="leave out image files that cannot be read (each is named) instead of stopping",
    )
    g = p.add_argument_group("training")
    g.add_argument("--preset", default="small", help="tiny (tests) | small (CPU default) | base (GPU)")
    g.add_argument("--output", help="output folder (default outputs/<plugin>-<dataset>)")
    steps = g.add_mutually_exclusive_group()
    steps.add_argument("--max-steps", type=int, help="optimizer updates to train for")
    steps.add_argument("--epochs", type=float, help="passes over the training split")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float, help="learning rate")
    g.add_argument("--lr-scheduler", help="constant | constant_with_warmup | linear | cosine | ...")
    g.add_argument("--warmup-steps", type=int)
    g.add_argument("--grad-accum", type=int, help="micro-batches per optimizer update")
    g.add_argument("--max-grad-norm", type=float, help="clip gradients to this norm (0: off)")
    g.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"))
    g.add_argument("--seed", type=int)
    g.add_argument("--checkpoint-every", type=int, help="save checkpoint-<step>/ every N updates")
    g.add_argument("--checkpoints-total-limit", type=int, help="keep only the newest N checkpoints")
    g.add_argument("--sample-every", type=int, help="write a sample grid every N updates (0: only at the end)")
    g.add_argument("--log-every", type=int)
    g.add_argument("--num-sample-images", type=int)
    g.add_argument(
        "--report-to",
        "--log-with",
        dest="log_with",
        choices=("tensorboard", "wandb", "all", "none"),
        help="accelerate trackers for scalars, sample grids, text samples and the final metrics",
    )
    g.add_argument("--no-eval", dest="eval", action="store_false", default=None, help="skip the final evaluation")
    g.add_argument("--resume", help="'latest' or a checkpoint folder: continue an interrupted run")
    g.add_argument("--init-from", help="start from a saved model (folder or Hub id) instead of random weights")
    g.add_argument("--overwrite", action="store_true", help="train into an output folder that holds checkpoints")
    g = p.add_argument_group("speed (GPU; docs/benchmarks.md measures each)")
    g.add_argument("--allow-tf32", action="store_true", default=None, help="TF32 matmuls/convolutions (Ampere+)")
    g.add_argument("--channels-last", action="store_true", default=None, help="NHWC memory format (image models)")
    g.add_argument("--fused-optimizer", action="store_true", default=None, help="AdamW's fused kernel")
    g.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile (inductor) via accelerate",
    )
    g.add_argument("--num-workers", type=int, help="DataLoader worker processes")
    g = p.add_argument_group("Hub")
    g.add_argument(
        "--push-to-hub", action="store_true", default=None, help="upload the final model and card when training ends"
    )
    g.add_argument(
        "--hub-model-id", help="user/name to push to (default: the output folder's name, in your namespace)"
    )
    g.add_argument("--hub-private", action="store_true", default=None, help="create the Hub repo as private")


# The spellings of diffusers' and transformers' example training scripts (train_unconditional.py, run_clm.py, ...)
# for the flags that mean the same here. Every flag also answers to its underscore spelling (--max_grad_norm).
SCRIPT_ALIASES = {
    "--output": ["--output_dir"],
    "--dataset": ["--dataset_name", "--train_data_dir"],
    "--dataset-config": ["--dataset_config_name"],
    "--image-size": ["--resolution"],
    "--batch-size": ["--train_batch_size", "--per_device_train_batch_size"],
    "--lr": ["--learning_rate"],
    "--warmup-steps": ["--lr_warmup_steps"],
    "--grad-accum": ["--gradient_accumulation_steps"],
    "--epochs": ["--num_train_epochs"],
    "--max-steps": ["--max_train_steps"],
    "--checkpoint-every": ["--checkpointing_steps"],
    "--resume": ["--resume_from_checkpoint"],
    "--hub-private": ["--hub_private_repo"],
    "--sample-every": ["--save_images_steps"],
    "--num-workers": ["--dataloader_num_workers"],
}


def _add_aliases(parser: argparse.ArgumentParser) -> None:
    """Let every long flag answer to its script spellings (shown in --help) and its underscore spelling (not shown)."""
    for action in list(parser._actions):
        for option in list(action.option_strings):
            for alias in SCRIPT_ALIASES.get(option, []):
                action.option_strings.append(alias)
                parser._option_string_actions[alias] = action
            underscore = "--" + option[2:].replace("-", "_")
            if option.startswith("--") and underscore not in parser._option_string_actions:
                parser._option_string_actions[underscore] = action


# Trainer keys whose None default leaves the choice to accelerate, and what accelerate picks when nothing is set.
ACCELERATE_OWNED = {"mixed_precision": "no", "grad_accum": "1", "compile": "off"}
# Trainer keys whose None default is settled by the data.
DATA_OWNED = {"random_flip": "on for your own images (folder, Hub, in memory), off for digits, mnist and shapes"}


def _describe_defaults(parser: argparse.ArgumentParser, plugin) -> None:
    """Append each flag's default, and what each preset sets it to, to its help (`genkit train PLUGIN --help`)."""
    from genkit.trainer import TRAINER_DEFAULTS

    defaults = {**TRAINER_DEFAULTS, **plugin.defaults, "dataset": plugin.default_dataset}
    for action in parser._actions:
        key = action.dest
        if key not in defaults or not action.option_strings:
            continue
        presets = ", ".join(f"{name}: {p[key]}" for name, p in plugin.presets.items() if key in p)
        default = defaults[key]
        if default is None and key in DATA_OWNED:
            default = DATA_OWNED[key]
        elif default is None and key in ACCELERATE_OWNED:
            unset = ACCELERATE_OWNED[key]
            default = f"from accelerate (accelerate config, launch flags, ACCELERATE_* variables; else {unset})"
        text = f"default: {default}" + (f"; {presets}" if presets else "")
        action.help = f"{action.help} ({text})" if action.help else f"({text})"
    parser.epilog = "presets: " + "; ".join(
        f"{name} = {', '.join(f'{k}={v}' for k, v in p.items())}" for name, p in plugin.presets.items()
    )


def build_parser(plugin=None, command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``plugin``, that plugin's flags are added to the ``command`` sub-parser."""
    parser = _Parser(prog="genkit", description="Train, share and show classic generative models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="list installed plugins")

    p = sub.add_parser("train", help="train a model", description="Train a plugin's model with Accelerate.")
    _add_train_arguments(p)
    if plugin is not None and command == "train":
        plugin.add_arguments(p.add_argument_group(f"{plugin.name} options"))
        _describe_defaults(p, plugin)
    _add_aliases(p)

    p = sub.add_parser("sample", help="sample from a model")
    p.add_argument("model", help="model folder or Hub repo id")
    p.add_argument("--n", type=int, default=None, help="number of samples (default: 64 images, or 1 text)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output file (default: samples.png for images; text is printed)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file genkit did not write")
    if plugin is not None and command == "sample":
        plugin.add_sample_arguments(p.add_argument_group(f"{plugin.name} options"))

    p = sub.add_parser("eval", help="evaluate a model; prints JSON and updates its model card")
    p.add_argument("model", help="model folder or Hub repo id")
    p.add_argument("--dataset", help="evaluate on this data (default: the training dataset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-card", action="store_true", help="do not write the results into the folder's model card")
    if plugin is not None and command == "eval":
        plugin.add_eval_arguments(p.add_argument_group(f"{plugin.name} options"))

    p = sub.add_parser("info", help="show a model's plugin, config, data and evaluation")
    p.add_argument("model", help="model folder or Hub repo id")

    p = sub.add_parser("push", help="upload a model folder to the Hub")
    p.add_argument("model", help="model folder")
    p.add_argument("repo_id", help="user/name")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print what would be uploaded, send nothing")

    p = sub.add_parser("export", help="export a model for stock diffusers/transformers (trust_remote_code)")
    p.add_argument("model", help="model folder or Hub repo id")
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")

    p = sub.add_parser("demo", help="serve a model's Gradio demo")
    p.add_argument("model", help="model folder or Hub repo id")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="ask Gradio for a public share link")

    p = sub.add_parser(
        "check-plugin",
        help="self-check a plugin: tiny train, save/load, resume, evaluation and demo endpoints",
        description="Run an installed plugin through everything genkit does with one, on its tiny preset, and print "
        "what fails (exit status 1 if anything does).",
    )
    p.add_argument("name", help="plugin name (see `genkit list`)")
    p.add_argument("--verbose", action="store_true", help="show the training output")

    p = sub.add_parser("space", help="build or publish a Hugging Face Space for a model")
    space = p.add_subparsers(dest="space_command", required=True, parser_class=_Parser)
    b = space.add_parser("build", help="write a ready-to-publish Space folder")
    b.add_argument("model", help="model folder or Hub repo id")
    b.add_argument("--out", required=True, help="folder to write")
    b.add_argument("--title", default=None)
    b.add_argument("--hub-id", default=None, help="load the model from this Hub id instead of copying its files")
    b.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    s = space.add_parser("push", help="publish a built Space folder")
    s.add_argument("folder")
    s.add_argument("space_id", help="user/name")
    s.add_argument("--private", action="store_true")
    s.add_argument("--dry-run", action="store_true", help="print the files and repo settings, send nothing")
    return parser


def _plugin_for(argv: list[str]):
    """The plugin a command line is about, so its own flags can be parsed, and for sample/eval the opened model
    (each None when it cannot be told yet)."""
    from genkit.registry import get_plugin

    if len(argv) < 2 or argv[1].startswith("-"):
        return None, None
    if argv[0] == "train":
        return get_plugin(argv[1]), None
    if argv[0] in ("sample", "eval"):
        from genkit.io import open_model

        model = open_model(argv[1])
        return model.plugin, model
    return None, None


def _open(path: str):
    from genkit.io import open_model

    return open_model(path)


def _plugin_kwargs(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict[str, Any]:
    """Values of the flags a plugin added to ``command`` (the generic flags are excluded)."""
    generic = vars(build_parser().parse_known_args([command, "x"])[0]) if command != "train" else {}
    return {k: v for k, v in vars(args).items() if k not in generic and k not in ("command",)}


def cmd_list(args) -> None:
    from genkit.registry import broken_plugins, get_plugin, list_plugins

    for name in list_plugins():
        plugin = get_plugin(name)
        presets = ", ".join(plugin.presets)
        print(f"{name:8s} {plugin.task:6s} default data: {plugin.default_dataset:8s} presets: {presets}")
    for name, reason in broken_plugins().items():
        print(f"{name:8s} BROKEN {reason}", file=sys.stderr)


def cmd_train(args, plugin) -> None:
    from genkit.trainer import resolve_config, run_training

    skip = ("command", "plugin", "preset", "resume", "init_from", "overwrite")
    overrides = {k: v for k, v in vars(args).items() if k not in skip}
    config = resolve_config(plugin, args.preset, overrides, init_from=args.init_from)
    output = run_training(plugin, config, resume=args.resume, overwrite=args.overwrite)
    print(f"model, samples and model card written to {output}")


def cmd_sample(args, model, kwargs) -> None:
    from genkit.images import MAX_SEED
    from genkit.io import load_opened
    from genkit.samples import MAX_SAMPLES, check_sample_file, write_samples
    from genkit.validation import check_value

    plugin = model.plugin
    n = args.n if args.n is not None else (1 if plugin.task == "text" else 64)
    check_value("--n", n, int, f"[1, {MAX_SAMPLES}]")
    check_value("--seed", args.seed, int, f"[0, {MAX_SEED}]")
    out = Path(args.out or ("samples.png" if plugin.task == "image" else "samples.txt"))
    if args.out is not None or plugin.task == "image":
        check_sample_file(out, overwrite=args.overwrite)
    from genkit.pipeline import default_device, to_device

    pipeline = to_device(load_opened(model), default_device())
    try:
        if plugin.task == "text" and args.out is None:  # text goes to the terminal unless a file is asked for
            print("\n\n----\n\n".join(plugin.sample(pipeline, n, seed=args.seed, **kwargs)))
            return
        write_samples(plugin, pipeline, out, n=n, seed=args.seed, **kwargs)
    except ValueError as exc:  # a pipeline's own check of a sampling flag (pipelines raise ValueError, as diffusers')
        raise GenkitError(str(exc)) from None
    print(f"wrote {n} samples to {out}")


def cmd_eval(args, model, kwargs) -> None:
    from genkit.card import write_model_card
    from genkit.data import splits_for
    from genkit.images import MAX_SEED
    from genkit.io import load_opened
    from genkit.metrics import check_finite
    from genkit.pipeline import default_device, to_device
    from genkit.validation import check_limits, check_value

    check_value("--seed", args.seed, int, f"[0, {MAX_SEED}]")
    folder, meta, plugin = model.folder, model.meta, model.plugin
    # A plugin's eval flags default to None ("not given"): the model's own training config then decides.
    given = {k: v for k, v in kwargs.items() if v is not None}
    check_limits(given, plugin.limits)
    config = {**meta.get("config", {}), **given}
    if args.dataset:
        config["dataset"] = args.dataset
    config["seed"] = args.seed
    pipeline = to_device(load_opened(model), default_device())
    splits = splits_for(config, plugin.task, seed=meta.get("config", {}).get("seed", 0))
    data = plugin.prepare_data(splits, config)
    evaluation = plugin.evaluate(pipeline, data, config)
    check_finite(evaluation)
    print(json.dumps(evaluation, indent=2, default=str))
    in_cache = "huggingface" in folder.parts or "hub" in folder.parts
    if not args.no_card and not in_cache:
        from genkit.io import folder_lock

        with folder_lock(folder, what="model folder"):  # not while a training run writes its model there
            (folder / "eval_results.json").write_text(json.dumps(evaluation, indent=2, default=str))
            write_model_card(
                folder,
                plugin=plugin,
                dataset=str(config["dataset"]),
                config=meta.get("config", {}),
                evaluation=evaluation,
            )


def cmd_info(args) -> None:
    from genkit.io import check_folder, folder_files, read_json, read_metadata, resolve

    folder = resolve(args.model)
    check_folder(folder)
    meta = read_metadata(folder)
    info: dict[str, Any] = {"folder": str(folder), **meta, "files": {}}
    for rel, file in folder_files(folder):
        if not rel.startswith(".cache/"):
            info["files"][rel] = file.stat().st_size
    results = folder / "eval_results.json"
    if results.exists():
        info["evaluation"] = read_json(results)
    print(json.dumps(info, indent=2, default=str))


def cmd_push(args) -> None:
    from genkit.io import check_folder, push_to_hub, read_metadata

    check_folder(args.model)
    read_metadata(args.model)
    plan = push_to_hub(args.model, args.repo_id, private=args.private, dry_run=args.dry_run)
    if args.dry_run:
        print(
            f"dry run: would create {plan['repo_type']} repo {plan['repo_id']} (private={plan['private']}) "
            f"and upload {len(plan['files'])} files:"
        )
        for f in plan["files"]:
            print(f"  {f['path']}  ({f['bytes']} bytes)")
    else:
        print(f"uploaded {len(plan['files'])} files to {plan['url']}")


def cmd_export(args) -> None:
    from genkit.io import load_opened, open_model, staged_folder
    from genkit.plugin import Plugin
    from genkit.validation import check_output_folder

    model = open_model(args.model)
    folder, plugin = model.folder, model.plugin
    if type(plugin).export is Plugin.export:  # the plugin offers none: say why its folder needs none
        index = folder / "model_index.json"
        class_name = json.loads(index.read_text()).get("_class_name") if index.is_file() else None
        import diffusers

        if isinstance(class_name, str) and hasattr(diffusers, class_name):
            raise GenkitError(
                f"{folder} is a stock diffusers {class_name} folder already: "
                "diffusers.DiffusionPipeline.from_pretrained loads it as it is"
            )
        if isinstance(class_name, list):
            raise GenkitError(
                f"{folder} ships its own pipeline code already: stock diffusers loads it as it is with "
                "DiffusionPipeline.from_pretrained(path, trust_remote_code=True)"
            )
        raise GenkitError(f"plugin {plugin.name!r} has no export")
    out = check_output_folder(args.out, own=False, overwrite=args.overwrite, what="--out", source=folder)
    pipeline = load_opened(model)
    with staged_folder(out) as tmp:
        plugin.export(pipeline, tmp)
    print(f"exported to {args.out}")


def cmd_demo(args) -> None:
    from genkit.demo import serve

    serve(args.model, host=args.host, port=args.port, share=args.share)


def cmd_space(args) -> None:
    from genkit import spaces

    if args.space_command == "build":
        out = spaces.build_space(args.model, args.out, title=args.title, hub_id=args.hub_id, overwrite=args.overwrite)
        print(f"Space written to {out}")
    else:
        plan = spaces.push_space(args.folder, args.space_id, private=args.private, dry_run=args.dry_run)
        print(json.dumps(plan, indent=2))


def cmd_check_plugin(args) -> int:
    from genkit.check import check_plugin

    results = check_plugin(args.name, verbose=args.verbose)
    failed = [r.step for r in results if not r.ok]
    if failed:
        print(f"plugin {args.name!r}: {len(failed)} of {len(results)} checks failed ({', '.join(failed)})")
        return 1
    print(f"plugin {args.name!r}: all {len(results)} checks passed")
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler, a notebook's stop button) unwinds like Ctrl-C: staged writes are removed."""


def _on_sigterm(signum, frame):
    raise _Terminated


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread only
        return _main(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str]) -> int:
    try:
        plugin, model = _plugin_for(argv) if argv else (None, None)
        parser = build_parser(plugin, argv[0] if argv else None)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, or a usage mistake argparse already reported in one line
            return int(exc.code or 0)
        if args.command == "list":
            cmd_list(args)
        elif args.command == "train":
            cmd_train(args, plugin)
        elif args.command == "sample":
            cmd_sample(args, model or _open(args.model), _plugin_kwargs(args, parser, "sample"))
        elif args.command == "eval":
            cmd_eval(args, model or _open(args.model), _plugin_kwargs(args, parser, "eval"))
        elif args.command == "check-plugin":
            return cmd_check_plugin(args)
        else:
            {"info": cmd_info, "push": cmd_push, "export": cmd_export, "demo": cmd_demo, "space": cmd_space}[
                args.command
            ](args)
    except GenkitError as exc:
        print(f"genkit: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system said no (a read-only folder, a full disk): the user's to fix
        where = f": {exc.filename}" if exc.filename else ""
        print(f"genkit: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        how, code = ("terminated (SIGTERM)", 143) if isinstance(exc, _Terminated) else ("interrupted", 130)
        print(f"genkit: {how}; continue a training run with --resume latest", file=sys.stderr)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
