"""AutoencoderPipeline: codes, reconstructions, denoising, anomaly scores, interpolation, inpainting and the code
plane of a trained autoencoder."""

from __future__ import annotations

import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput

from genkit.images import check_count, fill_by_reconstruction, inpainting_input, model_input, model_output, seeded
from genkit.plugin.pipeline import GenkitPipeline  # export: from diffusers import DiffusionPipeline as GenkitPipeline

from .modeling_autoencoder import AutoencoderModel, corrupt

__all__ = ["MAX_BATCH_SIZE", "AutoencoderPipeline"]

MAX_BATCH_SIZE = 10_000  # images in one call (~10 MB at 16 px); more is a loop over calls


class AutoencoderPipeline(GenkitPipeline):
    """A diffusers pipeline around one ``AutoencoderModel``. Images go in and out as PIL images or tensors in
    [-1, 1]; codes are (N, code_dim) tensors."""

    def __init__(self, autoencoder: AutoencoderModel):
        super().__init__()
        self.register_modules(autoencoder=autoencoder)

    def _to_tensor(self, images) -> torch.Tensor:
        config = self.autoencoder.config
        x = model_input(images, config.image_size, config.in_channels, MAX_BATCH_SIZE)
        return x.to(self.device, self.autoencoder.dtype)

    # ---- codes -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images) -> torch.Tensor:
        """The codes h(x): (N, code_dim)."""
        return self.autoencoder.encode(self._to_tensor(images))

    @torch.no_grad()
    def decode(self, codes, output_type: str = "pil"):
        model = self.autoencoder
        z = torch.as_tensor(codes).to(self.device, model.dtype).reshape(-1, model.config.code_dim)
        check_count("codes", z.shape[0], MAX_BATCH_SIZE)
        return model_output(model.to_images(model.decode(z)), output_type)

    def reconstruct(self, images, output_type: str = "pil"):
        """decode(encode(images))."""
        return self.decode(self.encode(images), output_type)

    def denoise(self, images, output_type: str = "pil"):
        """The reconstruction of corrupted images: what a denoising autoencoder was trained to return (the clean
        image). The same computation as ``reconstruct``, named for its use; ``corrupt`` makes the noisy input."""
        return self.reconstruct(images, output_type)

    def corrupt(self, images, noise: str = "masking", strength: float = 0.3, seed: int = 0, output_type: str = "pil"):
        """``images`` with ``noise`` ("gaussian": std ``strength``; "masking": a fraction ``strength`` of the pixels
        set to black; "salt-pepper": that fraction set to black or white), the same for the same ``seed``."""
        return model_output(corrupt(self._to_tensor(images), noise, strength, seeded(seed)), output_type)

    @torch.no_grad()
    def anomaly_score(self, images) -> torch.Tensor:
        """Per image, the mean squared reconstruction error per pixel value (pixels in [0, 1]): higher = less like
        the training data."""
        x = self._to_tensor(images)
        reconstruction = self.autoencoder.to_images(self.autoencoder(x).decoded)
        return ((reconstruction - x) / 2).pow(2).flatten(1).mean(1)

    def interpolate(self, a, b, steps: int = 8, output_type: str = "pil"):
        """Decode ``steps`` points on the straight line between two codes (or the codes of two images)."""
        check_count("steps", steps, MAX_BATCH_SIZE, low=2)
        za, zb = self._code(a), self._code(b)
        t = torch.linspace(0, 1, steps, device=self.device, dtype=za.dtype).unsqueeze(1)
        return self.decode(za + t * (zb - za), output_type)

    def _code(self, x) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.dim() <= 2 and x.shape[-1] == self.autoencoder.config.code_dim:
            return x.reshape(1, -1).to(self.device, self.autoencoder.dtype)
        return self.encode(x)[:1]

    # ---- generation from the fitted code distribution ----------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Decode ``batch_size`` codes drawn from N(code_mean, diag(code_std^2)), the Gaussian fitted to the
        training codes: an autoencoder has no prior of its own, and these samples show it."""
        check_count("batch_size", batch_size, MAX_BATCH_SIZE)
        model = self.autoencoder
        z = torch.randn(batch_size, model.config.code_dim, generator=generator).to(self.device, model.dtype)
        images = self.decode(model.code_mean + model.code_std * z, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    def sample(self, n: int, seed: int = 0, output_type: str = "pil"):
        check_count("n", n, MAX_BATCH_SIZE)
        return self(n, generator=seeded(seed), output_type=output_type).images

    def latent_grid(self, n: int = 8, extent: float = 3.0, dims: tuple[int, int] = (0, 1), output_type: str = "pil"):
        """An ``n`` x ``n`` grid of decodings over the plane of code units ``dims``, ``extent`` training standard
        deviations either side of the training codes' mean (other units at their mean): with ``code_dim=2``, every
        image the decoder can make. Row by row, top to bottom."""
        check_count("n", n, 100, low=2)
        model = self.autoencoder
        if model.config.code_dim < 2 or len(set(dims)) != 2 or not all(0 <= d < model.config.code_dim for d in dims):
            raise ValueError(f"latent_grid needs two distinct code units of {model.config.code_dim}, got {dims}")
        axis = torch.linspace(-extent, extent, n)
        codes = model.code_mean.cpu().float().repeat(n * n, 1)
        std = model.code_std.cpu().float()
        codes[:, dims[0]] += axis.repeat(n) * std[dims[0]]
        codes[:, dims[1]] += axis.flip(0).repeat_interleave(n) * std[dims[1]]
        return self.decode(codes, output_type)

    # ---- editing -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def inpaint(self, image, mask, iterations: int = 50, output_type: str = "pil"):
        """Fill in the region of ``image`` that ``mask`` marks (white = repaint, black = keep) by iterative
        reconstruction: the region starts mid-gray, then each round reconstructs the whole image and puts the
        reconstruction back into the region only. The kept pixels are returned as given. ``mask``: a PIL image of
        the image's size (mode 1/L/gray RGB: white = fill in; LA/RGBA: the alpha channel) or a tensor, 1 = fill in."""
        model = self.autoencoder
        x0, m = inpainting_input(image, mask, model.config.image_size, model.config.in_channels, MAX_BATCH_SIZE)
        x0, m = x0.to(self.device, model.dtype), m.to(self.device, model.dtype)
        filled = fill_by_reconstruction(x0, m, lambda x: model.to_images(model(x).decoded), iterations)
        return model_output(filled, output_type)
