"""Pixels as a model takes them: any PIL image to 8-bit grayscale or RGB, and model tensors back to PIL images; and
the checks every pipeline makes of its counts and seeds.

One conversion for training data, demos and the shipped pipelines. A pipeline's folder carries a copy of this module
beside its own code (``GenkitPipeline`` ships it), so it imports nothing of genkit: PIL, numpy, torch and diffusers'
``VaeImageProcessor`` only.

What ``PIL.Image.convert`` gets wrong, done here instead: 16-bit images (``I;16`` PNGs and TIFFs, ``I``) are scaled
to 8 bits, not clipped at 255 (which turns most of a 16-bit image white); transparency (``RGBA``, ``LA``, palette
images with a transparent colour) is composited on a background instead of dropped (a fully transparent red pixel is
the background, not red); palette images go through RGBA.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
from diffusers.image_processor import VaeImageProcessor

__all__ = [
    "BACKGROUNDS",
    "MAX_SEED",
    "check_count",
    "class_labels",
    "fill_by_reconstruction",
    "inpainting_input",
    "mask_input",
    "model_input",
    "model_output",
    "pil_to_tensor",
    "seeded",
    "tensor_to_pil",
    "to_mode",
]

# The colour transparent pixels become (``--background``): white, as a page or a browser shows a transparent image.
BACKGROUNDS = {"white": 255, "black": 0}
_PROCESSOR = VaeImageProcessor(do_resize=False, do_normalize=True)  # [0, 1] <-> [-1, 1], numpy <-> PIL


def _to_8bit(image: PIL.Image.Image) -> PIL.Image.Image:
    """A one-channel 16/32-bit integer or float image as "L": integers on a 16-bit scale (65535 -> 255), floats read
    as 0-1 (or 0-255 when any value is larger than 1)."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        scale = 255.0 if values.size and np.nanmax(values) > 1 else 1.0
        values = np.nan_to_num(values) / scale * 255.0
    else:  # "I;16*", "I": a 16-bit scale; 32-bit integer images hold 16-bit data in practice (PNG, TIFF)
        values = values / 257.0
    return PIL.Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), mode="L")


def to_mode(image: PIL.Image.Image, mode: str, background: str = "white") -> PIL.Image.Image:
    """``image`` as 8-bit ``mode`` ("L" or "RGB"), deep images scaled and transparency composited on
    ``background`` ("white" or "black")."""
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _to_8bit(image)
    elif image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        shade = BACKGROUNDS[background]
        canvas = PIL.Image.new("RGBA", rgba.size, (shade, shade, shade, 255))
        canvas.alpha_composite(rgba)
        image = canvas.convert("RGB")
    return image if image.mode == mode else image.convert(mode)


def pil_to_tensor(images, size: int, channels: int, background: str = "white") -> torch.Tensor:
    """PIL images -> (N, C, size, size) float32 in [-1, 1]: each converted with ``to_mode``, its centre square
    resized to ``size`` (as training data is framed). An empty image is a ``ValueError``."""
    if isinstance(images, PIL.Image.Image):
        images = [images]
    if not images or any(im.width == 0 or im.height == 0 for im in images):
        raise ValueError("got an empty image (0 pixels) or no images at all")
    mode = "L" if channels == 1 else "RGB"
    framed = [PIL.ImageOps.fit(to_mode(im, mode, background), (size, size), PIL.Image.BILINEAR) for im in images]
    pixels = VaeImageProcessor.pil_to_numpy(framed)  # (N, H, W[, C]) in [0, 1]
    return _PROCESSOR.normalize(VaeImageProcessor.numpy_to_pt(pixels)).float()


def tensor_to_pil(x: torch.Tensor) -> list[PIL.Image.Image]:
    """(N, C, H, W) or (C, H, W) in [-1, 1] -> PIL images ("L" for one channel, else "RGB")."""
    if x.dim() == 3:
        x = x.unsqueeze(0)
    pixels = VaeImageProcessor.pt_to_numpy(_PROCESSOR.denormalize(x.detach().float().cpu().clamp(-1, 1)))
    return VaeImageProcessor.numpy_to_pil(pixels)


# ---- arguments every pipeline checks ----------------------------------------------------------------------------
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes up to 2**64 - 1; 2**63 - 1 is exact as a float too


def check_count(name: str, value, high: int, low: int = 1) -> None:
    """A ``ValueError`` unless ``value`` is a whole number in [low, high]: every count or size a caller passes is
    bounded before anything is allocated (``interpolate(steps=10**9)`` would take all memory)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def seeded(seed) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (an integer in [0, 2**63 - 1])."""
    check_count("seed", seed, MAX_SEED, low=0)
    return torch.Generator().manual_seed(seed)


def model_input(images, size: int, channels: int, max_count: int) -> torch.Tensor:
    """What a pipeline method takes as images, as a float32 (N, C, size, size) tensor in [-1, 1]: PIL images
    (converted as training data is: ``pil_to_tensor``) or a finite tensor of that shape; at most ``max_count``."""
    if isinstance(images, torch.Tensor):
        x = images if images.dim() == 4 else images.unsqueeze(0)
        if not torch.isfinite(x).all():
            raise ValueError("images must be finite: the tensor holds NaN or infinite values")
    else:
        check_count("images", 1 if isinstance(images, PIL.Image.Image) else len(images), max_count)
        x = pil_to_tensor(images, size, channels)
    check_count("images", x.shape[0], max_count)
    if tuple(x.shape[1:]) != (channels, size, size):
        raise ValueError(f"images must have shape (N, {channels}, {size}, {size}), got {tuple(x.shape)}")
    return x


