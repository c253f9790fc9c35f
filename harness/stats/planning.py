"""What a planned number of seeds will resolve, for ``--dry-run`` before anything is trained."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats as st

from harness.stats import estimators as stats

if TYPE_CHECKING:
    from harness.stats.sequential import Rule

# (method name, its reference seconds per epoch or None) per planned run
Reference = Sequence[tuple[str, float | None]]

# airbench94's TTA-2 accuracy varies across seeds by about 0.15 points (Paper B: 0.149%).
DEFAULT_RUN_SD = 0.0015


@dataclass(frozen=True)
class PlannedPrecision:
    seeds: int
    sd: float  # per-run sd of accuracy (a fraction)
    sd_source: str
    half_width: float  # 95% t-interval half-width of one cell's mean
    detectable: float  # difference between two cells found with 80% power (paired by seed, r = 0)

    def line(self) -> str:
        if not (np.isfinite(self.half_width) and np.isfinite(self.detectable)):
            return (
                f"with {self.seeds} seed{'s' if self.seeds != 1 else ''} per cell: no confidence interval and no "
                "detectable difference can be estimated (a t-interval and a paired test need at least 2 seeds "
                f"per cell); run sd {100 * self.sd:.3f} points ({self.sd_source})"
            )
        return (
            f"with {self.seeds} seeds per cell: each cell's mean accuracy to ±{100 * self.half_width:.3f} points "
            f"(95% CI); a difference of {100 * self.detectable:.3f} points between two cells is detected with "
            f"80% power (two-sided α = 0.05, paired by seed, assuming no seed correlation); run sd "
            f"{100 * self.sd:.3f} points ({self.sd_source})"
        )


def pooled_sd(runs: pd.DataFrame | None, column: str = "acc_tta2") -> tuple[float, int]:
    """Within-cell sd pooled over cells with at least two runs, and the runs it rests on; a cell is
    one method and version as well as one label (two methods may both have a cell "epochs=2.0")."""
    if runs is None or not len(runs) or column not in runs or "cell" not in runs:
        return float("nan"), 0
    by = [k for k in ("method", "method_version", "cell") if k in runs]
    groups = [g[column].to_numpy(float) for _, g in runs.groupby(by, dropna=False) if len(g) >= 2]
    df = sum(len(g) - 1 for g in groups)
    if not df:
        return float("nan"), 0
    return float(np.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / df)), sum(len(g) for g in groups)


def planned_precision(
    seeds: int,
    runs: pd.DataFrame | None = None,
    column: str = "acc_tta2",
    default_sd: float = DEFAULT_RUN_SD,
    runs_from: str = "in this store",
) -> PlannedPrecision:
    """Minimum detectable difference and CI half-width for ``seeds`` runs per cell, from the sd of
    the store's own runs when it has any (pooled within cells), else ``default_sd``."""
    sd, used = pooled_sd(runs, column)
    source = (
        f"pooled within cells over {used} runs {runs_from}"
        if used
        else f"default for airbench94, {100 * default_sd:.2f} points; no comparable runs in the store"
    )
    sd = sd if used else default_sd
    half = float(st.t.ppf(0.975, seeds - 1) * sd / np.sqrt(seeds)) if seeds >= 2 else float("nan")
    return PlannedPrecision(
        seeds, sd, source, half, stats.minimum_detectable_difference(sd * np.sqrt(2), seeds, paired=True)
    )


# --------------------------------------------------------------------------- comparable runs

SHAPE_FIELDS = ("widths", "n_train", "n_test", "batch_size")  # what a run's seconds per epoch depend on


@dataclass(frozen=True)
class Device:
    """The device class a plan is for: the CPU, or a GPU (its model when known here)."""

    kind: str  # "cpu" or "gpu"
    model: str | None = None  # e.g. "NVIDIA H200"; None: any GPU model

    @property
    def unit(self) -> str:
        return "CPU-hours" if self.kind == "cpu" else "GPU-hours"

    def describe(self) -> str:
        return "CPU" if self.kind == "cpu" else (self.model or "GPU (any model)")

    def matches(self, device_name: pd.Series | Sequence[str]) -> np.ndarray:
        names = pd.Series(device_name, dtype="object").fillna("").astype(str)
        cpu = names.str.lower().eq("cpu")
        if self.kind == "cpu":
            return cpu.to_numpy()
        gpu = ~cpu & names.ne("") & names.ne("simulated")
        return (gpu & names.eq(self.model)).to_numpy() if self.model else gpu.to_numpy()


