"""The DDPM's Gradio demo: pick a sampler, steps, seed (and class and guidance), watch noise become images."""

from __future__ import annotations

import math

import gradio as gr
from genkit_ddpm.pipeline_ddpm import ClassConditionalDDPMPipeline, GenkitDDPMPipeline

from genkit.images import seeded
from genkit.ui.demo import (
    class_picker,
    demo_blocks,
    enable_queue,
    image_grid,
    image_output,
    require_values,
    seed_input,
    wire,
)

__all__ = ["FRAMES", "MAX_GUIDANCE", "MAX_IMAGES", "SCHEDULERS", "build_demo"]

# label -> the pipeline's scheduler name; the first is the default (genkit sample's, docs/benchmarks.md)
SCHEDULERS = {"DPM-Solver++ 2M SDE": "dpm++2m-sde", "DDIM": "ddim", "DDPM": "ddpm"}
MAX_IMAGES = 16  # images denoised together per request: every step runs the UNet on all of them
MAX_GUIDANCE = 10.0  # classifier-free guidance beyond ~10 only saturates small models' images
FRAMES = 10  # pictures of the progression: x_T, evenly spaced x_t, and the final x_0


def build_demo(pipeline: GenkitDDPMPipeline | ClassConditionalDDPMPipeline) -> gr.Blocks:
    """One tab: generate, with the denoising progression from pure noise to the final images."""
    conditional = isinstance(pipeline, ClassConditionalDDPMPipeline)
    T = pipeline.scheduler.config.num_train_timesteps
    size = pipeline.unet.config.sample_size
    with demo_blocks(f"DDPM demo ({size}x{size})") as demo:
        gr.Markdown(
            f"# Denoising diffusion\nA {size}x{size} DDPM trained with T = {T} noise levels"
            + (f", conditioned on {pipeline.num_classes} classes with classifier-free guidance" if conditional else "")
            + ". Sampling starts from pure noise x_T and removes a little noise at every step. DPM-Solver++ "
            "(2M SDE) and DDIM reach good images in 20-50 steps instead of DDPM's T; DDIM is deterministic: "
            "one seed, one image, whatever the number of steps."
        )
        with gr.Row():
            seed = seed_input()
            scheduler = gr.Radio(list(SCHEDULERS.items()), value=next(iter(SCHEDULERS.values())), label="Sampler")
            steps = gr.Slider(1, T, value=min(50, T), step=1, precision=0, label="Steps")
            count = gr.Slider(1, MAX_IMAGES, value=4, step=1, precision=0, label="Images")
        extra = _conditioning_inputs(pipeline) if conditional else []
        button = gr.Button("Generate", variant="primary")
        with gr.Row():
            final = image_output("Samples", scale=1)
            progression = gr.Gallery(
                label="Denoising progression",
                format="png",
                columns=5,
                object_fit="contain",
                elem_classes=["genkit-pixels"],
                scale=2,
            )
        inputs = [seed, scheduler, steps, count, *extra]
        wire(button, _generator(pipeline, conditional), inputs, [final, progression], "generate")
    return enable_queue(demo)


def _conditioning_inputs(pipeline: ClassConditionalDDPMPipeline) -> list:
    with gr.Row():
        return [
            class_picker(pipeline.class_names),
            gr.Slider(
                0,
                MAX_GUIDANCE,
                value=1.0,
                step=0.5,
                label="Guidance scale",
                info="0: ignore the class; 1: the conditional model; above 1: stronger class",
            ),
        ]


def _generator(pipeline, conditional: bool):
    def generate(seed, scheduler, steps, count, label=None, guidance=None, progress=gr.Progress(track_tqdm=True)):
        require_values(seed=seed, sampler=scheduler, steps=steps, images=count)
        if conditional:
            require_values(**{"class": label, "guidance scale": guidance})
        steps, count = int(steps), int(count)
        # Every k-th x_t is kept, so the progression has about FRAMES pictures whatever the number of steps.
        every = max(1, math.ceil(steps / (FRAMES - 1)))
        conditioning = {"class_labels": int(label), "guidance_scale": float(guidance)} if conditional else {}
        out = pipeline(
            batch_size=count,
            generator=seeded(int(seed)),
            num_inference_steps=steps,
            scheduler=scheduler,
            return_intermediates=every,
            **conditioning,
        )
        frames = [
            (image_grid(images), "x_T (noise)" if done == 0 else f"step {done}/{steps}")
            for images, done in zip(out.intermediates, out.intermediate_steps, strict=True)
        ]
        return image_grid(out.images), frames

    return generate
