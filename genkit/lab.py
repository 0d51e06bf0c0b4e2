"""``genkit.SimplePlugin``: a plugin made of plain ``torch.nn.Module`` classes, for the model of one notebook cell.

A subclass names itself, lists its module classes in ``models`` and writes ``training_step``; building (each module
from its constructor's parameters: config values by name, the data's channels, size, classes or dimension),
the optimizer, saving and loading (safetensors and the constructor arguments, no pickle), evaluation (the training
losses on the test split, and for the toy point sets how many modes the samples cover), sampling (through
``generate``, for a model that generates) and a demo come with it. ``genkit.train(MyPlugin(), ...)`` registers and
trains it like an installed plugin, with the same checkpoints, resume, evaluation and card.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from genkit.data import mode_coverage
from genkit.errors import ConfigError
from genkit.images import check_count, seeded, tensor_to_pil
from genkit.io import check_weights_fit, read_json
from genkit.io.checks import check_field
from genkit.plugin import DataInfo, OptimizerSpec, Plugin, PreparedData, StepContext

__all__ = ["SimplePipeline", "SimplePlugin"]

MODULES_FILE = "modules.json"
# Constructor parameters filled from the data when the config does not name them.
_FROM_DATA = {
    "in_channels": lambda info: info.num_channels,
    "channels": lambda info: info.num_channels,
    "image_size": lambda info: info.image_size,
    "num_classes": lambda info: info.num_classes or 0,
    "dim": lambda info: info.extra.get("dim"),
    "data_dim": lambda info: info.extra.get("dim"),
    "vocab_size": lambda info: info.extra.get("vocab_size"),
}


class SimplePipeline:
    """The trained modules of a ``SimplePlugin`` (``pipe.model``, ``pipe.generator``, ...) with their constructor
    arguments; ``pipe.sample(n, seed)`` draws from a model that generates."""

    def __init__(self, plugin: SimplePlugin, modules: dict[str, nn.Module], kwargs: dict[str, dict], info: dict):
        self.plugin, self.components, self.kwargs, self.info = plugin, modules, kwargs, info
        self.plugin_name = plugin.name  # genkit.save finds the plugin by it
        self.name_or_path: str | None = None

    def __getattr__(self, name: str) -> nn.Module:
        components = self.__dict__.get("components", {})
        if name in components:
            return components[name]
        raise AttributeError(name)

    @property
    def device(self) -> torch.device:
        return next(next(iter(self.components.values())).parameters()).device

    def to(self, device) -> SimplePipeline:
        for module in self.components.values():
            module.to(device)
        return self

    def sample(self, n: int, seed: int = 0):
        """``n`` samples (PIL images, or a tensor of points); None for a model that does not generate."""
        return self.plugin.sample(self, n, seed=seed)

    def __repr__(self) -> str:
        return f"SimplePipeline(plugin={self.plugin_name!r}, modules={list(self.components)})"


def _device_of(batch: dict[str, Any], modules: dict[str, nn.Module]) -> torch.device:
    for value in batch.values():
        if isinstance(value, torch.Tensor):
            return value.device
    for module in modules.values():
        for param in module.parameters():
            return param.device
    return torch.device("cpu")


@contextlib.contextmanager
def _default_device(device: torch.device):
    """Tensors made without a ``device=`` (``torch.randn(n, 2)`` in a cell) land on ``device``: the same cell
    trains on a laptop CPU and on a Colab GPU. A no-op on the CPU."""
    if device.type == "cpu":
        yield
    else:
        with device:
            yield


def _on_their_device(hook):
    @functools.wraps(hook)
    def run(self, modules, batch_or_n, *args):
        batch = batch_or_n if isinstance(batch_or_n, dict) else {}
        with _default_device(_device_of(batch, modules)):
            return hook(self, modules, batch_or_n, *args)

    return run


class SimplePlugin(Plugin):
    """A plugin of plain torch modules (see the module's docstring). Defaults: digits images, AdamW over every
    module at ``lr``, the tiny/small/base presets below; override any hook as in any plugin. ``training_step`` and
    ``generate`` run with their modules' device as the default device, so a cell need not write ``device=``."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for hook in ("training_step", "generate"):
            if hook in cls.__dict__:
                setattr(cls, hook, _on_their_device(cls.__dict__[hook]))

    task = "image"
    pipeline_tag = "unconditional-image-generation"
    default_dataset = "digits"
    models: dict[str, type[nn.Module]] = {}  # module name -> class; training_step gets them by these names
    defaults: dict[str, Any] = {}
    presets = {
        "tiny": {"max_steps": 20, "batch_size": 32, "checkpoint_every": 10, "sample_every": 0, "log_every": 5},
        "small": {"max_steps": 1000, "checkpoint_every": 500, "sample_every": 0, "log_every": 20},
        "base": {"max_steps": 10000, "checkpoint_every": 1000},
    }

    # ---- model -----------------------------------------------------------------------------------------------
    def model_kwargs(self, name: str, config: dict[str, Any], info: DataInfo) -> dict[str, Any]:
        """Module ``name``'s constructor arguments: each parameter from the config by name, else from the data
        (``in_channels``/``channels``, ``image_size``, ``num_classes``, ``dim``, ``vocab_size``), else its default."""
        kwargs = {}
        for param in list(inspect.signature(self.models[name].__init__).parameters.values())[1:]:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if param.name in config and config[param.name] is not None:
                kwargs[param.name] = config[param.name]
            elif param.name in _FROM_DATA and _FROM_DATA[param.name](info) is not None:
                kwargs[param.name] = _FROM_DATA[param.name](info)
            elif param.default is inspect.Parameter.empty:
                raise ConfigError(
                    f"{self.models[name].__name__} needs {param.name!r}: give it in the plugin's defaults or as a "
                    "setting"
                )
        return kwargs

    def build(self, config: dict[str, Any], info: DataInfo) -> dict[str, nn.Module]:
        if not self.models:
            raise ConfigError(f"plugin {self.name!r} lists no module classes in `models`")
        return {name: cls(**self.model_kwargs(name, config, info)) for name, cls in self.models.items()}

    def optimizers(self, config: dict[str, Any]) -> list[OptimizerSpec]:
        """One AdamW over every module; a GAN declares one spec per phase instead."""
        return [OptimizerSpec(name="model", modules=list(self.models), lr=config["lr"])]

    def generate(self, modules: dict[str, nn.Module], n: int, generator: torch.Generator):  # noqa: B027
        """``n`` samples from the trained modules: images in [-1, 1] (N, C, H, W), or points (N, D). None (the
        default): the model does not generate (an autoencoder), and no samples are drawn."""
        return None

    # ---- pipeline ----------------------------------------------------------------------------------------------
    def to_pipeline(self, modules, data: PreparedData, config: dict[str, Any]) -> SimplePipeline:
        kwargs = {name: self.model_kwargs(name, config, data.info) for name in modules}
        return SimplePipeline(self, modules, kwargs, dict(data.info.__dict__))

    def save_pipeline(self, pipeline: SimplePipeline, path: str | Path) -> None:
        """Each module's weights (``<name>.safetensors``, tied tensors once) and ``modules.json``: its class and
        constructor arguments, which must be plain values (numbers, strings, lists)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        spec = {"plugin": self.name, "modules": {}, "info": pipeline.info}
        for name, module in pipeline.components.items():
            spec["modules"][name] = {"class": type(module).__qualname__, "kwargs": pipeline.kwargs[name]}
            save_model(module, str(path / f"{name}.safetensors"))
        try:
            (path / MODULES_FILE).write_text(json.dumps(spec, indent=2) + "\n")
        except TypeError as exc:
            raise ConfigError(f"plugin {self.name!r}: constructor arguments must be plain values ({exc})") from None

    def load_pipeline(self, path: str | Path) -> SimplePipeline:
        """The modules rebuilt from ``modules.json`` (every value checked, the weights compared with the modules on
        the meta device first) and their weights loaded."""
        path = Path(path)
        spec = read_json(path / MODULES_FILE)
        modules, kwargs = {}, {}
        for name, entry in spec.get("modules", {}).items():
            if name not in self.models:
                raise ConfigError(f"{path / MODULES_FILE}: module {name!r} is not one of plugin {self.name!r}'s")
            kwargs[name] = dict(entry.get("kwargs", {}))
            for key, value in kwargs[name].items():
                check_field(path / MODULES_FILE, key, value)
            with torch.device("meta"):
                check_weights_fit(self.models[name](**kwargs[name]), path / f"{name}.safetensors", path / MODULES_FILE)
            modules[name] = self.models[name](**kwargs[name])
            load_model(modules[name], str(path / f"{name}.safetensors"))  # strict: every tensor, none more
            modules[name].eval()
        pipeline = SimplePipeline(self, modules, kwargs, spec.get("info", {}))
        pipeline.name_or_path = str(path)
        return pipeline

    # ---- sampling, evaluation, demo ----------------------------------------------------------------------------
    @staticmethod
    def generator(pipeline: SimplePipeline, seed: int) -> torch.Generator:
        """``generate``'s random generator: seeded with ``seed``, on the modules' device (the default device while
        ``generate`` runs). A seed gives the same samples on one kind of device; a GPU's draws differ from a CPU's."""
        cpu = seeded(seed)  # checks the seed
        device = pipeline.device
        return cpu if device.type == "cpu" else torch.Generator(device).manual_seed(seed)

    @torch.no_grad()
    def sample(self, pipeline: SimplePipeline, n: int, seed: int = 0, **kwargs):
        check_count("n", n, 10_000)
        out = self.generate(pipeline.components, n, self.generator(pipeline, seed))
        if out is None:
            return None
        out = out.detach().float().cpu()
        return out if self.task == "vector" else tensor_to_pil(out)

    def evaluate(self, pipeline: SimplePipeline, data: PreparedData, config: dict[str, Any]) -> dict[str, Any]:
        """The mean of every value ``training_step`` returns, on the test split (eval mode, no step taken), per phase;
        for the toy point sets also how many modes 2,000 samples cover (``genkit.data.mode_coverage``). Gradients
        stay on: a loss may need them (WGAN-GP's penalty)."""
        modules = pipeline.components
        for module in modules.values():
            module.eval()
        loader = torch.utils.data.DataLoader(data.test, batch_size=int(config["batch_size"]))
        specs, metrics = self.optimizers(config), {}
        for spec in specs:
            sums, count = {}, 0
            for batch in loader:
                batch = {k: v.to(pipeline.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                out = self.training_step(modules, batch, StepContext(spec.name, 0, config, {}))
                size = len(next(iter(batch.values())))
                for key, value in out.items():
                    value = value.detach() if isinstance(value, torch.Tensor) else value
                    sums[key] = sums.get(key, 0.0) + float(value) * size
                count += size
            prefix = "test_" if len(specs) == 1 else f"test_{spec.name}_"
            metrics.update({prefix + k: v / max(count, 1) for k, v in sums.items()})
        samples = self.sample(pipeline, 2000, seed=int(config.get("seed", 0))) if self.task == "vector" else None
        if samples is not None:
            metrics.update(mode_coverage(samples, str(config["dataset"])))
        protocol = {"split": "test", "examples": len(data.test), "what": "training_step's values, eval mode"}
        return {"metrics": metrics, "protocol": protocol}

    def build_demo(self, pipeline: SimplePipeline):
        """A samples tab for a model that generates (a grid of images, or the points over the test data); for one
        that does not, its test metrics."""
        import gradio as gr

        from genkit.ui import demo as ui

        with ui.demo_blocks(f"{self.name} demo") as demo:
            gr.Markdown(f"# {self.name}\nA model of plain torch modules ({', '.join(pipeline.components)}).")
            if self.generate(pipeline.components, 1, self.generator(pipeline, 0)) is None:
                gr.JSON(value=ui.saved_json(pipeline, "eval_results.json").get("metrics", {}), label="Test metrics")
            elif self.task == "vector":
                self._points_tab(pipeline)
            else:
                text = "Samples from the trained model; the same seed gives the same images."
                ui.samples_tab(lambda n, seed, labels: pipeline.sample(n, seed), ui.Classes(pipeline, 0), text)
        return ui.enable_queue(demo)

    def _points_tab(self, pipeline: SimplePipeline) -> None:
        import gradio as gr

        from genkit.ui import demo as ui
        from genkit.ui.show import scatter

        def draw(seed, count):
            ui.require_values(seed=seed, points=count)
            return scatter(pipeline.sample(int(count), int(seed))).image

        with gr.Tab("Samples"):
            with gr.Row():
                seed = ui.seed_input()
                count = gr.Slider(10, 5000, value=1000, step=10, precision=0, label="Points")
            button = gr.Button("Generate", variant="primary")
            ui.wire(button, draw, [seed, count], ui.image_output("Points"), "sample")
