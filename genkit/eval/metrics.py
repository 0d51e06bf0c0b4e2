"""Offline image-generation metrics: Fréchet distance, precision/recall and class metrics in the feature space of a
small domain network trained on the real training split, so that no Inception download is needed.

Labelled data trains the network as a classifier of the dataset's classes; unlabelled data trains it on rotation
prediction (Gidaris et al. 2018, https://arxiv.org/abs/1803.07728). The network is cached under
``$HF_HOME/genkit/feature-nets/`` keyed by a digest of its training data and recipe. See docs/metrics.md.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import constants
from safetensors.torch import load_file, save_file
from scipy import linalg
from torch import nn

from genkit.errors import TrainingError
from genkit.io import staged_folder

__all__ = [
    "FeatureNet",
    "check_finite",
    "class_accuracy",
    "class_coverage",
    "class_entropy",
    "embed",
    "evaluate_images",
    "feature_net",
    "feature_net_accuracy",
    "frechet_distance",
    "precision_recall",
]

FEATURE_NET_VERSION = 1  # part of the cache key: bump it when the architecture or the training recipe changes
TRAIN_EPOCHS = 20  # digits (1,437 train images at 16 px): ~98.6% test accuracy after 20 epochs (225 steps, ~8 s)
MAX_TRAIN_STEPS = 400  # caps training at ~20 s (16 px) to ~60 s (32 px) on 2 CPU cores for large datasets
BATCH_SIZE = 128
# The domain network trains on at most this many train images (a seeded subset of a larger split, or a stream's first
# ones): memory stays bounded (10,000 RGB images at 64 px are 490 MB as float) whatever the dataset's size.
MAX_TRAIN_IMAGES = 10_000
LEARNING_RATE = 2e-3  # Adam with cosine decay to 0 over the run
K_NEAREST = 3  # k of the k-NN manifold radii; Kynkäänniemi et al. 2019, Sec. 3 use k = 3


class FeatureNet(nn.Module):
    """Three conv blocks and global average pooling: the pooled 128-d vector is the feature space, like pool3 of
    Inception for FID; a linear head on top predicts classes (or rotations when there are no labels)."""

    def __init__(self, in_channels: int, num_outputs: int, width: int = 32):
        super().__init__()

        def block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())

        self.body = nn.Sequential(
            block(in_channels, width, 1), block(width, 2 * width, 2), block(2 * width, 4 * width, 2)
        )
        self.head = nn.Linear(4 * width, num_outputs)
        self.config: dict[str, Any] = {}  # the recipe and data it was trained with, saved as config.json

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features, logits)`` for images in [-1, 1]."""
        features = self.body(images).mean(dim=(2, 3))
        return features, self.head(features)


# ---- feature network: fit once per training set, then load from the cache -------------------------------------------


