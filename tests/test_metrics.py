"""genkit.metrics on closed-form cases and on scikit-learn's real handwritten digits (offline, ~30 s on 2 cores)."""

import contextlib
import time
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from huggingface_hub import constants
from sklearn.datasets import load_digits

from genkit.eval.metrics import (
    class_accuracy,
    embed,
    evaluate_images,
    feature_net,
    feature_net_accuracy,
    frechet_distance,
    precision_recall,
)


class ImageDataset(torch.utils.data.Dataset):
    """The item format genkit's image plugins use: pixel_values in [-1, 1] and, when labelled, labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        item = {"pixel_values": self.images[i]}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        return item


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    """A fresh cache for this module, so the first feature_net call trains."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("hf-home")
        mp.setattr(constants, "HF_HOME", str(path))
        yield path


@pytest.fixture(scope="module")
def digits():
    """1,797 real 8x8 digits scaled to [-1, 1] and resized to 16 px; a seeded 1,437 / 360 train/test split."""
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32)[:, None] / 8 - 1
    images = F.interpolate(images, size=16, mode="bilinear", align_corners=False)
    labels = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    train, test = order[:1437], order[1437:]
    return {
        "train": ImageDataset(images[train], labels[train]),
        "test": ImageDataset(images[test], labels[test]),
        "test_images": images[test],
        "test_labels": labels[test],
    }


@pytest.fixture(scope="module")
def classifier(hf_home, digits):
    start = time.perf_counter()
    net = feature_net(digits["train"], num_classes=10, cache_key="digits")
    return net, time.perf_counter() - start


# ---- Fréchet distance ----------------------------------------------------------------------------------------------


def _standardized(n: int, dim: int, seed: int) -> np.ndarray:
    """Samples whose sample mean is exactly 0 and sample covariance exactly the identity."""
    z = np.random.default_rng(seed).normal(size=(n, dim))
    z -= z.mean(0)
    return z @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(z, rowvar=False)))).T


def test_frechet_distance_of_identical_sets_is_zero():
    feats = np.random.default_rng(0).normal(size=(500, 16))
    assert frechet_distance(feats, feats) == pytest.approx(0, abs=1e-8)
    as_tensor = torch.from_numpy(feats).float()
    assert frechet_distance(as_tensor, as_tensor) == pytest.approx(0, abs=1e-8)


@pytest.mark.parametrize("mean, std", [(0.0, 1.0), (2.0, 1.0), (0.0, 3.0), (-1.5, 0.5)])
def test_frechet_distance_1d_closed_form(mean, std):
    z = _standardized(1000, 1, seed=0)
    # FD(N(0, 1), N(m, s^2)) = m^2 + (1 - s)^2
    assert frechet_distance(z, mean + std * z) == pytest.approx(mean**2 + (1 - std) ** 2, abs=1e-9)


def test_frechet_distance_diagonal_closed_form():
    z = _standardized(2000, 4, seed=1)
    mu, sigma = np.array([0.5, -1.0, 0.0, 2.0]), np.array([1.0, 2.0, 0.5, 1.5])
    expected = (mu**2).sum() + ((1 - sigma) ** 2).sum()
    assert frechet_distance(z, mu + sigma * z) == pytest.approx(expected, abs=1e-8)


def test_frechet_distance_matches_symmetric_eigen_formula():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(800, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(800, 6)) @ rng.normal(size=(6, 6)) + 1
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr((S_a S_b)^(1/2)) = tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)), a symmetric PSD matrix: sum of sqrt eigenvalues
    w, v = np.linalg.eigh(cov_a)
    root_a = v @ np.diag(np.sqrt(w)) @ v.T
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    diff = a.mean(0) - b.mean(0)
    expected = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_covmean
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_with_fewer_samples_than_dimensions_is_finite():
    rng = np.random.default_rng(3)
    distance = frechet_distance(rng.normal(size=(20, 64)), rng.normal(size=(20, 64)))
    assert np.isfinite(distance) and distance > 0


