"""Base class for genkit's diffusers pipelines: folders that carry their own code, and a loader that never runs it.

``save_pretrained`` writes a diffusers custom-pipeline folder: next to the configs and safetensors it ships the
pipeline's module (``pipeline_vae.py``) and each genkit component's module (``vae/modeling_vae.py``), with the genkit
imports swapped for their diffusers equivalents, and ``model_index.json`` names them as ``[file, class]`` the way
diffusers' custom pipelines do. Stock diffusers loads such a folder where genkit is not installed with
``DiffusionPipeline.from_pretrained(path, trust_remote_code=True)``.

``from_pretrained`` here reads the same folder with genkit's own installed classes, matched by class name, and never
imports a file from the folder; it also refuses pickle and names the file and field of a bad config or weights file.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import sys
import warnings
from pathlib import Path

from diffusers import DiffusionPipeline

from genkit.errors import ConfigError
from genkit.io import already_checked, check_folder, component_classes, resolve, validate_pipeline_folder

__all__ = ["EXPORT_MARK", "GenkitPipeline", "default_device", "genkit_free_source", "to_device"]

# A source line ending in this comment is replaced, in shipped copies, by the text after it: e.g.
# `from genkit.plugin.pipeline import GenkitPipeline  # export: from diffusers import DiffusionPipeline as X`.
EXPORT_MARK = "# export: "
# genkit modules that import no genkit themselves and travel with every pipeline's code: a pipeline file imports them
# as usual (`from genkit.images import to_mode`), and its shipped copy imports the copy beside it (`from .images ...`).
SHIPPED_MODULES = ("genkit.images",)


def default_device() -> str:
    """Where genkit samples and evaluates a loaded model: the GPU when there is one (as training uses it)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def to_device(pipeline, device):
    """``pipeline`` with its weights on ``device``: a diffusers pipeline moves itself, a transformers pipeline moves
    its model and then reads inputs onto that device."""
    import torch

    if hasattr(pipeline, "components"):
        return pipeline.to(device)
    pipeline.model.to(device)
    pipeline.device = torch.device(device)
    return pipeline


def _parse(source: str) -> ast.Module:
    """``ast.parse``, once more after CPython 3.11's spurious "AST constructor recursion depth mismatch" (a bookkeeping
    error of the AST constructor, CPython gh-106905; seen once in this project's test suite, in a process that had run
    many threads)."""
    try:
        return ast.parse(source)
    except SystemError:
        return ast.parse(source)


def genkit_free_source(file: str | Path) -> str:
    """The source of ``file`` with its export-marked lines swapped; an import of genkit left over is an error."""
    file = Path(file)
    lines = []
    for line in file.read_text().splitlines(keepends=True):
        for module in SHIPPED_MODULES:  # shipped beside the file: imported relatively there
            line = line.replace(f"from {module} import ", f"from .{module.rsplit('.', 1)[1]} import ")
        if EXPORT_MARK in line:
            indent = line[: len(line) - len(line.lstrip())]
            line = indent + line.split(EXPORT_MARK, 1)[1].strip() + "\n"
        lines.append(line)
    source = "".join(lines)
    for node in ast.walk(_parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(name.split(".")[0].startswith("genkit") for name in names):
            raise RuntimeError(f"{file}:{node.lineno} imports {names[0]}; mark the line with {EXPORT_MARK!r}...")
    return source


class GenkitPipeline(DiffusionPipeline):
    """A ``DiffusionPipeline`` whose folders load in stock diffusers (shipped code) and in genkit (its own classes)."""

    def save_pretrained(self, save_directory, **kwargs):
        kwargs.setdefault("safe_serialization", True)
        super().save_pretrained(save_directory, **kwargs)
        self._ship_code(Path(save_directory))

    def _ship_code(self, folder: Path) -> None:
        index_file = folder / "model_index.json"
        index = json.loads(index_file.read_text())
        pipeline_file = Path(inspect.getfile(type(self)))
        modules = {}  # component -> its module file, for the components whose code diffusers does not have
        for name, spec in index.items():
            if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
                continue
            if spec[0].split(".")[0] not in ("diffusers", "transformers"):
                modules[name] = Path(inspect.getfile(type(getattr(self, name))))
        try:
            sources = {f: genkit_free_source(f) for f in {pipeline_file, *modules.values()}}
            if any(f.stem == "__init__" for f in sources):
                raise RuntimeError(f"{type(self).__name__} and its components need modules of their own")
        except RuntimeError as exc:
            warnings.warn(
                f"{folder} loads with genkit only: {exc} (docs/plugins.md says how a pipeline ships its code)",
                stacklevel=3,
            )
            return
        (folder / pipeline_file.name).write_text(sources[pipeline_file])
        for module in SHIPPED_MODULES:  # beside the pipeline, where its relative imports find them
            module_file = Path(importlib.import_module(module).__file__)
            (folder / module_file.name).write_text(genkit_free_source(module_file))
        index["_class_name"] = [pipeline_file.stem, type(self).__name__]
        for name, module_file in modules.items():
            (folder / name / module_file.name).write_text(sources[module_file])  # where diffusers looks for it
            (folder / module_file.name).write_text(sources[module_file])  # beside the pipeline: its relative import
            index[name] = [module_file.stem, index[name][1]]
        index_file.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        folder = resolve(pretrained_model_name_or_path, revision=kwargs.pop("revision", None))
        if not already_checked(folder):  # genkit.load checked it a moment ago
            check_folder(folder)
            validate_pipeline_folder(folder, cls)
        index = json.loads((folder / "model_index.json").read_text())
        if isinstance(index.get("_class_name"), list):
            return cls._from_shipped_folder(folder, index, **kwargs)
        kwargs.setdefault("use_safetensors", True)
        return super().from_pretrained(str(folder), **kwargs)

    @classmethod
    def _from_shipped_folder(cls, folder: Path, index: dict, torch_dtype=None, use_safetensors: bool = True):
        """Build the pipeline from its components, each loaded with genkit's (or diffusers') own class."""
        from diffusers import SchedulerMixin

        name = index["_class_name"][1]
        if name != cls.__name__:
            pipeline_cls = getattr(sys.modules[cls.__module__], name, None)
            if not (inspect.isclass(pipeline_cls) and issubclass(pipeline_cls, GenkitPipeline)):
                raise ConfigError(f"{folder / 'model_index.json'}: _class_name {name!r} is not a {cls.__name__}")
            cls = pipeline_cls
        if not use_safetensors:
            raise ConfigError("genkit loads .safetensors only (use_safetensors=False is not supported)")
        params = inspect.signature(cls.__init__).parameters
        components = {}
        for component, component_cls in component_classes(folder, cls).items():
            if issubclass(component_cls, SchedulerMixin):
                components[component] = component_cls.from_pretrained(str(folder), subfolder=component)
            else:
                loaded = component_cls.from_pretrained(str(folder / component), use_safetensors=True)
                components[component] = loaded.to(torch_dtype) if torch_dtype is not None else loaded
        extras = {k: v for k, v in index.items() if not k.startswith("_") and k not in components and k in params}
        pipeline = cls(**components, **extras)
        pipeline.register_to_config(_name_or_path=str(folder))
        return pipeline
