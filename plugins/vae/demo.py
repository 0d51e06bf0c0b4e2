"""The VAE's Gradio demo: prior samples, latent interpolation and arithmetic, reconstruction, anomaly scores."""

from __future__ import annotations

import math

import gradio as gr
import PIL.Image
import torch
from genkit_vae.pipeline_vae import VAEPipeline

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
    saved_json,
    seed_input,
)

__all__ = ["MAX_GRID", "MAX_IMAGES", "MAX_STEPS", "build_demo"]

MAX_IMAGES = 64  # per request, or per class row when every class is shown
MAX_GRID = 256  # images in one grid of every class: beyond that a grid is too large to read on a screen
MAX_STEPS = 16  # interpolation points: enough for a smooth strip
ANOMALY_SAMPLES = 16  # posterior draws averaged per anomaly score: the score's spread shrinks as 1/sqrt(16)


def build_demo(pipeline: VAEPipeline) -> gr.Blocks:
    """A ``gr.Blocks`` app with one tab per thing a VAE can show; every event has an ``api_name``."""
    config = pipeline.vae.config
    size, k = config.image_size, config.num_classes
    names = class_names(pipeline, k) if k else []
    mode = "L" if config.in_channels == 1 else "RGB"
    dims = config.in_channels * size * size

    def labels_for(label):
        if not k:
            return None
        require_values(**{"class": label})
        return int(label)

    def latent(seed: int) -> torch.Tensor:
        require_values(seed=seed)
        # The same draw as pipeline.sample(1, seed): an interpolation starts and ends on those samples.
        return torch.randn(1, config.latent_dim, generator=torch.Generator().manual_seed(int(seed)))

    def sample(seed, count, label=None):
        require_values(seed=seed, images=count)
        count = int(count)
        if k and label == ALL_CLASSES:
            if count * k > MAX_GRID:
                raise gr.Error(f"{count} images for each of {k} classes is {count * k}; at most {MAX_GRID} at once")
            labels = torch.arange(k).repeat_interleave(count)  # row c holds `count` samples of class c
            return image_grid(pipeline.sample(k * count, seed=int(seed), labels=labels), nrow=count)
        return image_grid(pipeline.sample(count, seed=int(seed), labels=labels_for(label)))

    def interpolate_seeds(seed_a, seed_b, steps, label=None):
        require_values(steps=steps)
        return image_strip(pipeline.interpolate(latent(seed_a), latent(seed_b), int(steps), labels_for(label)))

    def interpolate_images(image_a, image_b, steps, label=None):
        require_values(steps=steps)
        a, b = require_image(image_a, "image A"), require_image(image_b, "image B")
        return image_strip(pipeline.interpolate(a, b, int(steps), labels_for(label)))

    def arithmetic(image_a, image_b, image_c, label=None):
        a, b, c = (require_image(im, n) for im, n in ((image_a, "A"), (image_b, "B"), (image_c, "C")))
        labels = labels_for(label)
        # Shown with the three reconstructions so the user sees what the encoder made of each input.
        return image_strip([*pipeline.reconstruct([a, b, c], labels), *pipeline.latent_arithmetic(a, b, c, labels)])

    def reconstruct(image, label=None):
        image = require_image(image, "image")
        seen = image.convert(mode).resize((size, size), PIL.Image.BILINEAR)  # what the encoder gets
        return image_strip([seen, *pipeline.reconstruct(image, labels_for(label))])

    def anomaly_score(image, label=None):
        image = require_image(image, "image")
        return float(pipeline.anomaly_score(image, labels_for(label), num_samples=ANOMALY_SAMPLES)[0])

    def class_input(**kwargs):
        return [class_picker(names, **kwargs)] if k else []

    # The test split's mean negative ELBO, when the model was evaluated: a reference for the anomaly score.
    reference = saved_json(pipeline, "eval_results.json").get("metrics", {}).get("negative_elbo_nats")
    with demo_blocks(f"VAE demo ({size}x{size})") as demo:
        gr.Markdown(
            f"# Variational autoencoder\n{size}x{size} {'grayscale' if mode == 'L' else 'RGB'} images, "
            f"a {config.latent_dim}-dimensional latent space"
            + (f", conditioned on {k} classes" if k else "")
            + ". Images are enlarged with square pixels."
        )
        with gr.Tab("Samples"):
            gr.Markdown("Decode random draws from the prior N(0, I). The same seed gives the same images.")
            with gr.Row():
                seed = seed_input()
                count = gr.Slider(1, MAX_IMAGES, value=16, step=1, precision=0, label="Images")
                cls = class_input(allow_all=True)
            button = gr.Button("Generate", variant="primary")
            out = image_output("Samples")
            button.click(sample, [seed, count, *cls], out, api_name="sample", concurrency_id=MODEL_QUEUE)

        with gr.Tab("Interpolate"):
            gr.Markdown("Walk the straight line between two latent codes: two seeds, or two uploaded images.")
            with gr.Row():
                steps = gr.Slider(2, MAX_STEPS, value=8, step=1, precision=0, label="Steps")
                cls = class_input()
            with gr.Row():
                with gr.Column():
                    with gr.Row():
                        seed_a, seed_b = seed_input("Seed A", 0), seed_input("Seed B", 1)
                    seeds_button = gr.Button("Interpolate seeds", variant="primary")
                with gr.Column():
                    with gr.Row():
                        image_a = image_input("Image A", height=160)
                        image_b = image_input("Image B", height=160)
                    images_button = gr.Button("Interpolate images")
            strip = image_output("Interpolation")
            seeds_button.click(
                interpolate_seeds,
                [seed_a, seed_b, steps, *cls],
                strip,
                api_name="interpolate_seeds",
                concurrency_id=MODEL_QUEUE,
            )
            images_button.click(
                interpolate_images,
                [image_a, image_b, steps, *cls],
                strip,
                api_name="interpolate_images",
                concurrency_id=MODEL_QUEUE,
            )

        with gr.Tab("Latent arithmetic"):
            gr.Markdown(
                "Decode z(A) - z(B) + z(C): e.g. a bold 7 - a thin 7 + a thin 1 gives a bold 1. "
                "Output: the reconstructions of A, B, C, then the result."
            )
            with gr.Row():
                arith = [image_input(f"Image {n}", height=200) for n in "ABC"]
            cls = class_input()
            button = gr.Button("Compute A - B + C", variant="primary")
            out = image_output("A, B, C and A - B + C")
            button.click(arithmetic, [*arith, *cls], out, api_name="arithmetic", concurrency_id=MODEL_QUEUE)

        with gr.Tab("Reconstruct"):
            gr.Markdown(
                "Encode an image to its posterior mean and decode it. Output: the input as the model "
                "sees it, then the reconstruction."
            )
            image = image_input("Image", height=200)
            cls = class_input()
            button = gr.Button("Reconstruct", variant="primary")
            out = image_output("Input and reconstruction")
            button.click(reconstruct, [image, *cls], out, api_name="reconstruct", concurrency_id=MODEL_QUEUE)

        with gr.Tab("Anomaly score"):
            gr.Markdown(
                f"Negative ELBO in nats, averaged over {ANOMALY_SAMPLES} posterior samples: higher means less "
                f"like the training data ({dims} pixel values; divide by {dims * math.log(2):.1f} for bits/dim)."
                + (f" The test split averaged **{reference:.1f}** nats." if reference is not None else "")
            )
            image = image_input("Image", height=200)
            cls = class_input()
            button = gr.Button("Score", variant="primary")
            score = gr.Number(label="Negative ELBO (nats)")
            button.click(anomaly_score, [image, *cls], score, api_name="anomaly_score", concurrency_id=MODEL_QUEUE)
    return enable_queue(demo)
