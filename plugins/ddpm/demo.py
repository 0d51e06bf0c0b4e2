"""The DDPM's Gradio demo: pick a sampler, steps, seed (and class and guidance), watch noise become images; fill in a
region of an image (RePaint) or redraw one from a noise level (SDEdit)."""

from __future__ import annotations

import math

import gradio as gr
from genkit_ddpm.pipeline_ddpm import ClassConditionalDDPMPipeline, GenkitDDPMPipeline

from genkit.images import seeded
from genkit.ui.demo import (
    PAINT_LABEL,
    class_picker,
    demo_blocks,
    enable_queue,
    held_out_image_picker,
    image_grid,
    image_input,
    image_output,
    image_strip,
    mask_inputs,
    masked_preview,
    model_view,
    paint_input,
    painted_image_and_mask,
    require_image,
    require_values,
    seed_input,
    wire,
)

__all__ = ["FRAMES", "MAX_GUIDANCE", "MAX_IMAGES", "MAX_INPAINT_STEPS", "SCHEDULERS", "build_demo"]

# label -> the pipeline's scheduler name; the first is the default (genkit sample's, docs/benchmarks.md)
SCHEDULERS = {"DPM-Solver++ 2M SDE": "dpm++2m-sde", "DDIM": "ddim", "DDPM": "ddpm"}
MAX_IMAGES = 16  # images denoised together per request: every step runs the UNet on all of them
MAX_GUIDANCE = 10.0  # classifier-free guidance beyond ~10 only saturates small models' images
MAX_INPAINT_STEPS = 250  # RePaint's steps (the paper's default); each is ~"resamplings" model calls
FRAMES = 10  # pictures of the progression: x_T, evenly spaced x_t, and the final x_0


def build_demo(pipeline: GenkitDDPMPipeline | ClassConditionalDDPMPipeline) -> gr.Blocks:
    """Three tabs: generate (with the denoising progression from pure noise), inpaint, image to image."""
    conditional = isinstance(pipeline, ClassConditionalDDPMPipeline)
    T = pipeline.scheduler.config.num_train_timesteps
    size = pipeline.unet.config.sample_size
    with demo_blocks(f"DDPM demo ({size}x{size})") as demo:
        gr.Markdown(
            f"# Denoising diffusion\nA {size}x{size} DDPM trained with T = {T} noise levels"
            + (f", conditioned on {pipeline.num_classes} classes with classifier-free guidance" if conditional else "")
            + "."
        )
        with gr.Tab("Generate"):
            _generate_tab(pipeline, conditional, T)
        with gr.Tab("Inpaint"):
            _inpaint_tab(pipeline, conditional)
        with gr.Tab("Image to image"):
            _img2img_tab(pipeline, conditional, T)
    return enable_queue(demo)


def _generate_tab(pipeline, conditional: bool, T: int) -> None:
    gr.Markdown(
        "Sampling starts from pure noise x_T and removes a little noise at every step. DPM-Solver++ (2M SDE) and "
        "DDIM reach good images in 20-50 steps instead of DDPM's T; DDIM is deterministic: one seed, one image, "
        "whatever the number of steps."
    )
    with gr.Row():
        seed = seed_input()
        scheduler = _sampler_input()
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


def _sampler_input() -> gr.Radio:
    return gr.Radio(list(SCHEDULERS.items()), value=next(iter(SCHEDULERS.values())), label="Sampler")


def _inpaint_tab(pipeline, conditional: bool) -> None:
    gr.Markdown(
        "Fill in a region of an image with RePaint: at every step the kept pixels are the image noised to that "
        "step's level and the region is the model's; jumping back and resampling (the jumps) lets the two agree. "
        "Model calls: about steps x resamplings. Output: what the model keeps (the region gray), then the result."
    )
    size, channels = pipeline.sample_size, pipeline.unet.config.in_channels
    with gr.Row():
        with gr.Column():
            image = paint_input(PAINT_LABEL, height=320)
            held_out_image_picker(pipeline, image, "inpaint_test_image")
        with gr.Column():
            mask = mask_inputs()
            with gr.Row():
                seed = seed_input()
                top = min(MAX_INPAINT_STEPS, pipeline.scheduler.config.num_train_timesteps)
                steps = gr.Slider(10, top, value=min(50, top), step=10, precision=0, label="Steps")
                resample = gr.Slider(1, 10, value=4, step=1, precision=0, label="Resamplings per jump")
    extra = _conditioning_inputs(pipeline) if conditional else []
    button = gr.Button("Fill in", variant="primary")
    out = image_output("Kept and filled in")

    def inpaint(value, preset, uploaded, seed, steps, resample, label=None, guidance=None):
        image, mask = painted_image_and_mask(value, preset, uploaded)
        require_values(seed=seed, steps=steps, **{"resamplings per jump": resample})
        preview = masked_preview(image, mask, size, channels)
        out = pipeline.inpaint(
            image,
            mask,
            generator=seeded(int(seed)),
            num_inference_steps=int(steps),
            jump_length=min(10, int(steps)),
            jump_n_sample=int(resample),
            **_conditioning(conditional, label, guidance),
        )
        return image_strip([preview, *out.images])

    wire(button, inpaint, [image, *mask, seed, steps, resample, *extra], out, "inpaint")


def _img2img_tab(pipeline, conditional: bool, T: int) -> None:
    gr.Markdown(
        "Redraw an image (SDEdit): noise it to the level a fraction *strength* of the way to pure noise, then "
        "denoise. Low strength keeps the image; high strength keeps only its rough layout. "
        "Output: the input as the model sees it, then the result."
    )
    with gr.Row():
        with gr.Column():
            image = image_input("Image: upload one or pick a test image", height=200)
            held_out_image_picker(pipeline, image, "img2img_test_image")
        with gr.Column():
            strength = gr.Slider(0, 1, value=0.5, step=0.05, label="Strength")
            with gr.Row():
                seed = seed_input()
                scheduler = _sampler_input()
                steps = gr.Slider(1, T, value=min(50, T), step=1, precision=0, label="Steps")
    extra = _conditioning_inputs(pipeline) if conditional else []
    button = gr.Button("Redraw", variant="primary")
    out = image_output("Input and result")

    def img2img(image, strength, seed, scheduler, steps, label=None, guidance=None):
        image = require_image(image, "image")
        require_values(strength=strength, seed=seed, sampler=scheduler, steps=steps)
        kwargs = _conditioning(conditional, label, guidance)
        result = pipeline.img2img(
            image,
            strength=float(strength),
            generator=seeded(int(seed)),
            num_inference_steps=int(steps),
            scheduler=scheduler,
            **kwargs,
        )
        seen = model_view(image, pipeline.sample_size, pipeline.unet.config.in_channels)
        return image_strip([seen, *result.images])

    wire(button, img2img, [image, strength, seed, scheduler, steps, *extra], out, "img2img")


def _conditioning(conditional: bool, label, guidance) -> dict:
    if not conditional:
        return {}
    require_values(**{"class": label, "guidance scale": guidance})
    return {"class_labels": int(label), "guidance_scale": float(guidance)}


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
        conditioning = _conditioning(conditional, label, guidance)
        steps, count = int(steps), int(count)
        # Every k-th x_t is kept, so the progression has about FRAMES pictures whatever the number of steps.
        every = max(1, math.ceil(steps / (FRAMES - 1)))
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
