"""Writes the lab notebooks of notebooks/ from the cells below (run it after changing a cell; CI executes the .ipynb
files it writes, with ``TINY = True`` in the parameters cell). Cells are Markdown (``md``) or code (``py``)."""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).parent
REPO = "https://github.com/genkit-dev/genkit"

INSTALL = """# Install genkit where it is missing (Colab, Kaggle, a fresh machine). Its PyPI name is genkit-hf; it imports as
# genkit. A clone of the repository in ./genkit is installed as a regular package, which Python prefers to the
# clone's folder.
import importlib
import importlib.util
import os
import subprocess
import sys

spec = importlib.util.find_spec("genkit")
if spec is None or spec.origin is None:  # not installed, or only a folder named genkit here
    source = "./genkit[lab]" if os.path.isfile("genkit/pyproject.toml") else "genkit-hf[lab] @ git+{REPO}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)
    importlib.invalidate_caches()
import genkit

assert hasattr(genkit, "train"), "another package is named genkit: pip uninstall -y genkit; pip install genkit-hf"
print("genkit", genkit.__version__)""".replace("{REPO}", REPO)

PARAMETERS = """# Parameters: CI runs every notebook with TINY = True (the same cells, tiny settings, seconds on a CPU).
TINY = False
STEPS = 60 if TINY else None  # None: each cell's own number of updates"""


def badge(name: str) -> str:
    url = f"https://colab.research.google.com/github/genkit-dev/genkit/blob/main/notebooks/{name}"
    return f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


