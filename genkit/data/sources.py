"""Data sources for ``genkit train --dataset X`` and ``genkit eval``, all through the ``datasets`` library.

``load_splits`` turns a source (a built-in, a local folder or file, a Hub dataset id, data in memory) into a
``DatasetDict`` with exactly a ``train`` and a ``test`` split and normalized columns: ``image`` (+ ``label``) for
images, ``text`` for text. See docs/data.md.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import datasets
from PIL import Image

from genkit.data.builtin import BUILTIN_SOURCES, digits, mnist, shapes, stdlib_corpus
from genkit.data.toy import toy_points
from genkit.errors import DataError

__all__ = ["IN_MEMORY", "describe_error", "first_line", "load_splits", "splits_for"]


# Builders for local files, by extension; anything PIL can open goes to "imagefolder".
_FILE_BUILDERS = {
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".txt": "text",
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "json",
}


_TEXT_COLUMN_NAMES = ("text", "content", "sentence")


_LABEL_COLUMN_NAMES = ("label", "labels", "class")


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
    if task not in ("image", "text", "vector"):
        raise ValueError(f"task must be 'image', 'text' or 'vector', not {task!r}")
    if not 0 < test_fraction < 1:
        raise DataError(f"test fraction must be between 0 and 1 (exclusive), not {test_fraction}")
    if num_samples is not None and num_samples < 2:
        raise DataError(f"num_samples must be at least 2 (one train and one test example), not {num_samples}")

    if not isinstance(source, (str, os.PathLike)):
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

    raw = _normalized(raw, source, task, image_column, label_column, text_column)
    if streaming:
        return _split_stream(raw, num_samples=num_samples, test_fraction=test_fraction)
    return _split(raw, source, task, num_samples=num_samples, seed=seed, test_fraction=test_fraction)


def _normalized(raw, source: str, task: str, image_column, label_column, text_column):
    """Every split with the columns ``task`` reads: ``image`` (+ a ClassLabel ``label``), ``text``, or ``points``."""
    if task == "text":
        return type(raw)({name: _text_column(split, source, text_column) for name, split in raw.items()})
    if task == "vector":
        return type(raw)({name: _points_column(split, source) for name, split in raw.items()})
    raw = type(raw)({name: _image_columns(split, source, image_column, label_column) for name, split in raw.items()})
    return _as_class_label(raw, source) if "label" in raw[next(iter(raw))].column_names else raw


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
    """A ``datasets`` object as it is; a list of PIL images or of strings, or an (N, D) array or tensor of points, as
    a one-column Dataset."""
    if isinstance(obj, (datasets.Dataset, datasets.DatasetDict)):
        return obj
    if hasattr(obj, "shape") and hasattr(obj, "tolist"):  # numpy array or torch tensor
        if len(obj.shape) not in (1, 2) or not obj.shape[0]:
            raise DataError(f"points in memory must be an (N, D) array or tensor, got shape {tuple(obj.shape)}")
        rows = obj.reshape(obj.shape[0], -1).tolist()
        return datasets.Dataset.from_dict({"points": [[float(v) for v in row] for row in rows]})
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
            kinds = {
                "image": ("an image dataset", "images"),
                "text": ("a text corpus", "text"),
                "vector": ("points", "points"),
            }
            raise DataError(
                f"dataset {source!r} is {kinds[BUILTIN_SOURCES[source]][0]}, but this model needs {kinds[task][1]}; "
                f"built-in {task} datasets: {same_task}"
            )
        if BUILTIN_SOURCES[source] == "vector":
            return toy_points(source, num_samples, seed)
        if source == "digits":
            return digits(image_size)
        if source == "mnist":
            return mnist(image_size)
        if source == "shapes":
            return shapes(3000 if num_samples is None else num_samples, 32 if image_size is None else image_size, seed)
        return stdlib_corpus()
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
        raise DataError(f"cannot read {source!r}: {describe_error(err)}") from err


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
            f"dataset id ({describe_error(hub_error)})"
        ) from hub_error
    return _load_local(folder, name=name, streaming=streaming)


def describe_error(err: BaseException) -> str:
    """The root cause in one line: datasets wraps the useful error (DatasetGenerationError from a bad file)."""
    while err.__cause__ is not None:
        err = err.__cause__
    return f"{type(err).__name__}: {first_line(err)}"


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0]


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
                    f"not images ({first_line(err)})"
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


def _points_column(split, source: str):
    """A ``points`` column of float lists: the dataset's own, or every numeric column of a row side by side."""
    if split.features is not None and "points" in split.features:
        return split.select_columns(["points"])
    features = split.features or {}
    numeric = [n for n, f in features.items() if isinstance(f, datasets.Value) and f.dtype[:3] in ("flo", "int")]
    if not numeric:
        raise DataError(
            f"dataset {source!r} has no 'points' column and no numeric columns to make points of; its columns: "
            f"{_describe(split)}"
        )
    return split.map(lambda row: {"points": [float(row[n]) for n in numeric]}, remove_columns=split.column_names)


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
