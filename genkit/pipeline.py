"""Base class for genkit's diffusers pipelines: ``from_pretrained`` checks the folder before diffusers reads it."""

from __future__ import annotations

from diffusers import DiffusionPipeline

from genkit.io import check_folder, resolve, validate_pipeline_folder

__all__ = ["GenkitPipeline"]


class GenkitPipeline(DiffusionPipeline):
    """A ``DiffusionPipeline`` that refuses pickle and names the file and field of a bad config or weights file."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        folder = resolve(pretrained_model_name_or_path, revision=kwargs.pop("revision", None))
        check_folder(folder)
        validate_pipeline_folder(folder)
        kwargs.setdefault("use_safetensors", True)
        return super().from_pretrained(str(folder), **kwargs)
