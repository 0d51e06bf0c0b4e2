"""The trainer's settings, shared by every plugin, each declared once: its config key, default, the values it may
take, its flag and help text. ``TRAINER_DEFAULTS``, ``TRAINER_LIMITS``, the ``genkit train`` flags and their
``--help``, the Python API's keyword check and docs/plugins.md's settings table (checked by a test) all come from
``SETTINGS``. A plugin's ``defaults`` and presets may override any default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["IMAGE_ONLY", "SETTINGS", "Setting", "TRAINER_DEFAULTS", "TRAINER_LIMITS", "settings_table"]


@dataclass(frozen=True)
class Setting:
    """One trainer setting. ``kind`` is what its flag parses (a ``bool`` setting is a switch); ``limits`` is the
    interval ``genkit.validation.check_value`` checks (``"[1, 1e9]"``); ``unset`` says what a default of None means."""

    name: str
    default: Any
    help: str
    group: str
    kind: type = str
    limits: str | None = None
    choices: tuple | None = None
    negatable: bool = False  # a switch with --no-... too (its default is on, or settled later)
    aliases: tuple[str, ...] = ()  # other spellings, such as those of diffusers' and transformers' training scripts
    flag: str | None = None  # the flag when it is not --name-with-dashes
    image_only: bool = False  # refused for text models instead of ignored
    unset: str | None = None
    exclusive: str | None = None  # flags of one exclusive group: at most one may be given

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


_STEPS = "steps"
SETTINGS: tuple[Setting, ...] = (
    # ---- data
    Setting("dataset", None, "digits | shapes | stdlib | a local folder/file | a Hub dataset id", "data",
            aliases=("--dataset_name", "--train_data_dir"), unset="the plugin's default_dataset"),
    Setting("image_size", None, "resize images to this size (square)", "data", int, "[8, 1024]",
            aliases=("--resolution",), image_only=True, unset="the plugin's"),
    Setting("channels", None, "convert images to 1 or 3 channels", "data", int, choices=(1, 3), image_only=True,
            unset="the data's own"),
    Setting("num_samples", None, "size of a generated dataset (shapes)", "data", int, "[2, 1e8]",
            unset="all of the data"),
    Setting("test_fraction", 0.1, "held-out fraction when the data has no test split", "data", float, "(0, 1)"),
    Setting("random_flip", None, "mirror training images left-right at random (evaluation never sees it)", "data",
            bool, negatable=True, image_only=True,
            unset="on for your own images (folder, Hub, in memory), off for digits, mnist and shapes"),
    Setting("center_crop", True, "crop images to their centre square before resizing (--no-center-crop: squash "
            "them to a square)", "data", bool, negatable=True, image_only=True),
    Setting("random_crop", False, "train on random windows of images stored at 9/8 the size (evaluation sees the "
            "centre window)", "data", bool, negatable=True, image_only=True),
    Setting("background", "white", "what transparent pixels of RGBA/LA/palette images become (composited on this "
            "colour); 16-bit images are scaled to 8 bits, never clipped", "data", choices=("white", "black"),
            image_only=True),
    Setting("streaming", False, "read the dataset as a stream (datasets' IterableDataset) instead of downloading it "
            "whole; needs --max-steps", "data", bool, image_only=True),
    Setting("shuffle_buffer", 10_000, "--streaming: examples held in the shuffle buffer", "data", int, "[1, 1e7]"),
    Setting("image_column", None, "override the detected image column", "data", image_only=True,
            unset="detected"),
    Setting("image_root", None, "a folder that image paths in a table may point into, besides the dataset's own "
            "folder (or the Hugging Face caches for a Hub dataset)", "data", image_only=True, unset="none"),
    Setting("label_column", None, "override the detected label column", "data", image_only=True, unset="detected"),
    Setting("text_column", None, "override the detected text column", "data", unset="detected"),
    Setting("dataset_config", None, "a Hub dataset's configuration (subset) name", "data",
            aliases=("--dataset_config_name",), unset="the default one"),
    Setting("split", None, "the split to train on (a Hub dataset's)", "data", unset="train"),
    Setting("test_split", None, "the split to evaluate on", "data", unset="test or validation, else held out"),
    Setting("dataset_revision", None, "a Hub dataset's revision", "data", aliases=("--revision",), unset="main"),
    Setting("skip_bad_images", False, "leave out image files that cannot be read (each is named) instead of "
            "stopping", "data", bool, image_only=True),
    # ---- training
    Setting("output", None, "output folder", "training", aliases=("--output_dir",),
            unset="outputs/<plugin>-<dataset>"),
    Setting("max_steps", None, "optimizer updates to train for", "training", int, "[1, 1e9]",
            aliases=("--max_train_steps",), exclusive=_STEPS, unset="the preset's, or one epoch"),
    Setting("epochs", None, "passes over the training split (given, it wins over a preset's steps)", "training",
            float, "(0, 1e6]", aliases=("--num_train_epochs",), exclusive=_STEPS, unset="from --max-steps"),
    Setting("batch_size", 64, "examples per batch, per process", "training", int, "[1, 65536]",
            aliases=("--train_batch_size", "--per_device_train_batch_size")),
    # finite and positive; a huge one is allowed (it stops on a NaN loss, naming the step)
    Setting("lr", 2e-4, "learning rate", "training", float, "(0, inf)", aliases=("--learning_rate",)),
    Setting("lr_scheduler", "constant_with_warmup", "constant | constant_with_warmup | linear | cosine | ... (any "
            "diffusers.optimization.get_scheduler name)", "training"),
    Setting("warmup_steps", 0, "LR warm-up updates", "training", int, "[0, 1e9]", aliases=("--lr_warmup_steps",)),
    # Accelerate owns these two: None keeps what `accelerate config` / `accelerate launch` / ACCELERATE_* set; a
    # value given here (a genkit flag) overrides it. The run records the value in force.
    Setting("grad_accum", None, "micro-batches per optimizer update", "training", int, "[1, 65536]",
            aliases=("--gradient_accumulation_steps",),
            unset="from accelerate (accelerate config, launch flags, ACCELERATE_* variables; else 1)"),
    Setting("max_grad_norm", 1.0, "clip gradients to this norm (0: off)", "training", float, "[0, 1e6]"),
    Setting("mixed_precision", None, "no | fp16 | bf16", "training", choices=("no", "fp16", "bf16"),
            unset="from accelerate (accelerate config, launch flags, ACCELERATE_* variables; else no)"),
    Setting("seed", 0, "random seed (numpy's range)", "training", int, "[0, 4294967295]"),
    Setting("checkpoint_every", 500, "save checkpoint-<step>/ every N updates (0: only the final one)", "training",
            int, "[0, 1e9]", aliases=("--checkpointing_steps",)),
    Setting("checkpoints_total_limit", 2, "keep only the newest N checkpoints (0: keep all)", "training", int,
            "[0, 1e6]"),
    Setting("sample_every", 500, "write a sample grid every N updates (0: only at the end)", "training", int,
            "[0, 1e9]", aliases=("--save_images_steps",)),
    Setting("log_every", 10, "log the mean of each scalar every N updates", "training", int, "[1, 1e9]"),
    Setting("num_sample_images", 64, "images (or texts) in each sample grid", "training", int, "[1, 1024]"),
    Setting("log_with", "tensorboard", "accelerate trackers for scalars, sample grids, text samples and the final "
            "metrics", "training", choices=("tensorboard", "wandb", "all", "none"), flag="--report-to",
            aliases=("--log-with",)),
    Setting("eval", True, "skip the final evaluation", "training", bool, flag="--no-eval"),
    # ---- speed (GPU; docs/benchmarks.md measures each). All off by default, so a run is the same everywhere.
    Setting("allow_tf32", False, "TF32 matmuls/convolutions (Ampere+)", "speed", bool),
    Setting("channels_last", False, "NHWC memory format (image models)", "speed", bool),
    Setting("fused_optimizer", False, "AdamW's fused kernel", "speed", bool),
    Setting("compile", None, "torch.compile (inductor) via accelerate", "speed", bool, negatable=True,
            unset="from accelerate (accelerate config; else off)"),
    Setting("num_workers", 0, "DataLoader worker processes (on a GPU, 4 is faster for short steps)", "speed", int,
            "[0, 256]", aliases=("--dataloader_num_workers",)),
    # ---- the Hub
    Setting("push_to_hub", False, "upload the final model and card when training ends", "Hub", bool),
    Setting("hub_model_id", None, "user/name to push to", "Hub",
            unset="the output folder's name, in your namespace"),
    Setting("hub_private", False, "create the Hub repo as private", "Hub", bool, aliases=("--hub_private_repo",)),
)  # fmt: skip

TRAINER_DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}
TRAINER_LIMITS: dict[str, tuple[type, str]] = {s.name: (s.kind, s.limits) for s in SETTINGS if s.limits}
# Settings that only mean something for images; a text model refuses them instead of ignoring them. (A text corpus
# is tokenized once into a cached array, so --streaming is not needed for it: docs/data.md.)
IMAGE_ONLY: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.image_only)


def settings_table() -> str:
    """docs/plugins.md's table of trainer settings (a test checks that the page holds exactly this)."""
    rows = ["| key | flag | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = f"`{s.default!r}`" + (f" ({s.unset})" if s.default is None and s.unset else "")
        limits = f"; {s.limits}" if s.limits else (f"; one of {', '.join(map(str, s.choices))}" if s.choices else "")
        rows.append(f"| `{s.name}` | `{s.option}` | {default} | {s.help.replace('|', '&#124;')}{limits} |")
    return "\n".join(rows)
