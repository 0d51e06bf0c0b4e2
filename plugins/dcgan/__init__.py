"""genkit's DCGAN plugin: DCGAN, conditional GAN and WGAN-GP, trained by the core trainer."""

from genkit_dcgan.modeling_dcgan import DCGANDiscriminator, DCGANGenerator
from genkit_dcgan.pipeline_dcgan import DCGANPipeline
from genkit_dcgan.plugin import DCGANPlugin

plugin = DCGANPlugin()

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "DCGANPipeline", "DCGANPlugin", "plugin"]
