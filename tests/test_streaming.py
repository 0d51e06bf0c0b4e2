"""--streaming: a Hub dataset (from a pre-populated hub cache: the Hub's network cannot exist here) and a local folder
read as datasets' IterableDataset streams, decoded on the fly, resuming at the same batch."""

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from conftest import train_cli
from huggingface_hub import constants as hub_constants
from PIL import Image
from safetensors.torch import load_file

from genkit.data import load_splits, prepare_images
from genkit.errors import DataError
from genkit.streaming import StreamingImages

SHA = "89abcdef0123456789abcdef0123456789abcdef"


def labelled_images(n: int, seed: int = 0) -> datasets.Dataset:
    """``n`` different 12x12 RGB images (random noise) with ClassLabel labels, as a Hub dataset would declare them."""
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)) for _ in range(n)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"])})
    return datasets.Dataset.from_dict({"image": images, "label": [i % 2 for i in range(n)]}, features=features)


@pytest.fixture
def hub_dataset() -> str:
    """A dataset repo as `hf download --repo-type dataset` leaves it: two train shards and a test shard of parquet."""
    repo_id = "someone/noise"
    repo = Path(hub_constants.HF_HUB_CACHE, "datasets--someone--noise")
    if not repo.exists():
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(SHA)
        data = repo / "snapshots" / SHA / "data"
        data.mkdir(parents=True)
        ds = labelled_images(120)
        ds.select(range(50)).to_parquet(str(data / "train-00000-of-00002.parquet"))
        ds.select(range(50, 100)).to_parquet(str(data / "train-00001-of-00002.parquet"))
        ds.select(range(100, 120)).to_parquet(str(data / "test-00000-of-00001.parquet"))
    return repo_id


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """The same 120 images as a folder: train/ and test/, a subfolder per class (datasets' imagefolder layout)."""
    folder = tmp_path_factory.mktemp("noise")
    for i, row in enumerate(labelled_images(120)):
        place = folder / ("train" if i < 100 else "test") / ("cat", "dog")[row["label"]]
        place.mkdir(parents=True, exist_ok=True)
        row["image"].save(place / f"{i:03d}.png")
    return folder


def config(**overrides) -> dict:
    return {"dataset": "someone/noise", "image_size": 8, "channels": None, "seed": 0, "shuffle_buffer": 16} | overrides


def rows(dataset) -> list[bytes]:
    return [item["pixel_values"].numpy().tobytes() for item in dataset]


def test_streamed_hub_dataset_holds_the_same_images_as_the_downloaded_one(hub_dataset):
    streamed = load_splits(hub_dataset, "image", streaming=True)
    assert all(isinstance(split, datasets.IterableDataset) for split in streamed.values())
    stream = prepare_images(streamed, config())
    whole = prepare_images(load_splits(hub_dataset, "image"), config())
    assert isinstance(stream.train, StreamingImages) and stream.info == whole.info
    assert stream.info.class_names == ["cat", "dog"] and stream.info.num_channels == 3
    # one pass over the stream is a permutation of the train split; the test split is the same images in order
    assert sorted(rows(stream.train)) == sorted(rows(whole.train))
    assert rows(stream.test) == rows(whole.test)
    labels = {item["pixel_values"].numpy().tobytes(): int(item["labels"]) for item in whole.train}
    assert all(labels[item["pixel_values"].numpy().tobytes()] == int(item["labels"]) for item in stream.train)


def test_stream_order_is_fixed_by_seed_and_epoch_not_threads_and_skips_exactly(image_folder):
    """(A folder of PNGs: datasets waits 5 s after each pass over parquet shards, a guard for an Arrow bug.)"""
    splits = load_splits(image_folder, "image", streaming=True)
    train = prepare_images(splits, config(dataset=str(image_folder))).train
    first = rows(train)
    train.threads = 3
    assert rows(train) == first
    train.skip = 37
    assert rows(train) == first[37:]  # a resumed epoch starts at the example the interrupted one would have read next
    train.skip, train.epoch = 0, 1
    second = rows(train)
    assert second != first and sorted(second) == sorted(first)
    train.set_epoch(0)
    train.shard(0, 2)
    half = rows(train)
    train.shard(1, 2)
    other = rows(train)
    assert not set(half) & set(other) and sorted(half + other) == sorted(first)  # two processes: disjoint shares


