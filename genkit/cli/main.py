"""The ``genkit`` command: list, train, sample, eval, info, push, export, demo, space."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from genkit.cli.train_flags import add_train_arguments, known_spellings
from genkit.errors import GenkitError

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like every other user mistake
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_known_args(self, args=None, namespace=None):
        """Every long flag also answers to its underscore spelling (``--max_grad_norm``), as in the diffusers and
        transformers scripts, except the spellings that are flags of their own (``--output_dir``)."""
        if args is not None:
            keep = known_spellings()
            args = [_dashed(a) if a.startswith("--") and a.split("=")[0] not in keep else a for a in args]
        return super().parse_known_args(args, namespace)


def _dashed(arg: str) -> str:
    flag, sep, value = arg.partition("=")
    return flag.replace("_", "-") + sep + value


def build_parser(plugin=None, command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``plugin``, that plugin's flags are added to the ``command`` sub-parser."""
    parser = _Parser(prog="genkit", description="Train, share and show classic generative models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list installed plugins")
    p = sub.add_parser("train", help="train a model", description="Train a plugin's model with Accelerate.")
    add_train_arguments(p, plugin if command == "train" else None)
    _add_model_commands(sub, plugin, command)
    _add_sharing_commands(sub)
    return parser


def _add_model_commands(sub, plugin, command: str | None) -> None:
    """``sample``, ``eval`` (each with the plugin's own flags), ``info`` and ``check-plugin``."""
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
    p = sub.add_parser(
        "check-plugin",
        help="self-check a plugin: tiny train, save/load, resume, evaluation and demo endpoints",
        description="Run an installed plugin through everything genkit does with one, on its tiny preset, and print "
        "what fails (exit status 1 if anything does).",
    )
    p.add_argument("name", help="plugin name (see `genkit list`)")
    p.add_argument("--verbose", action="store_true", help="show the training output")


def _add_sharing_commands(sub) -> None:
    """``push``, ``export``, ``demo`` and ``space build|push``."""
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


def _plugin_for(argv: list[str]):
    """The plugin a command line is about, so its own flags can be parsed, and for sample/eval the opened model
    (each None when it cannot be told yet)."""
    from genkit.plugin.registry import get_plugin

    if len(argv) < 2 or argv[1].startswith("-"):
        return None, None
    if argv[0] == "train":
        return get_plugin(argv[1]), None
    if argv[0] in ("sample", "eval"):
        from genkit.plugin.opening import open_model

        model = open_model(argv[1])
        return model.plugin, model
    return None, None


def _load_quietly(model):
    """The opened model's pipeline, without diffusers' "Loading pipeline components" or transformers' "Loading
    weights" bars: the command prints its own result lines."""
    from genkit.plugin.opening import load_opened
    from genkit.training.progress import quiet_libraries

    with quiet_libraries():
        return load_opened(model)


def _open(path: str):
    from genkit.plugin.opening import open_model

    return open_model(path)


def _plugin_kwargs(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict[str, Any]:
    """Values of the flags a plugin added to ``command`` (the generic flags are excluded)."""
    generic = vars(build_parser().parse_known_args([command, "x"])[0]) if command != "train" else {}
    return {k: v for k, v in vars(args).items() if k not in generic and k not in ("command",)}


def cmd_list(args) -> None:
    from genkit.plugin.registry import broken_plugins, get_plugin, list_plugins

    for name in list_plugins():
        plugin = get_plugin(name)
        presets = ", ".join(plugin.presets)
        print(f"{name:8s} {plugin.task:6s} default data: {plugin.default_dataset:8s} presets: {presets}")
    for name, reason in broken_plugins().items():
        print(f"{name:8s} BROKEN {reason}", file=sys.stderr)


def cmd_train(args, plugin) -> None:
    from genkit.config.resolve import resolve_config
    from genkit.training.run import run_training

    skip = ("command", "plugin", "preset", "resume", "init_from", "overwrite")
    overrides = {k: v for k, v in vars(args).items() if k not in skip}
    config = resolve_config(plugin, args.preset, overrides, init_from=args.init_from)
    output = run_training(plugin, config, resume=args.resume, overwrite=args.overwrite)
    print(f"model, samples and model card written to {output}")


def cmd_sample(args, model, kwargs) -> None:
    from genkit.images import MAX_SEED
    from genkit.training.samples import MAX_SAMPLES, check_sample_file, write_samples
    from genkit.validation import check_value

    plugin = model.plugin
    n = args.n if args.n is not None else (1 if plugin.task == "text" else 64)
    check_value("--n", n, int, f"[1, {MAX_SAMPLES}]")
    check_value("--seed", args.seed, int, f"[0, {MAX_SEED}]")
    out = Path(args.out or ("samples.png" if plugin.task == "image" else "samples.txt"))
    if args.out is not None or plugin.task == "image":
        check_sample_file(out, overwrite=args.overwrite)
    from genkit.plugin.pipeline import default_device, to_device

    pipeline = to_device(_load_quietly(model), default_device())
    try:
        if plugin.task == "text" and args.out is None:  # text goes to the terminal unless a file is asked for
            print("\n\n----\n\n".join(plugin.sample(pipeline, n, seed=args.seed, **kwargs)))
            return
        write_samples(plugin, pipeline, out, n=n, seed=args.seed, **kwargs)
    except ValueError as exc:  # a pipeline's own check of a sampling flag (pipelines raise ValueError, as diffusers')
        raise GenkitError(str(exc)) from None
    print(f"wrote {n} samples to {out}")


def cmd_eval(args, model, kwargs) -> None:
    from genkit.data import splits_for
    from genkit.eval.metrics import check_finite
    from genkit.hub.card import write_model_card
    from genkit.images import MAX_SEED
    from genkit.plugin.pipeline import default_device, to_device
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
    pipeline = to_device(_load_quietly(model), default_device())
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
                in_process=meta.get("in_process"),
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
    from genkit.hub.push import push_to_hub
    from genkit.io import check_folder, read_metadata

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
    from genkit.io import staged_folder
    from genkit.plugin import Plugin
    from genkit.plugin.opening import open_model
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
    pipeline = _load_quietly(model)
    with staged_folder(out) as tmp:
        plugin.export(pipeline, tmp)
    print(f"exported to {args.out}")


def cmd_demo(args) -> None:
    from genkit.ui.demo import serve

    serve(args.model, host=args.host, port=args.port, share=args.share)


def cmd_space(args) -> None:
    from genkit.ui import spaces

    if args.space_command == "build":
        out = spaces.build_space(args.model, args.out, title=args.title, hub_id=args.hub_id, overwrite=args.overwrite)
        print(f"Space written to {out}")
    else:
        plan = spaces.push_space(args.folder, args.space_id, private=args.private, dry_run=args.dry_run)
        print(json.dumps(plan, indent=2))


def cmd_check_plugin(args) -> int:
    from genkit.cli.check_plugin import check_plugin

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
