"""A run's logged scalars, kept whatever the trackers: every ``--log-every`` updates the trainer appends the interval's
mean of each scalar (the losses of every phase, gradient norms, the learning rate) to ``logs/history.jsonl``, and
``read_history`` gives them back as a pandas DataFrame with one row per logged step."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from genkit.errors import GenkitError

__all__ = ["HISTORY_FILE", "History", "plot_history", "read_history"]

HISTORY_FILE = Path("logs") / "history.jsonl"


class History:
    """Appends one JSON line per logged step to ``<run>/logs/history.jsonl`` (the main process only). A resumed run
    first drops what the interrupted one logged after its checkpoint, so every step appears once."""

    def __init__(self, output: Path, resumed_at: int | None):
        self.file = Path(output) / HISTORY_FILE
        self.file.parent.mkdir(parents=True, exist_ok=True)
        if resumed_at is None:
            self.file.write_text("")
        elif self.file.is_file():
            kept = [line for line in self.file.read_text().splitlines() if _step(line) <= resumed_at]
            self.file.write_text("".join(line + "\n" for line in kept))

    def append(self, step: int, values: dict[str, float]) -> None:
        row = {"step": step, **{k: (v if math.isfinite(v) else repr(v)) for k, v in values.items()}}
        with open(self.file, "a") as f:
            f.write(json.dumps(row) + "\n")


def _step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return -1


def read_history(run_dir: str | Path):
    """Every scalar a training run logged, as a ``pandas.DataFrame`` indexed by ``step``: one column per scalar
    (``loss``, ``reconstruction``, ``kl``; with several optimizers ``discriminator/loss``, ``generator/loss``, ...;
    ``lr``, ``epoch``), each value the mean over its logging interval; NaN where a scalar was not logged."""
    import pandas as pd

    file = Path(run_dir) / HISTORY_FILE
    if not file.is_file():
        raise GenkitError(f"{run_dir} holds no training history ({HISTORY_FILE}): is it a genkit training run?")
    lines = [line for line in file.read_text(errors="replace").splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # the half-written last line of a run that was killed
            raise GenkitError(f"{file}: line {number} is not a JSON object; is the file damaged?") from None
        if not isinstance(row, dict):
            raise GenkitError(f"{file}: line {number} is not a JSON object; is the file damaged?")
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.set_index("step") if "step" in frame else frame


def plot_history(history, columns: list[str] | None = None, *, ax=None, title: str | None = None) -> Any:
    """Plot a history's curves (default: every loss) against the step with matplotlib; returns the axes."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise GenkitError("plot_history draws with matplotlib: pip install matplotlib") from None
    columns = columns or [c for c in history.columns if c.endswith("loss")]
    missing = [c for c in columns if c not in history.columns]
    if missing:
        raise GenkitError(f"the history has no column {missing[0]!r}; it has {', '.join(history.columns)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for column in columns:
        series = history[column].dropna()
        ax.plot(series.index, series.values, label=column)
    ax.set_xlabel("step")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax
