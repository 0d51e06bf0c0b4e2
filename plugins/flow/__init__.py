"""genkit's normalizing-flow plugin: RealNVP and Glow, exact likelihoods in bits per dimension."""

from genkit_flow.modeling_flow import FlowModel
from genkit_flow.pipeline_flow import FlowPipeline
from genkit_flow.plugin import FlowPlugin

plugin = FlowPlugin()

__all__ = ["FlowModel", "FlowPipeline", "FlowPlugin", "plugin"]