def check_finite(evaluation: dict[str, Any]) -> None:
    """Refuse an evaluation with a NaN or infinite metric before it reaches eval_results.json or a model card: such a
    number says the model is broken, not how good it is."""
    bad = [k for k, v in evaluation.get("metrics", {}).items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise TrainingError(
            f"evaluation gave {evaluation['metrics'][bad[0]]} for {', '.join(bad)}: the model's outputs are not "
            "finite (diverged or broken weights); nothing was written"
        )


def _stack(dataset: torch.utils.data.Dataset, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """All ``pixel_values`` of a dataset as one (N, C, H, W) tensor, and its ``labels`` when it has them; with
    ``limit``, at most that many: a seeded random subset (in index order), or the first ones of a stream."""
    if isinstance(dataset, torch.utils.data.IterableDataset):
        dataset = list(itertools.islice(dataset, limit))
    elif limit is not None and len(dataset) > limit:
        chosen = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:limit]
        dataset = torch.utils.data.Subset(dataset, chosen.sort().values.tolist())
    if len(dataset) == 0:
        raise ValueError("cannot evaluate against an empty dataset")
    batches = list(torch.utils.data.DataLoader(dataset, batch_size=512))
    images = torch.cat([b["pixel_values"] for b in batches]).float()
    labels = torch.cat([b["labels"] for b in batches]).long() if "labels" in batches[0] else None
    return images, labels


def _rotations(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image turned by 0, 90, 180 and 270 degrees, with the rotation index as its label."""
    rotated = torch.cat([torch.rot90(images, r, dims=(2, 3)) for r in range(4)])
    return rotated, torch.arange(4).repeat_interleave(len(images))


def _cache_dir(images: torch.Tensor, labels: torch.Tensor | None, config: dict[str, Any], cache_key: str) -> Path:
    """``$HF_HOME/genkit/feature-nets/[cache_key-]<digest of the data and the recipe>``."""
    digest = hashlib.sha256()
    recipe = (TRAIN_EPOCHS, MAX_TRAIN_STEPS, LEARNING_RATE, tuple(images.shape), sorted(config.items()))
    digest.update(repr(recipe).encode())
    digest.update(images.contiguous().numpy().tobytes())
    if labels is not None:
        digest.update(labels.contiguous().numpy().tobytes())
    name = digest.hexdigest()[:16]
    # The readable prefix only names the folder; the data digest decides which network is returned.
    if cache_key:
        name = f"{''.join(c if c.isalnum() or c in '-_.' else '-' for c in cache_key)}-{name}"
    return Path(constants.HF_HOME) / "genkit" / "feature-nets" / name


def _train(net: FeatureNet, images: torch.Tensor, labels: torch.Tensor | None, steps: int, seed: int) -> float:
    """Adam on cross-entropy; without labels each batch is a quarter of the images in all four rotations."""
    generator = torch.Generator().manual_seed(seed)
    per_batch = BATCH_SIZE if labels is not None else BATCH_SIZE // 4
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    order = torch.randperm(len(images), generator=generator)
    position = 0
    net.train()
    for _ in range(steps):
        if position + per_batch > len(images):
            order, position = torch.randperm(len(images), generator=generator), 0
        index = order[position : position + per_batch]
        position += per_batch
        x, y = (images[index], labels[index]) if labels is not None else _rotations(images[index])
        loss = F.cross_entropy(net(x)[1], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    net.eval()
    return loss.item()


def feature_net(
    train: torch.utils.data.Dataset, *, num_classes: int | None = None, seed: int = 0, cache_key: str = ""
) -> FeatureNet:
    """The domain network for ``train``: a classifier of its ``num_classes`` classes, or a rotation predictor when
    ``num_classes`` is None. Loaded from the cache when this data and seed were seen before, else trained and cached.
    """
    return _feature_net(*_stack(train, MAX_TRAIN_IMAGES), num_classes=num_classes, seed=seed, cache_key=cache_key)


def _feature_net(
    images: torch.Tensor, labels: torch.Tensor | None, *, num_classes: int | None, seed: int, cache_key: str
) -> FeatureNet:
    if num_classes is None:
        labels = None
        if images.shape[2] != images.shape[3]:
            raise ValueError(f"rotation features need square images, got {images.shape[2]}x{images.shape[3]}")
    elif labels is None:
        raise ValueError(f"num_classes={num_classes} but the train dataset yields no 'labels'")
    elif labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels span {labels.min()}..{labels.max()}, outside 0..{num_classes - 1}")

    config = {
        "version": FEATURE_NET_VERSION,
        "objective": "classes" if labels is not None else "rotation",
        "in_channels": images.shape[1],
        "image_size": images.shape[2],
        "num_outputs": num_classes if labels is not None else 4,
        "width": 32,
        "num_train": len(images),
        "steps": min(MAX_TRAIN_STEPS, math.ceil(TRAIN_EPOCHS * len(images) / BATCH_SIZE)),
        "batch_size": BATCH_SIZE,
        "seed": seed,
    }
    folder = _cache_dir(images, labels, config, cache_key)
    if (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text())
        net = FeatureNet(config["in_channels"], config["num_outputs"], config["width"])
        net.load_state_dict(load_file(folder / "model.safetensors"))
        net.config = config
        return net.eval()

    # Train whatever the caller's grad mode: evaluation code often runs under no_grad() or inference_mode().
    with torch.inference_mode(False), torch.enable_grad():
        with torch.random.fork_rng(devices=[]):  # seed the initialization without touching the caller's RNG
            torch.manual_seed(seed)
            net = FeatureNet(config["in_channels"], config["num_outputs"], config["width"])
        images, labels = images.clone(), None if labels is None else labels.clone()  # inference tensors -> normal
        config["final_train_loss"] = _train(net, images, labels, config["steps"], seed)

    # Written into a temporary sibling, then renamed: a concurrent eval never sees a half-written network, and one
    # that cached the same network first keeps its copy.
    with staged_folder(folder, replace=False) as tmp:
        save_file(net.state_dict(), tmp / "model.safetensors")
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
    net.config = config
    return net


@torch.no_grad()
def embed(net: FeatureNet, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, logits)`` of images in [-1, 1], computed on the CPU in batches."""
    outputs = [net(batch) for batch in images.detach().float().cpu().split(512)]
    return torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])


