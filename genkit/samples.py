"""Sample files: a PNG grid for image plugins, a text file for text plugins."""

from __future__ import annotations

from pathlib import Path

from genkit.errors import GenkitError

__all__ = ["MAX_SAMPLES", "check_sample_file", "write_samples"]

MAX_SAMPLES = 10_000  # one grid file; more is a dataset, better written by a script over pipeline calls
_MARK = ("Software", "genkit")  # PNG text chunk naming the writer, so a grid genkit wrote may be replaced


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
    """Write ``n`` samples to ``path``; returns the grid image, or the texts for a text plugin."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = plugin.sample(pipeline, n, seed=seed, **kwargs)
    if plugin.task == "text":
        path.write_text("\n\n----\n\n".join(samples) + "\n")
        return samples
    from PIL.PngImagePlugin import PngInfo

    from genkit.data import make_grid

    grid = make_grid(samples)
    info = PngInfo()
    info.add_text(*_MARK)
    grid.save(path, pnginfo=info if path.suffix.lower() == ".png" else None)
    return grid
