"""Hugging Face Spaces: ``genkit space build`` writes a ready Space folder, ``genkit space push`` publishes it.

A built Space is self-contained. genkit is not on PyPI, so the folder bundles the installed ``genkit`` package and
the model's plugin package unpacked beside ``app.py``, as a wheel would install them, with a ``.dist-info`` folder
that declares the plugin's entry point. ``requirements.txt`` pins every other dependency at the version installed
here, except gradio, which the Space's SDK provides at ``sdk_version``.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import string
import sys
from importlib.metadata import Distribution, EntryPoint, PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import Any

from genkit.errors import GenkitError
from genkit.hub.push import push_to_hub
from genkit.io import shared_files, staged_folder
from genkit.plugin.opening import open_model
from genkit.validation import check_output_folder
from genkit.version import DISTRIBUTION, __version__

__all__ = ["DEFAULT_TEMPLATE", "build_space", "push_space", "space_template", "space_requirements"]

# genkit's generic Space: one app.py for every plugin (it serves the plugin's `build_demo`) and the card used when a
# plugin ships none (Plugin.space_template). Installed with genkit as package data.
DEFAULT_TEMPLATE = Path(__file__).parent / "space_template"
APP_FILE = "app.py"
MODEL_DIR = "model"
# The line of a template app.py that names the model; a --hub-id build replaces it.
MODEL_LINE = 'MODEL = Path(__file__).parent / "model"  # set by genkit space build\n'
# Provided by the Space's SDK (pinned by sdk_version in README.md), so never in requirements.txt.
SDK_PACKAGES = {"gradio"}


def _plugin_entry_point(name: str) -> EntryPoint:
    for ep in entry_points(group="genkit.plugins"):
        if ep.name == name:
            return ep
    raise GenkitError(f"plugin {name!r} is not installed (no 'genkit.plugins' entry point of that name)")


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def space_requirements(dists: list[Distribution]) -> list[str]:
    """``name==version`` for each runtime dependency of ``dists``, at the version installed here."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    own = {_normalize(d.metadata["Name"]) for d in dists}
    pins: dict[str, str] = {}
    for dist in dists:
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # an extra (e.g. dev tools), not needed to run
            key = _normalize(req.name)
            if key in own or key in SDK_PACKAGES:
                continue
            try:
                installed = version(req.name)
            except PackageNotFoundError:
                raise GenkitError(f"{req.name} is required by {dist.metadata['Name']} but not installed") from None
            # A local build tag such as torch's "+cpu" names no file on PyPI: pin the public version.
            pins[key] = f"{req.name}=={Version(installed).public}"
    return [pins[k] for k in sorted(pins)]


def _copy_module(module_name: str, out: Path) -> None:
    """Copy an importable top-level package (or single-file module) into ``out``, without bytecode."""
    file = Path(importlib.import_module(module_name).__file__)
    if file.name == "__init__.py":
        shutil.copytree(file.parent, out / module_name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        shutil.copy2(file, out / file.name)


def _bundle_code(plugin_name: str, out: Path) -> list[Distribution]:
    """Unpack genkit and the plugin's package into ``out`` with a dist-info declaring the plugin's entry point."""
    ep = _plugin_entry_point(plugin_name)
    genkit_dist = Distribution.from_name(DISTRIBUTION)
    plugin_dist = ep.dist or genkit_dist
    _copy_module("genkit", out)
    _copy_module(ep.module.split(".")[0], out)
    info = out / f"{plugin_dist.metadata['Name'].replace('-', '_')}-{plugin_dist.version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {plugin_dist.metadata['Name']}\nVersion: {plugin_dist.version}\n"
        f"Summary: bundled by genkit {__version__} space build\n"
    )
    (info / "entry_points.txt").write_text(f"[genkit.plugins]\n{ep.name} = {ep.value}\n")
    return [genkit_dist] if plugin_dist.metadata["Name"] == DISTRIBUTION else [genkit_dist, plugin_dist]


def _model_license(folder: Path) -> str | None:
    """The license in the model card's front matter (genkit writes apache-2.0); None leaves it out of the Space's."""
    from huggingface_hub import ModelCard

    card = folder / "README.md"
    return ModelCard.load(card).data.license if card.is_file() else None