AUTOENCODERS = [
    (
        "md",
        "# Lab 1: autoencoders\n\n{badge}\n\nAn autoencoder squeezes an image through a small code and rebuilds it. "
        "Each model here is a plugin written in a cell: `genkit.SimplePlugin` takes plain `torch.nn.Module` classes "
        "and a `training_step`, and genkit does the rest: training, checkpoints, evaluation on the test split, saving "
        "and loading. A few minutes on a laptop CPU.",
    ),
    ("py", "{install}"),
    ("py", "{parameters}"),
    (
        "md",
        "## A plain autoencoder\n\nA deterministic code (no sampling, unlike a VAE): encoder, bottleneck, "
        "decoder, trained to minimise the mean squared error. The masking and sparsity settings are off for now.",
    ),
    (
        "py",
        """import torch
import torch.nn as nn
import torch.nn.functional as F

import genkit


class Autoencoder(nn.Module):
    def __init__(self, in_channels=1, image_size=16, code=32):
        super().__init__()
        pixels = in_channels * image_size**2
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, 256), nn.ReLU(), nn.Linear(256, code))
        self.decoder = nn.Sequential(nn.Linear(code, 256), nn.ReLU(), nn.Linear(256, pixels), nn.Tanh())

    def forward(self, x):
        code = self.encoder(x)
        return self.decoder(code).view_as(x), code


class AutoencoderPlugin(genkit.SimplePlugin):
    name = "autoencoder-lab"
    models = {"model": Autoencoder}
    defaults = {"image_size": 16, "code": 32, "lr": 1e-3, "mask": 0.0, "noise": 0.0, "l1": 0.0}

    def training_step(self, modules, batch, ctx):
        x = batch["pixel_values"]
        seen = x + ctx.config["noise"] * torch.randn_like(x)  # Gaussian denoising
        if ctx.config["mask"]:  # masking noise: a share of the pixels set to 0 (the middle of [-1, 1])
            seen = seen * (torch.rand_like(x) >= ctx.config["mask"])
        recon, code = modules["model"](seen)
        mse = F.mse_loss(recon, x)  # always against the clean image
        l1 = code.abs().mean()
        return {"loss": mse + ctx.config["l1"] * l1, "mse": mse, "l1": l1, "active": (code.abs() > 0.1).float().mean()}


plain = genkit.train(AutoencoderPlugin(), dataset="digits", output="runs/ae-plain", overwrite=True,
                     max_steps=STEPS or 1500)""",
    ),
    (
        "md",
        "`pipe.history` holds what training logged, one row per logged step (each value the mean over the "
        "logging interval):",
    ),
    ("py", "plain.history.tail()"),
    (
        "py",
        """from genkit.data import load_splits, prepare_images

splits = load_splits("digits", "image", image_size=16)
data = prepare_images(splits, {"dataset": "digits", "image_size": 16})
test = torch.stack([data.test[i]["pixel_values"] for i in range(16)])


def reconstruct(pipe, x):
    with torch.no_grad():
        return pipe.model(x)[0]


genkit.show(torch.cat([test, reconstruct(plain, test)]), nrow=16, title="test digits, and their reconstructions")""",
    ),
    (
        "md",
        "## Denoising: Gaussian noise and masking noise\n\nThe encoder sees a corrupted image and the decoder "
        "must rebuild the clean one. Masking noise sets 30-50% of the pixels to zero (Vincent et al. 2008).",
    ),
    (
        "py",
        """gaussian = genkit.train(AutoencoderPlugin(), dataset="digits", output="runs/ae-gaussian", overwrite=True,
                        noise=0.5, max_steps=STEPS or 1500, progress=False)
masking = genkit.train(AutoencoderPlugin(), dataset="digits", output="runs/ae-masking", overwrite=True,
                       mask=0.4, max_steps=STEPS or 1500, progress=False)
masked = test * (torch.rand(test.shape, generator=torch.Generator().manual_seed(0)) >= 0.4)
genkit.show(torch.cat([masked, reconstruct(masking, masked), reconstruct(plain, masked)]), nrow=16,
            title="masked input; the masking autoencoder; the plain one")""",
    ),
    (
        "md",
        "## Sparse codes\n\nAn L1 penalty on the code pushes most of its units to zero: the share of active "
        "units falls as the penalty's weight grows.",
    ),
    (
        "py",
        """import json

for weight in (0.0, 0.1):
    sparse = genkit.train(AutoencoderPlugin(), dataset="digits", output=f"runs/ae-l1-{weight}", overwrite=True,
                          l1=weight, max_steps=STEPS or 1500, progress=False)
    metrics = json.load(open(f"runs/ae-l1-{weight}/eval_results.json"))["metrics"]
    print(f"L1 weight {weight}: test MSE {metrics['test_mse']:.4f}, active code units {metrics['test_active']:.0%}")""",
    ),
    (
        "md",
        "## A 2-D code against PCA\n\nWith a code of two numbers the autoencoder draws the digits on a plane; "
        "PCA's best linear plane keeps less apart.",
    ),
    (
        "py",
        """import matplotlib.pyplot as plt
from sklearn.decomposition import PCA

two = genkit.train(AutoencoderPlugin(), dataset="digits", output="runs/ae-2d", overwrite=True, code=2,
                   max_steps=STEPS or 3000, progress=False)
x = torch.stack([data.test[i]["pixel_values"] for i in range(len(data.test))])
y = torch.stack([data.test[i]["labels"] for i in range(len(data.test))])
with torch.no_grad():
    codes = two.model.encoder(x)
pca = PCA(2).fit_transform(x.flatten(1).numpy())
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, points, title in ((axes[0], codes.numpy(), "autoencoder code"), (axes[1], pca, "PCA")):
    ax.scatter(points[:, 0], points[:, 1], c=y.numpy(), cmap="tab10", s=8)
    ax.set_title(title)""",
    ),
    (
        "md",
        "## Anomaly detection\n\nAn autoencoder rebuilds what it was trained on: its reconstruction error is "
        "small for digits and large for anything else.",
    ),
    (
        "py",
        """def error(pipe, x):
    return F.mse_loss(reconstruct(pipe, x), x, reduction="none").flatten(1).mean(1)


noise = torch.rand(16, 1, 16, 16) * 2 - 1
print("digits:", error(plain, test).mean().item(), "noise:", error(plain, noise).mean().item())""",
    ),
]

