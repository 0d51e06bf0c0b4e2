"""The VAE's Gradio demo: prior samples, latent interpolation and arithmetic, reconstruction, anomaly scores,
inpainting."""

from __future__ import annotations

import math

import gradio as gr
import torch
from genkit_vae.pipeline_vae import VAEPipeline

from genkit.images import seeded
from genkit.ui import demo as ui

__all__ = ["build_demo"]

ANOMALY_SAMPLES = 16  # posterior draws averaged per anomaly score: the score's spread shrinks as 1/sqrt(16)


def build_demo(pipeline: VAEPipeline) -> gr.Blocks:
    """A ``gr.Blocks`` app with one tab per thing a VAE can show; every event has an ``api_name``."""
    config = pipeline.vae.config
    classes = ui.Classes(pipeline, config.num_classes)
    grayscale = config.in_channels == 1
    with ui.demo_blocks(f"VAE demo ({config.image_size}x{config.image_size})") as demo:
        gr.Markdown(
            f"# Variational autoencoder\n{config.image_size}x{config.image_size} "
            f"{'grayscale' if grayscale else 'RGB'} images, a {config.latent_dim}-dimensional latent space"
            + (f", conditioned on {classes.k} classes" if classes.k else "")
            + ". Images are enlarged with square pixels."
        )
        ui.samples_tab(
            pipeline.sample,
            classes,
            "Decode random draws from the prior N(0, I). The same seed gives the same images.",
        )
        _interpolate_tab(pipeline, classes)
        _arithmetic_tab(pipeline, classes)
        _reconstruct_tab(pipeline, classes)
        _anomaly_tab(pipeline, classes)
        ui.reconstruction_inpaint_tab(pipeline, pipeline.inpaint, config.image_size, config.in_channels, classes)
    return ui.enable_queue(demo)


def _latent(pipeline: VAEPipeline):
    def latent(seed: int) -> torch.Tensor:
        # The same draw as pipeline.sample(1, seed): an interpolation starts and ends on those samples.
        return torch.randn(1, pipeline.vae.config.latent_dim, generator=seeded(seed))

    return latent


def _interpolate_tab(pipeline: VAEPipeline, classes: ui.Classes) -> None:
    def between_images(image_a, image_b, steps, label=None):
        ui.require_values(steps=steps)
        a, b = ui.require_image(image_a, "image A"), ui.require_image(image_b, "image B")
        return ui.image_strip(pipeline.interpolate(a, b, int(steps), classes.label(label)))

    with gr.Tab("Interpolate"):
        gr.Markdown("Walk the straight line between two latent codes: two seeds, or two uploaded images.")
        with gr.Row():
            steps = ui.steps_slider()
            cls = classes.inputs()
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
        between_seeds = ui.seed_interpolation(pipeline.interpolate, _latent(pipeline), classes)
        ui.wire(seeds_button, between_seeds, [seed_a, seed_b, steps, *cls], strip, "interpolate_seeds")
        ui.wire(images_button, between_images, [image_a, image_b, steps, *cls], strip, "interpolate_images")


def _arithmetic_tab(pipeline: VAEPipeline, classes: ui.Classes) -> None:
    def arithmetic(image_a, image_b, image_c, label=None):
        a, b, c = (ui.require_image(im, n) for im, n in ((image_a, "A"), (image_b, "B"), (image_c, "C")))
        labels = classes.label(label)
        # Shown with the three reconstructions so the user sees what the encoder made of each input.
        return ui.image_strip([*pipeline.reconstruct([a, b, c], labels), *pipeline.latent_arithmetic(a, b, c, labels)])

    with gr.Tab("Latent arithmetic"):
        gr.Markdown(
            "Decode z(A) - z(B) + z(C): e.g. a bold 7 - a thin 7 + a thin 1 gives a bold 1. "
            "Output: the reconstructions of A, B, C, then the result."
        )
        with gr.Row():
            images = [ui.image_input(f"Image {n}", height=200) for n in "ABC"]
        cls = classes.inputs()
        button = gr.Button("Compute A - B + C", variant="primary")
        ui.wire(button, arithmetic, [*images, *cls], ui.image_output("A, B, C and A - B + C"), "arithmetic")


def _reconstruct_tab(pipeline: VAEPipeline, classes: ui.Classes) -> None:
    config = pipeline.vae.config

    def reconstruct(image, label=None):
        image = ui.require_image(image, "image")
        seen = ui.model_view(image, config.image_size, config.in_channels)  # what the encoder gets
        return ui.image_strip([seen, *pipeline.reconstruct(image, classes.label(label))])

    with gr.Tab("Reconstruct"):
        gr.Markdown(
            "Encode an image to its posterior mean and decode it. Output: the input as the model "
            "sees it, then the reconstruction."
        )
        image = ui.image_input("Image", height=200)
        cls = classes.inputs()
        button = gr.Button("Reconstruct", variant="primary")
        ui.wire(button, reconstruct, [image, *cls], ui.image_output("Input and reconstruction"), "reconstruct")


def _anomaly_tab(pipeline: VAEPipeline, classes: ui.Classes) -> None:
    config = pipeline.vae.config
    dims = config.in_channels * config.image_size**2
    # The test split's mean negative ELBO, when the model was evaluated: a reference for the anomaly score.
    reference = ui.saved_json(pipeline, "eval_results.json").get("metrics", {}).get("negative_elbo_nats")

    def anomaly_score(image, label=None):
        image = ui.require_image(image, "image")
        return float(pipeline.anomaly_score(image, classes.label(label), num_samples=ANOMALY_SAMPLES)[0])

    with gr.Tab("Anomaly score"):
        gr.Markdown(
            f"Negative ELBO in nats, averaged over {ANOMALY_SAMPLES} posterior samples: higher means less "
            f"like the training data ({dims} pixel values; divide by {dims * math.log(2):.1f} for bits/dim)."
            + (f" The test split averaged **{reference:.1f}** nats." if reference is not None else "")
        )
        image = ui.image_input("Image", height=200)
        cls = classes.inputs()
        button = gr.Button("Score", variant="primary")
        ui.wire(button, anomaly_score, [image, *cls], gr.Number(label="Negative ELBO (nats)"), "anomaly_score")