def feature_net_accuracy(net: FeatureNet, images: torch.Tensor, labels: torch.Tensor | None) -> float:
    """Held-out accuracy of the network on its own task: classes, or the four rotations of each image."""
    if net.config["objective"] == "rotation":
        images, labels = _rotations(images)
    return (embed(net, images)[1].argmax(1) == labels).float().mean().item()


# ---- distribution metrics on features -------------------------------------------------------------------------------


def frechet_distance(feats_a: torch.Tensor | np.ndarray, feats_b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, the formula of FID):
    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, in float64."""
    a, b = np.asarray(feats_a, dtype=np.float64), np.asarray(feats_b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = _sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        # A singular product (fewer samples than dimensions): regularize both covariances slightly.
        offset = np.eye(len(cov_a)) * 1e-6
        covmean = _sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(covmean):
        # The product of two PSD matrices has real non-negative eigenvalues; imaginary parts are rounding error
        # unless they are large, which means the covariances are broken (NaNs, far too few samples).
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm gave an imaginary component of {np.abs(covmean.imag).max():.3g}")
        covmean = covmean.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """scipy's matrix square root without its "Matrix is singular" warning: a collapsed generator's features give a
    singular product whose root scipy still computes (the checks above and below catch a broken one); the warning
    would only reach the user's console as two lines of scipy source."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(matrix)


def _knn_radii(feats: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    return torch.cat([torch.cdist(chunk, feats).kthvalue(k + 1, dim=1).values for chunk in feats.split(1024)])


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Fraction of ``points`` inside at least one ball (centre, radius)."""
    inside = [(torch.cdist(chunk, centres) <= radii).any(1) for chunk in points.split(1024)]
    return torch.cat(inside).double().mean()


def precision_recall(
    real_feats: torch.Tensor | np.ndarray, fake_feats: torch.Tensor | np.ndarray, k: int = K_NEAREST
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, https://arxiv.org/abs/1904.06991).

    Each set's manifold is the union of balls around its points with radius = distance to the k-th nearest
    neighbour. Precision: fraction of fakes inside the real manifold (quality). Recall: fraction of reals inside the
    fake manifold (coverage).
    """
    real = torch.as_tensor(real_feats, dtype=torch.float64)
    fake = torch.as_tensor(fake_feats, dtype=torch.float64)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} real and fake samples")
    precision = _covered(fake, real, _knn_radii(real, k))
    recall = _covered(real, fake, _knn_radii(fake, k))
    return precision.item(), recall.item()


# ---- class metrics from the domain classifier's predictions ---------------------------------------------------------


def class_coverage(predicted_labels: torch.Tensor, num_classes: int) -> float:
    """Fraction of classes that receive at least half their fair share, 1 / (2 * num_classes), of the samples:
    1.0 for a generator that covers every class, 1 / num_classes for one collapsed onto a single class."""
    shares = torch.bincount(predicted_labels, minlength=num_classes).double() / len(predicted_labels)
    return (shares >= 1 / (2 * num_classes)).double().mean().item()


def class_entropy(predicted_labels: torch.Tensor, num_classes: int) -> float:
    """Entropy of the predicted class histogram divided by log(num_classes): 1 = uniform, 0 = a single class."""
    shares = torch.bincount(predicted_labels, minlength=num_classes).double() / len(predicted_labels)
    shares = shares[shares > 0]
    return ((shares * (1 / shares).log()).sum() / math.log(num_classes)).item()


