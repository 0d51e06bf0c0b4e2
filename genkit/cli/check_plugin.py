"""``genkit check-plugin NAME``: a plugin's self-check, the path every plugin must walk, on its ``tiny`` preset.

contract (the registry's checks) -> train 2 steps with a checkpoint after each -> the end-of-training evaluation ->
``genkit.save`` + ``genkit.load`` give the same samples -> a run resumed from its first checkpoint ends on the same
weights -> the demo builds, serves, and every API endpoint answers. Each step prints ``ok`` or ``FAIL`` with the
reason; the steps after a failed one that need its result are skipped.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genkit import api
from genkit.plugin.registry import get_plugin

__all__ = ["CheckResult", "check_plugin"]


@dataclass
class CheckResult:
    step: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        status = "ok  " if self.ok else "FAIL"
        return f"{status}  {self.step:<10} {self.detail} ({self.seconds:.1f} s)"


def _fingerprint(samples: Any) -> list:
    """Comparable contents of what ``plugin.sample`` returned: image bytes, texts, or tensors as lists."""

    items = samples if isinstance(samples, (list, tuple)) else [samples]
    out = []
    for item in items:
        if hasattr(item, "tobytes"):  # PIL image
            out.append(item.tobytes())
        elif isinstance(item, torch.Tensor):
            out.append(item.detach().cpu().tolist())
        else:
            out.append(item)
    return out


def _model_tensors(folder: Path) -> dict[str, Any]:
    """Every tensor of the model's safetensors files (checkpoints excluded), keyed by file and name."""
    from safetensors.torch import load_file

    tensors = {}
    for file in sorted(folder.rglob("*.safetensors")):
        rel = file.relative_to(folder)
        if rel.parts[0].startswith(("checkpoint-", ".")):
            continue
        for key, value in load_file(file).items():
            tensors[f"{rel.as_posix()}:{key}"] = value
    return tensors


def _call_endpoints(demo, image_file: Path | None) -> list[str]:
    """Serve ``demo`` locally and call each named API endpoint with its inputs' defaults (an image input gets one
    of the model's own samples). Returns the endpoint names."""
    from gradio_client import Client, handle_file

    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        client = Client(url, verbose=False)
        endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        if not endpoints:
            raise AssertionError("the demo has no named API endpoint (give each event an api_name)")
        for name, spec in endpoints.items():
            kwargs = {}
            for param in spec["parameters"]:
                if param["component"] in ("Image", "File", "Imageeditor") and not param["parameter_has_default"]:
                    if image_file is None:
                        raise AssertionError(f"{name} takes an image, and the model's samples are not images")
                    image = handle_file(str(image_file))
                    editor = param["component"] == "Imageeditor"  # gr.ImageMask too: the image, nothing painted
                    kwargs[param["parameter_name"]] = (
                        {"background": image, "layers": [], "composite": None} if editor else image
                    )
                elif param["parameter_has_default"]:
                    kwargs[param["parameter_name"]] = param["parameter_default"]
                else:
                    kwargs[param["parameter_name"]] = param["example_input"]
            try:
                client.predict(api_name=name, **kwargs)
            except Exception as exc:  # the server's error, as the client reports it
                raise AssertionError(f"{name} failed: {' '.join(str(exc).split())[:300]}") from None
        return list(endpoints)
    finally:
        demo.close()


def check_plugin(
    name: str,
    work_dir: str | Path | None = None,
    *,
    verbose: bool = False,
    report: Callable[[CheckResult], None] = lambda r: print(r.line(), flush=True),
) -> list[CheckResult]:
    """Run the self-check of plugin ``name``; calls ``report`` with each step's result and returns them all.
    Training output is kept quiet unless ``verbose``."""
    with tempfile.TemporaryDirectory(prefix=f"genkit-check-{name}-", dir=work_dir) as tmp:
        check = _Check(name, Path(tmp))
        quiet = contextlib.nullcontext if verbose else lambda: _silenced(io.StringIO())
        results: list[CheckResult] = []
        for label, step in check.steps():
            result = _timed(label, step, quiet)
            results.append(result)
            report(result)
            if not result.ok and label in ("contract", "train"):  # nothing after them can run
                break
    return results


def _timed(label: str, step: Callable[[], str], quiet) -> CheckResult:
    start = time.perf_counter()
    try:
        with quiet():
            detail = step()
        return CheckResult(label, True, detail, time.perf_counter() - start)
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
        return CheckResult(label, False, reason + where, time.perf_counter() - start)


class _Check:
    """The steps of one plugin's self-check, in order, sharing what the earlier ones made."""

    TRAIN = {"preset": "tiny", "max_steps": 2, "checkpoint_every": 1, "log_with": "none", "sample_every": 0}

    def __init__(self, name: str, root: Path):
        self.name, self.root, self.run = name, root, root / "run"
        self.plugin = self.pipeline = self.image = None

    def steps(self) -> list[tuple[str, Callable[[], str]]]:
        return [
            ("contract", self.contract),
            ("train", self.trained),
            ("evaluate", self.evaluated),
            ("save/load", self.round_trip),
            ("resume", self.resumed),
            ("demo", self.demo),
        ]

    def contract(self) -> str:
        self.plugin = get_plugin(self.name)
        return f"{type(self.plugin).__module__}.{type(self.plugin).__name__}, task {self.plugin.task}"

    def trained(self) -> str:
        self.pipeline = api.train(self.name, output=self.run, **self.TRAIN)
        checkpoints = sorted(p.name for p in self.run.glob("checkpoint-*"))
        return f"2 steps of the tiny preset, checkpoints {', '.join(checkpoints)}"

    def evaluated(self) -> str:
        results_file = self.run / "eval_results.json"
        if not results_file.is_file():
            raise AssertionError("training wrote no eval_results.json (evaluate() returned nothing)")
        metrics = json.loads(results_file.read_text()).get("metrics", {})
        return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())

    def round_trip(self) -> str:
        loaded = api.load(api.save(self.pipeline, self.root / "saved"))
        before, after = self.plugin.sample(self.pipeline, 2, seed=0), self.plugin.sample(loaded, 2, seed=0)
        if _fingerprint(before) != _fingerprint(after):
            raise AssertionError("genkit.load(genkit.save(pipeline)) samples differently for the same seed")
        if hasattr(before[0], "save"):
            self.image = self.root / "sample.png"
            before[0].save(self.image)
        return f"2 samples equal after genkit.save -> genkit.load ({type(loaded).__name__})"

    def resumed(self) -> str:
        whole = _model_tensors(self.run)
        shutil.rmtree(self.run / "checkpoint-2")
        api.train(self.name, output=self.run, resume="latest", **self.TRAIN)
        again = _model_tensors(self.run)
        if whole.keys() != again.keys():
            raise AssertionError(f"the resumed run saved other tensors: {sorted(whole.keys() ^ again.keys())[:5]}")
        differ = [k for k in whole if not torch.equal(whole[k], again[k])]
        if differ:
            raise AssertionError(f"resuming from checkpoint-1 ended on other weights: {differ[:5]}")
        return f"resumed from checkpoint-1, all {len(whole)} tensors equal to the uninterrupted run's"

    def demo(self) -> str:
        import gradio as gr

        built = self.plugin.build_demo(self.pipeline)
        if not isinstance(built, gr.Blocks):
            raise AssertionError(f"build_demo returned {type(built).__name__}, not a gradio Blocks/Interface")
        names = _call_endpoints(built, self.image)
        return f"{len(names)} endpoints answered: {', '.join(names)}"


@contextlib.contextmanager
def _silenced(sink: io.StringIO):
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield
