"""The flow's Gradio demo: samples with a temperature, interpolation in z, exact encoding and decoding, bits/dim."""

from __future__ import annotations

import gradio as gr
import torch
from genkit_flow.pipeline_flow import FlowPipeline

from genkit.images import seeded
from genkit.ui import demo as ui

__all__ = ["build_demo"]


def build_demo(pipeline: FlowPipeline) -> gr.Blocks:
    """A ``gr.Blocks`` app with one tab per thing a flow can show; every event has an ``api_name``."""
    config = pipeline.flow.config
    with ui.demo_blocks(f"Flow demo ({config.image_size}x{config.image_size})") as demo:
        gr.Markdown(
            f"# Normalizing flow ({'Glow' if config.architecture == 'glow' else 'RealNVP'})\n"
            f"An invertible map between {config.image_size}x{config.image_size} images and Gaussian codes of the same "
            f"size ({pipeline.dims} values): exact likelihoods, exact encoding. Images are enlarged with square "
            "pixels."
        )
        _samples_tab(pipeline)
        _interpolate_tab(pipeline)
        _roundtrip_tab(pipeline)
        _likelihood_tab(pipeline)
    return ui.enable_queue(demo)


def _samples_tab(pipeline: FlowPipeline) -> None:
    def samples(seed, count, temperature):
        ui.require_values(seed=seed, images=count, temperature=temperature)
        return ui.image_grid(pipeline.sample(int(count), seed=int(seed), temperature=float(temperature)))

    with gr.Tab("Samples"):
        gr.Markdown("Decode codes z ~ N(0, T^2 I). A temperature T below 1 gives cleaner, less varied images.")
        with gr.Row():
            seed = ui.seed_input()
            count = gr.Slider(1, ui.MAX_IMAGES, value=16, step=1, precision=0, label="Images")
            temperature = gr.Slider(0, 1.5, value=0.8, step=0.05, label="Temperature")
        button = gr.Button("Generate", variant="primary")
        ui.wire(button, samples, [seed, count, temperature], ui.image_output("Samples"), "sample")


def _interpolate_tab(pipeline: FlowPipeline) -> None:
    def between_seeds(seed_a, seed_b, steps, temperature):
        ui.require_values(seed=seed_a, **{"seed B": seed_b}, steps=steps, temperature=temperature)
        za, zb = (
            torch.randn(1, pipeline.dims, generator=seeded(int(s))) * float(temperature) for s in (seed_a, seed_b)
        )
        return ui.image_strip(pipeline.interpolate(za, zb, int(steps)))

    def between_images(image_a, image_b, steps):
        ui.require_values(steps=steps)
        a, b = ui.require_image(image_a, "image A"), ui.require_image(image_b, "image B")
        return ui.image_strip(pipeline.interpolate(a, b, int(steps)))

    with gr.Tab("Interpolate"):
        gr.Markdown("Walk the straight line between two codes: two seeds, or the exact codes of two uploaded images.")
        with gr.Row():
            steps = ui.steps_slider()
            temperature = gr.Slider(0, 1.5, value=0.8, step=0.05, label="Temperature (seeds)")
        with gr.Row():
            with gr.Column():
                with gr.Row():
                    seed_a, seed_b = ui.seed_input("Seed A", 0), ui.seed_input("Seed B", 1)
                seeds_button = gr.Button("Interpolate seeds", variant="primary")
            with gr.Column():
                with gr.Row():
                    image_a, image_b = ui.image_input("Image A", height=160), ui.image_input("Image B", height=160)
                images_button = gr.Button("Interpolate images")
        strip = ui.image_output("Interpolation")
        ui.wire(seeds_button, between_seeds, [seed_a, seed_b, steps, temperature], strip, "interpolate_seeds")
        ui.wire(images_button, between_images, [image_a, image_b, steps], strip, "interpolate_images")


def _roundtrip_tab(pipeline: FlowPipeline) -> None:
    config = pipeline.flow.config

    def roundtrip(image):
        image = ui.require_image(image, "image")
        seen = ui.model_view(image, config.image_size, config.in_channels)
        return ui.image_strip([seen, *pipeline.decode(pipeline.encode(image))])

    with gr.Tab("Encode and decode"):
        gr.Markdown(
            "Encode an image to its code and decode it: a flow is invertible, so the two images are the same "
            "(unlike an autoencoder's reconstruction). Output: the input as the model sees it, then decode(encode(x))."
        )
        image = ui.image_input("Image", height=200)
        button = gr.Button("Encode and decode", variant="primary")
        ui.wire(button, roundtrip, [image], ui.image_output("Input and decode(encode(input))"), "roundtrip")


def _likelihood_tab(pipeline: FlowPipeline) -> None:
    reference = ui.saved_json(pipeline, "eval_results.json").get("metrics", {}).get("bits_per_dim")

    def likelihood(image):
        image = ui.require_image(image, "image")
        return float(pipeline.bits_per_dim(image, generator=seeded(0))[0])

    with gr.Tab("Bits per dimension"):
        gr.Markdown(
            "The exact negative log-likelihood of an image in bits per pixel value: lower means more like the "
            "training data." + (f" The test split averaged **{reference:.3f}**." if reference is not None else "")
        )
        image = ui.image_input("Image", height=200)
        button = gr.Button("Score", variant="primary")
        ui.wire(button, likelihood, [image], gr.Number(label="Bits per dimension"), "bits_per_dim")
