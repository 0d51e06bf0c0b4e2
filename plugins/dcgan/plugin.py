"""The DCGAN plugin: presets, the two-phase adversarial step (BCE or WGAN-GP), the collapse guard, and evaluation.

The core trainer runs the game: for every batch it steps the "discriminator" optimizer, then the "generator" one
(every ``n_critic``-th batch for WGAN-GP), each phase with only its own network trainable. See docs/dcgan.md.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from genkit_dcgan.augment import diff_augment, parse_policy
from genkit_dcgan.modeling_dcgan import IMAGE_SIZES, DCGANDiscriminator, DCGANGenerator, gradient_penalty
from genkit_dcgan.pipeline_dcgan import DCGANPipeline

from genkit.errors import ConfigError
from genkit.plugin import DataInfo, OptimizerSpec, Plugin, PreparedData, StepContext, check_base_classes

__all__ = ["LOSSES", "DCGANPlugin", "collapse_warnings"]

logger = logging.getLogger("genkit_dcgan")

LOSSES = ("bce", "wgan-gp")
# Optimizer defaults per loss: Radford et al. 2015 (Sec. 4) and Gulrajani et al. 2017 (Algorithm 1).
ADAM_DEFAULTS = {"bce": {"lr": 2e-4, "betas": (0.5, 0.999)}, "wgan-gp": {"lr": 1e-4, "betas": (0.0, 0.9)}}

# Collapse guard thresholds (docs/dcgan.md, "Collapse guard").
MIN_DIVERSITY = 0.2  # fakes spread less than a fifth as much as the real batch: samples are near-copies of each other
SATURATED_REAL, SATURATED_FAKE = 0.98, 0.02  # BCE: D is this sure on both halves of the batch; G learns nothing useful


DEFAULT_DIFFAUGMENT = "translation,cutout"


def adam_settings(config: dict[str, Any]) -> tuple[float, tuple[float, float]]:
    """Learning rate and betas: the explicit ones when given, else the defaults of the chosen loss."""
    loss = config["loss"]
    if loss not in LOSSES:
        raise ConfigError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
    default = ADAM_DEFAULTS[loss]
    lr = float(config["lr"]) if config["lr"] is not None else default["lr"]
    beta1 = float(config["adam_beta1"]) if config["adam_beta1"] is not None else default["betas"][0]
    beta2 = float(config["adam_beta2"]) if config["adam_beta2"] is not None else default["betas"][1]
    return lr, (beta1, beta2)


def r1_penalty(critic, real: torch.Tensor) -> torch.Tensor:
    """E ||grad_x D(x)||^2 over real images x (Mescheder et al. 2018, eq. 9, without the gamma / 2): a zero-centred
    penalty that keeps the discriminator flat on the data, so that the non-saturating game converges. The graph is
    kept so the penalty trains the discriminator; like ``gradient_penalty`` it runs in float32 with autocast off
    (small fp16 gradients would underflow)."""
    with torch.autocast(real.device.type, enabled=False):
        real = real.detach().float().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(real).float().sum(), real, create_graph=True)
        return grad.flatten(1).pow(2).sum(dim=1).mean()


def batch_diversity(fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Mean pairwise L2 distance between the fakes divided by the same for the real batch: ~1 when the samples vary
    as much as the data, -> 0 when the generator maps every latent to (nearly) the same image. With ``labels`` (a
    conditional GAN: fake i was asked for the class of real i) only same-class pairs count, so a generator that
    draws one image per class is caught too."""
    fake, real = fake.detach().float().flatten(1), real.detach().float().flatten(1)
    pairs = ~torch.eye(len(real), dtype=torch.bool, device=real.device)
    if labels is not None and (same := pairs & (labels[:, None] == labels[None, :])).any():
        pairs = same
    exact = "donot_use_mm_for_euclid_dist"  # copies must score exactly 0
    spread = [torch.cdist(x, x, compute_mode=exact)[pairs].mean() for x in (fake, real)]
    return spread[0] / spread[1].clamp_min(1e-8)


