"""Gradio demo machinery shared by every plugin, and ``genkit demo MODEL``.

A plugin's ``build_demo(pipeline)`` lays out its own ``gr.Blocks``; this module gives it what every demo needs:
seed inputs and errors that name a missing input, small images enlarged pixel-exactly, class pickers named from the
model's data, and one queue that caps how many model calls run at once, whatever the number of users.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import PIL.Image
import PIL.ImageChops
import torch

from genkit.data import make_grid
from genkit.errors import GenkitError
from genkit.images import inpainting_input, pil_to_tensor, tensor_to_pil
from genkit.plugin.opening import load_opened, open_model

if TYPE_CHECKING:
    import datasets

__all__ = [
    "ALL_CLASSES",
    "MASKS",
    "MAX_GRID",
    "MAX_IMAGES",
    "MAX_STEPS",
    "Classes",
    "chosen_mask",
    "CONCURRENCY_LIMIT",
    "CSS",
    "DISPLAY_SIZE",
    "MODEL_QUEUE",
    "QUEUE_SIZE",
    "class_names",
    "class_picker",
    "demo_blocks",
    "enable_queue",
    "enlarge",
    "image_grid",
    "image_input",
    "image_output",
    "image_strip",
    "launch",
    "load_demo",
    "mask_inputs",
    "held_out_image_picker",
    "held_out_images",
    "paint_input",
    "painted",
    "painted_image_and_mask",
    "PAINT_LABEL",
    "masked_preview",
    "model_view",
    "reconstruction_inpaint_tab",
    "model_threads",
    "preset_mask",
    "require_image",
    "require_values",
    "sample_grid",
    "samples_tab",
    "saved_json",
    "seed_input",
    "seed_interpolation",
    "serve",
    "steps_slider",
    "wire",
]

# Every model call of a demo shares this concurrency group, so the limit holds across tabs and buttons.
MODEL_QUEUE = "model"
# Model calls running at once; further requests wait in the queue. Two keep a second visitor from waiting on a long
# call; more would multiply peak memory, and the cores are shared among them anyway (see model_threads).
CONCURRENCY_LIMIT = 2
# Requests allowed to wait; past this, a user is told the queue is full instead of the server piling up work.
QUEUE_SIZE = 64
# Small model outputs (8-32 px) are enlarged by an integer factor to at least this many pixels per side.
DISPLAY_SIZE = 64
# Class-picker value meaning "one row per class".
ALL_CLASSES = -1
# Enlarged pixels stay square blocks when the browser scales an image further; generated text keeps the columns of
# code-like corpora (the LSTM's default is Python source).
CSS = (
    ".genkit-pixels img { image-rendering: pixelated; }\n"
    "#genkit-text textarea { font-family: ui-monospace, monospace; }"
)


# ---- inputs ------------------------------------------------------------------------------------------------------
# Sliders and numbers get a minimum and maximum: Gradio rejects a value outside them before the model runs, with a
# message that gives the value and the bound ("Value 100 is greater than maximum value 64.").
def seed_input(label: str = "Seed", value: int = 0) -> gr.Number:
    """A whole-number seed; the same seed always gives the same output."""
    return gr.Number(label=label, value=value, precision=0, minimum=0, maximum=2**31 - 1)


def require_values(**values: Any) -> None:
    """An error naming the first input left empty (Gradio passes None for an empty number, dropdown or radio)."""
    for name, value in values.items():
        if value is None:
            raise gr.Error(f"{name} is empty: give a value")


def require_image(image: PIL.Image.Image | None, name: str) -> PIL.Image.Image:
    """The uploaded image, or an error asking for it."""
    if image is None:
        raise gr.Error(f"upload an image for {name!r} first")
    return image


# Uploads larger than this are refused before they are decoded (8,000 x 5,000; the models take 8-256 px images).
MAX_UPLOAD_PIXELS = 40_000_000


def _check_size(source: str | bytes | None) -> None:
    """Refuse an image (a file's path, or the bytes the image editor sends) over ``MAX_UPLOAD_PIXELS`` from its
    header alone, before any decoding."""
    if source:
        with PIL.Image.open(io.BytesIO(source) if isinstance(source, bytes | bytearray) else source) as header:
            width, height = header.size
        if width * height > MAX_UPLOAD_PIXELS:
            raise ValueError(f"{width} x {height} pixels, more than the {MAX_UPLOAD_PIXELS:,} this demo takes")


def _checked(preprocess, sources, value_images, payload):
    """``preprocess(payload)`` with the upload checked first: a file that is not an image, a truncated one, or one
    over ``MAX_UPLOAD_PIXELS`` (a decompression bomb) is one clear message in the browser, and nothing is printed in
    the server's log. ``sources(payload)`` gives the uploaded files (paths or bytes), ``value_images(value)`` the
    decoded images."""
    import warnings

    try:
        if payload is not None:
            for source in sources(payload):
                _check_size(source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            value = preprocess(payload)
            for image in value_images(value):
                image.load()  # a truncated file fails here, not in the model
    except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise gr.Error(
            f"could not use the upload as an image ({reason}); upload a PNG or JPEG", print_exception=False
        ) from None
    return value


def image_input(label: str, **kwargs) -> gr.Image:
    """An upload field for one image, any mode (the pipeline converts it as it converts training data), checked as
    ``_checked`` says. The check is set on the instance: gradio writes a ``.pyi`` file beside the module of
    any subclass of a component, which an installed package must not do."""
    component = gr.Image(label=label, type="pil", image_mode=None, **kwargs)
    component.preprocess = functools.partial(
        _checked,
        functools.partial(gr.Image.preprocess, component),
        lambda payload: [payload.path],
        lambda value: [value] if isinstance(value, PIL.Image.Image) else [],
    )
    return component


def paint_input(label: str, **kwargs) -> gr.ImageMask:
    """An image to upload (or paste) and paint over with a white brush: the painted strokes are a mask. Uploads are
    checked as ``image_input``'s are. Its value is Gradio's ``{"background", "layers", "composite"}``; read it with
    ``painted``."""
    component = gr.ImageMask(
        label=label,
        type="pil",
        image_mode="RGBA",
        sources=("upload", "clipboard"),
        transforms=(),
        layers=False,
        brush=gr.Brush(colors=["#ffffff"], color_mode="fixed"),
        format="png",
        **kwargs,
    )

    def sources(payload):
        # A browser sends the editor's images as blobs ahead of the call (kept under payload.id), an API client as
        # files in the payload: both are checked.
        data = payload if payload.id is None else component.blob_storage.get(payload.id)
        files = [data.background, *(data.layers or [])] if data is not None else []
        return [f if isinstance(f, bytes | bytearray) else getattr(f, "path", None) for f in files if f is not None]

    def images(value):
        return [] if value is None else [i for i in (value["background"], *value["layers"]) if i is not None]

    component.preprocess = functools.partial(
        _checked, functools.partial(gr.ImageMask.preprocess, component), sources, images
    )
    return component


def painted(value: dict | None) -> tuple[PIL.Image.Image | None, PIL.Image.Image | None]:
    """A ``paint_input`` value as (the image, the painted mask): white (255) where strokes were painted, at the
    image's size; None for a part that is not there (no upload; no stroke)."""
    if not value or value.get("background") is None:
        return None, None
    image = value["background"]
    mask = None
    for layer in value.get("layers") or []:
        if layer.mode not in ("RGBA", "LA"):
            continue
        alpha = layer.getchannel("A")
        mask = alpha if mask is None else PIL.ImageChops.lighter(mask, alpha)
    if mask is None or mask.getbbox() is None:
        return image, None
    mask = mask.point(lambda v: 255 if v else 0)
    return image, mask if mask.size == image.size else mask.resize(image.size, PIL.Image.Resampling.NEAREST)


def held_out_images(pipeline) -> datasets.Dataset | None:
    """The test split of the data the model was trained on, when that is a built-in dataset of genkit's (digits,
    mnist, shapes: they are made here, nothing is downloaded), else None."""
    from genkit.data import BUILTIN_SOURCES

    config = saved_json(pipeline, "genkit.json").get("config", {})
    if BUILTIN_SOURCES.get(config.get("dataset")) != "image":
        return None
    # the run's own splits, as training and evaluation load them; held in memory even if the run streamed them
    return _built_in_test_split(json.dumps({**config, "streaming": False}, sort_keys=True))


@functools.lru_cache(maxsize=4)
def _built_in_test_split(config_json: str) -> datasets.Dataset | None:
    """Made once per run configuration: a demo with two pickers (DDPM: Inpaint and Image-to-image) builds it once."""
    from genkit.data import splits_for

    try:
        return splits_for(json.loads(config_json), "image")["test"]
    except Exception:  # an optional extra (mnist) not installed here: the picker is left out  # noqa: BLE001
        return None


def held_out_image_picker(pipeline, target, api_name: str) -> None:
    """A row that puts test image #i of the model's data into ``target`` (an image input; enlarged, so that it can
    be painted on, and the model scales it back to its size), when the data is built in; nothing otherwise."""
    test = held_out_images(pipeline)
    if test is None:
        return

    def pick(index):
        require_values(**{"test image": index})
        if not 0 <= int(index) < len(test):
            raise gr.Error(f"test image {int(index)} does not exist: the test split has images 0-{len(test) - 1}")
        return enlarge(test[int(index)]["image"])

    with gr.Row():
        index = gr.Number(0, precision=0, minimum=0, maximum=len(test) - 1, label=f"Test image (0-{len(test) - 1})")
        button = gr.Button("Use this test image")
    wire(button, pick, [index], target, api_name)


# ---- classes -----------------------------------------------------------------------------------------------------
def saved_json(pipeline, filename: str) -> dict[str, Any]:
    """A JSON file saved beside the model that ``pipeline`` was loaded from (genkit.json, eval_results.json), or {}."""
    folder = getattr(pipeline, "name_or_path", None)
    file = Path(folder) / filename if folder else None
    return json.loads(file.read_text()) if file is not None and file.is_file() else {}


def class_names(pipeline, num_classes: int) -> list[str]:
    """Class names saved with the model (genkit.json ``data.class_names``), else "0", "1", ..."""
    names = saved_json(pipeline, "genkit.json").get("data", {}).get("class_names") or []
    if len(names) == num_classes:
        return [str(n) for n in names]
    return [str(i) for i in range(num_classes)]


def class_picker(names: list[str], *, allow_all: bool = False, label: str = "Class") -> gr.Dropdown:
    """A dropdown of class names whose value is the class index (``ALL_CLASSES`` for "one row per class")."""
    choices = [(name, i) for i, name in enumerate(names)]
    if allow_all:
        choices = [("every class, one row each", ALL_CLASSES), *choices]
    return gr.Dropdown(choices=choices, value=choices[0][1], label=label, type="value")


class Classes:
    """The class inputs of a demo whose model may be class-conditional: pickers named from the model's data (none
    for an unconditional model), and the label a picked value stands for."""

    def __init__(self, pipeline, num_classes: int):
        self.k = num_classes
        self.names = class_names(pipeline, num_classes) if num_classes else []

    def inputs(self, allow_all: bool = False) -> list[gr.Dropdown]:
        return [class_picker(self.names, allow_all=allow_all)] if self.k else []

    def label(self, value) -> int | None:
        """The class index of a picked value; None for an unconditional model."""
        if not self.k:
            return None
        require_values(**{"class": value})
        return int(value)


# ---- the tabs image generators share ---------------------------------------------------------------------------
MAX_IMAGES = 64  # samples per request, or per class row when every class is shown
MAX_GRID = 256  # images in one grid of every class: beyond that a grid is too large to read on a screen
MAX_STEPS = 16  # interpolation points: enough for a smooth strip


def sample_grid(sample, classes: Classes, seed, count, label=None) -> PIL.Image.Image:
    """``count`` samples of ``sample(n, seed=, labels=)`` in a grid; with "every class", one row of ``count`` per
    class (at most ``MAX_GRID`` images)."""
    require_values(seed=seed, images=count)
    count = int(count)
    if classes.k and label == ALL_CLASSES:
        if count * classes.k > MAX_GRID:
            raise gr.Error(
                f"{count} images for each of {classes.k} classes is {count * classes.k}; at most {MAX_GRID} at once"
            )
        labels = torch.arange(classes.k).repeat_interleave(count)  # row c holds `count` samples of class c
        return image_grid(sample(classes.k * count, seed=int(seed), labels=labels), nrow=count)
    return image_grid(sample(count, seed=int(seed), labels=classes.label(label)))


def samples_tab(sample, classes: Classes, text: str) -> None:
    """The "Samples" tab: a seed, a count and (conditional models) a class give a grid; API name ``sample``."""
    with gr.Tab("Samples"):
        gr.Markdown(text)
        with gr.Row():
            seed = seed_input()
            count = gr.Slider(1, MAX_IMAGES, value=16, step=1, precision=0, label="Images")
            cls = classes.inputs(allow_all=True)
        button = gr.Button("Generate", variant="primary")
        out = image_output("Samples")

        def samples(seed, count, label=None):
            return sample_grid(sample, classes, seed, count, label)

        button.click(samples, [seed, count, *cls], out, api_name="sample", concurrency_id=MODEL_QUEUE)


def steps_slider() -> gr.Slider:
    return gr.Slider(2, MAX_STEPS, value=8, step=1, precision=0, label="Steps")


def seed_interpolation(interpolate, latent, classes: Classes):
    """``interpolate(z_a, z_b, steps, labels)`` between the latents (``latent(seed)``) of two seeds, as a strip."""

    def between_seeds(seed_a, seed_b, steps, label=None):
        require_values(seed=seed_a, **{"seed B": seed_b}, steps=steps)
        return image_strip(interpolate(latent(int(seed_a)), latent(int(seed_b)), int(steps), classes.label(label)))

    return between_seeds


def wire(button: gr.Button, fn, inputs: list, outputs, api_name: str) -> None:
    """One model call: through the shared queue, under its API name."""
    button.click(fn, inputs, outputs, api_name=api_name, concurrency_id=MODEL_QUEUE)


# ---- inpainting masks ------------------------------------------------------------------------------------------
# The region to fill in, as (left, top, right, bottom) fractions of the image.
MASKS = {
    "Centre square": (0.25, 0.25, 0.75, 0.75),
    "Left half": (0.0, 0.0, 0.5, 1.0),
    "Right half": (0.5, 0.0, 1.0, 1.0),
    "Top half": (0.0, 0.0, 1.0, 0.5),
    "Bottom half": (0.0, 0.5, 1.0, 1.0),
}


def preset_mask(name: str, image: PIL.Image.Image) -> PIL.Image.Image:
    """The mask ``MASKS[name]`` at the size of ``image``: white (255) where the model fills in."""
    if name not in MASKS:
        raise gr.Error(f"unknown mask {name!r}; choose one of: {', '.join(MASKS)}")
    left, top, right, bottom = MASKS[name]
    w, h = image.size
    mask = PIL.Image.new("L", image.size, 0)
    mask.paste(255, (round(left * w), round(top * h), round(right * w), round(bottom * h)))
    return mask


PAINT_LABEL = "Image: upload one or pick a test image, then paint over the region to fill in"


def mask_inputs() -> list:
    """A choice of ``MASKS`` (used when nothing is painted) and an optional uploaded mask (white = fill in; a
    drawing's transparency counts)."""
    with gr.Row():
        preset = gr.Radio(list(MASKS), value=next(iter(MASKS)), label="Region to fill in, if nothing is painted")
        uploaded = image_input("Or upload a mask (white = fill in, same size as the image)", height=160)
    return [preset, uploaded]


def chosen_mask(
    image: PIL.Image.Image,
    preset: str | None,
    uploaded: PIL.Image.Image | None,
    painted_mask: PIL.Image.Image | None = None,
) -> PIL.Image.Image:
    """The uploaded mask if there is one, else the painted strokes, else the chosen preset at the image's size."""
    if uploaded is not None:
        return uploaded
    if painted_mask is not None:
        return painted_mask
    require_values(**{"region to fill in": preset})
    return preset_mask(preset, image)


def painted_image_and_mask(value, preset, uploaded) -> tuple[PIL.Image.Image, PIL.Image.Image]:
    """The image of a ``paint_input`` and the mask ``chosen_mask`` picks for it."""
    image, strokes = painted(value)
    image = require_image(image, "image")
    return image, chosen_mask(image, preset, uploaded, strokes)


def masked_preview(image, mask, size: int, channels: int) -> PIL.Image.Image:
    """What the model keeps of ``image``: framed as the model sees it, the region to fill in shown mid-gray."""
    try:
        x0, m = inpainting_input(image, mask, size, channels, 1)
    except ValueError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    return tensor_to_pil(x0 * (1 - m))[0]


def model_view(image: PIL.Image.Image, size: int, channels: int) -> PIL.Image.Image:
    """An upload as a model sees it: converted and framed to ``size`` as training data is."""
    return tensor_to_pil(pil_to_tensor(image, size, channels))[0]


def reconstruction_inpaint_tab(pipeline, inpaint, size: int, channels: int, classes: Classes) -> None:
    """The "Inpaint" tab of a model that fills a region by iterated reconstruction (``genkit.images.
    fill_by_reconstruction``): ``inpaint(image, mask, rounds, label)``; API names ``inpaint`` and, for a model of
    built-in data, ``inpaint_test_image``."""

    def fill(value, preset, uploaded, iterations, label=None):
        image, mask = painted_image_and_mask(value, preset, uploaded)
        require_values(rounds=iterations)
        preview = masked_preview(image, mask, size, channels)
        return image_strip([preview, *inpaint(image, mask, int(iterations), classes.label(label))])

    with gr.Tab("Inpaint"):
        gr.Markdown(
            "Fill in a region of an image by iterated reconstruction: the region starts gray, and each round "
            "encodes the image, decodes it and keeps the decoded pixels inside the region only. Output: what the "
            "model keeps (the region gray), then the filled-in image."
        )
        with gr.Row():
            with gr.Column():
                image = paint_input(PAINT_LABEL, height=320)
                held_out_image_picker(pipeline, image, "inpaint_test_image")
            with gr.Column():
                mask = mask_inputs()
                iterations = gr.Slider(1, 200, value=50, step=1, precision=0, label="Rounds")
        cls = classes.inputs()
        button = gr.Button("Fill in", variant="primary")
        wire(button, fill, [image, *mask, iterations, *cls], image_output("Kept and filled in"), "inpaint")


# ---- images ------------------------------------------------------------------------------------------------------
def enlarge(image: PIL.Image.Image, size: int = DISPLAY_SIZE) -> PIL.Image.Image:
    """Scale up by the smallest integer factor reaching ``size`` pixels, nearest-neighbour so pixels stay sharp."""
    factor = max(1, math.ceil(size / max(image.width, image.height)))
    if factor == 1:
        return image
    return image.resize((image.width * factor, image.height * factor), PIL.Image.NEAREST)


def image_grid(images: list[PIL.Image.Image], nrow: int | None = None) -> PIL.Image.Image:
    """Enlarged images in a grid with a white border (``nrow`` per row; default square-ish)."""
    return make_grid([enlarge(im) for im in images], nrow=nrow)


def image_strip(images: list[PIL.Image.Image]) -> PIL.Image.Image:
    """Enlarged images side by side in one row: an interpolation or a denoising progression."""
    return image_grid(images, nrow=len(images))


def image_output(label: str, **kwargs) -> gr.Image:
    """An output image saved as PNG (Gradio's default WebP would blur single pixels) and shown pixelated."""
    return gr.Image(label=label, type="pil", format="png", elem_classes=["genkit-pixels"], **kwargs)


# ---- the app -----------------------------------------------------------------------------------------------------
def demo_blocks(title: str) -> gr.Blocks:
    """The ``gr.Blocks`` every plugin demo is laid out in (no telemetry: demos must work offline)."""
    return gr.Blocks(title=title, analytics_enabled=False)


def enable_queue(demo: gr.Blocks) -> gr.Blocks:
    """Route every event through one bounded queue; at most ``CONCURRENCY_LIMIT`` model calls run at once."""
    return demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)


