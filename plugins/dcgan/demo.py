"""The DCGAN's Gradio demo: samples by seed and class, latent interpolation and arithmetic, realness scores."""

from __future__ import annotations

import gradio as gr
import torch
from genkit_dcgan.pipeline_dcgan import DCGANPipeline

from genkit.ui import demo as ui

__all__ = ["build_demo"]

REFERENCE_SAMPLES = 64  # the generator's own samples scored once at start-up, as a reference for uploads


def build_demo(pipeline: DCGANPipeline) -> gr.Blocks:
    """Tabs for samples, interpolation, latent arithmetic and the discriminator's score, each with an api_name."""
    config = pipeline.generator.config
    classes = ui.Classes(pipeline, pipeline.num_classes)
    wgan = pipeline.discriminator.config.loss != "bce"
    with ui.demo_blocks(f"DCGAN demo ({config.image_size}x{config.image_size})") as demo:
        gr.Markdown(
            f"# Deep convolutional GAN\n{config.image_size}x{config.image_size} images from a "
            f"{config.latent_dim}-dimensional latent space"
            + (f", conditioned on {classes.k} classes" if classes.k else "")
            + f", trained with the {'WGAN-GP' if wgan else 'non-saturating GAN'} loss. Images are enlarged with "
            "square pixels."
        )
        text = "The generator's images for random latent vectors z ~ N(0, I); the same seed gives the same images."
        ui.samples_tab(pipeline.sample, classes, text)
        _interpolate_tab(pipeline, classes)
        _arithmetic_tab(pipeline, classes)
        _discriminator_tab(pipeline, classes, "critic score (higher = more real)" if wgan else "P(real)")
    return ui.enable_queue(demo)


def _interpolate_tab(pipeline: DCGANPipeline, classes: ui.Classes) -> None:
    with gr.Tab("Interpolate"):
        gr.Markdown(
            "Walk the straight line between the latent vectors of two seeds: a smooth strip means the "
            "generator learned a continuous space rather than memorized images."
        )
        with gr.Row():
            seed_a, seed_b = ui.seed_input("Seed A", 0), ui.seed_input("Seed B", 1)
            steps = ui.steps_slider()
            cls = classes.inputs()
        button = gr.Button("Interpolate", variant="primary")
        interpolate = ui.seed_interpolation(pipeline.interpolate, lambda seed: pipeline.make_latents(1, seed), classes)
        ui.wire(button, interpolate, [seed_a, seed_b, steps, *cls], ui.image_output("Interpolation"), "interpolate")


def _arithmetic_tab(pipeline: DCGANPipeline, classes: ui.Classes) -> None:
    def arithmetic(seed_a, seed_b, seed_c, label=None):
        ui.require_values(**{"seed A": seed_a, "seed B": seed_b, "seed C": seed_c})
        z = [pipeline.make_latents(1, int(s)) for s in (seed_a, seed_b, seed_c)]
        labels = classes.label(label)
        return ui.image_strip(
            [*pipeline(latents=torch.cat(z), labels=labels).images, *pipeline.latent_arithmetic(*z, labels=labels)]
        )

    with gr.Tab("Latent arithmetic"):
        gr.Markdown(
            "Generate from z(A) - z(B) + z(C) (Radford et al. 2015, Sec. 6.3). Output: the images of "
            "A, B and C, then the result."
        )
        with gr.Row():
            seeds = [ui.seed_input(f"Seed {n}", i) for i, n in enumerate("ABC")]
            cls = classes.inputs()
        button = gr.Button("Compute A - B + C", variant="primary")
        ui.wire(button, arithmetic, [*seeds, *cls], ui.image_output("A, B, C and A - B + C"), "arithmetic")


def _discriminator_tab(pipeline: DCGANPipeline, classes: ui.Classes, score_name: str) -> None:
    # What the discriminator makes of the generator's own samples: a yardstick for an uploaded image's score.
    reference_labels = torch.arange(REFERENCE_SAMPLES) % classes.k if classes.k else None
    reference = pipeline.sample(REFERENCE_SAMPLES, seed=0, labels=reference_labels, output_type="pt")
    own = pipeline.discriminate(reference, reference_labels).mean().item()

    def realness(image, label=None):
        image = ui.require_image(image, "image")
        return float(pipeline.discriminate(image, classes.label(label))[0])

    with gr.Tab("Discriminator"):
        gr.Markdown(
            f"The discriminator's {score_name} for an uploaded image. Its average over the generator's "
            f"own samples is **{own:.3f}**."
        )
        image = ui.image_input("Image", height=200)
        cls = classes.inputs()
        button = gr.Button("Score", variant="primary")
        ui.wire(button, realness, [image, *cls], gr.Number(label="Realness"), "realness")
