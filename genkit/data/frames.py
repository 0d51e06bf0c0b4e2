"""One image from its bytes or file to the uint8 array a model trains on (framed: converted, cropped, resized), the
torch dataset of such arrays, and the augmentations drawn per batch (random crops and flips)."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image, ImageOps

from genkit.data.builtin import BUILTIN_SOURCES
from genkit.data.sources import IN_MEMORY, first_line
from genkit.errors import ConfigError, DataError
from genkit.images import pil_to_tensor, to_mode
from genkit.types import DataInfo

__all__ = [
    "Framing",
    "ImageTensorDataset",
    "centre_window",
    "decode_image",
    "framing",
    "image_info",
    "images_to_tensor",
    "random_crop",
    "random_flip",
    "resolve_channels",
    "stored_size",
]


_GRAYSCALE_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


class ImageTensorDataset(torch.utils.data.Dataset):
    """Images held as one uint8 tensor (4x less memory than float), scaled to [-1, 1] on access; with ``crop``, the
    centre ``crop`` x ``crop`` window of each (the view evaluation gets of images stored larger for --random-crop)."""

    def __init__(self, pixels, labels: torch.Tensor | None = None, crop: int | None = None):
        self.pixels = pixels  # (N, C, H, W) uint8: a tensor, or the rows of the on-disk cache (CachedRows)
        self.labels = labels  # (N,) int64, or None for unlabelled data
        self.crop = crop

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        pixels = self.pixels[index]
        if self.crop is not None:
            pixels = centre_window(pixels, self.crop)
        item = {"pixel_values": pixels.float() / 127.5 - 1}
        if self.labels is not None:
            item["labels"] = self.labels[index]
        return item

    def uncropped(self) -> ImageTensorDataset:
        """The same images at their stored size: what the training loader reads (``augment`` crops at random)."""
        return ImageTensorDataset(self.pixels, self.labels)


def stored_size(config: dict) -> int:
    """The side images are stored at: ``image_size``, or 9/8 of it with ``random_crop`` (the windows' room)."""
    size = int(config["image_size"])
    return size + max(1, round(size / 8)) if config.get("random_crop") else size


@dataclass(frozen=True)
class Framing:
    """How each image is decoded: the side it is stored at, centre crop or squash, the colour transparency becomes,
    and the folders an image file named by path may be read from (None: anywhere)."""

    size: int
    center_crop: bool = True
    background: str = "white"
    roots: tuple[Path, ...] | None = None


def framing(config: dict) -> Framing:
    return Framing(
        size=stored_size(config),
        center_crop=bool(config.get("center_crop", True)),
        background=str(config.get("background") or "white"),
        roots=image_roots(config),
    )


def image_roots(config: dict) -> tuple[Path, ...] | None:
    """Where image files named by path may be: inside the dataset's own folder (a local folder, or the folder of a
    parquet/arrow/CSV file), in the Hugging Face caches for a Hub dataset, and in ``--image-root``. A table row
    ``{"path": "/etc/shadow"}`` must not make genkit open a file elsewhere. None for data handed over in memory."""
    source = str(config["dataset"])
    if source == IN_MEMORY:
        return None
    roots = []
    if source in BUILTIN_SOURCES:
        pass
    elif "," in source or glob.has_magic(source) or os.path.exists(source):
        for piece in source.split(","):
            path = Path(piece).expanduser()
            while glob.has_magic(str(path)):
                path = path.parent
            roots.append(path if path.is_dir() else path.parent)
    else:  # a Hub dataset: its files are downloaded into the caches
        from huggingface_hub import constants

        roots += [Path(datasets.config.HF_DATASETS_CACHE), Path(constants.HF_HUB_CACHE)]
    if config.get("image_root"):
        roots.append(Path(config["image_root"]).expanduser())
    return tuple(root.resolve() for root in roots)


def open_image(item: dict, framing: Framing) -> Image.Image:
    """The image of an undecoded row: its bytes, or the file its path names when that file is inside
    ``framing.roots`` (else a DataError that says nothing of the file: not even whether it exists)."""
    import io

    if item.get("bytes"):
        return Image.open(io.BytesIO(item["bytes"]))
    path = item.get("path")
    if not path:
        raise ValueError("the row holds neither image bytes nor a path")
    if framing.roots is not None:
        real = Path(os.path.realpath(path))
        if not any(real == root or root in real.parents for root in framing.roots):
            where = ", ".join(map(str, framing.roots)) or "none"
            raise DataError(
                f"image path {path!r} is outside the dataset's folder ({where}); genkit reads image files only "
                "there: pass --image-root DIR to allow another folder"
            )
    return Image.open(path)


def centre_window(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """The centre ``size`` x ``size`` window of (..., H, W) images."""
    top, left = (pixels.shape[-2] - size) // 2, (pixels.shape[-1] - size) // 2
    return pixels[..., top : top + size, left : left + size]


def random_flip(pixels: torch.Tensor, seed: int) -> torch.Tensor:
    """Mirror each image of a (N, C, H, W) batch left-right with probability 1/2, the choice drawn from ``seed``."""
    flip = torch.rand(pixels.shape[0], generator=torch.Generator().manual_seed(seed)) < 0.5
    flip = flip.to(pixels.device)[:, None, None, None]
    return torch.where(flip, pixels.flip(-1), pixels)


def random_crop(pixels: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """A ``size`` x ``size`` window of each image of a (N, C, H, W) batch at a position drawn from ``seed`` (every
    position equally likely); images already ``size`` wide are returned as they are."""
    n, height, width = pixels.shape[0], pixels.shape[-2], pixels.shape[-1]
    if (height, width) == (size, size):
        return pixels
    g = torch.Generator().manual_seed(seed)
    tops = torch.randint(0, height - size + 1, (n,), generator=g).tolist()
    lefts = torch.randint(0, width - size + 1, (n,), generator=g).tolist()
    return torch.stack([p[:, t : t + size, x : x + size] for p, t, x in zip(pixels, tops, lefts, strict=True)])


def resolve_channels(channels: int | None, items, framing: Framing) -> int:
    """``channels`` as given, or the data's own when None: 1 when every image of ``items`` (undecoded ``{"bytes",
    "path"}`` dicts) is grayscale, else 3."""
    if channels is None:
        modes = {image_mode(item, framing) for item in items} - {""}  # "": unreadable, reported when decoded
        channels = 1 if modes <= _GRAYSCALE_MODES else 3
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3 (or None for the data's own), not {channels!r}")
    return channels


def image_info(config: dict, channels: int, class_names: list[str] | None) -> DataInfo:
    return DataInfo(
        task="image",
        dataset=config["dataset"],
        num_channels=channels,
        image_size=config["image_size"],
        num_classes=len(class_names) if class_names is not None else None,
        class_names=class_names,
    )


def image_mode(item: dict, framing: Framing) -> str:
    """An image's PIL mode from its header (no decoding); "" for a file that cannot be opened (reported later)."""
    try:
        with open_image(item, framing) as im:
            return im.mode
    except (OSError, ValueError, Image.DecompressionBombError):
        return ""


def decode_image(item: dict, row: str, source: str, skip_bad: bool, framing: Framing, channels: int):
    """(C, S, S) uint8 of one undecoded image (``{"bytes", "path"}``), framed as ``framing`` says; None for an
    unreadable one under ``skip_bad``, else a DataError naming it (its file, or ``row``). A path outside the
    dataset's folders is an error even under ``skip_bad``."""
    try:
        with open_image(item, framing) as im:
            im.load()
            if im.width == 0 or im.height == 0:
                raise ValueError("the image is empty (0 pixels)")
            pixels = to_uint8(
                im, framing.size, "L" if channels == 1 else "RGB", framing.center_crop, framing.background
            )
            return np.ascontiguousarray(pixels.transpose(2, 0, 1))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        if skip_bad:
            return None
        raise DataError(
            f"cannot read image {item.get('path') or row} in dataset {source!r} ({type(err).__name__}: "
            f"{first_line(err)}); pass --skip-bad-images to train without the unreadable files"
        ) from None


def to_uint8(im: Image.Image, size: int, mode: str, center_crop: bool = True, background: str = "white") -> np.ndarray:
    """(S, S, C) uint8 of one image: converted to ``mode`` (``genkit.images.to_mode``: deep images scaled,
    transparency on ``background``), centre-cropped to a square (or, without ``center_crop``, squashed to one),
    resized (antialiased)."""
    im = to_mode(im, mode, background)
    if im.size != (size, size):
        im = ImageOps.fit(im, (size, size), Image.BILINEAR) if center_crop else im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8).reshape(size, size, 1 if mode == "L" else 3)


def images_to_tensor(pil_images: list[Image.Image], image_size: int, channels: int) -> torch.Tensor:
    """PIL images -> float32 tensor (N, C, S, S) in [-1, 1], centre-cropped to a square and resized to S."""
    return pil_to_tensor(pil_images, image_size, channels)