def load_demo(model: str):
    """Load a genkit model (folder or Hub id) and build its plugin's demo."""
    opened = open_model(model)
    return opened.plugin.build_demo(load_opened(opened))


def model_threads() -> int:
    """Torch threads per model call so that ``CONCURRENCY_LIMIT`` calls at once do not oversubscribe the cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // CONCURRENCY_LIMIT)


def launch(demo: gr.Blocks, **kwargs):
    """``demo.launch`` with genkit's CSS (Gradio 6 takes CSS and theme at launch, not in ``gr.Blocks``).

    It also sets torch's thread count for serving: with more busy threads than cores, concurrent calls wait on each
    other's thread barriers (a tiny DDPM's 20 DDIM steps took 30 s instead of 1.4 s on a busy 2-core machine).
    """
    torch.set_num_threads(model_threads())
    kwargs.setdefault("css", CSS)
    return demo.launch(**kwargs)


def serve(model: str, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    """``genkit demo MODEL``: serve the model's demo until interrupted. ``share`` asks Gradio for a public link."""
    if not 1 <= port <= 65535:
        raise GenkitError(f"--port must be from 1 to 65535, got {port}")
    demo = load_demo(model)
    try:
        launch(demo, server_name=host, server_port=port, share=share)
    except OSError as exc:  # Gradio raises OSError when the port is taken
        raise GenkitError(f"cannot serve on {host}:{port}: {exc}") from None