def mask_input(mask, image, size: int) -> torch.Tensor:
    """An inpainting mask as a float32 (1 or N, 1, size, size) tensor of 0s and 1s, **1 where the model fills in**
    (white pixels are repainted and black ones kept, as in diffusers' inpainting pipelines).

    ``mask`` is a PIL image of the same width and height as ``image`` (a PIL image, or the first of a list), framed
    to ``size`` as the image is: mode "1" or "L" (white = fill in), a gray "RGB" image, or "LA"/"RGBA" whose alpha
    marks the region (a stroke drawn on a transparent layer); or a tensor of ``size`` x ``size`` values in [0, 1].
    Values of at least 0.5 count as 1. A mask that selects no pixel is a ``ValueError``: it would change nothing.
    """
    if isinstance(mask, torch.Tensor):
        # (H, W), (N, H, W) or (N, 1, H, W)
        m = {2: lambda: mask[None, None], 3: lambda: mask[:, None], 4: lambda: mask}.get(mask.dim(), lambda: None)()
        if m is None or m.shape[1] != 1 or tuple(m.shape[-2:]) != (size, size):
            raise ValueError(
                f"a mask tensor must be (H, W), (N, H, W) or (N, 1, H, W) with H = W = {size} (the model's size), "
                f"got shape {tuple(mask.shape)}"
            )
        m = m.float()
        if not torch.isfinite(m).all() or m.min() < 0 or m.max() > 1:
            raise ValueError("a mask tensor must hold values in [0, 1] (1 = fill in)")
    elif isinstance(mask, PIL.Image.Image):
        m = pil_to_tensor(_mask_to_l(mask, image), size, 1) / 2 + 0.5
    else:
        raise ValueError(f"mask must be a PIL image or a tensor, got {type(mask).__name__}")
    m = (m >= 0.5).float()
    if not m.flatten(1).any(1).all():
        raise ValueError(
            "the mask selects no pixel to fill in: white (1) marks the region to repaint, black (0) what to keep"
        )
    return m


def inpainting_input(image, mask, size: int, channels: int, max_count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` (as ``model_input`` takes it) and ``mask`` (as ``mask_input`` takes it; one mask for every image,
    or one per image) as tensors: x0 (N, C, size, size) in [-1, 1] and the mask (N, 1, size, size), 1 = fill in."""
    x0 = model_input(image, size, channels, max_count)
    m = mask_input(mask, image, size)
    if m.shape[0] not in (1, x0.shape[0]):
        raise ValueError(f"give one mask, or one per image ({x0.shape[0]}); got {m.shape[0]}")
    return x0, m.expand(x0.shape[0], -1, -1, -1).contiguous()


def _mask_to_l(mask: PIL.Image.Image, image) -> PIL.Image.Image:
    """A PIL mask as "L" (255 = fill in), checked against the size of ``image``."""
    reference = image[0] if isinstance(image, (list, tuple)) and image else image
    if isinstance(reference, PIL.Image.Image) and mask.size != reference.size:
        raise ValueError(
            f"the mask is {mask.width}x{mask.height} but the image is {reference.width}x{reference.height}; "
            "they must be the same size"
        )
    if mask.mode in ("LA", "RGBA", "PA"):
        return mask.getchannel("A")
    if mask.mode == "RGB":
        r, g, b = (np.asarray(c) for c in mask.split())
        if not (np.array_equal(r, g) and np.array_equal(g, b)):
            raise ValueError("the mask must be black and white (or gray), not a coloured image")
        return mask.convert("L")
    if mask.mode in ("1", "L"):
        return mask.convert("L")
    raise ValueError(f"the mask must be a black-and-white image (mode 1, L, RGB, LA or RGBA), got mode {mask.mode}")


MAX_FILL_ROUNDS = 10_000  # rounds of fill_by_reconstruction: it settles in tens


def fill_by_reconstruction(x0: torch.Tensor, mask: torch.Tensor, reconstruct, iterations: int) -> torch.Tensor:
    """Inpainting by iterated reconstruction, for any model that reconstructs images (VAE, autoencoder): the region
    ``mask`` marks (1) starts mid-gray, then each round replaces it with the region of ``reconstruct(x)`` (images in
    [-1, 1] -> images in [-1, 1]), so the known pixels pull the code towards an image that agrees with them. Pixels
    outside the region are ``x0``'s exactly."""
    check_count("iterations", iterations, MAX_FILL_ROUNDS)
    x = x0 * (1 - mask)  # 0 is mid-gray in [-1, 1]
    for _ in range(iterations):
        x = (1 - mask) * x0 + mask * reconstruct(x)
    return x


def class_labels(labels, n: int, num_classes: int, model: str) -> torch.Tensor | None:
    """``n`` class labels for a conditional model (one label repeats), None for an unconditional one; anything else
    is a ``ValueError`` saying what the ``model`` ("VAE", "GAN") takes."""
    if not num_classes:
        if labels is not None:
            raise ValueError(f"this {model} is unconditional; it takes no labels")
        return None
    if labels is None:
        raise ValueError(f"this {model} is conditional: pass labels in 0..{num_classes - 1}")
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    if labels.numel() == 1:
        labels = labels.expand(n)
    if labels.numel() != n or labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must be one or {n} integers in 0..{num_classes - 1}, got {labels.tolist()}")
    return labels


def model_output(x: torch.Tensor, output_type: str):
    """A pipeline's images as asked: ``"pt"`` (the tensor in [-1, 1]) or ``"pil"``."""
    if output_type == "pt":
        return x
    if output_type == "pil":
        return tensor_to_pil(x)
    raise ValueError(f"output_type must be 'pil' or 'pt', got {output_type!r}")
