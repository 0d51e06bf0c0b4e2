"""The autoencoder's Gradio demo: reconstruction, denoising, the code plane (2-D codes), inpainting, anomaly scores,
and samples from the training codes' Gaussian."""

from __future__ import annotations

import gradio as gr
from genkit_autoencoder.modeling_autoencoder import NOISES
from genkit_autoencoder.pipeline_autoencoder import AutoencoderPipeline

from genkit.ui import demo as ui

__all__ = ["build_demo"]


def build_demo(pipeline: AutoencoderPipeline) -> gr.Blocks:
    """A ``gr.Blocks`` app with one tab per thing an autoencoder can show; every event has an ``api_name``."""
    config = pipeline.autoencoder.config
    with ui.demo_blocks(f"Autoencoder demo ({config.image_size}x{config.image_size})") as demo:
        gr.Markdown(
            f"# Autoencoder\n{config.image_size}x{config.image_size} "
            f"{'grayscale' if config.in_channels == 1 else 'RGB'} images through a {config.code_dim}-value code"
            f" ({ {'linear': 'plain', 'relu': 'sparse: ReLU', 'sigmoid': 'sparse: sigmoid'}[config.code_activation] }"
            "). Images are enlarged with square pixels."
        )
        _reconstruct_tab(pipeline)
        _denoise_tab(pipeline)
        if config.code_dim == 2:
            _plane_tab(pipeline)
        ui.reconstruction_inpaint_tab(
            pipeline,
            lambda image, mask, rounds, label=None: pipeline.inpaint(image, mask, rounds),
            config.image_size,
            config.in_channels,
            ui.Classes(pipeline, 0),
        )
        _anomaly_tab(pipeline)
        ui.samples_tab(
            lambda n, seed=0, labels=None: pipeline.sample(n, seed=seed),
            ui.Classes(pipeline, 0),
            "Decode codes drawn from a Gaussian fitted to the training codes. An autoencoder has no prior: many of "
            "these fall where no training image's code lies, which is what a VAE's prior fixes.",
        )
    return ui.enable_queue(demo)


def _seen(pipeline: AutoencoderPipeline, image):
    config = pipeline.autoencoder.config
    return ui.model_view(image, config.image_size, config.in_channels)


def _reconstruct_tab(pipeline: AutoencoderPipeline) -> None:
    def reconstruct(image):
        image = ui.require_image(image, "image")
        return ui.image_strip([_seen(pipeline, image), *pipeline.reconstruct(image)])

    with gr.Tab("Reconstruct"):
        gr.Markdown(
            "Encode an image to its code and decode it. Output: the input as the model sees it, then the "
            "reconstruction."
        )
        image = ui.image_input("Image", height=200)
        button = gr.Button("Reconstruct", variant="primary")
        ui.wire(button, reconstruct, [image], ui.image_output("Input and reconstruction"), "reconstruct")


def _denoise_tab(pipeline: AutoencoderPipeline) -> None:
    def denoise(image, noise, strength, seed):
        image = ui.require_image(image, "image")
        ui.require_values(noise=noise, strength=strength, seed=seed)
        try:
            noisy = pipeline.corrupt(image, noise, float(strength), seed=int(seed))
        except ValueError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return ui.image_strip([_seen(pipeline, image), *noisy, *pipeline.denoise(noisy)])

    with gr.Tab("Denoise"):
        gr.Markdown(
            "Corrupt an image and reconstruct it: a denoising autoencoder returns the clean image. Masking sets a "
            "fraction of the pixels to black, salt-and-pepper to black or white, Gaussian adds noise of that "
            "standard deviation. Output: the input, the corrupted input, the reconstruction."
        )
        with gr.Row():
            image = ui.image_input("Image", height=200)
            with gr.Column():
                noise = gr.Radio(list(NOISES), value="masking", label="Noise")
                strength = gr.Slider(0, 1, value=0.3, step=0.05, label="Strength (fraction of pixels, or std)")
                seed = ui.seed_input()
        button = gr.Button("Corrupt and denoise", variant="primary")
        out = ui.image_output("Input, corrupted, denoised")
        ui.wire(button, denoise, [image, noise, strength, seed], out, "denoise")


def _plane_tab(pipeline: AutoencoderPipeline) -> None:
    def plane(n, extent):
        ui.require_values(size=n, extent=extent)
        return ui.image_grid(pipeline.latent_grid(int(n), float(extent)), nrow=int(n))

    with gr.Tab("Code plane"):
        gr.Markdown(
            "The code has two values: decode a grid over the plane, centred on the training codes' mean and "
            "spanning the chosen number of their standard deviations either way (first value left to right, second "
            "bottom to top)."
        )
        with gr.Row():
            n = gr.Slider(2, 16, value=8, step=1, precision=0, label="Grid size")
            extent = gr.Slider(0.5, 5, value=3, step=0.5, label="Extent (standard deviations)")
        button = gr.Button("Decode the plane", variant="primary")
        ui.wire(button, plane, [n, extent], ui.image_output("The code plane"), "code_plane")


def _anomaly_tab(pipeline: AutoencoderPipeline) -> None:
    reference = ui.saved_json(pipeline, "eval_results.json").get("metrics", {}).get("reconstruction_mse")

    def anomaly_score(image):
        return float(pipeline.anomaly_score(ui.require_image(image, "image"))[0])

    with gr.Tab("Anomaly score"):
        gr.Markdown(
            "The reconstruction error: the mean squared error per pixel value (pixels in [0, 1]). Images unlike "
            "the training data reconstruct worse."
            + (f" The test split averaged **{reference:.4f}**." if reference is not None else "")
        )
        image = ui.image_input("Image", height=200)
        button = gr.Button("Score", variant="primary")
        ui.wire(button, anomaly_score, [image], gr.Number(label="Reconstruction error"), "anomaly_score")