def class_accuracy(predicted_labels: torch.Tensor, intended_labels: torch.Tensor) -> float:
    """Fraction of conditional samples that the domain classifier assigns to the class they were asked for."""
    return (predicted_labels.cpu() == intended_labels.cpu()).double().mean().item()


# ---- the entry point of `genkit eval` -------------------------------------------------------------------------------


def _metrics(real_feats, fake_feats, fake_logits, num_classes: int | None) -> dict[str, float]:
    precision, recall = precision_recall(real_feats, fake_feats)
    metrics = {"frechet_distance": frechet_distance(real_feats, fake_feats), "precision": precision, "recall": recall}
    if num_classes is not None:
        predicted = fake_logits.argmax(1)
        metrics["class_coverage"] = class_coverage(predicted, num_classes)
        metrics["class_entropy"] = class_entropy(predicted, num_classes)
    return metrics


def evaluate_images(
    samples: torch.Tensor,
    real: torch.utils.data.Dataset,
    *,
    train: torch.utils.data.Dataset,
    sample_labels: torch.Tensor | None = None,
    num_classes: int | None = None,
    cache_key: str = "",
    seed: int = 0,
) -> dict[str, Any]:
    """Compare generated ``samples`` (N, C, H, W) in [-1, 1] with the held-out split ``real``, in the feature space
    of a domain network fitted on ``train``.

    Returns ``{"metrics": ..., "protocol": ...}``. The protocol carries the same metrics for ``len(samples)`` real
    train images against ``real`` (``reference_real_*``): what a generator that reproduces the data would score.
    """
    if sample_labels is not None and num_classes is None:
        raise ValueError("sample_labels need num_classes: class accuracy uses the domain classifier")
    samples = samples.detach().float().cpu()  # generated on any device; measured on the CPU
    sample_labels = None if sample_labels is None else sample_labels.cpu()
    train_images, train_labels = _stack(train, MAX_TRAIN_IMAGES)
    real_images, real_labels = _stack(real)
    for name, shape in (("samples", samples.shape[1:]), ("real images", real_images.shape[1:])):
        if shape != train_images.shape[1:]:
            raise ValueError(f"{name} have shape {tuple(shape)}, the train images {tuple(train_images.shape[1:])}")
    if num_classes is not None and real_labels is None:
        raise ValueError(f"num_classes={num_classes} but the real dataset yields no 'labels'")
    net = _feature_net(train_images, train_labels, num_classes=num_classes, seed=seed, cache_key=cache_key)

    real_feats, _ = embed(net, real_images)
    fake_feats, fake_logits = embed(net, samples)
    metrics = _metrics(real_feats, fake_feats, fake_logits, num_classes)
    if sample_labels is not None:
        metrics["class_accuracy"] = class_accuracy(fake_logits.argmax(1), sample_labels)

    # Reference: as many train images as samples (FD and precision/recall depend on the sample count), seeded.
    chosen = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(seed))[: len(samples)]
    train_feats, train_logits = embed(net, train_images[chosen])
    reference = _metrics(real_feats, train_feats, train_logits, num_classes)

    config = net.config
    task = f"{num_classes}-class classifier" if num_classes is not None else "4-way rotation predictor (no labels)"
    protocol = {
        "feature_space": (
            f"genkit domain CNN (3 conv blocks, {4 * config['width']}-d global-average-pooled features) trained as a "
            f"{task} on the train split ({config['num_train']} images, {config['steps']} steps, seed {seed})"
        ),
        "feature_net": f"{FeatureNet.__module__}.FeatureNet v{FEATURE_NET_VERSION}, cached by data digest",
        "feature_net_objective": config["objective"],
        "feature_net_test_accuracy": feature_net_accuracy(net, real_images, real_labels),
        "num_samples": len(samples),
        "num_real": len(real_images),
        "k": K_NEAREST,
        "reference_num_train": len(chosen),
        **{f"reference_real_{name}": value for name, value in reference.items()},
    }
    if num_classes is not None:
        protocol["class_coverage_threshold"] = 1 / (2 * num_classes)
    return {"metrics": metrics, "protocol": protocol}
