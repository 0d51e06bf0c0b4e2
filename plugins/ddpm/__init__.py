"""genkit's DDPM plugin: diffusers' UNet2DModel + DDPMScheduler, few-step samplers, EMA, classifier-free guidance."""

from genkit_ddpm.pipeline_ddpm import (
    SAMPLERS,
    ClassConditionalDDPMPipeline,
    DDPMSamplingOutput,
    GenkitDDPMPipeline,
    compatible_scheduler_names,
    make_scheduler,
)
from genkit_ddpm.plugin import DDPMPlugin

plugin = DDPMPlugin()

__all__ = [
    "ClassConditionalDDPMPipeline",
    "DDPMPlugin",
    "DDPMSamplingOutput",
    "GenkitDDPMPipeline",
    "SAMPLERS",
    "compatible_scheduler_names",
    "make_scheduler",
    "plugin",
]
