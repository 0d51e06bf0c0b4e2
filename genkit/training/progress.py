"""Progress that suits where it shows: a tqdm bar in a terminal, a widget bar in a notebook that has ipywidgets, and
otherwise (a notebook without widgets, a log file, CI) one line at every tenth of the run instead of hundreds of
carriage-return fragments. ``quiet_libraries`` keeps the libraries genkit calls (diffusers, transformers, datasets)
from adding bars of their own to one genkit call."""

from __future__ import annotations

import contextlib
import sys

__all__ = ["progress_bar", "quiet_libraries"]


def _notebook_with_widgets() -> bool:
    try:
        shell = get_ipython().__class__.__name__  # type: ignore[name-defined]  # noqa: F821 - set by IPython
        import ipywidgets  # noqa: F401
    except (NameError, ImportError):
        return False
    return shell == "ZMQInteractiveShell"


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, values: dict) -> None:
        pass

    def close(self) -> None:
        pass


class _Milestones(_Silent):
    """One line per tenth of the run: ``train: 30% (300/1000 steps) loss=0.1234``."""

    def __init__(self, total: int, initial: int, desc: str):
        self.total, self.done, self.desc, self.postfix = max(1, total), initial, desc, {}
        self.next = (self.done * 10 // self.total + 1) * self.total / 10

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.done >= self.next:
            shown = " ".join(f"{k}={v}" for k, v in self.postfix.items())
            print(f"{self.desc}: {self.done * 100 // self.total}% ({self.done}/{self.total} steps) {shown}".rstrip(),
                  file=sys.stderr, flush=True)  # fmt: skip
            self.next = (self.done * 10 // self.total + 1) * self.total / 10

    def set_postfix(self, values: dict) -> None:
        self.postfix = values


def progress_bar(total: int, initial: int = 0, desc: str = "train", enabled: bool = True):
    """A progress bar with ``update``, ``set_postfix`` and ``close`` for where the output goes."""
    if not enabled:
        return _Silent()
    if _notebook_with_widgets():
        from tqdm.notebook import tqdm

        return tqdm(total=total, initial=initial, desc=desc)
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc)
    return _Milestones(total, initial, desc)


@contextlib.contextmanager
def quiet_libraries():
    """No progress bars from diffusers, transformers or datasets inside one genkit call (loading components,
    sampling loops, dataset maps); their settings are put back afterwards."""
    import datasets
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    states = (
        diffusers_logging.is_progress_bar_enabled(),
        transformers_logging.is_progress_bar_enabled(),
        datasets.is_progress_bar_enabled(),
    )
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if states[0]:
            diffusers_logging.enable_progress_bar()
        if states[1]:
            transformers_logging.enable_progress_bar()
        if states[2]:
            datasets.enable_progress_bars()
