"""Model cards: README.md with the Hub's YAML metadata, the training config and measured evaluation results."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

__all__ = ["set_card_repo", "write_model_card"]

_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

A `{{ family }}` model trained with [genkit](https://github.com/genkit-dev/genkit) on `{{ dataset }}`.

## Use
{{ plugin_note }}
```python
import genkit

pipe = genkit.load("{{ repo_or_path }}")
{{ usage }}
```
{{ stock_usage }}
{{ samples_section }}
## Training

{{ training_table }}

## Evaluation

{{ eval_section }}
"""


def _table(rows: dict[str, Any]) -> str:
    lines = ["| setting | value |", "|---|---|"]
    lines += [f"| `{k}` | `{json.dumps(v, default=str)}` |" for k, v in sorted(rows.items())]
    return "\n".join(lines)


def write_model_card(
    folder: str | Path,
    *,
    plugin,
    dataset: str,
    config: dict[str, Any],
    evaluation: dict[str, Any] | None = None,
    usage: str | None = None,
    repo_or_path: str | None = None,
    in_process: str | None = None,
) -> ModelCard:
    """Write ``folder/README.md``; ``evaluation`` is a plugin's ``{"metrics": ..., "protocol": ...}``;
    ``in_process`` names the class of a plugin defined in a notebook or script (``module.Class``)."""
    folder = Path(folder)
    metrics = (evaluation or {}).get("metrics", {})
    protocol = (evaluation or {}).get("protocol", {})
    if metrics:
        eval_section = _table(metrics) + "\n\nMeasured by `genkit eval` with this protocol:\n\n" + _table(protocol)
    else:
        eval_section = "Not evaluated yet: run `genkit eval` on this folder."
    card = ModelCard.from_template(
        _card_data(plugin, dataset, config, metrics, protocol.get("split", "test")),
        template_str=_TEMPLATE,
        title=f"genkit {plugin.name} on {Path(dataset).name}",
        family=plugin.name,
        dataset=dataset,
        repo_or_path=repo_or_path or str(folder),
        usage=plugin.card_usage if usage is None else usage,
        stock_usage=_stock_usage(folder, repo_or_path or str(folder)),
        samples_section=_samples_section(folder),
        training_table=_table(config),
        eval_section=eval_section,
        plugin_note=_plugin_note(plugin.name, in_process),
    )
    card.save(folder / "README.md")
    return card


def _card_data(plugin, dataset: str, config: dict[str, Any], metrics: dict, split: str) -> ModelCardData:
    """The card's front matter: library, task, tags, data, base model and the evaluation results."""
    is_hub_dataset = "/" in dataset and not Path(dataset).exists()
    conditional = plugin.task == "image" and bool(config.get("conditional"))
    # The Hub has no task for class-conditional generation: such a model gets no pipeline_tag (which would file it
    # under unconditional generation) and a tag that says what it is.
    pipeline_tag = None if conditional else plugin.pipeline_tag
    tags = ["genkit", plugin.name, plugin.task] + (["class-conditional-image-generation"] if conditional else [])
    eval_results = [
        EvalResult(
            task_type=pipeline_tag or "class-conditional-image-generation",
            dataset_type=dataset if is_hub_dataset else f"genkit/{Path(dataset).name}",
            dataset_name=dataset,
            dataset_split=split,
            metric_type=name,
            metric_name=name,
            metric_value=float(value),
        )
        for name, value in metrics.items()
        if isinstance(value, (int, float))
    ]
    data = ModelCardData(
        library_name=plugin.library_name,
        pipeline_tag=pipeline_tag,
        tags=tags,
        datasets=[dataset] if is_hub_dataset else None,
        model_name=f"genkit-{plugin.name}-{Path(dataset).name}",
        eval_results=eval_results or None,
        license="apache-2.0",
        base_model=config.get("base_model"),
    )
    if config.get("base_model"):
        data.base_model_relation = "finetune"
    data.genkit = {"plugin": plugin.name, "training_config": config}
    return data


def _plugin_note(name: str, in_process: str | None) -> str:
    if not in_process:
        return ""
    cls = in_process.rsplit(".", 1)[-1]
    return (
        f"\nThis model was trained with the plugin `{name}` defined in a notebook or script (`{in_process}`), not "
        f"an installed package: to load it, run the code that defines `{cls}` and `genkit.register({cls})` first (or "
        f"install a package that provides plugin `{name}`).\n"
    )


def _stock_usage(folder: Path, repo_or_path: str) -> str:
    """How a diffusers user without genkit loads a folder that ships its own pipeline code."""
    index = folder / "model_index.json"
    if not index.is_file() or not isinstance(json.loads(index.read_text()).get("_class_name"), list):
        return ""
    return (
        "\nWithout genkit, stock diffusers runs the pipeline code shipped in this folder:\n\n```python\n"
        "from diffusers import DiffusionPipeline\n\n"
        f'pipe = DiffusionPipeline.from_pretrained("{repo_or_path}", trust_remote_code=True)\n```\n'
    )


def _samples_section(folder: Path) -> str:
    if (folder / "samples.png").is_file():
        return "\n## Samples\n\n![Samples drawn by the trained model](samples.png)\n"
    if (folder / "samples.txt").is_file():
        text = (folder / "samples.txt").read_text().split("\n\n----\n\n")[0][:600]
        return f"\n## Samples\n\n```text\n{text}\n```\n"
    return ""


def set_card_repo(card_text: str, repo_id: str) -> str:
    """The card with its usage snippets (``genkit.load(...)``, ``from_pretrained(...)``) naming ``repo_id``."""
    text = re.sub(r'genkit\.load\("[^"\n]*"\)', f'genkit.load("{repo_id}")', card_text)
    return re.sub(r'from_pretrained\("[^"\n]*"', f'from_pretrained("{repo_id}"', text)