VAE = [
    (
        "md",
        "# Lab 2: variational autoencoders\n\n{badge}\n\nThe `vae` plugin: samples, reconstructions, "
        "interpolation, latent arithmetic, beta-VAE traversals, a 2-D latent plane, the two terms of the loss and anomaly "
        "scores. docs/vae.md is its page.",
    ),
    ("py", "{install}"),
    ("py", "{parameters}"),
    (
        "py",
        """import genkit

vae = genkit.train("vae", dataset="digits", output="runs/vae", overwrite=True, max_steps=STEPS or 1500)
genkit.show(vae.sample(32, seed=0), nrow=8, title="samples from the prior")""",
    ),
    ("md", "Reconstruction against KL: the two terms of the negative ELBO as training went on."),
    ("py", 'genkit.plot_history(vae.history, ["reconstruction", "kl"], title="the two terms of the loss")'),
    (
        "py",
        """from genkit.data import load_splits

test = load_splits("digits", "image", image_size=16)["test"]["image"][:8]
genkit.show(test + vae.reconstruct(test), nrow=8, title="test digits and their reconstructions")""",
    ),
    ("py", """genkit.show(vae.interpolate(test[0], test[1], steps=8), title="the straight line between two codes")"""),
    ("py", """genkit.show(vae.latent_arithmetic(test[2], test[3], test[4]), title="z(A) - z(B) + z(C)")"""),
    (
        "md",
        "## beta-VAE: one latent at a time\n\nA larger beta weighs the KL term more: the latents grow more "
        "independent, and each row below changes one of them from -3 to 3.",
    ),
    (
        "py",
        """beta = genkit.train("vae", dataset="digits", output="runs/vae-beta4", overwrite=True, beta=4.0, latent_dim=4,
                    max_steps=STEPS or 1500, progress=False)
genkit.show([im for dim in range(4) for im in beta.traverse(dim)], nrow=7, title="traversals, one latent per row")""",
    ),
    ("md", "## A 2-D latent space, decoded over the plane"),
    (
        "py",
        """flat = genkit.train("vae", dataset="digits", output="runs/vae-2d", overwrite=True, latent_dim=2,
                    max_steps=STEPS or 2000, progress=False)
genkit.show(flat.latent_grid(10), nrow=10, title="decodings of a grid over the latent plane")""",
    ),
    (
        "md",
        "## Anomaly scores\n\nThe negative ELBO of an image, in nats: low for digits like the training data, high "
        "for anything else.",
    ),
    (
        "py",
        """import torch

noise = torch.rand(8, 1, 16, 16) * 2 - 1  # uniform noise images in [-1, 1]
print(f"digits: {vae.anomaly_score(test).mean():.1f} nats, noise: {vae.anomaly_score(noise).mean():.1f} nats")""",
    ),
]

GANS = [
    (
        "md",
        "# Lab 3: GANs\n\n{badge}\n\nDCGAN on digits (its grids during training, BCE against WGAN-GP, a "
        "conditional GAN), then mode collapse on 2-D points with a GAN written in a cell.",
    ),
    ("py", "{install}"),
    ("py", "{parameters}"),
    (
        "py",
        """from pathlib import Path

from PIL import Image

import genkit

# diffaugment="none": the plain DCGAN of Radford et al. genkit's default adds DiffAugment (translation, cutout),
# which keeps every digit class at this budget; the plain one drops some (docs/dcgan.md).
bce = genkit.train("dcgan", output="runs/dcgan-bce", overwrite=True, sample_every=(STEPS or 1000) // 4,
                   max_steps=STEPS or 1000, diffaugment="none")

grids = sorted(Path("runs/dcgan-bce/samples").glob("step-*.png"))
genkit.show([Image.open(g) for g in grids], nrow=len(grids), scale=1, title="sample grids during training")""",
    ),
    (
        "md",
        "BCE against WGAN-GP: the discriminator's and the generator's losses (the WGAN-GP generator steps once "
        "per five critic steps; its loss is logged all the same).",
    ),
    (
        "py",
        """wgan = genkit.train("dcgan", output="runs/dcgan-wgan", overwrite=True, loss="wgan-gp",
                    max_steps=STEPS or 1000, progress=False)
genkit.plot_history(bce.history, ["discriminator/loss", "generator/loss"], title="BCE")
genkit.plot_history(wgan.history, ["discriminator/loss", "generator/loss"], title="WGAN-GP")""",
    ),
    (
        "py",
        """conditional = genkit.train("dcgan", output="runs/dcgan-cond", overwrite=True, conditional=True,
                           max_steps=STEPS or 1000, progress=False)
genkit.show(conditional.sample(20, labels=[i // 2 for i in range(20)]), nrow=10, title="two samples per class")""",
    ),
    (
        "md",
        "## Mode collapse on a ring of Gaussians\n\nEight Gaussians on a circle, a small MLP generator and "
        "critic written in the cell below. `genkit.data.mode_coverage` counts the modes the samples reach.",
    ),
    (
        "py",
        """import torch
import torch.nn as nn
import torch.nn.functional as F

from genkit.plugin import OptimizerSpec


def mlp(inputs, outputs, hidden):
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, outputs))


class Generator(nn.Module):
    def __init__(self, latent=2, dim=2, hidden=128):
        super().__init__()
        self.latent, self.net = latent, mlp(latent, dim, hidden)

    def forward(self, z):
        return self.net(z)


class Critic(nn.Module):
    def __init__(self, dim=2, hidden=128):
        super().__init__()
        self.net = mlp(dim, 1, hidden)

    def forward(self, x):
        return self.net(x).squeeze(1)


class RingGAN(genkit.SimplePlugin):
    name = "ring-gan"
    task = "vector"
    default_dataset = "ring"
    models = {"generator": Generator, "discriminator": Critic}
    defaults = {"loss": "bce", "n_critic": 1, "gp_weight": 0.1, "lr": 1e-3, "batch_size": 256}

    def optimizers(self, config):
        return [OptimizerSpec("discriminator", ["discriminator"], config["lr"], (0.5, 0.9)),
                OptimizerSpec("generator", ["generator"], config["lr"], (0.5, 0.9), every=config["n_critic"])]

    def training_step(self, modules, batch, ctx):
        G, D, real = modules["generator"], modules["discriminator"], batch["points"]
        z = torch.randn(len(real), ctx.bare(modules, "generator").latent)
        wgan = ctx.config["loss"] == "wgan-gp"
        if ctx.phase == "generator":
            score = D(G(z))
            return {"loss": -score.mean() if wgan else F.softplus(-score).mean()}
        fake = G(z).detach()
        if not wgan:
            return {"loss": F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()}
        eps = torch.rand(len(real), 1)
        mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(D(mixed).sum(), mixed, create_graph=True)
        penalty = (grad.norm(2, dim=1) - 1).pow(2).mean()
        return {"loss": D(fake).mean() - D(real).mean() + ctx.config["gp_weight"] * penalty}

    def generate(self, modules, n, generator):
        return modules["generator"](torch.randn(n, modules["generator"].latent, generator=generator))""",
    ),
    (
        "py",
        """import json

from genkit.data import toy_points

real = torch.tensor(toy_points("ring", 2000)["points"])
for loss, n_critic in (("bce", 1), ("wgan-gp", 5)):
    pipe = genkit.train(RingGAN(), output=f"runs/ring-{loss}", overwrite=True, loss=loss, n_critic=n_critic,
                        max_steps=STEPS or 2000, progress=False)
    metrics = json.load(open(f"runs/ring-{loss}/eval_results.json"))["metrics"]
    print(f"{loss}: {metrics['modes_covered']} of {metrics['modes']} modes covered, "
          f"{metrics['high_quality']:.0%} of the samples near a mode")
    display(genkit.scatter(pipe.sample(1000), real, title=loss))""",
    ),
    (
        "md",
        "The DCGAN plugin watches for collapse while it trains: past `collapse_guard_after` updates it warns "
        "when the samples of a batch grow too alike (`diversity`) or the discriminator wins outright. Its warnings "
        'name the step; `bce.history["discriminator/diversity"]` is the curve it watches.',
    ),
    (
        "py",
        """genkit.plot_history(bce.history, ["discriminator/diversity", "discriminator/d_real", "discriminator/d_fake"],
                    title="what the collapse guard watches")""",
    ),
]

