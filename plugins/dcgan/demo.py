"""The DCGAN's Gradio demo: samples by seed and class, latent interpolation and arithmetic, realness scores."""

from __future__ import annotations

import gradio as gr
import torch
from genkit_dcgan.pipeline_dcgan import DCGANPipeline

from genkit.demo import (
    ALL_CLASSES,
    MODEL_QUEUE,
    class_names,
    class_picker,
    demo_blocks,
    enable_queue,
    image_grid,
    image_input,
    image_output,
    image_strip,
    require_image,
    require_values,
    seed_input,
)

__all__ = ["MAX_GRID", "MAX_IMAGES", "MAX_STEPS", "build_demo"]

MAX_IMAGES = 64  # per request, or per class row when every class is shown
MAX_GRID = 256  # images in one grid of every class
MAX_STEPS = 16  # interpolation points
REFERENCE_SAMPLES = 64  # the generator's own samples scored once at start-up, as a reference for uploads


def build_demo(pipeline: DCGANPipeline) -> gr.Blocks:
    """Tabs for samples, interpolation, latent arithmetic and the discriminator's score, each with an api_name."""
    config = pipeline.generator.config
    size, k = config.image_size, pipeline.num_classes
    names = class_names(pipeline, k) if k else []
    wgan = pipeline.discriminator.config.loss != "bce"
    score_name = "critic score (higher = more real)" if wgan else "P(real)"

    def labels_for(label):
        if not k:
            return None
        require_values(**{"class": label})
        return int(label)

    def latent(seed) -> torch.Tensor:
        require_values(seed=seed)
        return pipeline.make_latents(1, int(seed))

    def sample(seed, count, label=None):
        require_values(seed=seed, images=count)
        count = int(count)
        if k and label == ALL_CLASSES:
            if count * k > MAX_GRID:
                raise gr.Error(f"{count} images for each of {k} classes is {count * k}; at most {MAX_GRID} at once")
            labels = torch.arange(k).repeat_interleave(count)  # row c holds `count` samples of class c
            return image_grid(pipeline.sample(k * count, seed=int(seed), labels=labels), nrow=count)
        return image_grid(pipeline.sample(count, seed=int(seed), labels=labels_for(label)))

    def interpolate(seed_a, seed_b, steps, label=None):
        require_values(steps=steps)
        return image_strip(pipeline.interpolate(latent(seed_a), latent(seed_b), int(steps), labels_for(label)))

    def arithmetic(seed_a, seed_b, seed_c, label=None):
        z = [latent(s) for s in (seed_a, seed_b, seed_c)]
        labels = labels_for(label)
        return image_strip(
            [*pipeline(latents=torch.cat(z), labels=labels).images, *pipeline.latent_arithmetic(*z, labels=labels)]
        )

    def realness(image, label=None):
        image = require_image(image, "image")
        return float(pipeline.discriminate(image, labels_for(label))[0])

    def class_input(**kwargs):
        return [class_picker(names, **kwargs)] if k else []

    # What the discriminator makes of the generator's own samples: a yardstick for an uploaded image's score.
    reference_labels = torch.arange(REFERENCE_SAMPLES) % k if k else None
    reference = pipeline.sample(REFERENCE_SAMPLES, seed=0, labels=reference_labels, output_type="pt")
    own = pipeline.discriminate(reference, reference_labels).mean().item()

    with demo_blocks(f"DCGAN demo ({size}x{size})") as demo:
        gr.Markdown(
            f"# Deep convolutional GAN\n{size}x{size} images from a {config.latent_dim}-dimensional latent space"
            + (f", conditioned on {k} classes" if k else "")
            + f", trained with the {'WGAN-GP' if wgan else 'non-saturating GAN'} loss. Images are enlarged with "
            "square pixels."
        )
        with gr.Tab("Samples"):
            gr.Markdown(
                "The generator's images for random latent vectors z ~ N(0, I); the same seed gives the same images."
            )
            with gr.Row():
                seed = seed_input()
                count = gr.Slider(1, MAX_IMAGES, value=16, step=1, precision=0, label="Images")
                cls = class_input(allow_all=True)
            button = gr.Button("Generate", variant="primary")
            out = image_output("Samples")
            button.click(sample, [seed, count, *cls], out, api_name="sample", concurrency_id=MODEL_QUEUE)

        with gr.Tab("Interpolate"):
            gr.Markdown(
                "Walk the straight line between the latent vectors of two seeds: a smooth strip means the "
                "generator learned a continuous space rather than memorized images."
            )
            with gr.Row():
                seed_a, seed_b = seed_input("Seed A", 0), seed_input("Seed B", 1)
                steps = gr.Slider(2, MAX_STEPS, value=8, step=1, precision=0, label="Steps")
                cls = class_input()
            button = gr.Button("Interpolate", variant="primary")
            out = image_output("Interpolation")
            button.click(
                interpolate, [seed_a, seed_b, steps, *cls], out, api_name="interpolate", concurrency_id=MODEL_QUEUE
            )

        with gr.Tab("Latent arithmetic"):
            gr.Markdown(
                "Generate from z(A) - z(B) + z(C) (Radford et al. 2015, Sec. 6.3). Output: the images of "
                "A, B and C, then the result."
            )
            with gr.Row():
                seeds = [seed_input(f"Seed {n}", i) for i, n in enumerate("ABC")]
                cls = class_input()
            button = gr.Button("Compute A - B + C", variant="primary")
            out = image_output("A, B, C and A - B + C")
            button.click(arithmetic, [*seeds, *cls], out, api_name="arithmetic", concurrency_id=MODEL_QUEUE)

        with gr.Tab("Discriminator"):
            gr.Markdown(
                f"The discriminator's {score_name} for an uploaded image. Its average over the generator's "
                f"own samples is **{own:.3f}**."
            )
            image = image_input("Image", height=200)
            cls = class_input()
            button = gr.Button("Score", variant="primary")
            score = gr.Number(label="Realness")
            button.click(realness, [image, *cls], score, api_name="realness", concurrency_id=MODEL_QUEUE)
    return enable_queue(demo)