def collapse_warnings(diversity: float, d_real: float | None, d_fake: float | None) -> list[str]:
    """The collapse guard's verdict on one batch; ``d_real``/``d_fake`` are mean P(real) (BCE only, else None)."""
    problems = []
    if diversity < MIN_DIVERSITY:
        problems.append(
            f"sample diversity collapsed: fakes spread {diversity:.2f}x as much as real images "
            f"(< {MIN_DIVERSITY}); the generator is producing near-copies (mode collapse)"
        )
    if d_real is not None and d_real > SATURATED_REAL and d_fake < SATURATED_FAKE:
        problems.append(
            f"discriminator saturated: D(real)={d_real:.3f}, D(fake)={d_fake:.3f}; the generator gets little useful "
            f"gradient (try --loss wgan-gp, a lower --lr, or fewer discriminator channels)"
        )
    return problems


class DCGANPlugin(Plugin):
    name = "dcgan"
    task = "image"
    pipeline_tag = "unconditional-image-generation"
    base_keys = (
        "latent_dim",
        "generator_channels",
        "discriminator_channels",
        "loss",
        "discriminator_norm",
        "conditional",
    )  # what --init-from takes from the base
    card_usage = (
        "images = pipe.sample(16, seed=0)  # PIL images\n"
        "scores = pipe.discriminate(images)  # the discriminator's realness score per image"
    )
    default_dataset = "digits"
    pipeline_class = DCGANPipeline
    defaults = {
        "image_size": 16,  # digits are 8x8; 16 px gives the generator two upsamplings to draw smooth strokes
        "latent_dim": 100,  # Radford et al. 2015
        "generator_channels": 64,  # the PyTorch DCGAN reference's ngf: 512 channels at 4x4 for 64 px images
        "discriminator_channels": 64,  # ndf, mirrored
        "loss": "bce",  # "bce": non-saturating GAN loss (Goodfellow et al. 2014, Sec. 3); "wgan-gp"
        "discriminator_norm": None,  # None: "batch" for bce (Radford et al.), "layer" for wgan-gp (no BatchNorm)
        "conditional": False,  # class-conditional generator and discriminator: needs labelled data
        "n_critic": 5,  # WGAN-GP: critic updates per generator update (Gulrajani et al. 2017, Algorithm 1)
        "gp_weight": 10.0,  # WGAN-GP: lambda of the gradient penalty (Gulrajani et al. 2017, Algorithm 1)
        "r1_gamma": 0.0,  # > 0: R1 penalty gamma/2 E||grad D(real)||^2 on the discriminator (Mescheder et al. 2018)
        # DiffAugment policies (Zhao et al. 2020); "none": the plain DCGAN of Radford et al. (the mode-collapse
        # exercise). None: DEFAULT_DIFFAUGMENT for the unconditional BCE GAN, where the small preset measured class
        # coverage 0.5 -> 1.0, none for WGAN-GP and conditional GANs, where it measured worse (docs/benchmarks.md).
        "diffaugment": None,
        "discriminator_lr": None,  # None: the generator's --lr; else two time-scale learning rates (Heusel et al.)
        "lr": None,  # None: 2e-4 for bce (Radford et al.), 1e-4 for wgan-gp (Gulrajani et al.)
        "adam_beta1": None,  # None: 0.5 for bce (Radford et al.: 0.9 oscillated), 0.0 for wgan-gp
        "adam_beta2": None,  # None: 0.999 for bce, 0.9 for wgan-gp
        "ema_decay": 0.0,  # > 0: sample from an EMA of the generator's weights (Yazici et al. 2019); 0: off
        "batch_size": 64,
        "max_grad_norm": 0.0,  # neither paper clips gradients; clipping would also distort the WGAN-GP critic
        "collapse_guard_after": 200,  # updates before the collapse guard may warn (a fresh generator is not diverse)
        "eval_samples": 1000,  # generated images per evaluation (fewer than the digits train split of 1,617)
    }
    limits = {
        "latent_dim": (int, "[1, 4096]"),
        "generator_channels": (int, "[1, 4096]"),
        "discriminator_channels": (int, "[1, 4096]"),
        "n_critic": (int, "[1, 1000]"),
        "gp_weight": (float, "[0, 1e6]"),
        "r1_gamma": (float, "[0, 1e6]"),
        "discriminator_lr": (float, "(0, 1]"),
        "adam_beta1": (float, "[0, 1)"),
        "adam_beta2": (float, "[0, 1)"),
        "ema_decay": (float, "[0, 1)"),
        "collapse_guard_after": (int, "[0, 1e9]"),
        "eval_samples": (int, "[2, 100000]"),
    }
    presets = {
        "tiny": {
            "image_size": 8,
            "latent_dim": 16,
            "generator_channels": 16,
            "discriminator_channels": 16,
            "batch_size": 32,
            "max_steps": 10,
            "checkpoint_every": 5,
            "sample_every": 0,
            "log_every": 5,
            "num_sample_images": 16,
            "eval_samples": 200,
            "n_critic": 2,
        },
        "small": {
            "generator_channels": 32,
            "discriminator_channels": 32,
            "max_steps": 3000,
            "checkpoint_every": 1000,
            "sample_every": 500,
            "ema_decay": 0.999,
        },
        "base": {
            "dataset": "shapes",
            "image_size": 64,
            "batch_size": 128,
            "max_steps": 20000,
            "checkpoint_every": 2000,
            "sample_every": 2000,
            "ema_decay": 0.999,
            "eval_samples": 2000,
        },
    }

    # ---- configuration -------------------------------------------------------------------------------------
    flag_options = {
        "loss": {
            "choices": LOSSES,
            "help": "bce: non-saturating DCGAN loss (default); wgan-gp: critic with gradient penalty",
        },
        "conditional": "class-conditional GAN (needs labelled data); samples by class",
        "generator_channels": "channels of the last hidden layer",
        "discriminator_channels": "channels of the first layer",
        "discriminator_norm": {
            "choices": ("batch", "layer"),
            "help": "normalization in the discriminator (default: batch for bce, layer for wgan-gp)",
        },
        "n_critic": "wgan-gp: critic updates per generator update",
        "gp_weight": "wgan-gp: gradient penalty lambda",
        "r1_gamma": "R1 penalty weight on real images (Mescheder et al. 2018; 0: off)",
        "diffaugment": "DiffAugment policies for the discriminator's inputs, from color,translation,cutout (Zhao et "
        "al. 2020); none: off, the plain DCGAN (default: translation,cutout for the unconditional bce loss, else "
        "none)",
        "discriminator_lr": "discriminator learning rate (two time-scale update rule; default: --lr)",
        "ema_decay": "EMA of the generator's weights (0: off)",
        "collapse_guard_after": "updates before the collapse guard may warn",
        "eval_samples": "generated images for the final eval",
    }

    def add_sample_arguments(self, parser) -> None:
        parser.add_argument("--label", type=int, dest="labels", default=None, help="class to sample (conditional)")

    def add_eval_arguments(self, parser) -> None:
        parser.add_argument("--eval-samples", type=int, default=None, help="generated images (default: the model's)")

    def ema_for(self, config: dict[str, Any]) -> dict[str, float]:
        decay = float(config["ema_decay"])
        if not 0 <= decay < 1:
            raise ConfigError(f"--ema-decay must be in [0, 1), got {decay}")
        return {"generator": decay} if decay else {}

    # ---- model -----------------------------------------------------------------------------------------------
    def build(self, config: dict[str, Any], info: DataInfo) -> dict[str, torch.nn.Module]:
        self._policy(config)  # an unknown --diffaugment policy stops before anything is built
        if info.image_size not in IMAGE_SIZES:
            raise ConfigError(
                f"--image-size {info.image_size} is not supported: DCGAN needs a power of two from 8 to 128 "
                f"({', '.join(map(str, IMAGE_SIZES))})"
            )
        if config["conditional"] and not info.num_classes:
            raise ConfigError(
                f"--conditional needs labelled data, and {info.dataset!r} has no labels "
                f"(give --label-column, or train without --conditional)"
            )
        num_classes = info.num_classes if config["conditional"] else 0
        norm = config["discriminator_norm"] or ("layer" if config["loss"] == "wgan-gp" else "batch")
        if norm not in ("batch", "layer"):
            raise ConfigError(f"--discriminator-norm must be batch or layer, got {norm!r}")
        if norm == "batch" and config["loss"] == "wgan-gp":
            raise ConfigError(
                "--loss wgan-gp needs --discriminator-norm layer: the gradient penalty is taken per image, and "
                "BatchNorm makes each image's score depend on the rest of the batch (Gulrajani et al. 2017, Sec. 4)"
            )
        return {
            "generator": DCGANGenerator(
                latent_dim=int(config["latent_dim"]),
                image_size=info.image_size,
                out_channels=info.num_channels,
                base_channels=int(config["generator_channels"]),
                num_classes=num_classes,
            ),
            "discriminator": DCGANDiscriminator(
                image_size=info.image_size,
                in_channels=info.num_channels,
                base_channels=int(config["discriminator_channels"]),
                num_classes=num_classes,
                normalization=norm,
                loss=config["loss"],
            ),
        }

    def optimizers(self, config: dict[str, Any]) -> list[OptimizerSpec]:
        lr, betas = adam_settings(config)
        # Record the effective values in the run's config, so genkit.json and the model card show them, not None.
        config.update(
            lr=lr, adam_beta1=betas[0], adam_beta2=betas[1], diffaugment=",".join(self._policy(config)) or "none"
        )
        n_critic = int(config["n_critic"]) if config["loss"] == "wgan-gp" else 1
        if n_critic < 1:
            raise ConfigError(f"--n-critic must be >= 1, got {n_critic}")
        # Discriminator first, then generator: the order of the lecture algorithm (Goodfellow et al. 2014, Alg. 1).
        d_lr = float(config["discriminator_lr"]) if config.get("discriminator_lr") is not None else lr
        return [
            OptimizerSpec("discriminator", ["discriminator"], lr=d_lr, betas=betas),
            OptimizerSpec("generator", ["generator"], lr=lr, betas=betas, every=n_critic),
        ]

    # ---- the adversarial step ----------------------------------------------------------------------------------
    def training_step(self, modules, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        config = ctx.config
        G, D = modules["generator"], modules["discriminator"]
        real = batch["pixel_values"]
        labels = self._labels(batch, config)
        z = torch.randn(real.shape[0], int(ctx.bare(modules, "generator").config.latent_dim), device=real.device)
        wgan = config["loss"] == "wgan-gp"
        policy = self._policy(config)

        if ctx.phase == "generator":
            score = D(diff_augment(G(z, labels), policy), labels)
            # Non-saturating: maximize log D(G(z)) rather than minimize log(1 - D(G(z))) (Goodfellow et al., Sec. 3).
            loss = -score.mean() if wgan else F.softplus(-score).mean()
            return {"loss": loss}

        with torch.no_grad():  # the generator is frozen in this phase; no graph through it
            fake = G(z, labels)
        logs: dict[str, torch.Tensor] = {"diversity": batch_diversity(fake, real, labels)}
        r1_gamma = float(config.get("r1_gamma") or 0.0)
        seen_real = diff_augment(real, policy)
        real_score, fake_score = D(seen_real, labels), D(diff_augment(fake, policy), labels)
        if wgan:
            gp = gradient_penalty(lambda x: D(x, labels), real, fake)
            distance = real_score.mean() - fake_score.mean()  # the critic's estimate of the Wasserstein-1 distance
            loss = -distance + float(config["gp_weight"]) * gp
            logs.update(wasserstein=distance.detach(), gradient_penalty=gp.detach())
            d_real = d_fake = None
        else:
            # -log D(x) - log(1 - D(G(z))), written with softplus on logits for numerical stability.
            loss = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
            logs["d_real"] = torch.sigmoid(real_score).mean().detach()  # mean P(real) on real images
            logs["d_fake"] = torch.sigmoid(fake_score).mean().detach()
            d_real, d_fake = logs["d_real"].item(), logs["d_fake"].item()
        if r1_gamma > 0:
            r1 = r1_penalty(lambda x: D(x, labels), seen_real)
            loss = loss + r1_gamma / 2 * r1
            logs["r1_penalty"] = r1.detach()
        log_every = int(config["log_every"])
        if ctx.step >= int(config["collapse_guard_after"]) and log_every and ctx.step % log_every == 0:
            for problem in collapse_warnings(logs["diversity"].item(), d_real, d_fake):
                logger.warning("step %d: %s", ctx.step, problem)
        return {"loss": loss, **logs}

    @staticmethod
    def _policy(config: dict[str, Any]) -> tuple[str, ...]:
        """The DiffAugment policy of ``config``; None: DEFAULT_DIFFAUGMENT for the unconditional BCE GAN, else none."""
        policy = config.get("diffaugment")
        if policy is None:
            plain_bce = config.get("loss") == "bce" and not config.get("conditional")
            policy = DEFAULT_DIFFAUGMENT if plain_bce else "none"
        try:
            return parse_policy(policy)
        except ValueError as exc:
            raise ConfigError(f"--diffaugment: {exc}") from None

    @staticmethod
    def _labels(batch, config: dict[str, Any]) -> torch.Tensor | None:
        """The batch's labels for a conditional GAN, None for an unconditional one (``--init-from`` bases set
        ``conditional`` from the base, see ``base_keys``)."""
        if not config["conditional"]:
            return None
        if "labels" not in batch:
            raise ConfigError("--conditional needs labelled data, and this dataset has no labels")
        return batch["labels"]

    # ---- pipeline ----------------------------------------------------------------------------------------------
    def to_pipeline(self, modules, data: PreparedData, config: dict[str, Any]) -> DCGANPipeline:
        generator = modules["generator"]
        if float(config["ema_decay"]):
            standing_statistics(generator)
        return DCGANPipeline(generator=generator, discriminator=modules["discriminator"])

    def modules_from_pipeline(self, pipeline: DCGANPipeline) -> dict[str, torch.nn.Module]:
        return {"generator": pipeline.generator, "discriminator": pipeline.discriminator}

    def modules_from_base(self, folder, data: PreparedData) -> dict[str, torch.nn.Module]:
        modules = super().modules_from_base(folder, data)
        check_base_classes(modules["generator"].config.num_classes, data.info)
        return modules

    def sample(self, pipeline: DCGANPipeline, n: int, seed: int = 0, labels=None, **kwargs):
        if pipeline.num_classes and labels is None:
            labels = class_blocks(n, pipeline.num_classes)
        return pipeline.sample(n, seed=seed, labels=labels)

    # ---- evaluation --------------------------------------------------------------------------------------------
    def evaluate(self, pipeline: DCGANPipeline, data: PreparedData, config: dict[str, Any]) -> dict[str, Any]:
        """Fréchet distance, precision/recall and class metrics in genkit's offline domain-classifier feature space."""
        from genkit.eval.metrics import evaluate_images

        n = int(config.get("eval_samples") or self.defaults["eval_samples"])
        seed = int(config.get("seed", 0))
        info = data.info
        k = pipeline.num_classes
        sample_labels = torch.arange(n) % k if k else None  # balanced classes for conditional samples
        samples = (
            torch.cat(
                [
                    pipeline.sample(len(chunk), seed=seed + i, labels=labels, output_type="pt")
                    for i, (chunk, labels) in enumerate(_chunks(n, sample_labels))
                ]
            )
            .float()
            .cpu()
        )
        result = evaluate_images(
            samples,
            data.test,
            train=data.train,
            sample_labels=sample_labels,
            num_classes=info.num_classes,
            cache_key=f"{info.dataset}-{info.image_size}px",
            seed=0,
        )
        result["protocol"] = {
            "split": "test",
            "loss": pipeline.discriminator.config.loss,
            "conditional": bool(k),
            "ema": bool(float(config.get("ema_decay") or 0)),
            "sampler": "generator in eval mode (BatchNorm running statistics), z ~ N(0, I)",
            "sample_seed": seed,
            "sample_labels": "balanced: sample i asks for class i mod num_classes" if k else "none (unconditional)",
            **result["protocol"],
        }
        return result

    def build_demo(self, pipeline: DCGANPipeline):
        from genkit_dcgan.demo import build_demo

        return build_demo(pipeline)


def class_blocks(n: int, num_classes: int) -> torch.Tensor:
    """Labels for a grid of ``n`` samples: classes in ascending, contiguous blocks of (nearly) equal size."""
    return torch.arange(n) * num_classes // n


def _chunks(n: int, labels: torch.Tensor | None, size: int = 500):
    for start in range(0, n, size):
        stop = min(n, start + size)
        yield range(start, stop), None if labels is None else labels[start:stop]


@torch.no_grad()
def standing_statistics(generator: DCGANGenerator, batches: int = 16, batch_size: int = 64) -> None:
    """Recompute the generator's BatchNorm running statistics for its current (EMA-averaged) weights.

    The EMA averages weights only; the running means and variances were collected with the raw weights and do not
    match the averaged network. Averaging batch statistics over fixed-seed latents ("standing statistics", Brock et
    al. 2019, Appendix C.1) fixes that, deterministically.
    """
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches below
    rng = torch.Generator().manual_seed(0)
    generator.train()
    k = generator.config.num_classes
    for _ in range(batches):
        z = torch.randn(batch_size, generator.config.latent_dim, generator=rng).to(generator.device, generator.dtype)
        labels = torch.randint(0, k, (batch_size,), generator=rng).to(generator.device) if k else None
        generator(z, labels)
    generator.eval()
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