DIFFUSION = [
    (
        "md",
        "# Lab 4: diffusion\n\n{badge}\n\nA DDPM on digits: the forward process that adds noise, the reverse "
        "process that removes it, fewer steps with other samplers, and a class-conditional model.",
    ),
    ("py", "{install}"),
    ("py", "{parameters}"),
    (
        "py",
        """import genkit

# Digits are 8x8 pixels: a two-level UNet at their own size, without attention, trains in about 4 CPU minutes.
# (The plugin's default, 16 px with three levels and attention, takes about 3 times as long per step on a CPU.)
LAB = {"image_size": 8, "block_out_channels": [32, 64], "attention_levels": []}
ddpm = genkit.train("ddpm", output="runs/ddpm", overwrite=True, max_steps=STEPS or 2000,
                    **({"preset": "tiny"} if TINY else LAB))""",
    ),
    ("md", "## Forward: q(x_t | x_0)\n\nOne digit with the noise of seven timesteps (the same noise draw for all)."),
    (
        "py",
        """from genkit.data import load_splits

digit = load_splits("digits", "image", image_size=ddpm.unet.config.sample_size)["test"]["image"][0]
genkit.show(ddpm.noise(digit), title="x_0 ... x_T")""",
    ),
    ("md", "## Reverse: from noise to images\n\nEvery tenth step of DDIM-50, for four images."),
    (
        "py",
        """import torch

out = ddpm(4, num_inference_steps=50, scheduler="ddim", return_intermediates=10,
           generator=torch.Generator().manual_seed(0))
genkit.show([im for step in out.intermediates for im in step], nrow=4, title="top to bottom: x_T to x_0")""",
    ),
    ("md", "## Fewer steps, other samplers"),
    (
        "py",
        """for scheduler, steps in (("ddim", 10), ("ddim", 50), ("dpm++2m-sde", 20)):
    images = ddpm(8, num_inference_steps=steps, scheduler=scheduler,
                  generator=torch.Generator().manual_seed(0)).images
    display(genkit.show(images, nrow=8, title=f"{scheduler}, {steps} steps"))""",
    ),
    ("md", "## Class-conditional, with classifier-free guidance"),
    (
        "py",
        """conditional = genkit.train("ddpm", output="runs/ddpm-cond", overwrite=True, conditional=True,
                           max_steps=STEPS or 1500, progress=False, **({"preset": "tiny"} if TINY else LAB))
images = conditional(10, class_labels=list(range(10)), guidance_scale=2.0, num_inference_steps=25,
                     scheduler="ddim", generator=torch.Generator().manual_seed(0)).images
genkit.show(images, nrow=10, title="one sample per class, guidance 2")""",
    ),
]

SEQUENCES = [
    (
        "md",
        "# Lab 5: sequences\n\n{badge}\n\nA character-level recurrent language model on Python's own "
        "standard library: an LSTM against a GRU, and what temperature does to sampling.",
    ),
    ("py", "{install}"),
    ("py", "{parameters}"),
    (
        "py",
        """import json

import genkit

runs = {}
for cell in ("lstm", "gru"):
    runs[cell] = genkit.train("lstm", output=f"runs/{cell}", overwrite=True, cell=cell,
                              max_steps=STEPS or 600, **({"preset": "tiny"} if TINY else {}))
    metrics = json.load(open(f"runs/{cell}/eval_results.json"))["metrics"]
    print(cell, "validation loss:", round(metrics["loss_nats_per_token"], 3), "nats per token")""",
    ),
    ("py", """genkit.plot_history(runs["lstm"].history, ["loss"], title="LSTM training loss")"""),
    ("md", "## Temperature\n\nLow temperature: the likeliest characters, repetitive; high: varied, then noise."),
    (
        "py",
        """plugin = genkit.get_plugin("lstm")
for temperature in (0.2, 0.8, 1.5):
    text = plugin.sample(runs["lstm"], 1, seed=0, prompt="def ", max_new_tokens=120, temperature=temperature)[0]
    print(f"--- temperature {temperature}\\n{text}\\n")""",
    ),
]

NOTEBOOKS = {
    "01-autoencoders.ipynb": AUTOENCODERS,
    "02-vae.ipynb": VAE,
    "03-gans.ipynb": GANS,
    "04-diffusion.ipynb": DIFFUSION,
    "05-sequences.ipynb": SEQUENCES,
}


def write(name: str, cells: list[tuple[str, str]]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for number, (kind, text) in enumerate(cells):
        text = text.replace("{badge}", badge(name)).replace("{install}", INSTALL).replace("{parameters}", PARAMETERS)
        cell = nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text)
        cell.id = f"{name[:2]}-{number:02d}"  # stable ids: the files change only where a cell does
        if text == PARAMETERS:
            cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    for name, cells in NOTEBOOKS.items():
        write(name, cells)
