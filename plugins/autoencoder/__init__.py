"""genkit's autoencoder plugin: plain, denoising, sparse and contractive autoencoders with a deterministic code."""

from genkit_autoencoder.modeling_autoencoder import AutoencoderModel, corrupt
from genkit_autoencoder.pipeline_autoencoder import AutoencoderPipeline
from genkit_autoencoder.plugin import AutoencoderPlugin

plugin = AutoencoderPlugin()

__all__ = ["AutoencoderModel", "AutoencoderPipeline", "AutoencoderPlugin", "corrupt", "plugin"]