def test_stream_without_a_test_split_holds_rows_out_by_content(tmp_path):
    folder = tmp_path / "pictures"
    for i, image in enumerate(labelled_images(200, seed=1)["image"]):
        (folder / ("a" if i % 2 else "b")).mkdir(parents=True, exist_ok=True)
        image.save(folder / ("a" if i % 2 else "b") / f"{i}.png")
    cfg = config(dataset=str(folder))
    streamed = prepare_images(load_splits(folder, "image", streaming=True, test_fraction=0.2), cfg)
    train, test = rows(streamed.train), rows(streamed.test)
    assert not set(train) & set(test) and len(train) + len(test) == 200
    assert 20 <= len(test) <= 60  # a hash share of 0.2 of 200 rows
    again = prepare_images(load_splits(folder, "image", streaming=True, test_fraction=0.2), cfg)
    assert rows(again.test) == test


def test_streaming_resume_lands_on_the_same_batch_as_an_uninterrupted_run(image_folder, tmp_path):
    """Through `genkit train --streaming` (with random crops and flips, and decoding threads): 3 updates per epoch of
    100 rows, cut at update 4 (mid-epoch 2), resumed to 9. A constant LR, so the cut run's schedule is the same."""
    args = [
        "vae",
        "--preset",
        "tiny",
        "--dataset",
        str(image_folder),
        "--streaming",
        "--image-size",
        "8",
        "--random-crop",
    ]
    args += ["--batch-size", "32", "--num-workers", "2", "--shuffle-buffer", "16", "--lr-scheduler", "constant"]
    args += ["--checkpoint-every", "2", "--no-eval", "--log-with", "none"]
    assert train_cli(*args, "--max-steps", "9", "--output", str(tmp_path / "whole")) == 0
    cut = tmp_path / "cut"
    assert train_cli(*args, "--max-steps", "4", "--output", str(cut)) == 0
    state = json.loads((cut / "checkpoint-4" / "trainer_state.json").read_text())
    assert (state["epoch"], state["batch_in_epoch"]) == (1, 1)
    assert train_cli(*args, "--max-steps", "9", "--output", str(cut), "--resume", "latest") == 0
    a, b = (load_file(tmp_path / run / "vae" / "diffusion_pytorch_model.safetensors") for run in ("whole", "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    recorded = json.loads((cut / "genkit.json").read_text())["config"]
    assert recorded["streaming"] is True and recorded["random_flip"] is True and recorded["random_crop"] is True


def test_streamed_labels_must_be_declared_classes(tmp_path):
    ds = labelled_images(10).cast_column("label", datasets.Value("int64"))
    ds.to_parquet(str(tmp_path / "train.parquet"))
    with pytest.raises(DataError, match="under --streaming the label column .* must be a ClassLabel"):
        load_splits(str(tmp_path / "train.parquet"), "image", streaming=True)


@pytest.mark.slow  # 35 s; two-process training and resume stay in CI (test_trainer.py, test_conventions.py)
def test_two_processes_stream_their_shares_and_resume_exactly(image_folder, tmp_path):
    """`accelerate launch` with 2 CPU processes: each reads its share (disjoint: tested above),
    the epoch ends for both together, and a run cut mid-epoch resumes to the uninterrupted run's weights."""
    import os
    import subprocess
    import sys

    from conftest import free_port

    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}

    def launch(output: Path, steps: int, *extra: str) -> None:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
        cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        cmd += ["--main_process_port", str(free_port()), "-m", "genkit", "train", "vae", "--preset", "tiny"]
        cmd += ["--dataset", str(image_folder), "--streaming", "--image-size", "8", "--batch-size", "16"]
        cmd += ["--lr-scheduler", "constant", "--checkpoint-every", "4", "--no-eval", "--log-with", "none"]
        cmd += ["--max-steps", str(steps), "--output", str(output), *extra]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]

    launch(tmp_path / "whole", 7)  # 100 rows, 50 per process: 3 batches of 16 an epoch
    launch(tmp_path / "cut", 4)
    state = json.loads((tmp_path / "cut" / "checkpoint-4" / "trainer_state.json").read_text())
    assert (state["num_processes"], state["epoch"], state["batch_in_epoch"]) == (2, 1, 1)
    launch(tmp_path / "cut", 7, "--resume", "latest")
    a, b = (load_file(tmp_path / run / "vae" / "diffusion_pytorch_model.safetensors") for run in ("whole", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)
