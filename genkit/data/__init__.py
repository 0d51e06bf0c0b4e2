"""Data: where examples come from (``sources``, ``builtin``), how one image is decoded and framed and how training
batches are augmented (``frames``), the on-disk cache of decoded images (``cache``), streamed datasets
(``streaming``), the default image preparation (``prepare``) and sample grids (``grid``). Nothing here imports a
plugin, the registry or training.
"""

from genkit.data.builtin import BUILTIN_SOURCES, SHAPE_CLASSES, STDLIB_MODULES
from genkit.data.cache import CachedRows, folder_index, index_folder, prepare_cached_folder
from genkit.data.frames import (
    ImageTensorDataset,
    centre_window,
    decode_image,
    framing,
    images_to_tensor,
    random_crop,
    random_flip,
    stored_size,
)
from genkit.data.grid import make_grid
from genkit.data.prepare import PointsDataset, prepare_images, prepare_vectors
from genkit.data.sources import IN_MEMORY, load_splits, splits_for
from genkit.data.toy import TOY_SOURCES, mode_coverage, toy_points
from genkit.images import tensor_to_pil

__all__ = [
    "BUILTIN_SOURCES",
    "IN_MEMORY",
    "SHAPE_CLASSES",
    "STDLIB_MODULES",
    "CachedRows",
    "ImageTensorDataset",
    "PointsDataset",
    "TOY_SOURCES",
    "centre_window",
    "decode_image",
    "folder_index",
    "framing",
    "images_to_tensor",
    "index_folder",
    "load_splits",
    "make_grid",
    "mode_coverage",
    "prepare_cached_folder",
    "prepare_images",
    "prepare_vectors",
    "random_crop",
    "random_flip",
    "splits_for",
    "stored_size",
    "tensor_to_pil",
    "toy_points",
]
