"""The configurations studies start from: airbench94 at full size, and a CPU-sized smoke version."""
from __future__ import annotations

from airbench_core import TrainConfig, preset

SMOKE_EPOCHS = (1.0, 2.0)


def base_config(preset_name: str, **overrides) -> TrainConfig:
    """full: airbench94 as published. smoke: 2,000 training / 1,000 test images, narrow, on a CPU."""
    if preset_name == "smoke":
        overrides = dict(n_train=2000, n_test=1000, widths=(16, 32, 32), batch_size=100,
                         whiten_samples=2000, epochs=2.0) | overrides
    return preset("airbench94", **overrides)
