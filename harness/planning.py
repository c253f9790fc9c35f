"""What a planned number of seeds will resolve, for ``--dry-run`` before anything is trained."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

from . import stats

# airbench94's TTA-2 accuracy varies across seeds by about 0.15 points (Paper B: 0.149%).
DEFAULT_RUN_SD = 0.0015


@dataclass(frozen=True)
class PlannedPrecision:
    seeds: int
    sd: float              # per-run sd of accuracy (a fraction)
    sd_source: str
    half_width: float      # 95% t-interval half-width of one cell's mean
    detectable: float      # difference between two cells found with 80% power (paired by seed, r = 0)

    def line(self) -> str:
        return (f"with {self.seeds} seeds per cell: each cell's mean accuracy to ±{100 * self.half_width:.3f} points "
                f"(95% CI); a difference of {100 * self.detectable:.3f} points between two cells is detected with "
                f"80% power (two-sided α = 0.05, paired by seed, assuming no seed correlation); run sd "
                f"{100 * self.sd:.3f} points ({self.sd_source})")


def pooled_sd(runs: pd.DataFrame, column: str = "acc_tta2") -> tuple[float, int]:
    """Within-cell sd pooled over cells with at least two runs, and the runs it rests on."""
    if runs is None or not len(runs) or column not in runs or "cell" not in runs:
        return float("nan"), 0
    groups = [g[column].to_numpy(float) for _, g in runs.groupby("cell") if len(g) >= 2]
    df = sum(len(g) - 1 for g in groups)
    if not df:
        return float("nan"), 0
    return float(np.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / df)), sum(len(g) for g in groups)


def planned_precision(seeds: int, runs: pd.DataFrame | None = None, column: str = "acc_tta2",
                      default_sd: float = DEFAULT_RUN_SD) -> PlannedPrecision:
    """Minimum detectable difference and CI half-width for ``seeds`` runs per cell, from the sd of
    the store's own runs when it has any (pooled within cells), else ``default_sd``."""
    sd, used = pooled_sd(runs, column)
    source = f"pooled within cells over {used} runs in this store" if used else \
        f"default for airbench94, {100 * default_sd:.2f} points; no runs in the store yet"
    sd = sd if used else default_sd
    half = float(st.t.ppf(0.975, seeds - 1) * sd / np.sqrt(seeds)) if seeds >= 2 else float("nan")
    return PlannedPrecision(seeds, sd, source, half,
                            stats.minimum_detectable_difference(sd * np.sqrt(2), seeds, paired=True))
