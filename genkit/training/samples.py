"""Sample files: a PNG grid for image plugins, a text file for text plugins."""

from __future__ import annotations

from pathlib import Path

from genkit.data import make_grid
from genkit.data.grid import scatter_image
from genkit.errors import GenkitError

__all__ = ["MAX_SAMPLES", "check_sample_file", "log_samples", "sample_file", "write_samples"]

MAX_SAMPLES = 10_000  # one grid file; more is a dataset, better written by a script over pipeline calls
_MARK = ("Software", "genkit")  # PNG text chunk naming the writer, so a grid genkit wrote may be replaced
_SUFFIX = {"image": ".png", "text": ".txt", "vector": ".png"}


def sample_file(plugin, folder: str | Path, stem: str = "samples") -> Path:
    """Where ``write_samples`` puts ``plugin``'s samples in ``folder``: a PNG grid, or a text file."""
    return Path(folder) / f"{stem}{_SUFFIX[plugin.task]}"


def log_samples(trackers, samples, step: int) -> None:
    """Hand what ``write_samples`` returned — a grid (PIL image) or texts — to every accelerate tracker at ``step``:
    TensorBoard gets an image or a text entry, wandb an image or a table."""
    import numpy as np

    if samples is None:
        return
    texts = isinstance(samples, list)
    for tracker in trackers:
        if tracker.name == "tensorboard":
            if texts:
                tracker.writer.add_text("samples", "\n\n---\n\n".join(samples), step)
            else:
                tracker.log_images(
                    {"samples": np.asarray(samples.convert("RGB"))[None]}, step=step, dataformats="NHWC"
                )
        elif tracker.name == "wandb":
            if texts:
                tracker.log_table("samples", columns=["text"], data=[[t] for t in samples], step=step)
            else:
                tracker.log_images({"samples": [samples]}, step=step)


def check_sample_file(path: Path, *, overwrite: bool) -> None:
    """Refuse a sample file in a missing folder, or over a file that genkit did not write (unless ``overwrite``)."""
    if path.is_dir():
        raise GenkitError(f"--out {str(path)!r} is a folder; give a file name such as samples.png")
    if not path.parent.is_dir():
        raise GenkitError(f"--out {str(path)!r}: the folder {str(path.parent)!r} does not exist")
    if path.exists() and not overwrite and not _written_by_genkit(path):
        raise GenkitError(f"--out {str(path)!r} exists and genkit did not write it; pass --overwrite to replace it")


def _written_by_genkit(path: Path) -> bool:
    if path.suffix.lower() != ".png":
        return False
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.info.get(_MARK[0]) == _MARK[1]
    except (OSError, UnidentifiedImageError):
        return False


def write_samples(plugin, pipeline, path: str | Path, n: int = 64, seed: int = 0, **kwargs):
    """Write ``n`` samples to ``path``; returns the grid image (a scatter plot of points), or the texts for a text
    plugin; None for a plugin that does not sample (an autoencoder, say: its ``sample`` returns nothing)."""
    path = Path(path)
    if hasattr(pipeline, "set_progress_bar_config"):  # no bar of diffusers' own inside one genkit call
        pipeline.set_progress_bar_config(disable=True)
    samples = plugin.sample(pipeline, n, seed=seed, **kwargs)
    if samples is None or len(samples) == 0:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    if plugin.task == "text":
        path.write_text("\n\n----\n\n".join(samples) + "\n")
        return samples
    from PIL.PngImagePlugin import PngInfo

    grid = scatter_image(samples) if plugin.task == "vector" else make_grid(samples)
    info = PngInfo()
    info.add_text(*_MARK)
    grid.save(path, pnginfo=info if path.suffix.lower() == ".png" else None)
    return grid
