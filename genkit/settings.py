"""The trainer's settings, shared by every plugin: their defaults and the values each may take.

Kept apart from ``genkit.trainer`` (which re-exports both) so that ``genkit.plugin`` can read them without
importing the trainer.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TRAINER_DEFAULTS", "TRAINER_LIMITS"]

# Trainer settings every plugin shares. A plugin's `defaults` and presets may override any of them.
TRAINER_DEFAULTS: dict[str, Any] = {
    "dataset": None,  # None -> the plugin's default_dataset
    "output": None,  # None -> outputs/<plugin>-<dataset>
    "max_steps": None,  # optimizer updates; --epochs converts to this
    "epochs": None,
    "batch_size": 64,
    "lr": 2e-4,
    "lr_scheduler": "constant_with_warmup",  # any name diffusers.optimization.get_scheduler knows
    "warmup_steps": 0,
    # Accelerate owns these two: None keeps what `accelerate config` / `accelerate launch` / ACCELERATE_* set
    # (else 1 and "no"); a value given here (a genkit flag) overrides it. The run records the value in force.
    "grad_accum": None,  # micro-batches per optimizer update (ACCELERATE_GRADIENT_ACCUMULATION_STEPS)
    "max_grad_norm": 1.0,  # 0 disables clipping
    "mixed_precision": None,  # no | fp16 | bf16 (ACCELERATE_MIXED_PRECISION, `accelerate launch --mixed_precision`)
    "seed": 0,
    "checkpoint_every": 500,
    "checkpoints_total_limit": 2,
    "sample_every": 500,  # sample-grid PNG + TensorBoard image every N updates (0: only at the end)
    "log_every": 10,
    "num_sample_images": 64,
    "log_with": "tensorboard",  # --report-to: tensorboard | wandb | all | none (accelerate's trackers)
    "eval": True,  # evaluate on the test split at the end and write the results into the model card
    "image_size": None,
    "channels": None,  # None: keep the data's own channel count
    "num_samples": None,  # size of generated datasets (shapes)
    "test_fraction": 0.1,
    "image_column": None,
    # A folder that image files named by path in a table (parquet, CSV, a Hub dataset's rows) may also be read from;
    # by default only the dataset's own folder (or, for a Hub dataset, the Hugging Face caches) is.
    "image_root": None,
    "label_column": None,
    "text_column": None,
    # Horizontal flips of training images, drawn per batch (evaluation never sees them). None: on for the user's
    # own images (a folder, a Hub dataset, images in memory), as diffusers' training scripts do; off for the
    # built-in digits, mnist and shapes, whose mirror images are not digits.
    "random_flip": None,
    # Framing: crop each image to its centre square before resizing (False: squash the whole image to a square).
    "center_crop": True,
    # Train on a random image_size window of each image, stored at 9/8 of image_size (evaluation and the metrics see
    # the centre window). Off by default: it zooms in by 8/9, which changes what the model learns to draw.
    "random_crop": False,
    # What transparent pixels (RGBA, LA, palette images with a transparent colour) become: "white" or "black".
    "background": "white",
    # Read the dataset as a stream (datasets' IterableDataset) instead of downloading and caching it whole: for
    # Hub datasets larger than the disk; batches are decoded as they are drawn and resume at the same example.
    "streaming": False,
    "shuffle_buffer": 10_000,  # --streaming: examples held in datasets' shuffle buffer
    "skip_bad_images": False,  # True: leave out unreadable image files (each named in a warning) instead of stopping
    "dataset_config": None,  # a Hub dataset's configuration (subset)
    "split": None,  # the split to train on (None: train)
    "test_split": None,  # the split to evaluate on (None: test or validation, else a held-out part)
    "dataset_revision": None,  # a Hub dataset's revision
    # GPU speed-ups (docs/benchmarks.md measures each); all off by default, so a run is the same everywhere.
    "allow_tf32": False,  # TF32 matmuls and convolutions on Ampere or newer GPUs (no effect on CPU)
    "channels_last": False,  # image models: weights and activations in NHWC memory format
    "fused_optimizer": False,  # AdamW's fused kernel (one launch for every parameter) instead of the foreach one
    "compile": None,  # torch.compile (inductor) through accelerate; None: what `accelerate config` sets (off)
    "num_workers": 0,  # DataLoader worker processes (batches are in memory already: 0 is fastest on CPU)
    "push_to_hub": False,  # upload the final folder and card when training ends
    "hub_model_id": None,  # user/name (None: the output folder's name in the token's namespace)
    "hub_private": False,
}


# What each numeric trainer setting may be (genkit.validation.check_value); a plugin declares its own in `limits`.
TRAINER_LIMITS: dict[str, tuple[type, str]] = {
    "max_steps": (int, "[1, 1e9]"),
    "epochs": (float, "(0, 1e6]"),
    "batch_size": (int, "[1, 65536]"),
    "lr": (float, "(0, inf)"),  # finite and positive; a huge one is allowed (it stops on a NaN loss, naming the step)
    "warmup_steps": (int, "[0, 1e9]"),
    "grad_accum": (int, "[1, 65536]"),
    "max_grad_norm": (float, "[0, 1e6]"),
    "seed": (int, "[0, 4294967295]"),  # numpy's seed range
    "checkpoint_every": (int, "[0, 1e9]"),  # 0: only the final checkpoint
    "checkpoints_total_limit": (int, "[0, 1e6]"),  # 0: keep every checkpoint
    "sample_every": (int, "[0, 1e9]"),
    "log_every": (int, "[1, 1e9]"),
    "num_sample_images": (int, "[1, 1024]"),
    "image_size": (int, "[8, 1024]"),  # 1024 px: far past what these models train on, before memory runs out
    "num_samples": (int, "[2, 1e8]"),
    "test_fraction": (float, "(0, 1)"),
    "num_workers": (int, "[0, 256]"),
    "shuffle_buffer": (int, "[1, 1e7]"),
}