def test_frechet_distance_of_a_collapsed_set_is_exact_and_warns_nothing():
    """All samples identical (a collapsed generator): S_b = 0, so the distance is |mu_a - b|^2 + tr(S_a); scipy's
    sqrtm calls the product singular, which must not reach the user's console."""
    rng = np.random.default_rng(0)
    a, point = rng.normal(size=(200, 8)), rng.normal(size=8)
    expected = ((a.mean(0) - point) ** 2).sum() + np.trace(np.cov(a, rowvar=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert frechet_distance(a, np.tile(point, (200, 1))) == pytest.approx(expected, rel=1e-9)


# ---- precision / recall --------------------------------------------------------------------------------------------


def test_precision_recall_identical_sets():
    feats = torch.randn(400, 8, generator=torch.Generator().manual_seed(0))
    assert precision_recall(feats, feats) == (1.0, 1.0)


def test_precision_recall_drop_for_a_shifted_set():
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.randn(500, 8, generator=gen), torch.randn(500, 8, generator=gen)
    precision, recall = precision_recall(real, fake)
    assert precision > 0.8 and recall > 0.8  # a fresh draw from the same distribution
    shifted_precision, shifted_recall = precision_recall(real, fake + 1.5)
    assert shifted_precision < precision - 0.3 and shifted_recall < recall - 0.3
    assert precision_recall(real, fake + 20) == (0.0, 0.0)


def test_recall_drops_when_fakes_collapse_to_one_mode():
    gen = torch.Generator().manual_seed(2)
    centres = torch.eye(8) * 10  # 8 well separated modes
    real = centres[torch.arange(800) % 8] + torch.randn(800, 8, generator=gen)
    collapsed = centres[0] + torch.randn(800, 8, generator=gen)
    precision, recall = precision_recall(real, collapsed)
    assert precision > 0.8  # every fake looks real...
    assert recall < 0.2  # ...but covers only one mode in eight


# ---- domain network on real digits ------------------------------------------------------------------------------


def test_domain_classifier_is_accurate_on_held_out_digits(classifier, digits):
    net, _ = classifier
    assert net.config["objective"] == "classes"
    assert feature_net_accuracy(net, digits["test_images"], digits["test_labels"]) > 0.8


def test_class_accuracy_of_true_and_shuffled_labels(classifier, digits):
    net, _ = classifier
    predicted = embed(net, digits["test_images"])[1].argmax(1)
    labels = digits["test_labels"]
    assert class_accuracy(predicted, labels) > 0.8
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    assert class_accuracy(predicted, shuffled) < 0.25  # chance is 0.1


def test_cache_loads_the_same_network_faster(classifier, digits, hf_home):
    net, train_seconds = classifier
    folders = list((hf_home / "genkit" / "feature-nets").glob("digits-*"))
    assert len(folders) == 1
    assert (folders[0] / "model.safetensors").is_file() and (folders[0] / "config.json").is_file()

    start = time.perf_counter()
    cached = feature_net(digits["train"], num_classes=10, cache_key="digits")
    assert time.perf_counter() - start < train_seconds / 2
    assert cached.config == net.config
    torch.testing.assert_close(embed(cached, digits["test_images"]), embed(net, digits["test_images"]))


def test_same_data_and_seed_train_the_same_network_in_any_grad_mode(tmp_path, monkeypatch, digits):
    small = ImageDataset(digits["test_images"][:128], digits["test_labels"][:128])  # 20 steps
    weights = []
    for run, mode in (("a", contextlib.nullcontext()), ("b", torch.inference_mode())):  # empty caches: both train
        monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / run))
        with mode:
            weights.append(feature_net(small, num_classes=10, seed=3).state_dict())
    for name, value in weights[0].items():
        torch.testing.assert_close(value, weights[1][name], rtol=0, atol=0)


# ---- evaluate_images -------------------------------------------------------------------------------------------


def test_evaluate_real_test_images_as_samples(classifier, digits):
    result = evaluate_images(
        digits["test_images"],
        digits["test"],
        train=digits["train"],
        sample_labels=digits["test_labels"],
        num_classes=10,
        cache_key="digits",
    )
    metrics, protocol = result["metrics"], result["protocol"]
    assert metrics["frechet_distance"] == pytest.approx(0, abs=1e-6)
    assert metrics["precision"] == metrics["recall"] == 1.0
    assert metrics["class_coverage"] == 1.0 and metrics["class_entropy"] > 0.95
    assert metrics["class_accuracy"] > 0.8
    assert protocol["num_samples"] == protocol["num_real"] == protocol["reference_num_train"] == 360
    assert protocol["k"] == 3 and protocol["feature_net_test_accuracy"] > 0.8
    assert "10-class classifier" in protocol["feature_space"]
    # Unseen train images against the test split: a small but non-zero floor.
    assert 0 < protocol["reference_real_frechet_distance"] < 5
    assert protocol["reference_real_precision"] > 0.8 and protocol["reference_real_recall"] > 0.8


def test_evaluate_noise_and_a_collapsed_generator(classifier, digits):
    noise = torch.rand(300, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    result = evaluate_images(noise, digits["test"], train=digits["train"], num_classes=10, cache_key="digits")
    assert result["metrics"]["frechet_distance"] > 10 * result["protocol"]["reference_real_frechet_distance"]
    assert result["metrics"]["precision"] < 0.1 and "class_accuracy" not in result["metrics"]

    ones = digits["test_images"][digits["test_labels"] == 1]
    result = evaluate_images(ones, digits["test"], train=digits["train"], num_classes=10, cache_key="digits")
    metrics = result["metrics"]
    assert metrics["class_coverage"] == pytest.approx(0.1)
    assert metrics["class_entropy"] < 0.3
    assert metrics["precision"] > 0.8 and metrics["recall"] < 0.3


def test_rotation_features_for_unlabelled_data(hf_home, digits):
    unlabelled = ImageDataset(digits["train"].images[:640])  # 100 steps: enough to beat chance clearly
    test = ImageDataset(digits["test_images"])
    net = feature_net(unlabelled)
    assert net.config["objective"] == "rotation" and net.config["num_outputs"] == 4
    assert feature_net_accuracy(net, digits["test_images"], None) > 0.5  # chance is 0.25

    result = evaluate_images(digits["test_images"], test, train=unlabelled)
    assert set(result["metrics"]) == {"frechet_distance", "precision", "recall"}
    assert result["protocol"]["feature_net_objective"] == "rotation"
    noise = torch.rand(360, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noisy = evaluate_images(noise, test, train=unlabelled)
    assert noisy["metrics"]["frechet_distance"] > 10 * noisy["protocol"]["reference_real_frechet_distance"]


def test_mistakes_are_explained(digits):
    images, labels = digits["test_images"], digits["test_labels"]
    with pytest.raises(ValueError, match="sample_labels need num_classes"):
        evaluate_images(images, digits["test"], train=digits["train"], sample_labels=labels)
    with pytest.raises(ValueError, match="samples have shape"):
        evaluate_images(images[:, :, :8], digits["test"], train=digits["train"])
    with pytest.raises(ValueError, match="yields no 'labels'"):
        feature_net(ImageDataset(digits["test_images"]), num_classes=10)
