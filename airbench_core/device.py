"""The device model a run's seconds belong to: times are only ever compared on one model."""

from __future__ import annotations

import platform
from functools import lru_cache


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """This machine's CPU model, e.g. "cpu: AMD EPYC 7B13" ("cpu: <architecture>" when unknown)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    name = line.split(":", 1)[1].strip()
                    if name:
                        return f"cpu: {name}"
    except OSError:
        pass
    return f"cpu: {platform.processor() or platform.machine() or 'unknown model'}"


def device_model(device_name: str) -> str:
    """A GPU's name as CUDA reports it; a CPU as "cpu: <model>"."""
    return cpu_model() if device_name.lower() == "cpu" else device_name
