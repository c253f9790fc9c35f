"""What one run returns, whatever the method: a plain dataclass with no torch, so methods that
never touch a GPU (the simulated one) and the harness's driver can build and read it cheaply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def accuracies(predictions: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Accuracy at TTA levels 0, 1 and 2 from predicted classes (3, n) and the labels (n)."""
    a0, a1, a2 = (float((p == labels).mean()) for p in predictions)
    return a0, a1, a2


@dataclass
class RunResult:
    config: Any  # the method's config dataclass
    seed: int
    accuracy: tuple[float, float, float]  # TTA level 0, 1, 2
    train_seconds: float  # whitening fit + training epochs (CUDA events on GPU)
    eval_seconds: float  # the final TTA evaluation of the test set
    wall_seconds: float  # the whole call, host clock, per run
    epochs: float
    steps: int
    predictions: np.ndarray  # uint8 (3, n_test): predicted class per TTA level
    logits: np.ndarray | None = None  # float16 (3, n_test, 10) when asked for
    env: dict = field(default_factory=dict)  # device, versions, host, timestamps
