"""Model cards: README.md with the Hub's YAML metadata, the training config and measured evaluation results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

__all__ = ["write_model_card"]

_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

A `{{ family }}` model trained with [genkit](https://github.com/genkit-dev/genkit) on `{{ dataset }}`.

## Use

```python
import genkit

pipe = genkit.load("{{ repo_or_path }}")
{{ usage }}
```

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
) -> ModelCard:
    """Write ``folder/README.md``; ``evaluation`` is a plugin's ``{"metrics": ..., "protocol": ...}``."""
    folder = Path(folder)
    evaluation = evaluation or {}
    metrics = evaluation.get("metrics", {})
    protocol = evaluation.get("protocol", {})
    split = protocol.get("split", "test")
    is_hub_dataset = "/" in dataset and not Path(dataset).exists()
    eval_results = [
        EvalResult(
            task_type=plugin.pipeline_tag,
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
        library_name="genkit",
        pipeline_tag=plugin.pipeline_tag,
        tags=["genkit", plugin.name, plugin.task],
        datasets=[dataset] if is_hub_dataset else None,
        model_name=f"genkit-{plugin.name}-{Path(dataset).name}",
        eval_results=eval_results or None,
        license="apache-2.0",
    )
    data.genkit = {"plugin": plugin.name, "training_config": config}
    if metrics:
        eval_section = _table(metrics) + "\n\nMeasured by `genkit eval` with this protocol:\n\n" + _table(protocol)
    else:
        eval_section = "Not evaluated yet: run `genkit eval` on this folder."
    card = ModelCard.from_template(
        data,
        template_str=_TEMPLATE,
        title=f"genkit {plugin.name} on {Path(dataset).name}",
        family=plugin.name,
        dataset=dataset,
        repo_or_path=repo_or_path or str(folder),
        usage=plugin.card_usage if usage is None else usage,
        training_table=_table(config),
        eval_section=eval_section,
    )
    card.save(folder / "README.md")
    return card
