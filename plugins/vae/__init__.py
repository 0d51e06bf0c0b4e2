"""genkit's variational autoencoder plugin: VAE, beta-VAE, conditional VAE and denoising VAE."""

from genkit_vae.modeling_vae import VAEModel
from genkit_vae.pipeline_vae import VAEPipeline
from genkit_vae.plugin import VAEPlugin

plugin = VAEPlugin()

__all__ = ["VAEModel", "VAEPipeline", "VAEPlugin", "plugin"]