def shape_of(config: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(json.dumps(config.get(f)) for f in SHAPE_FIELDS)


@dataclass(frozen=True)
class Comparable:
    """The store's runs a plan may learn seconds and sd from, and a sentence naming them."""

    runs: pd.DataFrame
    source: str


def comparable(
    records: pd.DataFrame | None,
    preset: str,
    device: Device,
    specs: Sequence[Any] = (),
    versions: dict[str, str] | None = None,
) -> Comparable:
    """Runs of the same preset, device class, shape (the network's widths and the data sizes of the
    planned cells) and, given ``versions`` ({method spec: version}), the same methods at those
    versions: a GPU plan never learns from CPU runs, nor a full preset from smoke runs, nor one method
    from another that shares its cell labels."""
    where = f"{preset} preset on {device.describe()}"
    which = f" (method {', '.join(f'{m} at version {v}' for m, v in versions.items())})" if versions else ""
    if records is None or not len(records):
        return Comparable(pd.DataFrame(), f"no runs of the {where} in this store{which}")
    keep = np.ones(len(records), bool)
    if versions:
        method = records["method"].astype(str) if "method" in records else pd.Series([""] * len(records))
        version = (
            records["method_version"].astype(str)
            if "method_version" in records
            else pd.Series([""] * len(records))
        )
        keep &= np.array([versions.get(m) == v for m, v in zip(method, version)], bool)
    keep &= (records["preset"].astype(str) == preset).to_numpy() if "preset" in records else False
    keep &= device.matches(records["device_name"]) if "device_name" in records else False
    shapes = {shape_of(s.cell.config.to_dict()) for s in specs}
    if shapes and "config_json" in records:
        keep &= np.array(
            [
                shape_of(json.loads(c)) in shapes if isinstance(c, str) else False
                for c in records["config_json"]
            ],
            bool,
        )
    runs = records[keep]
    if not len(runs):
        return Comparable(
            runs,
            f"no runs of the same method and {where} in this store ({len(records)} others not used){which}",
        )
    models = sorted(runs["device_name"].astype(str).unique())
    return Comparable(
        runs,
        f"{len(runs)} runs of the same method and {where} in this store"
        + (f" ({', '.join(models)})" if device.kind == "gpu" and not device.model else "")
        + which,
    )


# --------------------------------------------------------------------------- cost of a plan

# With no measured runs in the store: the paper's airbench94 script on one H200 takes about 2.65 s of
# wall time per run (2.2 s training plus its evaluations), i.e. about 0.27 s per epoch at its width.
DEFAULT_SECONDS_PER_EPOCH = 0.27


def seconds_per_run(
    specs: Sequence[Any], records: pd.DataFrame | None, reference: Reference | None = None
) -> tuple[np.ndarray, str]:
    """Wall seconds each planned run should take: the mean of the store's runs of the same config,
    else the store's mean seconds per epoch times the run's epochs, else the reference seconds per
    epoch (``reference``: one (method name, seconds or None) per spec, from the method's
    ``reference_seconds_per_epoch``), else the stated default."""
    epochs = np.array([getattr(s.cell.config, "epochs", 1.0) for s in specs], dtype=float)
    if records is None or not len(records) or "wall_seconds" not in records or "config_json" not in records:
        if reference is None:
            return epochs * DEFAULT_SECONDS_PER_EPOCH, (
                f"default {DEFAULT_SECONDS_PER_EPOCH} s per airbench94 epoch "
                "(one H200; no comparable runs in the store)"
            )
        named = {name: DEFAULT_SECONDS_PER_EPOCH if r is None else r for name, r in reference}
        reference_per_epoch = np.array([named[name] for name, _ in reference], dtype=float)
        shown = ", ".join(f"{v:g} s per {name}" for name, v in named.items())
        return (
            epochs * reference_per_epoch,
            f"default {shown} epoch (one H200; no comparable runs in the store)",
        )
    measured = records.groupby("config_json")["wall_seconds"].mean()
    per_epoch = (
        float((records["wall_seconds"] / records["epochs_trained"]).mean())
        if "epochs_trained" in records
        else DEFAULT_SECONDS_PER_EPOCH
    )
    keys = [json.dumps(dataclasses.asdict(s.cell.config), sort_keys=True) for s in specs]
    seconds = np.array([measured.get(k, np.nan) for k in keys], dtype=float)
    matched = int(np.isfinite(seconds).sum())
    seconds = np.where(np.isfinite(seconds), seconds, epochs * per_epoch)
    return seconds, (
        f"measured in this store: {matched} of {len(specs)} runs from runs of the same config, "
        f"the rest at its mean {per_epoch:.3f} s per epoch"
    )


# A run may take this many times its expected seconds before --run-timeout stops it (worker start-up,
# data loading and a slow node included); with nothing measured the expectation is a GPU reference,
# so a CPU or an unknown method gets far more room.
TIMEOUT_FACTOR_MEASURED, TIMEOUT_MIN_MEASURED = 10.0, 300.0
TIMEOUT_FACTOR_REFERENCE, TIMEOUT_MIN_REFERENCE = 100.0, 3600.0


def run_timeout(seconds: np.ndarray, measured: bool) -> float:
    """The default --run-timeout of a plan whose runs should take ``seconds`` each: 10x the longest
    (at least 5 minutes) when measured in the store, else 100x the longest reference (at least 1 h)."""
    longest = float(np.max(seconds)) if len(seconds) else 0.0
    if measured:
        return max(TIMEOUT_MIN_MEASURED, TIMEOUT_FACTOR_MEASURED * longest)
    return max(TIMEOUT_MIN_REFERENCE, TIMEOUT_FACTOR_REFERENCE * longest)


def cost_line(
    specs: Sequence[Any],
    records: pd.DataFrame | None,
    slots: int,
    slots_from: str,
    device: Device = Device("gpu"),
    runs_from: str | None = None,
    reference: Reference | None = None,
) -> str:
    """``records``: the comparable runs only (see ``comparable``); ``runs_from`` names them;
    ``reference``: (method name, its reference seconds per epoch) per spec, for a store with none."""
    seconds, source = seconds_per_run(specs, records, reference)
    if device.kind == "cpu" and (records is None or not len(records)):
        source += " (a GPU figure: no CPU runs measured yet, so a CPU will take far longer)"
    total = float(seconds.sum())
    return (
        f"cost: {total / 3600:.2f} {device.unit}, about {total / slots / 3600:.2f} h wall on {slots} slot(s) "
        f"({slots_from}); seconds per run {source}" + (f"; from {runs_from}" if runs_from else "")
    )


def adaptive_totals(
    delta: float, sd_diff: float, rule: Rule, workers: int, comparisons: int, campaigns: int = 2000
) -> float:
    """Expected runs a whole adaptive study trains when every comparison's true difference is
    ``delta``: each variant's seeds plus the baseline's, which trains as far as the longest."""
    from harness.stats.sequential import simulate

    per = max(1, campaigns // comparisons)
    trained = simulate(delta, sd_diff, rule, workers, per * comparisons).seeds_trained.reshape(
        per, comparisons
    )
    return float((trained.sum(1) + trained.max(1)).mean())


def adaptive_lines(
    rule: Rule,
    records: pd.DataFrame | None,
    workers: int,
    campaigns: int = 2000,
    runs_from: str = "in this store",
    seconds_per_run: float | None = None,
    unit: str = "GPU-hours",
) -> str:
    """Expected seeds per comparison for a few true differences, by simulating the rule; with
    ``seconds_per_run``, the expected and the worst-case total runs and hours of the whole study."""
    from harness.stats.sequential import expected_seeds

    sd, used = pooled_sd(records)
    sd, source = (
        (sd, f"pooled over {used} runs {runs_from}")
        if used
        else (DEFAULT_RUN_SD, f"default {100 * DEFAULT_RUN_SD:.2f} points")
    )
    sd_diff = 100 * sd * np.sqrt(2)  # points; paired differences with no seed correlation (conservative)
    lines = [f"expected seeds per comparison (simulated, run sd {100 * sd:.3f} points, {source}):"]
    for delta in (0.0, rule.precision, 2 * rule.precision, 4 * rule.precision):
        lines.append(
            f"  true difference {delta:g} points: {expected_seeds(delta, sd_diff, rule, workers, campaigns):.1f} "
            f"seeds (at most {rule.max_seeds})"
        )
    if seconds_per_run is not None:
        k = rule.comparisons
        worst = (k + 1) * rule.max_seeds
        lines.append(
            f"whole study, {k} comparison{'s' if k > 1 else ''} and the baseline "
            f"({seconds_per_run:.1f} s per run):"
        )
        for delta in (0.0, rule.precision, 4 * rule.precision):
            runs = adaptive_totals(delta, sd_diff, rule, workers, k, campaigns)
            lines.append(
                f"  expected if every true difference is {delta:g} points: {runs:.0f} runs, "
                f"{runs * seconds_per_run / 3600:.3g} {unit}"
            )
        lines.append(
            f"  worst case (every comparison to M = {rule.max_seeds} seeds): {worst} runs, "
            f"{worst * seconds_per_run / 3600:.3g} {unit}"
        )
    return "\n".join(lines)


def local_gpu_models() -> list[str]:
    """Models of the GPUs on this machine as the driver sees them, without creating a CUDA context."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    # "GPU 0: NVIDIA H200 (UUID: GPU-...)"
    return [
        line.split(":", 1)[1].split("(UUID")[0].strip()
        for line in out.splitlines()
        if line.startswith("GPU ") and ":" in line
    ]


def local_gpus() -> int:
    return len(local_gpu_models())
