"""What every benchmark records about the machine it ran on (imported by the scripts next to it)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> dict:
    """CPU, core count, torch version and threads, and the load average now (1, 5, 15 minutes)."""
    import torch

    return {
        "cpu": f"{os.cpu_count()}-core CPU, {cpu_name()}",
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