def build_space(
    model: str, out: str | Path, *, title: str | None = None, hub_id: str | None = None, overwrite: bool = False
) -> Path:
    """Write a ready-to-publish Gradio Space for ``model`` (folder or Hub id) into the new folder ``out``.

    The model's files are copied into ``out/model`` unless ``hub_id`` is given: then the Space loads the model
    from that Hub repo when it starts, and the folder holds no weights.
    """
    opened = open_model(model)  # checked as genkit.load checks it, before anything is copied into the Space
    folder, meta, plugin = opened.folder, opened.meta, opened.plugin
    app, card = space_template(plugin)
    out = check_output_folder(out, own=False, overwrite=overwrite, what="--out", source=folder)
    with staged_folder(out) as tmp:
        _write_space(tmp, model, folder, meta, plugin, app, card, title=title, hub_id=hub_id)
    return out


def space_template(plugin) -> tuple[Path, Path]:
    """The ``app.py`` and card ``README.md`` of ``plugin``'s Space: the plugin's own (in the ``space_template``
    folder of its package), else genkit's generic ones, each file separately."""
    spec = importlib.util.find_spec(type(plugin).__module__.split(".")[0])
    roots = list(spec.submodule_search_locations or []) if spec else []
    own = [Path(root) / plugin.space_template for root in roots if plugin.space_template]
    app = next((d / APP_FILE for d in own if (d / APP_FILE).is_file()), DEFAULT_TEMPLATE / APP_FILE)
    card = next((d / "README.md" for d in own if (d / "README.md").is_file()), DEFAULT_TEMPLATE / "README.md")
    return app, card


def _write_space(
    out: Path, model: str, folder: Path, meta: dict, plugin, app_file: Path, card_file: Path, *, title, hub_id
) -> None:
    import gradio
    from huggingface_hub import SpaceCard

    # The model is a Hub repo when named by --hub-id, or when MODEL itself was a repo id rather than a folder.
    repo_id = hub_id or (None if Path(model).expanduser().is_dir() else str(model))

    app = app_file.read_text()
    if MODEL_LINE not in app:
        raise GenkitError(f"{app_file} lacks the line {MODEL_LINE.strip()!r} that names the model")
    if hub_id:
        app = app.replace(MODEL_LINE, f"MODEL = {hub_id!r}  # set by genkit space build --hub-id\n")
    else:
        for rel, file in shared_files(folder):  # links out of the folder and special files are refused
            (out / MODEL_DIR / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, out / MODEL_DIR / rel)
    (out / APP_FILE).write_text(app)

    dists = _bundle_code(plugin.name, out)
    sdk_version = gradio.__version__
    (out / "requirements.txt").write_text(
        f"# Pinned to the versions this Space was built and tested with. gradio is not listed: the Space SDK\n"
        f"# installs gradio=={sdk_version} (sdk_version in README.md). genkit is bundled in this folder.\n"
        + "\n".join(space_requirements(dists))
        + "\n"
    )

    card = SpaceCard(card_file.read_text())
    title = title or f"genkit {plugin.name.upper()} demo"
    fields: dict[str, Any] = {
        "title": title,
        "sdk": "gradio",
        "sdk_version": sdk_version,
        "app_file": APP_FILE,
        "python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
        "license": _model_license(folder),
        "models": [repo_id] if repo_id else [],
        "tags": sorted({*(card.data.tags or []), "genkit", plugin.name, plugin.task}),
    }
    for key, value in fields.items():
        setattr(card.data, key, value)
    dataset = meta.get("data", {}).get("dataset") or meta.get("config", {}).get("dataset")
    card.text = string.Template(card.text).substitute(
        title=title,
        model=f"the Hub repo `{repo_id}`" if hub_id else f"the copy in `{MODEL_DIR}/`",
        dataset=dataset or "unknown data",
        sdk_version=sdk_version,
        plugin=plugin.name,
    )
    card.save(out / "README.md")


def push_space(folder: str | Path, space_id: str, *, private: bool = False, dry_run: bool = False, api=None):
    """Create the Gradio Space ``space_id`` if needed and upload ``folder``; with ``dry_run``, only the plan."""
    from huggingface_hub import SpaceCard

    folder = Path(folder)
    readme, app = folder / "README.md", folder / APP_FILE
    if not readme.is_file() or not app.is_file():
        raise GenkitError(
            f"{str(folder)!r} is not a built Space (it needs README.md and {APP_FILE}); "
            f"write one with `genkit space build MODEL --out {folder}`"
        )
    sdk = SpaceCard.load(readme).data.sdk
    if sdk != "gradio":
        raise GenkitError(f"{readme}: front matter says sdk: {sdk!r}; genkit publishes Gradio Spaces (sdk: gradio)")
    return push_to_hub(
        folder,
        space_id,
        repo_type="space",
        private=private,
        dry_run=dry_run,
        commit_message="Upload Space with genkit",
        api=api,
        space_sdk="gradio",
    )
