"""What a planned number of seeds will resolve, for ``--dry-run`` before anything is trained."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

from harness.stats import estimators as stats

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


# --------------------------------------------------------------------------- cost of a plan

# With no measured runs in the store: the paper's airbench94 script on one H200 takes about 2.65 s of
# wall time per run (2.2 s training plus its evaluations), i.e. about 0.27 s per epoch at its width.
DEFAULT_SECONDS_PER_EPOCH = 0.27


def seconds_per_run(specs, records: pd.DataFrame, reference=None) -> tuple[np.ndarray, str]:
    """Wall seconds each planned run should take: the mean of the store's runs of the same config,
    else the store's mean seconds per epoch times the run's epochs, else the reference seconds per
    epoch (``reference``: one (method name, seconds or None) per spec, from the method's
    ``reference_seconds_per_epoch``), else the stated default."""
    epochs = np.array([getattr(s.cell.config, "epochs", 1.0) for s in specs], dtype=float)
    if records is None or not len(records) or "wall_seconds" not in records or "config_json" not in records:
        if reference is None:
            return epochs * DEFAULT_SECONDS_PER_EPOCH, (f"default {DEFAULT_SECONDS_PER_EPOCH} s per airbench94 epoch "
                                                        "(one H200; no runs in the store yet)")
        named = {name: DEFAULT_SECONDS_PER_EPOCH if r is None else r for name, r in reference}
        per_epoch = np.array([named[name] for name, _ in reference], dtype=float)
        shown = ", ".join(f"{v:g} s per {name}" for name, v in named.items())
        return epochs * per_epoch, f"default {shown} epoch (one H200; no runs in the store yet)"
    measured = records.groupby("config_json")["wall_seconds"].mean()
    per_epoch = float((records["wall_seconds"] / records["epochs_trained"]).mean()) \
        if "epochs_trained" in records else DEFAULT_SECONDS_PER_EPOCH
    keys = [json.dumps(dataclasses.asdict(s.cell.config), sort_keys=True) for s in specs]
    seconds = np.array([measured.get(k, np.nan) for k in keys], dtype=float)
    matched = int(np.isfinite(seconds).sum())
    seconds = np.where(np.isfinite(seconds), seconds, epochs * per_epoch)
    return seconds, (f"measured in this store: {matched} of {len(specs)} runs from runs of the same config, "
                     f"the rest at its mean {per_epoch:.3f} s per epoch")


def cost_line(specs, records: pd.DataFrame, slots: int, slots_from: str, reference=None) -> str:
    seconds, source = seconds_per_run(specs, records, reference)
    total = float(seconds.sum())
    return (f"cost: {total / 3600:.2f} GPU-hours, about {total / slots / 3600:.2f} h wall on {slots} slot(s) "
            f"({slots_from}); seconds per run {source}")


def adaptive_lines(rule, records: pd.DataFrame | None, workers: int, campaigns: int = 2000) -> str:
    """Expected seeds per comparison for a few true differences, by simulating the rule."""
    from harness.stats.sequential import expected_seeds
    sd, used = pooled_sd(records)
    sd, source = (sd, f"pooled over {used} runs in this store") if used else \
        (DEFAULT_RUN_SD, f"default {100 * DEFAULT_RUN_SD:.2f} points")
    sd_diff = 100 * sd * np.sqrt(2)      # points; paired differences with no seed correlation (conservative)
    lines = [f"expected seeds per comparison (simulated, run sd {100 * sd:.3f} points, {source}):"]
    for delta in (0.0, rule.precision, 2 * rule.precision, 4 * rule.precision):
        lines.append(f"  true difference {delta:g} points: {expected_seeds(delta, sd_diff, rule, workers, campaigns):.1f} "
                     f"seeds (at most {rule.max_seeds})")
    return "\n".join(lines)


def local_gpus() -> int:
    """GPUs on this machine as the driver sees them, without creating a CUDA context."""
    import shutil
    import subprocess
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())
