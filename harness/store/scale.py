"""Accuracies as claims and time reports read them: points, from whatever scale load() returns.

The harness reads records through ``read_records``/``read_runs``, which keep the store's fractions
(the public ``load()`` gives percent): this is the one place claims, adaptive claims and time reports
turn an accuracy column into points."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

ACCURACY_SCALE = 100.0


def accuracy_points(runs: pd.DataFrame, level: int = 2) -> npt.NDArray[np.float64]:
    """The runs' accuracy at a TTA level in points (NaN where a run has none)."""
    column = f"acc_tta{level}"
    if column not in runs or not len(runs):
        return np.full(len(runs), np.nan)
    return np.asarray(
        ACCURACY_SCALE * pd.to_numeric(runs[column], errors="coerce").to_numpy(float), np.float64
    )
